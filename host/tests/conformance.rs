//! The storage-driver conformance suite, run against every bundled driver
//! through the library (`host/tests/cli.rs` runs it through the CLI).

use berth::plugin::{InstanceModel, Origin, PluginHost, PluginHostOptions};
use berth::storage::{conformance, open_driver, open_driver_reading, ReadPath, StorageDriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_driver_passes_the_suite() {
    let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
    // Bundled storage drivers: the bundled configuration validators are not.
    let drivers = host.storage_drivers();
    let bundled: Vec<String> = host
        .plugins()
        .filter(|p| p.origin == Origin::Bundled && drivers.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    assert!(
        bundled.contains(&"filesystem".to_string()) && bundled.contains(&"inmemory".to_string()),
        "{bundled:?}"
    );

    for name in bundled {
        let info = host.describe_storage_driver(&name).await.expect("describe");
        if info.network.is_some() {
            continue; // a network driver needs its server: host/tests/s3.rs
        }
        let scratch = tempfile::tempdir().expect("scratch directory");
        let params = match info.directory_parameter {
            Some(key) => vec![(key, scratch.path().display().to_string())],
            None => Vec::new(),
        };
        // A resident driver holds its data in its own memory, under the
        // instance memory limit; the rest get the full 1 GiB stream.
        let large = if info.instance_model == InstanceModel::Resident {
            64 << 20
        } else {
            1 << 30
        };
        // A driver that names its files is read from them; its own reader
        // is part of the contract too.
        let mut read_paths = vec![ReadPath::Direct];
        if host.inspect(&name).expect("inspect").reads_directly() {
            read_paths.push(ReadPath::PluginReader);
        }
        for read_path in read_paths {
            let driver = open_driver_reading(&host, &name, params.clone(), read_path)
                .await
                .expect("open driver");
            passes_the_suite(driver, large, &format!("{name}, {read_path:?}")).await;
        }
    }
}

/// A storage driver written in Python (the template
/// plugins/templates/python-driver, which plugins/examples/build.sh, run by
/// scripts/test, builds into `$BERTH_EXAMPLE_PLUGINS`) passes the same suite
/// as the bundled drivers, loaded as a drop-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_written_in_python_passes_the_suite() {
    let built = std::env::var_os("BERTH_EXAMPLE_PLUGINS")
        .expect("BERTH_EXAMPLE_PLUGINS names where plugins/examples/build.sh wrote its plugins (scripts/test sets it)");
    let dir = tempfile::tempdir().expect("plugin directory");
    let wasm = std::path::Path::new(&built).join("py-inmemory.wasm");
    std::fs::copy(&wasm, dir.path().join("py-inmemory.wasm")).unwrap_or_else(|err| panic!("{}: {err}", wasm.display()));
    let host = PluginHost::new(PluginHostOptions {
        plugin_dir: Some(dir.path().to_path_buf()),
        ..PluginHostOptions::default()
    })
    .expect("plugin host");
    let info = host.describe_storage_driver("py-inmemory").await.expect("describe");
    assert_eq!(info.instance_model, InstanceModel::Resident);
    let driver = open_driver(&host, "py-inmemory", Vec::new())
        .await
        .expect("open driver");
    passes_the_suite(driver, 64 << 20, "py-inmemory").await;
}

/// Runs the whole suite on `driver` (`what` in messages) and fails on any
/// case that fails, or if the suite ran too few cases to mean anything.
async fn passes_the_suite(driver: std::sync::Arc<dyn StorageDriver>, large_stream_bytes: u64, what: &str) {
    let options = conformance::SuiteOptions { large_stream_bytes };
    let outcomes = conformance::run(driver, &options, |_| {}).await;
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|case| case.result.as_ref().err().map(|why| format!("{}: {why}", case.name)))
        .collect();
    assert!(outcomes.len() >= 30, "{what}: only {} cases ran", outcomes.len());
    assert!(failures.is_empty(), "{what}, failed:\n{}", failures.join("\n"));
}

/// The filesystem driver names the file behind each path (`local-files`), so
/// the host reads content straight from it: a piece four times the plugin's
/// whole memory limit reads in one go, which it could not through the plugin.
/// Files are still only reachable inside the root directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_content_is_read_by_the_host_inside_the_root_only() {
    let options = PluginHostOptions {
        memory_limit: 8 << 20,
        ..PluginHostOptions::default()
    };
    let host = PluginHost::new(options).expect("plugin host");
    let top = tempfile::tempdir().expect("scratch directory");
    let root = top.path().join("root");
    let content: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/big"), &content).unwrap();
    std::fs::write(top.path().join("secret"), b"outside the root").unwrap();
    std::os::unix::fs::symlink(top.path().join("secret"), root.join("a/out")).unwrap();
    let params = vec![("rootdirectory".to_string(), root.display().to_string())];
    let driver = open_driver(&host, "filesystem", params).await.expect("open driver");

    let mut reader = driver.reader("/a/big", 1).await.expect("reader");
    let piece = reader.read(32 << 20).await.expect("a 32 MiB read");
    assert!(piece == content[1..], "{} bytes, not the content", piece.len());
    assert!(reader.read(1).await.expect("read at the end").is_empty());

    match driver.reader("/a/out", 0).await {
        Ok(mut reader) => panic!("read {:?} through a link out of the root", reader.read(64).await),
        Err(err) => assert!(err.to_string().contains("/a/out"), "{err}"),
    }
}

/// A killed writer leaves its hidden temporary file (`.link.<random>.tmp`)
/// behind; the next write of the same path sweeps those older than an hour
/// and leaves a fresh one (a write in progress) and other names alone.
#[tokio::test]
async fn the_filesystem_driver_sweeps_what_interrupted_writes_left() {
    let root = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(PluginHostOptions::default()).expect("plugin host");
    let parameters = vec![("rootdirectory".to_string(), root.path().display().to_string())];
    let driver = open_driver(&host, "filesystem", parameters)
        .await
        .expect("filesystem driver");
    driver.put_content("/repo/link", b"one").await.expect("first write");
    let dir = root.path().join("repo");
    let stale = dir.join(".link.0123456789abcdef.tmp");
    let fresh = dir.join(".link.fedcba9876543210.tmp");
    let other = dir.join(".other.0123456789abcdef.tmp");
    for file in [&stale, &fresh, &other] {
        std::fs::write(file, b"half").expect("a temporary file");
    }
    for file in [&stale, &other] {
        let status = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(file)
            .status()
            .expect("touch");
        assert!(status.success());
    }
    driver.put_content("/repo/link", b"two").await.expect("second write");
    assert!(!stale.exists(), "a stale temporary of this path is swept");
    assert!(fresh.exists(), "a fresh one may be a write in progress");
    assert!(
        other.exists(),
        "another path's temporaries are its own writes' to sweep"
    );
    assert_eq!(driver.get_content("/repo/link").await.expect("read"), b"two");
}
