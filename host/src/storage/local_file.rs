//! Reading straight from the directory of a plugin that keeps its content
//! in files: the bytes go from the file to the client without passing
//! through the plugin's memory, and for a plugin whose directory is its
//! storage (`files-at-their-paths`) metadata, listings and walks are read
//! there too, without a plugin instance and WASI's per-call path
//! resolution. Only reads: writes, moves and deletions stay the plugin's.
//! Everything is opened read-only and only beneath the directory granted
//! to the plugin.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use cap_primitives::fs::{FollowSymlinks, Metadata};

use super::{check_file_path, FileInfo, FileReader, Result, StorageError};

/// The most `get_content` reads from a file: it is for links, manifests and
/// records, never layers (which are read in pieces), and a plugin's own
/// `get-content` could not return more within its memory limit either.
const MAX_CONTENT: u64 = 64 << 20;

/// A plugin's granted directory, as the plugin sees it.
pub(super) struct LocalRoot {
    /// Without a trailing `/`.
    path: String,
}

impl LocalRoot {
    pub fn new(path: &str) -> LocalRoot {
        LocalRoot {
            path: path.trim_end_matches('/').to_string(),
        }
    }

    /// The path of `file` below the directory, if it is a path of the
    /// storage contract's form there.
    pub fn relative<'a>(&self, file: &'a str) -> Option<&'a str> {
        let rest = file.strip_prefix(&self.path)?;
        check_file_path(rest).ok()?;
        Some(&rest[1..])
    }

    /// Runs `work` on the blocking pool with the directory opened afresh
    /// (as each plugin instance's pre-open is), and turns its failure into
    /// the contract's error for `path` as the plugin does: a missing file,
    /// or a file where a directory was expected, is path-not-found. The
    /// directory itself gone is the storage failing, not an empty one.
    async fn blocking<T, W>(&self, path: &str, work: W) -> Result<T>
    where
        T: Send + 'static,
        W: FnOnce(&File) -> io::Result<T> + Send + 'static,
    {
        let root = self.path.clone();
        let done = tokio::task::spawn_blocking(move || {
            let dir = cap_primitives::fs::open_ambient_dir(Path::new(&root), cap_primitives::ambient_authority())
                .map_err(|err| StorageError::Backend(format!("the storage directory {root}: {err}")))?;
            Ok::<_, StorageError>(work(&dir))
        })
        .await;
        abandoned(path, done)??.map_err(|err| match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StorageError::PathNotFound(path.to_string()),
            _ => StorageError::Backend(format!("{path}: {err}")),
        })
    }

    /// The whole content of the file at the storage path `path`.
    pub async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        let relative = below(path).to_string();
        self.blocking(path, move |dir| {
            let mut options = cap_primitives::fs::OpenOptions::new();
            options.read(true);
            let file = cap_primitives::fs::open(dir, Path::new(&relative), &options)?;
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::other("is a directory"));
            }
            if meta.len() > MAX_CONTENT {
                let why = format!("{} bytes, more than get-content reads ({MAX_CONTENT})", meta.len());
                return Err(io::Error::other(why));
            }
            let mut content = Vec::with_capacity(meta.len() as usize);
            file.take(MAX_CONTENT).read_to_end(&mut content)?;
            Ok(content)
        })
        .await
    }

    /// What is at the storage path `path` (`/` included).
    pub async fn stat(&self, path: &str) -> Result<FileInfo> {
        let relative = below(path).to_string();
        let owned = path.to_string();
        self.blocking(path, move |dir| {
            let meta = cap_primitives::fs::stat(dir, Path::new(&relative), FollowSymlinks::Yes)?;
            Ok(file_info(owned, &meta))
        })
        .await
    }

    /// The storage paths of the entries of the directory `path`, sorted.
    pub async fn list(&self, path: &str) -> Result<Vec<String>> {
        let relative = below(path).to_string();
        let owned = path.to_string();
        self.blocking(path, move |dir| {
            let mut children = Vec::new();
            for entry in cap_primitives::fs::read_dir(dir, Path::new(&relative))? {
                // A name that is not UTF-8 cannot be a storage path.
                if let Ok(name) = entry?.file_name().into_string() {
                    children.push(child(&owned, &name));
                }
            }
            children.sort_unstable();
            Ok(children)
        })
        .await
    }

    /// The files below the directory `path` in lexical order of their
    /// paths, strictly after `start_after`, at most `limit`: the storage
    /// contract's `walk`.
    pub async fn walk(&self, path: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<FileInfo>> {
        let relative = below(path).to_string();
        let (owned, after) = (path.to_string(), start_after.unwrap_or("").to_string());
        self.blocking(path, move |dir| {
            let top = cap_primitives::fs::open_dir(dir, Path::new(&relative))?;
            let mut page = Vec::new();
            walk_dir(&top, &owned, &after, limit.max(1) as usize, &mut page)?;
            Ok(page)
        })
        .await
    }

    /// Opens `relative` read-only for the content at the storage path
    /// `path`, from `offset`. The directory is opened afresh, as each plugin
    /// instance's pre-open is, and symbolic links are followed only while
    /// they stay beneath it. On the blocking pool, like the reads: the disk
    /// may be slow or remote.
    pub async fn reader(&self, relative: &str, path: &str, offset: u64) -> Result<LocalFileReader> {
        let (root, relative) = (self.path.clone(), relative.to_string());
        let opened = tokio::task::spawn_blocking(move || {
            let dir = cap_primitives::fs::open_ambient_dir(Path::new(&root), cap_primitives::ambient_authority())?;
            let mut options = cap_primitives::fs::OpenOptions::new();
            options.read(true);
            let file = cap_primitives::fs::open(&dir, Path::new(&relative), &options)?;
            let is_dir = file.metadata()?.is_dir();
            Ok::<_, io::Error>((file, is_dir))
        })
        .await;
        let (file, is_dir) = abandoned(path, opened)?.map_err(|err| match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StorageError::PathNotFound(path.to_string()),
            _ => StorageError::Backend(format!("{path}: {err}")),
        })?;
        if is_dir {
            // As the plugin's own reader fails on one.
            return Err(StorageError::Backend(format!("{path}: is a directory")));
        }
        Ok(LocalFileReader {
            path: path.to_string(),
            file: Arc::new(file),
            offset,
        })
    }
}

