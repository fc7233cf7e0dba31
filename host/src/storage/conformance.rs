//! The conformance suite every storage driver must pass: the semantics of
//! distribution's `StorageDriver` (and of `wit/storage/storage.wit`), checked
//! through [`StorageDriver`] alone.
//!
//! Every case works below its own directory, `/berth-conformance-<hex>/<case>`,
//! which is deleted afterwards, so the suite can run against a store that
//! holds other data and leaves nothing behind. Each case runs in its own task
//! under a deadline: a hung or panicking driver fails that case, not the run.
//! A failure says what was asked, what came back and what was wanted.

use std::collections::hash_map::RandomState;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::{FileInfo, StorageDriver, StorageError};

/// How the suite is run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Bytes pushed through one writer and read back through one reader by
    /// the `large-stream` case.
    pub large_stream_bytes: u64,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            large_stream_bytes: 1 << 30,
        }
    }
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub name: &'static str,
    /// `Err` says what was expected and what was found.
    pub result: Result<(), String>,
    pub elapsed: Duration,
}

/// Runs every case against `driver`, one after the other, calling `on_case`
/// as each finishes; the last case checks that the run left nothing behind.
pub async fn run(
    driver: Arc<dyn StorageDriver>,
    options: &SuiteOptions,
    mut on_case: impl FnMut(&CaseOutcome),
) -> Vec<CaseOutcome> {
    let root = format!("/berth-conformance-{}", unique_hex());
    let mut outcomes = Vec::with_capacity(CASES.len() + 1);
    for &(name, case) in CASES {
        let cx = Ctx {
            driver: driver.clone(),
            root: root.clone(),
            dir: format!("{root}/{name}"),
            large_stream_bytes: options.large_stream_bytes,
        };
        let started = Instant::now();
        let result = run_case(case(cx)).await;
        let elapsed = started.elapsed();
        // Best effort: whatever is left is swept up by the last case.
        let _ = tokio::time::timeout(CLEANUP_TIMEOUT, driver.delete(&format!("{root}/{name}"))).await;
        let outcome = CaseOutcome { name, result, elapsed };
        on_case(&outcome);
        outcomes.push(outcome);
    }
    let started = Instant::now();
    let result = run_case(Box::pin(nothing_left_behind(driver, root))).await;
    let outcome = CaseOutcome {
        name: "nothing-left-behind",
        result,
        elapsed: started.elapsed(),
    };
    on_case(&outcome);
    outcomes.push(outcome);
    outcomes
}

/// The longest one case may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest the clean-up after a case may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;
/// The unit of the large stream, written and read back one at a time.
const CHUNK: usize = 4 * MIB;
/// How far a file's modification time may be from the host's clock.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

type CaseResult = Result<(), String>;
type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;
type CaseFn = fn(Ctx) -> CaseFuture;

macro_rules! cases {
    ($($name:literal => $case:ident,)*) => {
        /// Every case, in the order they run: name (also its directory) and body.
        const CASES: &[(&str, CaseFn)] = &[$(($name, |cx: Ctx| -> CaseFuture { Box::pin($case(cx)) }),)*];
    };
}

cases! {
    "root-exists" => root_exists,
    "valid-paths" => valid_paths,
    "invalid-paths" => invalid_paths,
    "write-read-small" => write_read_small,
    "write-read-empty" => write_read_empty,
    "write-read-non-utf8" => write_read_non_utf8,
    "write-read-32mib" => write_read_32mib,
    "stream-write-read" => stream_write_read,
    "large-stream" => large_stream,
    "truncate" => truncate,
    "nonexistent-paths" => nonexistent_paths,
    "reader-offset" => reader_offset,
    "append-small" => append_small,
    "append-large" => append_large,
    "zero-byte-stream-then-append" => zero_byte_stream_then_append,
    "zero-byte-content-then-append" => zero_byte_content_then_append,
    "close-then-append" => close_then_append,
    "close-append-close-then-commit" => close_append_close_then_commit,
    "writer-cancel" => writer_cancel,
    "list" => list,
    "move" => move_file,
    "move-overwrite" => move_overwrite,
    "move-nonexistent" => move_nonexistent,
    "move-invalid" => move_invalid,
    "delete-file" => delete_file,
    "delete-folder" => delete_folder,
    "delete-nonexistent" => delete_nonexistent,
    "delete-only-subpaths" => delete_only_subpaths,
    "delete-files" => delete_files,
    "stat" => stat,
    "stat-modified-time-advances" => stat_modified_time_advances,
    "put-content-repeatedly" => put_content_repeatedly,
    "put-content-many-paths" => put_content_many_paths,
    "purge-temporary-keeps-content" => purge_temporary_keeps_content,
    "concurrent-readers" => concurrent_readers,
    "concurrent-writers" => concurrent_writers,
    "walk" => walk,
    "redirect-url" => redirect_url,
}

/// Runs one case in its own task, so that a panic or a hang fails the case.
async fn run_case(case: CaseFuture) -> CaseResult {
    let mut task = tokio::spawn(case);
    match tokio::time::timeout(CASE_TIMEOUT, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(join_failure(err)),
        Err(_) => {
            task.abort();
            Err(format!("did not finish within {} s", CASE_TIMEOUT.as_secs()))
        }
    }
}

fn join_failure(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return format!("task failed: {err}");
    }
    let payload = err.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("panicked: {message}")
}

// ---------------------------------------------------------------------------
// Helpers: expectations that say what they found, and driver calls that say
// what failed.

/// What a case works with.
#[derive(Clone)]
struct Ctx {
    driver: Arc<dyn StorageDriver>,
    /// The run's top-level directory, `/berth-conformance-<hex>`.
    root: String,
    /// This case's own directory, below `root`.
    dir: String,
    large_stream_bytes: u64,
}

impl Ctx {
    /// `rel` below this case's directory.
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    /// A new writer on `path` (not appending) that has been given `content`
    /// and is still open.
    async fn writer_holding(&self, path: &str, content: &[u8]) -> Result<Box<dyn super::FileWriter>, String> {
        let mut writer = self
            .driver
            .writer(path, false)
            .await
            .or_fail(&format!("writer({path}, append=false)"))?;
        writer
            .write(content)
            .await
            .or_fail(&format!("write({} bytes) to {path}", content.len()))?;
        Ok(writer)
    }

    async fn put(&self, path: &str, content: &[u8]) -> CaseResult {
        let call = format!("put_content({path}, {} bytes)", content.len());
        self.driver.put_content(path, content).await.or_fail(&call)
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        self.driver
            .get_content(path)
            .await
            .or_fail(&format!("get_content({path})"))
    }

