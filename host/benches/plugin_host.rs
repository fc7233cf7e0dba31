//! The plugin host's costs, side by side with native code in one run:
//!
//! - a trivial driver call (`redirect-url` on the per-call filesystem
//!   driver, answered by the host from its fixed answers; then `stat` made
//!   by the plugin in a request of one call and of ten), which includes
//!   creating a Store, instantiating and initialising the component;
//!   target < 5 us;
//! - 1 GiB written then read through the filesystem driver, against plain
//!   tokio file I/O with the same chunk size; target >= 0.8x native. Writes
//!   go through the plugin; reads come from the file it names.
//!
//! Run: `cargo bench -p berth --bench plugin_host`. BENCH_GIB=n changes the
//! size; BENCH_COLD=1 (Linux, root) drops the page cache before each read, so
//! reads come from the disk instead of memory. BENCH_PLUGIN_DIR=dir with
//! BENCH_RESIDENT=name[,name...] adds the resident drivers dropped into `dir`
//! (the Python example, say) beside the Rust `inmemory`: a `stat` and
//! 16 MiB written and read, each.

use std::time::{Duration, Instant};

use berth::plugin::{one_instance_per_request, PluginHost, PluginHostOptions};
use berth::storage::{open_driver, open_driver_reading, ReadPath, StorageDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 4 << 20;
const ROUNDS: usize = 3;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let size: u64 = std::env::var("BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        << 30;
    let scratch = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))?;
    let root = scratch.path().join("driver");
    let host = PluginHost::new(PluginHostOptions {
        plugin_dir: std::env::var_os("BENCH_PLUGIN_DIR").map(Into::into),
        ..PluginHostOptions::default()
    })?;
    // Its reads go to the plugin, as they would for a driver that does not
    // keep its storage in a directory the host can read.
    let driver = open_driver_reading(
        &host,
        "filesystem",
        vec![("rootdirectory".into(), root.display().to_string())],
        ReadPath::PluginReader,
    )
    .await?;
    // The same storage as the registry opens it: reads from the files.
    let direct = open_driver(
        &host,
        "filesystem",
        vec![("rootdirectory".into(), root.display().to_string())],
    )
    .await?;

    // Per-call cost: a per-call driver pays for a fresh instance every time;
    // a resident one shows the call alone.
    let resident = open_driver(&host, "inmemory", Vec::new()).await?;
    for (what, driver) in [
        ("per-call driver, answered by the host (its fixed answers)", &driver),
        ("resident driver, the call alone", &resident),
    ] {
        for _ in 0..1000 {
            driver.redirect_url("GET", "/warm").await?;
        }
        let calls = 20_000;
        let started = Instant::now();
        for _ in 0..calls {
            driver.redirect_url("GET", "/a/b").await?;
        }
        let per_call = started.elapsed() / calls;
        println!("trivial call, {what}: {:.2} us", per_call.as_secs_f64() * 1e6);
    }
    // What a registry request pays: one instance for the request, and the
    // one call a blob HEAD makes (`stat`).
    let _ = driver.put_content("/a/b", b"x").await;
    let requests = 20_000;
    let started = Instant::now();
    for _ in 0..requests {
        one_instance_per_request(driver.stat("/a/b")).await?;
    }
    let per_request = started.elapsed() / requests;
    println!(
        "one request of one call (stat), per-call driver, instance included: {:.2} us",
        per_request.as_secs_f64() * 1e6
    );
    let started = Instant::now();
    for _ in 0..requests / 10 {
        one_instance_per_request(async {
            for _ in 0..10 {
                driver.stat("/a/b").await?;
            }
            anyhow::Ok(())
        })
        .await?;
    }
    let per_call = started.elapsed() / requests;
    println!(
        "one request of ten calls (stat), per-call driver, per call: {:.2} us",
        per_call.as_secs_f64() * 1e6
    );

    if let Ok(names) = std::env::var("BENCH_RESIDENT") {
        println!(
            "{:<28} {:>10} {:>12} {:>12}",
            "resident driver", "stat, us", "write MB/s", "read MB/s"
        );
        let (stat, write, read) = resident_costs(resident.as_ref()).await?;
        println!("{:<28} {stat:>10.2} {write:>12.0} {read:>12.0}", "inmemory (Rust)");
        for name in names.split(',') {
            let other = open_driver(&host, name, Vec::new()).await?;
            let (stat, write, read) = resident_costs(other.as_ref()).await?;
            println!("{name:<28} {stat:>10.2} {write:>12.0} {read:>12.0}");
        }
    }

    // Bulk I/O, alternating native and plugin, best of ROUNDS each.
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let native_path = scratch.path().join("native");
    let (mut nw, mut nr, mut pw, mut pr) = (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        nw = nw.min(timed(native_write(&native_path, &chunk, size)).await?);
        drop_caches_if_cold()?;
        nr = nr.min(timed(native_read(&native_path, size)).await?);
        tokio::fs::remove_file(&native_path).await?;

        pw = pw.min(timed(write_blob(direct.as_ref(), &chunk, size)).await?);
        pr = pr.min(timed(read_blob(direct.as_ref(), CHUNK, size)).await?);
        direct.delete("/bench").await?;
    }
    let mbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{:<8} {:>12} {:>12} {:>8}",
        "1 GiB", "native MB/s", "driver MB/s", "ratio"
    );
    println!(
        "{:<8} {:>12.0} {:>12.0} {:>8.2}",
        "write",
        mbps(nw),
        mbps(pw),
        nw.as_secs_f64() / pw.as_secs_f64()
    );
    println!(
        "{:<8} {:>12.0} {:>12.0} {:>8.2}",
        "read",
        mbps(nr),
        mbps(pr),
        nr.as_secs_f64() / pr.as_secs_f64()
    );
    Ok(())
}