/// The path below the directory of the storage path `path` (`.` for `/`).
fn below(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        relative => relative,
    }
}

/// The storage path of the entry `name` in the directory `dir`.
fn child(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn file_info(path: String, meta: &Metadata) -> FileInfo {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok());
    FileInfo {
        path,
        size: if meta.is_dir() { 0 } else { meta.len() },
        modified_ns: modified.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        is_dir: meta.is_dir(),
    }
}

/// Adds to `page` the files below `dir` (open, at the storage path `at`)
/// that sort after `after`, until it holds `limit`. Entries are keyed by
/// their path, with a trailing `/` for directories: every descendant of a
/// directory starts with that key, so sorting by keys visits files in the
/// order their full paths sort (`a-1` < `a/x`). The filesystem driver's
/// own `walk` does the same inside the guest; the conformance suite holds
/// both to the contract (it runs reading directly and through the driver).
fn walk_dir(dir: &File, at: &str, after: &str, limit: usize, page: &mut Vec<FileInfo>) -> io::Result<()> {
    let mut entries = Vec::new();
    for entry in cap_primitives::fs::read_base_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let mut key = child(at, &name);
        if entry.file_type()?.is_dir() {
            key.push('/');
        }
        entries.push((key, entry));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, entry) in entries {
        if page.len() >= limit {
            break;
        }
        // Deleted while we walk: it has no files any more.
        let gone = |err: &io::Error| err.kind() == io::ErrorKind::NotFound;
        if let Some(subdir) = key.strip_suffix('/') {
            // A subtree sorting entirely at or before `after` is skipped.
            if key.as_str() > after || after.starts_with(&key) {
                match entry
                    .open_dir()
                    .and_then(|sub| walk_dir(&sub, subdir, after, limit, page))
                {
                    Err(err) if gone(&err) => {}
                    walked => walked?,
                }
            }
        } else if key.as_str() > after {
            match entry.metadata() {
                Ok(meta) => page.push(file_info(key, &meta)),
                Err(err) if gone(&err) => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// The outcome of work on the blocking pool, which fails only when the
/// runtime is shutting down.
fn abandoned<T>(path: &str, outcome: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    outcome.map_err(|err| StorageError::Backend(format!("{path}: abandoned: {err}")))
}

/// An open file and the offset of the next read. The offset moves only when
/// a read completes, so a read given up half way skips nothing.
pub(super) struct LocalFileReader {
    path: String,
    file: Arc<File>,
    offset: u64,
}

#[async_trait]
impl FileReader for LocalFileReader {
    async fn read(&mut self, max_bytes: u32) -> Result<bytes::Bytes> {
        let (file, offset) = (self.file.clone(), self.offset);
        // On the blocking pool: besides a slow disk, the read then overlaps
        // with sending the previous piece.
        let read = tokio::task::spawn_blocking(move || read_at(&file, max_bytes.max(1) as usize, offset)).await;
        let data =
            abandoned(&self.path, read)?.map_err(|err| StorageError::Backend(format!("{}: {err}", self.path)))?;
        self.offset += data.len() as u64;
        Ok(data.into())
    }
}
/// Up to `len` bytes of `file` from `offset`, read into memory that is not
/// zeroed first: zeroing each piece before the read overwrites it was a
/// pass over every byte pulled (8% of a pull's CPU).
fn read_at(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut data = Vec::<u8>::with_capacity(len);
    // SAFETY: pread writes at most `len` bytes into the spare capacity,
    // which is `len` bytes long.
    let read = unsafe { libc::pread(file.as_raw_fd(), data.as_mut_ptr().cast(), len, offset) };
    let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: pread wrote the first `read` bytes.
    unsafe { data.set_len(read) };
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with `/a/blob` (64 bytes), a directory `/a/dir`, and a file
    /// outside the root that `/a/out` and `/a/in` link to, the latter through
    /// a link inside the root.
    fn fixture() -> (tempfile::TempDir, LocalRoot, String) {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        std::fs::create_dir_all(root.join("a/dir")).unwrap();
        let content: Vec<u8> = (0..64).collect();
        std::fs::write(root.join("a/blob"), &content).unwrap();
        std::fs::write(top.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), root.join("a/out")).unwrap();
        std::os::unix::fs::symlink("blob", root.join("a/in")).unwrap();
        let path = format!("{}/", root.to_str().unwrap());
        let local = LocalRoot::new(&path);
        (top, local, path.trim_end_matches('/').to_string())
    }

    async fn read_all(reader: &mut LocalFileReader, max: u32) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let data = reader.read(max).await.unwrap();
            assert!(data.len() <= max as usize, "{} bytes for at most {max}", data.len());
            if data.is_empty() {
                return all;
            }
            all.extend_from_slice(&data);
        }
    }

    #[test]
    fn only_contract_paths_inside_the_directory_are_relative_to_it() {
        let (_top, local, root) = fixture();
        assert_eq!(local.relative(&format!("{root}/a/blob")), Some("a/blob"));
        for outside in [
            "/etc/passwd".to_string(),
            root.clone(),
            format!("{root}/"),
            format!("{root}-other/a"),
            format!("{root}/a/../../secret"),
            format!("{root}/a/./blob"),
            format!("{root}//a"),
        ] {
            assert_eq!(local.relative(&outside), None, "{outside}");
        }
    }

    #[tokio::test]
    async fn reads_from_an_offset_in_pieces_of_at_most_the_size_asked() {
        let (_top, local, _) = fixture();
        let content: Vec<u8> = (0..64).collect();
        let mut reader = local.reader("a/blob", "/a/blob", 0).await.unwrap();
        assert_eq!(reader.read(64).await.unwrap(), content);
        let mut reader = local.reader("a/blob", "/a/blob", 10).await.unwrap();
        assert_eq!(read_all(&mut reader, 7).await, content[10..]);
        for past in [64, 1000] {
            let mut reader = local.reader("a/blob", "/a/blob", past).await.unwrap();
            assert!(reader.read(16).await.unwrap().is_empty());
        }
        let mut reader = local.reader("a/in", "/a/in", 60).await.unwrap();
        assert_eq!(read_all(&mut reader, 1 << 20).await, content[60..]);
    }

    #[tokio::test]
    async fn a_read_given_up_half_way_skips_nothing() {
        let (_top, local, _) = fixture();
        let content: Vec<u8> = (0..64).collect();
        let mut reader = local.reader("a/blob", "/a/blob", 0).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_nanos(1), reader.read(8)).await;
        let from = if first.is_ok() { 8 } else { 0 };
        // Long enough for a read left running on the blocking pool to end.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(reader.read(8).await.unwrap(), content[from..from + 8]);
    }

    #[tokio::test]
    async fn metadata_listings_and_content_are_read_beneath_the_directory() {
        let (_top, local, _) = fixture();
        let content: Vec<u8> = (0..64).collect();
        assert_eq!(local.get_content("/a/blob").await.unwrap(), content);
        assert_eq!(local.get_content("/a/in").await.unwrap(), content);
        let blob = local.stat("/a/blob").await.unwrap();
        assert_eq!((blob.path.as_str(), blob.size, blob.is_dir), ("/a/blob", 64, false));
        assert!(blob.modified_ns > 0);
        for dir in ["/", "/a", "/a/dir"] {
            let info = local.stat(dir).await.unwrap();
            assert!(info.is_dir && info.size == 0 && info.path == dir, "{info:?}");
        }
        assert_eq!(local.list("/").await.unwrap(), ["/a"]);
        assert_eq!(
            local.list("/a").await.unwrap(),
            ["/a/blob", "/a/dir", "/a/in", "/a/out"]
        );
        assert!(local.list("/a/dir").await.unwrap().is_empty());

        // Missing, or a file where a directory is expected: path-not-found.
        // A directory's content or a link leading out: a backend error.
        for missing in ["/a/none", "/a/blob/x"] {
            for outcome in [
                local.get_content(missing).await.map(drop),
                local.stat(missing).await.map(drop),
                local.list(missing).await.map(drop),
                local.walk(missing, None, 10).await.map(drop),
            ] {
                assert!(
                    matches!(&outcome, Err(StorageError::PathNotFound(p)) if p == missing),
                    "{outcome:?}"
                );
            }
        }
        assert!(matches!(
            local.list("/a/blob").await,
            Err(StorageError::PathNotFound(_))
        ));
        for refused in [
            local.get_content("/a/dir").await.map(drop),
            local.get_content("/a/out").await.map(drop),
            local.stat("/a/out").await.map(drop),
        ] {
            assert!(
                matches!(&refused, Err(StorageError::Backend(m)) if m.starts_with("/a/")),
                "{refused:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_directory_gone_is_a_storage_failure_not_an_empty_storage() {
        let (top, local, root) = fixture();
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::write(&root, b"not a directory").unwrap();
        match local.stat("/").await {
            Err(StorageError::Backend(message)) => assert!(message.contains("storage directory"), "{message}"),
            other => panic!("{other:?}"),
        }
        drop(top);
    }

    #[tokio::test]
    async fn a_walk_pages_files_in_the_order_their_paths_sort() {
        let top = tempfile::tempdir().unwrap();
        for file in ["w/a-1", "w/a/x", "w/a/y", "w/b", "w/c/d/e"] {
            let path = top.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        std::fs::create_dir_all(top.path().join("w/empty")).unwrap();
        let local = LocalRoot::new(top.path().to_str().unwrap());
        let paths = |page: Vec<FileInfo>| page.into_iter().map(|f| f.path).collect::<Vec<_>>();
        let all = ["/w/a-1", "/w/a/x", "/w/a/y", "/w/b", "/w/c/d/e"];
        assert_eq!(paths(local.walk("/w", None, 100).await.unwrap()), all);
        assert_eq!(paths(local.walk("/", None, 100).await.unwrap()), all);
        assert_eq!(paths(local.walk("/w", None, 1).await.unwrap()), ["/w/a-1"]);
        assert_eq!(
            paths(local.walk("/w", Some("/w/a/x"), 2).await.unwrap()),
            ["/w/a/y", "/w/b"]
        );
        assert_eq!(paths(local.walk("/w", Some("/w/b"), 0).await.unwrap()), ["/w/c/d/e"]);
        let sizes: Vec<u64> = local
            .walk("/w/a", None, 10)
            .await
            .unwrap()
            .iter()
            .map(|f| f.size)
            .collect();
        assert_eq!(sizes, [5, 5]);
    }

    #[tokio::test]
    async fn missing_files_directories_and_links_leading_out_are_refused() {
        let (_top, local, _) = fixture();
        // (the file, whether it is missing: path-not-found, not a backend error)
        for (relative, missing) in [("a/none", true), ("a/blob/x", true), ("a/dir", false), ("a/out", false)] {
            match local.reader(relative, "/p", 0).await {
                Err(StorageError::PathNotFound(path)) if missing => assert_eq!(path, "/p"),
                Err(StorageError::Backend(message)) if !missing => assert!(message.starts_with("/p: "), "{message}"),
                Err(other) => panic!("{relative}: unexpected {other}"),
                Ok(_) => panic!("{relative} was opened"),
            }
        }
    }
}