    async fn expect_content(&self, path: &str, want: &[u8]) -> CaseResult {
        let got = self.get(path).await?;
        expect_bytes(format!("get_content({path})"), &got, want)
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, String> {
        self.driver.stat(path).await.or_fail(&format!("stat({path})"))
    }

    /// The listing of `path`, sorted.
    async fn list(&self, path: &str) -> Result<Vec<String>, String> {
        let mut children = self.driver.list(path).await.or_fail(&format!("list({path})"))?;
        children.sort();
        Ok(children)
    }

    async fn expect_list(&self, path: &str, want: &[String]) -> CaseResult {
        let got = self.list(path).await?;
        let mut want = want.to_vec();
        want.sort();
        expect_eq(format!("list({path})"), got, want)
    }

    async fn move_to(&self, source: &str, destination: &str) -> CaseResult {
        self.driver
            .move_to(source, destination)
            .await
            .or_fail(&format!("move({source}, {destination})"))
    }

    async fn delete(&self, path: &str) -> CaseResult {
        self.driver.delete(path).await.or_fail(&format!("delete({path})"))
    }

    /// `get_content` and `stat` both say `path` does not exist.
    async fn expect_gone(&self, path: &str) -> CaseResult {
        expect_not_found(format!("get_content({path})"), self.driver.get_content(path).await)?;
        expect_not_found(format!("stat({path})"), self.driver.stat(path).await)
    }

    async fn expect_size(&self, path: &str, want: u64) -> CaseResult {
        let info = self.stat(path).await?;
        expect_eq(format!("stat({path}).size"), info.size, want)?;
        expect_eq(format!("stat({path}).is_dir"), info.is_dir, false)
    }

    async fn write_stream(&self, path: &str, append: bool, existing: u64, data: &[u8], piece: usize) -> CaseResult {
        write_stream(&*self.driver, path, append, existing, data, piece).await
    }

    async fn read_all(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, String> {
        read_all(&*self.driver, path, offset, max).await
    }
}

trait OrFail<T> {
    /// Turns a driver error into the suite's message for `call`.
    fn or_fail(self, call: &str) -> Result<T, String>;
}

impl<T> OrFail<T> for super::Result<T> {
    fn or_fail(self, call: &str) -> Result<T, String> {
        self.map_err(|err| format!("{call} failed: {err}"))
    }
}

/// Opens a writer on `path`, checks it starts at `existing` bytes, writes
/// `data` in pieces of `piece` bytes checking `size` after each, and commits.
async fn write_stream(
    driver: &dyn StorageDriver,
    path: &str,
    append: bool,
    existing: u64,
    data: &[u8],
    piece: usize,
) -> CaseResult {
    let mut writer = driver
        .writer(path, append)
        .await
        .or_fail(&format!("writer({path}, append={append})"))?;
    let size = writer
        .size()
        .await
        .or_fail(&format!("size() of a new writer on {path}"))?;
    expect_eq(
        format!("size() of a new writer({path}, append={append})"),
        size,
        existing,
    )?;
    let mut written = existing;
    for part in data.chunks(piece.max(1)) {
        writer
            .write(part)
            .await
            .or_fail(&format!("write({} bytes) to {path} at {written}", part.len()))?;
        written += part.len() as u64;
        let size = writer
            .size()
            .await
            .or_fail(&format!("size() of the writer on {path}"))?;
        expect_eq(format!("size() of the writer on {path} after a write"), size, written)?;
    }
    writer
        .commit()
        .await
        .or_fail(&format!("commit() of the writer on {path}"))
}

/// Everything a reader on `path` from `offset` gives, in reads of at most
/// `max` bytes, each checked against that bound.
async fn read_all(driver: &dyn StorageDriver, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, String> {
    let mut reader = driver
        .reader(path, offset)
        .await
        .or_fail(&format!("reader({path}, {offset})"))?;
    let mut content = Vec::new();
    loop {
        let call = format!(
            "read({max}) from reader({path}, {offset}) after {} bytes",
            content.len()
        );
        let data = reader.read(max).await.or_fail(&call)?;
        if data.len() > max as usize {
            return Err(format!("{call} returned {} bytes, want at most {max}", data.len()));
        }
        if data.is_empty() {
            return Ok(content);
        }
        content.extend_from_slice(&data);
    }
}

fn expect_eq<T: PartialEq + Debug>(what: impl Display, got: T, want: T) -> CaseResult {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} = {got:?}, want {want:?}"))
    }
}

/// Compares contents, showing their sizes, a preview and the first difference.
fn expect_bytes(what: impl Display, got: &[u8], want: &[u8]) -> CaseResult {
    if got == want {
        return Ok(());
    }
    let shown = |b: &[u8]| format!("{} bytes [{}]", b.len(), preview(b));
    let difference = match got.iter().zip(want).position(|(g, w)| g != w) {
        Some(at) => format!(
            "first difference at byte {at}: {:#04x}, want {:#04x}",
            got[at], want[at]
        ),
        None => "the shorter is a prefix of the longer".to_string(),
    };
    Err(format!("{what} = {}, want {}; {difference}", shown(got), shown(want)))
}

fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 16;
    let head = hex::encode(&bytes[..bytes.len().min(SHOWN)]);
    if bytes.len() > SHOWN {
        format!("{head}...")
    } else {
        head
    }
}

fn outcome<T>(result: &super::Result<T>) -> String {
    match result {
        Ok(_) => "Ok".to_string(),
        Err(err) => format!("Err({err:?})"),
    }
}

fn expect_not_found<T>(call: impl Display, result: super::Result<T>) -> CaseResult {
    match result {
        Err(StorageError::PathNotFound(_)) => Ok(()),
        other => Err(format!("{call} = {}, want Err(PathNotFound)", outcome(&other))),
    }
}

fn expect_invalid_path<T>(call: impl Display, result: super::Result<T>) -> CaseResult {
    match result {
        Err(StorageError::InvalidPath(_)) => Ok(()),
        other => Err(format!("{call} = {}, want Err(InvalidPath)", outcome(&other))),
    }
}

/// Collects the failures of checks that should all be made, not stop at the
/// first.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, result: CaseResult) {
        if let Err(message) = result {
            self.0.push(message);
        }
    }

    fn into_result(self) -> CaseResult {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("; "))
        }
    }
}

/// `len` deterministic pseudo-random bytes: the xorshift64 stream whose state
/// is derived from `seed`. Cheap enough to regenerate a gigabyte.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    // splitmix64, so that neighbouring seeds give unrelated streams.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut state = (z ^ (z >> 31)) | 1;
    let mut out = vec![0u8; len];
    for word in out.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
    }
    out
}