/// A resident driver's `stat` in microseconds, and 16 MiB written and read
/// back in 1 MiB pieces, MB/s (best of ROUNDS).
async fn resident_costs(driver: &dyn StorageDriver) -> anyhow::Result<(f64, f64, f64)> {
    // Small enough for a driver whose memory is never given back (CPython's
    // is not: 64 MiB written and deleted three times passes 256 MiB).
    const SIZE: usize = 16 << 20;
    const PIECE: usize = 1 << 20;
    driver.put_content("/a/b", b"x").await?;
    let calls = 20_000;
    let started = Instant::now();
    for _ in 0..calls {
        driver.stat("/a/b").await?;
    }
    let stat = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    let piece: Vec<u8> = (0..PIECE).map(|i| (i * 31 % 251) as u8).collect();
    let (mut write, mut read) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        write = write.min(timed(write_blob(driver, &piece, SIZE as u64)).await?);
        read = read.min(timed(read_blob(driver, PIECE, SIZE as u64)).await?);
        driver.delete("/bench").await?;
    }
    let mbps = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e6;
    Ok((stat, mbps(write), mbps(read)))
}

/// Writes `size` bytes to `/bench/blob` through `driver`, `piece` at a
/// time, and commits.
async fn write_blob(driver: &dyn StorageDriver, piece: &[u8], size: u64) -> anyhow::Result<()> {
    let mut writer = driver.writer("/bench/blob", false).await?;
    for _ in 0..size / piece.len() as u64 {
        writer.write(piece).await?;
    }
    writer.commit().await?;
    Ok(())
}

/// Reads `/bench/blob` through `driver` in pieces of at most `piece`
/// bytes; fails unless it held `size` bytes.
async fn read_blob(driver: &dyn StorageDriver, piece: usize, size: u64) -> anyhow::Result<()> {
    let mut reader = driver.reader("/bench/blob", 0).await?;
    let mut total = 0u64;
    loop {
        let data = reader.read(piece as u32).await?;
        if data.is_empty() {
            break;
        }
        total += data.len() as u64;
    }
    anyhow::ensure!(total == size, "read {total} of {size} bytes");
    Ok(())
}

fn drop_caches_if_cold() -> anyhow::Result<()> {
    if std::env::var_os("BENCH_COLD").is_some() {
        std::process::Command::new("sync").status()?;
        std::fs::write("/proc/sys/vm/drop_caches", "1\n")?;
    }
    Ok(())
}

async fn timed<F: std::future::Future<Output = anyhow::Result<()>>>(work: F) -> anyhow::Result<Duration> {
    let started = Instant::now();
    work.await?;
    Ok(started.elapsed())
}

async fn native_write(path: &std::path::Path, chunk: &[u8], size: u64) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    for _ in 0..size / chunk.len() as u64 {
        file.write_all(chunk).await?;
    }
    file.sync_all().await?;
    Ok(())
}

async fn native_read(path: &std::path::Path, size: u64) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    anyhow::ensure!(total == size, "read {total} of {size} bytes");
    Ok(())
}