/// Chunk `index` of the large stream of `total` bytes; empty past its end.
fn large_chunk(index: u64, total: u64) -> Vec<u8> {
    let start = index.saturating_mul(CHUNK as u64);
    let len = total.saturating_sub(start).min(CHUNK as u64) as usize;
    pattern(0x4c61_7267_6500_0000 ^ index, len)
}

/// 16 hex digits that differ from one call, process and run to the next.
fn unique_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(now_ns().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    // Seeded from the operating system's randomness, once per process.
    hasher.update(RandomState::new().build_hasher().finish().to_le_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------------------
// The cases.

/// `/` lists, and a file below a fresh top-level directory shows up in it as
/// that directory's full path.
async fn root_exists(cx: Ctx) -> CaseResult {
    cx.put(&cx.path("file"), b"root").await?;
    let top = cx.list("/").await?;
    if !top.contains(&cx.root) {
        return Err(format!("list(/) = {top:?}, want it to contain {}", cx.root));
    }
    match top
        .iter()
        .find(|entry| entry.len() < 2 || !entry.starts_with('/') || entry[1..].contains('/'))
    {
        Some(bad) => Err(format!(
            "list(/) contains {bad:?}, want full paths of direct children like {}",
            cx.root
        )),
        None => Ok(()),
    }
}

async fn valid_paths(cx: Ctx) -> CaseResult {
    let long_name: String = "abcdefghijklmnopqrstuvwxyz0123456789._-"
        .chars()
        .cycle()
        .take(200)
        .collect();
    let deep: Vec<String> = (0..40).map(|i| format!("l{i:02}")).collect();
    let mut paths: Vec<String> = [
        "a",
        "2",
        "aa",
        "a.a",
        "0-9/abcdefg",
        "abcdefg/z.75",
        "abc/1.2.3.4.5-6_zyx/123.z/4",
        "docker/docker-registry",
        "123.abc",
        "abc./abc",
        ".abc",
        "...",
        "x/.../y",
        "a--b",
        "a-.b",
        "_.abc",
        "__",
        "Docker/docker-registry",
        "Abc/Cba",
        "sha256/ab/abcdef0123456789/data",
    ]
    .iter()
    .map(|rel| cx.path(rel))
    .collect();
    paths.push(cx.path(&long_name));
    paths.push(cx.path(&format!("deep/{}/file", deep.join("/"))));
    for (i, path) in paths.iter().enumerate() {
        let content = pattern(i as u64, 64);
        cx.put(path, &content).await?;
        cx.expect_content(path, &content).await?;
    }
    Ok(())
}

/// Every operation rejects every malformed path with `InvalidPath`. The bad
/// paths are built from the case's directory, so that a driver which accepts
/// one anyway writes where the clean-up finds it.
async fn invalid_paths(cx: Ctx) -> CaseResult {
    let dir = &cx.dir;
    let relative = &dir[1..];
    let source = cx.path("source");
    cx.put(&source, b"source").await?;
    let invalid: Vec<String> = vec![
        String::new(),
        format!("{relative}/a"),
        format!("{dir}/a/"),
        format!("/{dir}/a"),
        format!("{dir}//a"),
        format!("{dir}/a/../b"),
        format!("{dir}/a/.."),
        format!("{dir}/./a"),
        format!("{dir}/."),
        format!("{dir}/a b"),
        format!("{dir}/a\\b"),
        format!("{dir}/\u{e4}"),
        format!("{dir}/a\0b"),
        format!("{dir}/a:b"),
        format!("{dir}/a\nb"),
        format!("{dir}/a*b"),
    ];
    let driver = &*cx.driver;
    let mut failures = Failures::default();
    // `/` is a directory: fine for list, walk and stat, never a file, and
    // never offered to delete or move.
    let file_only = ["/".to_string()];
    for path in invalid.iter().chain(&file_only) {
        let p = format!("{path:?}");
        failures.check(expect_invalid_path(
            format!("get_content({p})"),
            driver.get_content(path).await,
        ));
        failures.check(expect_invalid_path(
            format!("put_content({p})"),
            driver.put_content(path, b"x").await,
        ));
        failures.check(expect_invalid_path(
            format!("reader({p}, 0)"),
            driver.reader(path, 0).await,
        ));
        match driver.writer(path, false).await {
            Err(StorageError::InvalidPath(_)) => {}
            Ok(writer) => {
                let _ = writer.cancel().await;
                failures.check(Err(format!("writer({p}, append=false) = Ok, want Err(InvalidPath)")));
            }
            Err(err) => failures.check(Err(format!(
                "writer({p}, append=false) = Err({err:?}), want Err(InvalidPath)"
            ))),
        }
        let redirect = driver.redirect_url("GET", path).await;
        failures.check(expect_invalid_path(format!("redirect_url(GET, {p})"), redirect));
    }
    for path in &invalid {
        let p = format!("{path:?}");
        failures.check(expect_invalid_path(format!("stat({p})"), driver.stat(path).await));
        failures.check(expect_invalid_path(format!("list({p})"), driver.list(path).await));
        failures.check(expect_invalid_path(
            format!("walk({p})"),
            driver.walk(path, None, 10).await,
        ));
        let destination = cx.path("destination");
        failures.check(expect_invalid_path(
            format!("move({p}, {destination})"),
            driver.move_to(path, &destination).await,
        ));
        failures.check(expect_invalid_path(
            format!("move({source}, {p})"),
            driver.move_to(&source, path).await,
        ));
        failures.check(expect_invalid_path(format!("delete({p})"), driver.delete(path).await));
    }
    failures.check(cx.expect_content(&source, b"source").await);
    failures.into_result()
}

async fn write_read_small(cx: Ctx) -> CaseResult {
    let contents: [&[u8]; 3] = [b"a", "\u{df}".as_bytes(), &pattern(1, 32)];
    for (i, content) in contents.iter().enumerate() {
        let path = cx.path(&format!("dir/file-{i}"));
        cx.put(&path, content).await?;
        cx.expect_content(&path, content).await?;
        cx.expect_size(&path, content.len() as u64).await?;
    }
    Ok(())
}

async fn write_read_empty(cx: Ctx) -> CaseResult {
    let path = cx.path("empty");
    cx.put(&path, b"").await?;
    cx.expect_content(&path, b"").await?;
    cx.expect_size(&path, 0).await?;
    expect_bytes(format!("reader({path}, 0)"), &cx.read_all(&path, 0, 1024).await?, b"")
}

/// Bytes that are not UTF-8 survive both ways in and out.
async fn write_read_non_utf8(cx: Ctx) -> CaseResult {
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let contents: [&[u8]; 3] = [&all_bytes, &[0x80; 4], &[0xff, 0xfe, 0x00, 0xc3]];
    for (i, content) in contents.iter().enumerate() {
        let path = cx.path(&format!("put-{i}"));
        cx.put(&path, content).await?;
        cx.expect_content(&path, content).await?;
        let path = cx.path(&format!("stream-{i}"));
        cx.write_stream(&path, false, 0, content, 100).await?;
        expect_bytes(format!("reader({path}, 0)"), &cx.read_all(&path, 0, 64).await?, content)?;
    }
    Ok(())
}

async fn write_read_32mib(cx: Ctx) -> CaseResult {
    let path = cx.path("big");
    let content = pattern(32, 32 * MIB);
    cx.put(&path, &content).await?;
    cx.expect_content(&path, &content).await?;
    cx.expect_size(&path, content.len() as u64).await
}

/// Content written through a writer reads back through a reader and
/// `get_content`, whatever the sizes of the writes and reads.
async fn stream_write_read(cx: Ctx) -> CaseResult {
    let large = pattern(7, MIB + 3);
    let contents: [(&[u8], usize); 4] = [
        (b"a", 1),
        ("\u{df}".as_bytes(), 1),
        (&pattern(3, 32), 5),
        (&large, 64 * 1024),
    ];
    for (i, (content, piece)) in contents.iter().enumerate() {
        let path = cx.path(&format!("stream-{i}"));
        cx.write_stream(&path, false, 0, content, *piece).await?;
        expect_bytes(
            format!("reader({path}, 0)"),
            &cx.read_all(&path, 0, 256 * 1024).await?,
            content,
        )?;
        cx.expect_content(&path, content).await?;
        cx.expect_size(&path, content.len() as u64).await?;
    }
    Ok(())
}

/// `large_stream_bytes` through one writer and one reader, generated and
/// checked a chunk at a time: the suite never holds the whole stream.
async fn large_stream(cx: Ctx) -> CaseResult {
    let total = cx.large_stream_bytes;
    let path = cx.path("large");
    let mut writer = cx
        .driver
        .writer(&path, false)
        .await
        .or_fail(&format!("writer({path}, append=false)"))?;
    let mut written = 0u64;
    for index in 0.. {
        let chunk = large_chunk(index, total);
        if chunk.is_empty() {
            break;
        }
        writer
            .write(&chunk)
            .await
            .or_fail(&format!("write({} bytes) to {path} at {written}", chunk.len()))?;
        written += chunk.len() as u64;
    }
    let size = writer
        .size()
        .await
        .or_fail(&format!("size() of the writer on {path}"))?;
    expect_eq(
        format!("size() of the writer on {path} after writing {total} bytes"),
        size,
        total,
    )?;
    writer
        .commit()
        .await
        .or_fail(&format!("commit() of the writer on {path}"))?;
    cx.expect_size(&path, total).await?;

    let mut reader = cx
        .driver
        .reader(&path, 0)
        .await
        .or_fail(&format!("reader({path}, 0)"))?;
    let mut pending: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    let mut verified = 0u64;
    let mut index = 0;
    loop {
        let data = reader
            .read(CHUNK as u32)
            .await
            .or_fail(&format!("read({CHUNK}) from {path} at {verified}"))?;
        if data.len() > CHUNK {
            return Err(format!(
                "read({CHUNK}) from {path} returned {} bytes, want at most {CHUNK}",
                data.len()
            ));
        }
        if data.is_empty() {
            break;
        }
        let received = verified + (pending.len() + data.len()) as u64;
        if received > total {
            return Err(format!(
                "reader({path}, 0) gave at least {received} bytes, want {total}"
            ));
        }
        pending.extend_from_slice(&data);
        loop {
            let want = large_chunk(index, total);
            if want.is_empty() || pending.len() < want.len() {
                break;
            }
            let what = format!(
                "bytes {verified}..{} read back from {path}",
                verified + want.len() as u64
            );
            expect_bytes(what, &pending[..want.len()], &want)?;
            pending.drain(..want.len());
            verified += want.len() as u64;
            index += 1;
        }
    }
    let received = verified + pending.len() as u64;
    expect_eq(format!("bytes given by reader({path}, 0)"), received, total)
}

/// Shorter content replaces longer content, through `put_content` and
/// through a writer that does not append.
async fn truncate(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    cx.put(&path, &pattern(1, MIB)).await?;
    let shorter = pattern(2, 1024);
    cx.put(&path, &shorter).await?;
    cx.expect_content(&path, &shorter).await?;
    cx.expect_size(&path, 1024).await?;
    let shortest = pattern(3, 10);
    cx.write_stream(&path, false, 0, &shortest, 10).await?;
    cx.expect_content(&path, &shortest).await?;
    cx.expect_size(&path, 10).await
}

async fn nonexistent_paths(cx: Ctx) -> CaseResult {
    cx.put(&cx.path("present"), b"present").await?;
    let driver = &*cx.driver;
    let mut failures = Failures::default();
    for path in [
        cx.path("missing"),
        cx.path("missing/deeper/file"),
        cx.path("present/below"),
    ] {
        failures.check(expect_not_found(
            format!("get_content({path})"),
            driver.get_content(&path).await,
        ));
        failures.check(expect_not_found(
            format!("reader({path}, 0)"),
            driver.reader(&path, 0).await,
        ));
        failures.check(expect_not_found(
            format!("reader({path}, 64)"),
            driver.reader(&path, 64).await,
        ));
        failures.check(expect_not_found(format!("stat({path})"), driver.stat(&path).await));
        failures.check(expect_not_found(format!("delete({path})"), driver.delete(&path).await));
        let destination = cx.path("destination");
        let moved = driver.move_to(&path, &destination).await;
        failures.check(expect_not_found(format!("move({path}, {destination})"), moved));
    }
    for path in [cx.path("missing"), cx.path("missing/deeper")] {
        failures.check(expect_not_found(format!("list({path})"), driver.list(&path).await));
        failures.check(expect_not_found(
            format!("walk({path})"),
            driver.walk(&path, None, 10).await,
        ));
    }
    failures.check(cx.expect_content(&cx.path("present"), b"present").await);
    failures.into_result()
}

async fn reader_offset(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    let content = pattern(5, 96);
    cx.put(&path, &content).await?;
    for offset in [0, 1, 32, 64, 95] {
        let got = cx.read_all(&path, offset, 32).await?;
        expect_bytes(format!("reader({path}, {offset})"), &got, &content[offset as usize..])?;
    }
    let got = cx.read_all(&path, 10, 7).await?;
    expect_bytes(format!("reader({path}, 10) in reads of 7 bytes"), &got, &content[10..])?;
    for offset in [96, 97, 96 + 1024 * 1024] {
        let got = cx.read_all(&path, offset, 32).await?;
        expect_bytes(format!("reader({path}, {offset}) of a 96-byte file"), &got, b"")?;
    }
    // One byte before the end: that byte, then the end, and it stays there.
    let mut reader = cx
        .driver
        .reader(&path, 95)
        .await
        .or_fail(&format!("reader({path}, 95)"))?;
    let mut got = Vec::new();
    loop {
        let data = reader
            .read(32)
            .await
            .or_fail(&format!("read(32) from reader({path}, 95)"))?;
        if data.is_empty() {
            break;
        }
        got.extend_from_slice(&data);
        if got.len() > 1 {
            break;
        }
    }
    expect_bytes(format!("reader({path}, 95)"), &got, &content[95..])?;
    for _ in 0..2 {
        let data = reader
            .read(32)
            .await
            .or_fail(&format!("read(32) from reader({path}, 95) at its end"))?;
        expect_bytes(format!("read(32) from reader({path}, 95) at its end"), &data, b"")?;
    }
    Ok(())
}

/// Writes `segments` one writer at a time, each continuing the last with
/// `append`, then checks the whole.
async fn append_segments(cx: &Ctx, path: &str, segments: &[Vec<u8>], piece: usize) -> CaseResult {
    let mut whole = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        cx.write_stream(path, i > 0, whole.len() as u64, segment, piece).await?;
        whole.extend_from_slice(segment);
        cx.expect_size(path, whole.len() as u64).await?;
    }
    cx.expect_content(path, &whole).await
}

async fn append_small(cx: Ctx) -> CaseResult {
    let segments: Vec<Vec<u8>> = (0..3).map(|i| pattern(i, 32)).collect();
    append_segments(&cx, &cx.path("file"), &segments, 32).await
}

/// Segments larger than S3's 5 MiB minimum part, of odd sizes, written in
/// pieces that do not line up with them.
async fn append_large(cx: Ctx) -> CaseResult {
    let mut segments: Vec<Vec<u8>> = (0..3).map(|i| pattern(i, 6 * MIB + 1)).collect();
    segments.push(pattern(3, 17));
    append_segments(&cx, &cx.path("file"), &segments, MIB + 7).await
}

async fn zero_byte_stream_then_append(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    cx.write_stream(&path, false, 0, b"", 1).await?;
    cx.expect_content(&path, b"").await?;
    cx.expect_size(&path, 0).await?;
    let content = pattern(1, 4096);
    cx.write_stream(&path, true, 0, &content, 1000).await?;
    cx.expect_content(&path, &content).await
}

async fn zero_byte_content_then_append(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    cx.put(&path, b"").await?;
    let content = pattern(1, 4096);
    cx.write_stream(&path, true, 0, &content, 1000).await?;
    cx.expect_content(&path, &content).await
}

/// A closed (not committed) writer's content is continued by the next writer
/// with `append`, as a resumed upload continues in another request.
async fn close_then_append(cx: Ctx) -> CaseResult {
    let path = cx.path("resumed");
    let (first, second) = (pattern(1, 3 * MIB + 5), pattern(2, 2 * MIB + 3));
    let writer = cx.writer_holding(&path, &first).await?;
    writer
        .close()
        .await
        .or_fail(&format!("close() of the writer on {path}"))?;
    cx.write_stream(&path, true, first.len() as u64, &second, MIB).await?;
    cx.expect_content(&path, &[first, second].concat()).await
}

/// A chunked upload over three requests: a small first chunk is closed, a
/// second writer appends and closes again, a third commits without writing
/// (S3 keeps a closed writer as a multipart upload, whose small last part
/// must be merged before another part can follow).
async fn close_append_close_then_commit(cx: Ctx) -> CaseResult {
    let path = cx.path("chunked");
    let (first, second) = (pattern(1, MIB), pattern(2, 2 * MIB + 3));
    let writer = cx.writer_holding(&path, &first).await?;
    writer
        .close()
        .await
        .or_fail(&format!("close() of the first writer on {path}"))?;
    let mut writer = cx
        .driver
        .writer(&path, true)
        .await
        .or_fail(&format!("writer({path}, append=true)"))?;
    writer
        .write(&second)
        .await
        .or_fail(&format!("write() to the second writer on {path}"))?;
    writer
        .close()
        .await
        .or_fail(&format!("close() of the second writer on {path}"))?;
    let mut writer = cx
        .driver
        .writer(&path, true)
        .await
        .or_fail(&format!("writer({path}, append=true)"))?;
    let size = writer
        .size()
        .await
        .or_fail(&format!("size() of the third writer on {path}"))?;
    let whole = [first, second].concat();
    if size != whole.len() as u64 {
        return Err(format!(
            "size() of the third writer on {path} = {size}, want {}",
            whole.len()
        ));
    }
    writer
        .commit()
        .await
        .or_fail(&format!("commit() of the third writer on {path}"))?;
    cx.expect_content(&path, &whole).await
}

/// A cancelled writer leaves no file behind.
async fn writer_cancel(cx: Ctx) -> CaseResult {
    let path = cx.path("cancelled");
    let content = pattern(1, 64 * 1024);
    let writer = cx.writer_holding(&path, &content).await?;
    writer
        .cancel()
        .await
        .or_fail(&format!("cancel() of the writer on {path}"))?;
    match cx.driver.get_content(&path).await {
        Err(StorageError::PathNotFound(_)) => {}
        Ok(got) if got == content => {
            return Err(format!(
                "get_content({path}) after cancel() = the cancelled content, want Err(PathNotFound)"
            ));
        }
        other => {
            return Err(format!(
                "get_content({path}) after cancel() = {}, want Err(PathNotFound)",
                outcome(&other)
            ))
        }
    }
    expect_not_found(format!("stat({path}) after cancel()"), cx.driver.stat(&path).await)
}

/// `list` gives the full paths of the direct children, files and directories
/// alike, nothing deeper and nothing from lookalike siblings.
async fn list(cx: Ctx) -> CaseResult {
    let base = cx.path("list");
    let mut files: Vec<String> = (0..12).map(|i| format!("{base}/file-{i:02}")).collect();
    files.extend(["a", "b.c", "sub-file", "sub0", "sub.x"].map(|name| format!("{base}/{name}")));
    for (i, file) in files.iter().enumerate() {
        cx.put(file, &pattern(i as u64, 16)).await?;
    }
    let nested = ["sub/x", "sub/deeper/y", "sub/deeper/even/deeper/z", "other/z"];
    for rel in nested {
        cx.put(&format!("{base}/{rel}"), rel.as_bytes()).await?;
    }
    let mut want = files.clone();
    want.extend([format!("{base}/sub"), format!("{base}/other")]);
    cx.expect_list(&base, &want).await?;
    cx.expect_list(
        &format!("{base}/sub"),
        &[format!("{base}/sub/x"), format!("{base}/sub/deeper")],
    )
    .await?;
    cx.expect_list(
        &format!("{base}/sub/deeper/even"),
        &[format!("{base}/sub/deeper/even/deeper")],
    )
    .await?;
    cx.expect_list(&cx.dir, std::slice::from_ref(&base)).await?;
    let in_root = cx.list(&cx.root).await?;
    if !in_root.contains(&cx.dir) {
        return Err(format!(
            "list({}) = {in_root:?}, want it to contain {}",
            cx.root, cx.dir
        ));
    }
    expect_not_found(
        format!("list({base}/missing)"),
        cx.driver.list(&format!("{base}/missing")).await,
    )
}

async fn move_file(cx: Ctx) -> CaseResult {
    let source = cx.path("source/file");
    let destination = cx.path("destination/not/yet/there/file");
    let content = pattern(1, 32);
    cx.put(&source, &content).await?;
    cx.move_to(&source, &destination).await?;
    cx.expect_content(&destination, &content).await?;
    cx.expect_size(&destination, 32).await?;
    cx.expect_gone(&source).await
}

async fn move_overwrite(cx: Ctx) -> CaseResult {
    let source = cx.path("source");
    let destination = cx.path("destination");
    let content = pattern(1, 32);
    cx.put(&source, &content).await?;
    cx.put(&destination, &pattern(2, 64)).await?;
    cx.move_to(&source, &destination).await?;
    cx.expect_content(&destination, &content).await?;
    cx.expect_size(&destination, 32).await?;
    cx.expect_gone(&source).await
}

/// Moving what is not there fails and leaves the destination alone.
async fn move_nonexistent(cx: Ctx) -> CaseResult {
    let source = cx.path("missing");
    let destination = cx.path("destination");
    let content = pattern(1, 32);
    cx.put(&destination, &content).await?;
    let moved = cx.driver.move_to(&source, &destination).await;
    expect_not_found(format!("move({source}, {destination})"), moved)?;
    cx.expect_content(&destination, &content).await
}

/// Moves to or from malformed paths, or out from under a file, fail and
/// leave the source alone.
async fn move_invalid(cx: Ctx) -> CaseResult {
    let source = cx.path("source");
    let content = pattern(1, 32);
    cx.put(&source, &content).await?;
    for destination in [
        cx.path("bad destination"),
        cx.path("a/../b"),
        format!("{}/", cx.path("dir")),
    ] {
        let moved = cx.driver.move_to(&source, &destination).await;
        expect_invalid_path(format!("move({source}, {destination:?})"), moved)?;
    }
    let bad_source = cx.path("bad source");
    let moved = cx.driver.move_to(&bad_source, &cx.path("destination")).await;
    expect_invalid_path(format!("move({bad_source:?}, ...)"), moved)?;
    cx.expect_content(&source, &content).await?;
    // Distribution's TestMoveInvalid: out from under a regular file.
    let (from, to) = (format!("{source}/foo"), format!("{source}/bar"));
    if cx.driver.move_to(&from, &to).await.is_ok() {
        return Err(format!(
            "move({from}, {to}) where {source} is a file = Ok, want an error"
        ));
    }
    cx.expect_content(&source, &content).await
}

async fn delete_file(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    let sibling = cx.path("sibling");
    cx.put(&path, b"file").await?;
    cx.put(&sibling, b"sibling").await?;
    cx.delete(&path).await?;
    cx.expect_gone(&path).await?;
    cx.expect_content(&sibling, b"sibling").await?;
    cx.expect_list(&cx.dir, &[sibling]).await
}

/// Deleting a directory deletes everything below it, at any depth.
async fn delete_folder(cx: Ctx) -> CaseResult {
    let folder = cx.path("folder");
    let keep = cx.path("folder-keep/file");
    let files = ["f1", "f2", "sub/f3", "sub/deeper/f4"].map(|rel| format!("{folder}/{rel}"));
    for file in files.iter().chain([&keep]) {
        cx.put(file, file.as_bytes()).await?;
    }
    cx.delete(&files[0]).await?;
    cx.expect_gone(&files[0]).await?;
    for file in &files[1..] {
        cx.expect_content(file, file.as_bytes()).await?;
    }
    cx.delete(&folder).await?;
    for file in &files {
        cx.expect_gone(file).await?;
    }
    expect_not_found(format!("stat({folder})"), cx.driver.stat(&folder).await)?;
    expect_not_found(format!("list({folder})"), cx.driver.list(&folder).await)?;
    cx.expect_list(&cx.dir, &[cx.path("folder-keep")]).await?;
    cx.expect_content(&keep, keep.as_bytes()).await
}

async fn delete_nonexistent(cx: Ctx) -> CaseResult {
    cx.put(&cx.path("present"), b"present").await?;
    for path in [cx.path("missing"), cx.path("missing/deeper"), cx.path("presen")] {
        expect_not_found(format!("delete({path})"), cx.driver.delete(&path).await)?;
    }
    cx.expect_content(&cx.path("present"), b"present").await
}

/// Deleting `/a/b` deletes neither `/a/bc` nor `/a/b.c` nor `/a/c`: prefixes
/// are not paths (the trap for object stores).
async fn delete_only_subpaths(cx: Ctx) -> CaseResult {
    let keep = ["a/bc", "a/b.c", "a/b-c/file", "a/bb/file", "a/c", "a/b0"].map(|rel| cx.path(rel));
    let doomed = ["a/b/file", "a/b/sub/file"].map(|rel| cx.path(rel));
    for path in keep.iter().chain(&doomed) {
        cx.put(path, path.as_bytes()).await?;
    }
    cx.delete(&cx.path("a/b")).await?;
    for path in &doomed {
        cx.expect_gone(path).await?;
    }
    for path in &keep {
        cx.expect_content(path, path.as_bytes()).await?;
    }
    // The same for a file whose name is a prefix of another's.
    let (file, longer) = (cx.path("f/name"), cx.path("f/namesuffix"));
    cx.put(&file, b"name").await?;
    cx.put(&longer, b"namesuffix").await?;
    cx.delete(&file).await?;
    cx.expect_gone(&file).await?;
    cx.expect_content(&longer, b"namesuffix").await
}

/// `delete_files` deletes the files named, at any depth, and skips a path
/// with no file; a file whose name merely starts with one stays.
async fn delete_files(cx: Ctx) -> CaseResult {
    let doomed = ["a/f1", "a/sub/f3"].map(|rel| cx.path(rel));
    let keep = ["a/f2", "a/f1x", "a/sub/f4"].map(|rel| cx.path(rel));
    for path in doomed.iter().chain(&keep) {
        cx.put(path, path.as_bytes()).await?;
    }
    let mut paths = doomed.to_vec();
    paths.push(cx.path("a/missing"));
    cx.driver
        .delete_files(&paths)
        .await
        .map_err(|err| format!("delete_files({paths:?}): {err}"))?;
    for path in &doomed {
        cx.expect_gone(path).await?;
    }
    for path in &keep {
        cx.expect_content(path, path.as_bytes()).await?;
    }
    Ok(())
}

async fn stat(cx: Ctx) -> CaseResult {
    let dir = cx.path("dir");
    let path = format!("{dir}/file");
    let before = now_ns();
    cx.put(&path, &pattern(1, 4096)).await?;
    let info = cx.stat(&path).await?;
    let after = now_ns();
    expect_eq(format!("stat({path}).path"), info.path.as_str(), path.as_str())?;
    expect_eq(format!("stat({path}).size"), info.size, 4096)?;
    expect_eq(format!("stat({path}).is_dir"), info.is_dir, false)?;
    let skew = CLOCK_SKEW.as_nanos() as u64;
    let (low, high) = (before.saturating_sub(skew), after.saturating_add(skew));
    if !(low..=high).contains(&info.modified_ns) {
        let off = (info.modified_ns as i128 - before as i128) as f64 / 1e9;
        return Err(format!(
            "stat({path}).modified_ns = {} ({off:+.3} s from the put), want within {} s of the host's clock (nanoseconds since the epoch)",
            info.modified_ns,
            CLOCK_SKEW.as_secs()
        ));
    }
    for dir in [dir, cx.dir.clone()] {
        let info = cx.stat(&dir).await?;
        expect_eq(format!("stat({dir}).path"), info.path.as_str(), dir.as_str())?;
        expect_eq(format!("stat({dir}).is_dir"), info.is_dir, true)?;
        expect_eq(format!("stat({dir}).size"), info.size, 0)?;
    }
    Ok(())
}

/// Rewriting a file moves its modification time forward. The pause exceeds a
/// second, the coarsest granularity of the usual backends.
async fn stat_modified_time_advances(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    cx.put(&path, b"first").await?;
    let first = cx.stat(&path).await?.modified_ns;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    cx.put(&path, b"second").await?;
    let second = cx.stat(&path).await?.modified_ns;
    if second > first {
        Ok(())
    } else {
        Err(format!(
            "stat({path}).modified_ns = {second} after a rewrite 2.1 s later, want more than the first write's {first}"
        ))
    }
}

/// The last of many puts to one path wins, whether it grows or shrinks it.
async fn put_content_repeatedly(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    let sizes = [4096, 2048, 0, 10_000, 1, 300, 4095, 4097, 7, 64 * 1024];
    for (i, size) in sizes.into_iter().enumerate() {
        let content = pattern(i as u64, size);
        cx.put(&path, &content).await?;
        cx.expect_content(&path, &content).await?;
    }
    for i in 0..20u64 {
        cx.put(&path, &pattern(100 + i, 100 + (i as usize * 37) % 500)).await?;
    }
    cx.expect_content(&path, &pattern(119, 100 + (19 * 37) % 500)).await?;
    cx.expect_size(&path, (100 + (19 * 37) % 500) as u64).await
}

async fn put_content_many_paths(cx: Ctx) -> CaseResult {
    let paths: Vec<String> = (0..100).map(|i| cx.path(&format!("many/file-{i:03}"))).collect();
    for (i, path) in paths.iter().enumerate() {
        cx.put(path, &pattern(i as u64, 64 + i)).await?;
    }
    for (i, path) in paths.iter().enumerate() {
        cx.expect_content(path, &pattern(i as u64, 64 + i)).await?;
    }
    cx.expect_list(&cx.path("many"), &paths).await
}

/// Purging temporary files, even of any age, removes no content: neither
/// committed files nor an upload closed for a later append. (Cases run one
/// at a time, so no write of another case is in flight.)
async fn purge_temporary_keeps_content(cx: Ctx) -> CaseResult {
    let committed = cx.path("purge/committed");
    let closed = cx.path("purge/closed");
    cx.put(&committed, &pattern(1, 5000)).await?;
    let mut writer = cx
        .driver
        .writer(&closed, false)
        .await
        .map_err(|e| format!("writer: {e}"))?;
    writer
        .write(&pattern(2, 3000))
        .await
        .map_err(|e| format!("write: {e}"))?;
    writer.close().await.map_err(|e| format!("close: {e}"))?;
    cx.driver
        .purge_temporary(std::time::Duration::ZERO)
        .await
        .map_err(|e| format!("purge-temporary: {e}"))?;
    cx.expect_content(&committed, &pattern(1, 5000)).await?;
    // A closed writer's content is promised to the next append writer only.
    let mut writer = cx
        .driver
        .writer(&closed, true)
        .await
        .map_err(|e| format!("writer: {e}"))?;
    let size = writer.size().await.map_err(|e| format!("size: {e}"))?;
    writer.commit().await.map_err(|e| format!("commit: {e}"))?;
    expect_eq(format!("the size of {closed} after purging"), size, 3000)?;
    cx.expect_content(&closed, &pattern(2, 3000)).await
}

/// Eight readers of one file at once, at different offsets, all read it right.
async fn concurrent_readers(cx: Ctx) -> CaseResult {
    let path = cx.path("shared");
    let content = Arc::new(pattern(1, 8 * MIB));
    cx.put(&path, &content).await?;
    let mut tasks = JoinSet::new();
    for i in 0..8u64 {
        let (driver, path, content) = (cx.driver.clone(), path.clone(), content.clone());
        tasks.spawn(async move {
            let offset = i * MIB as u64 + i * 4099;
            let got = read_all(&*driver, &path, offset, 256 * 1024).await?;
            expect_bytes(
                format!("reader({path}, {offset}) in task {i}"),
                &got,
                &content[offset as usize..],
            )
        });
    }
    join_all(tasks).await
}

/// Eight writers at once, on different paths, all land; so do eight puts.
async fn concurrent_writers(cx: Ctx) -> CaseResult {
    let mut tasks = JoinSet::new();
    for i in 0..8u64 {
        let (driver, path) = (cx.driver.clone(), cx.path(&format!("stream-{i}")));
        tasks.spawn(async move {
            let content = pattern(i, 3 * MIB + i as usize);
            write_stream(&*driver, &path, false, 0, &content, 256 * 1024).await
        });
        let (driver, path) = (cx.driver.clone(), cx.path(&format!("put-{i}")));
        tasks.spawn(async move {
            let content = pattern(100 + i, 64 * 1024 + i as usize);
            driver
                .put_content(&path, &content)
                .await
                .or_fail(&format!("put_content({path}) in a task"))
        });
    }
    join_all(tasks).await?;
    let mut want = Vec::new();
    for i in 0..8u64 {
        let path = cx.path(&format!("stream-{i}"));
        cx.expect_content(&path, &pattern(i, 3 * MIB + i as usize)).await?;
        want.push(path);
        let path = cx.path(&format!("put-{i}"));
        cx.expect_content(&path, &pattern(100 + i, 64 * 1024 + i as usize))
            .await?;
        want.push(path);
    }
    cx.expect_list(&cx.dir, &want).await
}

/// Waits for every task; fails with all their failures.
async fn join_all(mut tasks: JoinSet<CaseResult>) -> CaseResult {
    let mut failures = Failures::default();
    while let Some(joined) = tasks.join_next().await {
        failures.check(joined.unwrap_or_else(|err| Err(join_failure(err))));
    }
    failures.into_result()
}

/// Pages through a tree whose names sort in the awkward order (`d-e` and
/// `d.e` before `d/x`, `d/...` before `d0`) and checks the pages.
async fn walk(cx: Ctx) -> CaseResult {
    let base = cx.path("tree");
    let rels = [
        "c",
        "d-e",
        "d.e",
        "d/x",
        "d/y/z",
        "d/y/z0",
        "d0",
        "e",
        "f/g/h/i/j",
        "m-1",
        "m-2",
        "m-3",
        "m-4",
        "m-5",
    ];
    let mut want: Vec<(String, u64)> = Vec::new();
    for (i, rel) in rels.iter().enumerate() {
        let path = format!("{base}/{rel}");
        cx.put(&path, &pattern(i as u64, i + 1)).await?;
        want.push((path, i as u64 + 1));
    }
    want.sort();
    let want_paths: Vec<String> = want.iter().map(|(path, _)| path.clone()).collect();

    let got = walk_pages(&cx, &base, None, 3).await?;
    expect_eq(format!("walk({base}) in pages of 3 (path, size)"), got, want.clone())?;

    let got = walk_pages(&cx, &base, None, want.len() as u32).await?;
    expect_eq(format!("walk({base}) in pages of {}", want.len()), got, want.clone())?;

    for after in [
        want_paths[4].clone(),
        format!("{base}/d/"),
        format!("{base}/d/y"),
        want_paths[want.len() - 1].clone(),
    ] {
        let got = walk_pages(&cx, &base, Some(&after), 100).await?;
        let rest: Vec<(String, u64)> = want.iter().filter(|(path, _)| *path > after).cloned().collect();
        expect_eq(format!("walk({base}) after {after}"), got, rest)?;
    }
    let sub = format!("{base}/d");
    let got: Vec<String> = walk_pages(&cx, &sub, None, 2)
        .await?
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let below: Vec<String> = want_paths
        .iter()
        .filter(|path| path.starts_with(&format!("{sub}/")))
        .cloned()
        .collect();
    expect_eq(format!("walk({sub}) in pages of 2"), got, below)
}

/// A whole walk of `root` in pages of `limit`, checking each page, as
/// (path, size) pairs.
async fn walk_pages(cx: &Ctx, root: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<(String, u64)>, String> {
    let mut all: Vec<(String, u64)> = Vec::new();
    let mut after = start_after.map(str::to_string);
    for page_number in 0..1000 {
        let call = format!("walk({root}, start_after={after:?}, limit={limit}) (page {page_number})");
        let page = cx.driver.walk(root, after.as_deref(), limit).await.or_fail(&call)?;
        if page.len() > limit as usize {
            return Err(format!("{call} gave {} entries, want at most {limit}", page.len()));
        }
        for entry in &page {
            if entry.is_dir {
                return Err(format!("{call} gave the directory {entry:?}, want files only"));
            }
            if after.as_deref().is_some_and(|after| entry.path.as_str() <= after) {
                return Err(format!(
                    "{call} gave {} after {after:?}, want strictly increasing paths",
                    entry.path
                ));
            }
            after = Some(entry.path.clone());
            all.push((entry.path.clone(), entry.size));
        }
        if page.len() < limit as usize {
            return Ok(all);
        }
    }
    Err(format!("walk({root}, limit={limit}) did not end after 1000 pages"))
}

/// `redirect_url` answers, with a URL or with none, for an existing file.
async fn redirect_url(cx: Ctx) -> CaseResult {
    let path = cx.path("file");
    cx.put(&path, b"redirect").await?;
    for method in ["GET", "HEAD"] {
        let url = cx
            .driver
            .redirect_url(method, &path)
            .await
            .or_fail(&format!("redirect_url({method}, {path})"))?;
        if let Some(url) = url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "redirect_url({method}, {path}) = {url:?}, want None or an http(s) URL"
                ));
            }
        }
    }
    Ok(())
}

/// The last case: deleting the run's directory removes everything the run
/// wrote, and `/` no longer lists it.
async fn nothing_left_behind(driver: Arc<dyn StorageDriver>, root: String) -> CaseResult {
    match driver.delete(&root).await {
        Ok(()) | Err(StorageError::PathNotFound(_)) => {}
        Err(err) => return Err(format!("delete({root}) failed: {err}")),
    }
    expect_not_found(format!("stat({root}) after deleting it"), driver.stat(&root).await)?;
    let top = driver.list("/").await.or_fail("list(/)")?;
    if top.contains(&root) {
        return Err(format!(
            "list(/) = {top:?} after delete({root}), want it without {root}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_seed_dependent() {
        assert_eq!(pattern(7, 1000), pattern(7, 1000));
        assert_eq!(pattern(7, 13).len(), 13);
        assert_eq!(&pattern(7, 1000)[..13], &pattern(7, 13)[..]);
        assert_ne!(pattern(7, 64), pattern(8, 64));
        let total = 2 * CHUNK as u64 + 5;
        assert_eq!(large_chunk(0, total).len(), CHUNK);
        assert_eq!(large_chunk(2, total).len(), 5);
        assert!(large_chunk(3, total).is_empty());
        assert_ne!(large_chunk(0, total), large_chunk(1, total));
    }

    #[test]
    fn case_names_are_unique_path_components() {
        let mut names: Vec<&str> = CASES.iter().map(|(name, _)| *name).collect();
        for name in &names {
            assert!(super::super::check_file_path(&format!("/{name}")).is_ok(), "{name}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
        let message = expect_bytes("x", b"abc", b"abd").unwrap_err();
        assert!(message.contains("byte 2") && message.contains("0x63"), "{message}");
    }
}
