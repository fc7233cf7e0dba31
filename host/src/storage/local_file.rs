//! Reading straight from the directory of a plugin that keeps its content
//! in files: the bytes go from the file to the client without passing
//! through the plugin's memory, and for a plugin whose directory is its
//! storage (`files-at-their-paths`) metadata, listings and walks are read
//! there too, without a plugin instance and WASI's per-call path
//! resolution, and so are deletions (a garbage collection makes thousands)
//! and the writers of uploads (a push's bytes would otherwise be copied into
//! the plugin and out again). `put-content` and moves stay the plugin's.
//! Nothing is reached outside the directory granted to the plugin.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use cap_primitives::fs::{FollowSymlinks, Metadata};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use super::{check_file_path, FileInfo, FileReader, FileWriter, Result, StorageError};

/// The most `get_content` reads from a file: it is for links, manifests and
/// records, never layers (which are read in pieces), and a plugin's own
/// `get-content` could not return more within its memory limit either.
const MAX_CONTENT: u64 = 64 << 20;

/// A plugin's granted directory, as the plugin sees it.
#[derive(Clone)]
pub(super) struct LocalRoot {
    /// Without a trailing `/`.
    path: String,
    /// The directory as last opened; see [`LocalRoot::blocking`].
    opened: Arc<Mutex<Option<Arc<File>>>>,
}

impl LocalRoot {
    pub fn new(path: &str) -> LocalRoot {
        LocalRoot {
            path: path.trim_end_matches('/').to_string(),
            opened: Arc::default(),
        }
    }

    /// The path of `file` below the directory, if it is a path of the
    /// storage contract's form there.
    pub fn relative<'a>(&self, file: &'a str) -> Option<&'a str> {
        let rest = file.strip_prefix(&self.path)?;
        check_file_path(rest).ok()?;
        Some(&rest[1..])
    }

    /// Runs `work` on the blocking pool with the directory, and turns its
    /// failure into the contract's error for `path` as the plugin does: a
    /// missing file, or a file where a directory was expected, is
    /// path-not-found. The directory itself gone is the storage failing,
    /// not an empty one.
    async fn blocking<T, W>(&self, path: &str, work: W) -> Result<T>
    where
        T: Send + 'static,
        W: FnOnce(&File) -> io::Result<T> + Send + 'static,
    {
        let (root, opened) = (self.path.clone(), self.opened.clone());
        let run = move || Ok::<_, StorageError>(work(&*directory(&root, &opened)?));
        let done = tokio::task::spawn_blocking(run).await;
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
            let mut entries = open_entries(dir, Path::new(&relative), FollowSymlinks::Yes)?;
            let mut children: Vec<String> = entries_of(&mut entries)?
                .into_iter()
                .map(|entry| child(&owned, entry.name()))
                .collect();
            children.sort_unstable();
            Ok(children)
        })
        .await
    }

    /// Deletes the file at the storage path `path`, or the directory there
    /// with everything below it, as the filesystem driver's `delete` does:
    /// a symbolic link is removed, never followed.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let relative = below(path).to_string();
        self.blocking(path, move |dir| remove_all(dir, Path::new(&relative)))
            .await
    }

    /// Opens the file at the storage path `path` for writing, as the
    /// filesystem driver's `writer` does: its directories are made as
    /// needed, and its content is continued with `append`, emptied without.
    pub async fn writer(&self, path: &str, append: bool) -> Result<LocalFileWriter> {
        let relative = below(path).to_string();
        let (file, size) = self
            .blocking(path, move |dir| {
                let relative = Path::new(&relative);
                let mut options = cap_primitives::fs::OpenOptions::new();
                options.write(true).create(true).truncate(!append);
                let file = match cap_primitives::fs::open(dir, relative, &options) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        create_parents(dir, relative)?;
                        cap_primitives::fs::open(dir, relative, &options)?
                    }
                    opened => opened?,
                };
                let size = if append { file.metadata()?.len() } else { 0 };
                Ok((file, size))
            })
            .await?;
        Ok(LocalFileWriter {
            root: self.clone(),
            path: path.to_string(),
            file: Arc::new(file),
            size,
            piece: Vec::new(),
        })
    }

    /// The files below the directory `path` in lexical order of their
    /// paths, strictly after `start_after`, at most `limit`: the storage
    /// contract's `walk`.
    pub async fn walk(&self, path: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<FileInfo>> {
        let relative = below(path).to_string();
        let (owned, after) = (path.to_string(), start_after.unwrap_or("").to_string());
        self.blocking(path, move |dir| {
            let mut top = open_entries(dir, Path::new(&relative), FollowSymlinks::Yes)?;
            let mut page = Vec::new();
            walk_dir(&mut top, &owned, &after, limit.max(1) as usize, &mut page)?;
            Ok(page)
        })
        .await
    }

    /// Opens `relative` read-only for the content at the storage path
    /// `path`, from `offset`. Symbolic links are followed only while they
    /// stay beneath the directory. On the blocking pool, like the reads: the
    /// disk may be slow or remote.
    pub async fn reader(&self, relative: &str, path: &str, offset: u64) -> Result<LocalFileReader> {
        let relative = relative.to_string();
        let (file, is_dir) = self
            .blocking(path, move |dir| {
                let mut options = cap_primitives::fs::OpenOptions::new();
                options.read(true);
                let file = cap_primitives::fs::open(dir, Path::new(&relative), &options)?;
                let is_dir = file.metadata()?.is_dir();
                Ok((file, is_dir))
            })
            .await?;
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

/// The directory at `root`: the one `opened` holds while it is still there
/// (linked), or else opened afresh and held. Holding it saves an open and
/// a close per operation (a garbage collection makes tens of thousands);
/// checking it saves serving from a directory removed under a running
/// registry, which a plugin instance's fresh pre-open would not see either.
fn directory(root: &str, opened: &Mutex<Option<Arc<File>>>) -> Result<Arc<File>> {
    use std::os::unix::fs::MetadataExt;
    let held = opened.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if let Some(dir) = held {
        if dir.metadata().is_ok_and(|meta| meta.nlink() > 0) {
            return Ok(dir);
        }
    }
    let dir = cap_primitives::fs::open_ambient_dir(Path::new(root), cap_primitives::ambient_authority())
        .map_err(|err| StorageError::Backend(format!("the storage directory {root}: {err}")))?;
    let dir = Arc::new(dir);
    *opened.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(dir.clone());
    Ok(dir)
}

/// Makes the directories `relative` lies in, below `dir`, that are missing.
fn create_parents(dir: &File, relative: &Path) -> io::Result<()> {
    let parents: Vec<&Path> = relative
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for parent in parents.into_iter().rev() {
        match cap_primitives::fs::create_dir(dir, parent, &cap_primitives::fs::DirOptions::new()) {
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            made => made?,
        }
    }
    Ok(())
}

/// Removes the file at `relative` below `dir`, or the directory there with
/// everything below it; a symbolic link is removed, not followed. Opening
/// the directory first, rather than asking what is there and then removing
/// it, takes half the system calls, which counts where a garbage
/// collection removes thousands of blob directories.
fn remove_all(dir: &File, relative: &Path) -> io::Result<()> {
    match open_entries(dir, relative, FollowSymlinks::No) {
        Ok(mut opened) => {
            empty(&mut opened)?;
            drop(opened);
            cap_primitives::fs::remove_dir(dir, relative)
        }
        // A file, or a symbolic link (which `O_NOFOLLOW` refuses).
        Err(err) if err.kind() == io::ErrorKind::NotADirectory || err.raw_os_error() == Some(libc::ELOOP) => {
            cap_primitives::fs::remove_file(dir, relative)
        }
        Err(err) => Err(err),
    }
}

/// Removes everything in the directory `dir`.
fn empty(dir: &mut Dir) -> io::Result<()> {
    for entry in entries_of(dir)? {
        let fd = dir.fd()?;
        if entry.is_dir {
            empty(&mut open_child(fd, &entry.raw)?)?;
            rustix::fs::unlinkat(fd, entry.raw.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            rustix::fs::unlinkat(fd, entry.raw.as_c_str(), AtFlags::empty())?;
        }
    }
    Ok(())
}

/// Opens the directory at `relative` below `dir` to read its entries,
/// resolving only beneath `dir` (cap-primitives), where symbolic links are
/// followed as `follow` says.
fn open_entries(dir: &File, relative: &Path, follow: FollowSymlinks) -> io::Result<Dir> {
    let at = match follow {
        FollowSymlinks::Yes => cap_primitives::fs::open_dir(dir, relative)?,
        FollowSymlinks::No => cap_primitives::fs::open_dir_nofollow(dir, relative)?,
    };
    // That handle only names the directory (`O_PATH`); its entries are read
    // through one opened for reading.
    let readable = rustix::fs::openat(
        &at,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Dir::new(readable)?)
}

/// Opens the directory entry `name` of `dir` to read its entries. One name
/// and no symbolic link followed, so it stays beneath `dir`; one system
/// call, where a walk opens thousands.
fn open_child(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(Dir::new(rustix::fs::openat(dir, name, flags, Mode::empty())?)?)
}

/// An entry of a directory.
struct Entry {
    /// The name, which is UTF-8: a storage path cannot hold another.
    raw: CString,
    /// A directory, not a symbolic link to one.
    is_dir: bool,
}

impl Entry {
    fn name(&self) -> &str {
        self.raw.to_str().expect("entries_of keeps UTF-8 names only")
    }
}

/// The entries of `dir`, but `.` and `..` and names that are not UTF-8.
fn entries_of(dir: &mut Dir) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let raw = entry.file_name();
        if !matches!(raw.to_str(), Ok(name) if name != "." && name != "..") {
            continue;
        }
        let is_dir = match entry.file_type() {
            // Filesystems that do not keep the type in the directory.
            FileType::Unknown => {
                let stat = rustix::fs::statat(dir.fd()?, raw, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(stat.st_mode) == FileType::Directory
            }
            file_type => file_type == FileType::Directory,
        };
        entries.push(Entry {
            raw: raw.to_owned(),
            is_dir,
        });
    }
    Ok(entries)
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
fn walk_dir(dir: &mut Dir, at: &str, after: &str, limit: usize, page: &mut Vec<FileInfo>) -> io::Result<()> {
    let mut entries: Vec<(String, Entry)> = entries_of(dir)?
        .into_iter()
        .map(|entry| {
            let mut key = child(at, entry.name());
            if entry.is_dir {
                key.push('/');
            }
            (key, entry)
        })
        .collect();
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
                match open_child(dir.fd()?, &entry.raw)
                    .and_then(|mut sub| walk_dir(&mut sub, subdir, after, limit, page))
                {
                    Err(err) if gone(&err) => {}
                    walked => walked?,
                }
            }
        } else if key.as_str() > after {
            match rustix::fs::statat(dir.fd()?, entry.raw.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => page.push(walked_file(key, &stat)),
                Err(err) if gone(&err.into()) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(())
}

/// What a walk reports of the file `path` (not a directory: a walk
/// descends into those).
fn walked_file(path: String, stat: &rustix::fs::Stat) -> FileInfo {
    let modified_ns = u64::try_from(stat.st_mtime)
        .ok()
        .and_then(|seconds| seconds.checked_mul(1_000_000_000))
        .and_then(|ns| ns.checked_add(stat.st_mtime_nsec))
        .unwrap_or(0);
    FileInfo {
        path,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        modified_ns,
        is_dir: false,
    }
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
/// A file being written by the host in a plugin's directory, as the
/// filesystem driver's writer would: each piece written at the end, commit
/// syncing the data, cancel removing the file. The bytes go from the
/// request to the page cache without passing through the plugin's memory
/// (two copies and fresh pages for each piece).
pub(super) struct LocalFileWriter {
    root: LocalRoot,
    path: String,
    file: Arc<File>,
    size: u64,
    /// The last piece written, whose memory the next one reuses.
    piece: Vec<u8>,
}

impl LocalFileWriter {
    /// Runs `work` on the file on the blocking pool; the disk may be slow.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&File) -> io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let file = self.file.clone();
        let done = tokio::task::spawn_blocking(move || work(&file)).await;
        abandoned(&self.path, done)?.map_err(|err| StorageError::Backend(format!("{}: {err}", self.path)))
    }
}

#[async_trait]
impl FileWriter for LocalFileWriter {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        // The piece is copied for the blocking pool into a buffer kept from
        // one write to the next: fresh memory for each piece of megabytes
        // cost more in page faults than the copy.
        let mut piece = std::mem::take(&mut self.piece);
        piece.clear();
        piece.extend_from_slice(data);
        let offset = self.size;
        let piece = self
            .blocking(move |file| file.write_all_at(&piece, offset).map(|()| piece))
            .await?;
        self.size += piece.len() as u64;
        self.piece = piece;
        Ok(())
    }

    async fn size(&mut self) -> Result<u64> {
        Ok(self.size)
    }

    async fn close(self: Box<Self>) -> Result<()> {
        // The content is in place for a later append.
        Ok(())
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        let relative = below(&self.path).to_string();
        self.root
            .blocking(&self.path, move |dir| {
                cap_primitives::fs::remove_file(dir, Path::new(&relative))
            })
            .await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.blocking(|file| file.sync_data()).await
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
    async fn a_storage_directory_made_again_is_read_anew() {
        let (_top, local, root) = fixture();
        assert!(local.stat("/a/blob").await.is_ok());
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::create_dir_all(format!("{root}/b")).unwrap();
        assert!(matches!(
            local.stat("/a/blob").await,
            Err(StorageError::PathNotFound(_))
        ));
        assert!(local.stat("/b").await.unwrap().is_dir);
    }

    #[tokio::test]
    async fn deletes_files_and_trees_without_following_links() {
        let (top, local, root) = fixture();
        std::fs::create_dir_all(format!("{root}/t/x/y")).unwrap();
        std::fs::write(format!("{root}/t/x/y/z"), b"z").unwrap();
        std::fs::write(format!("{root}/t/f"), b"f").unwrap();
        std::fs::create_dir_all(top.path().join("elsewhere")).unwrap();
        std::fs::write(top.path().join("elsewhere/keep"), b"keep").unwrap();
        std::os::unix::fs::symlink(top.path().join("elsewhere"), format!("{root}/t/link")).unwrap();
        std::os::unix::fs::symlink(top.path().join("elsewhere"), format!("{root}/dirlink")).unwrap();

        local.delete("/a/blob").await.unwrap();
        local.delete("/dirlink").await.unwrap();
        local.delete("/t").await.unwrap();
        for gone in ["a/blob", "dirlink", "t"] {
            assert!(
                std::fs::symlink_metadata(format!("{root}/{gone}")).is_err(),
                "{gone} is still there"
            );
        }
        // What the links led to is untouched, and the rest of the tree too.
        assert_eq!(std::fs::read(top.path().join("elsewhere/keep")).unwrap(), b"keep");
        assert!(std::fs::metadata(format!("{root}/a/dir")).unwrap().is_dir());
        for missing in ["/t", "/a/none", "/a/dir/none/x"] {
            assert!(
                matches!(local.delete(missing).await, Err(StorageError::PathNotFound(ref p)) if p == missing),
                "{missing}"
            );
        }
    }

    #[tokio::test]
    async fn writers_make_directories_append_and_cancel() {
        let (_top, local, root) = fixture();
        let mut writer = local.writer("/u/1/data", false).await.unwrap();
        writer.write(b"abc").await.unwrap();
        writer.write(b"def").await.unwrap();
        assert_eq!(writer.size().await.unwrap(), 6);
        Box::new(writer).close().await.unwrap();
        let mut writer = local.writer("/u/1/data", true).await.unwrap();
        assert_eq!(writer.size().await.unwrap(), 6);
        writer.write(b"g").await.unwrap();
        Box::new(writer).commit().await.unwrap();
        assert_eq!(std::fs::read(format!("{root}/u/1/data")).unwrap(), b"abcdefg");
        // Without append the content starts over.
        let writer = local.writer("/u/1/data", false).await.unwrap();
        Box::new(writer).commit().await.unwrap();
        assert!(std::fs::read(format!("{root}/u/1/data")).unwrap().is_empty());
        let writer = local.writer("/u/1/data", true).await.unwrap();
        Box::new(writer).cancel().await.unwrap();
        assert!(std::fs::metadata(format!("{root}/u/1/data")).is_err());
        // A file where a directory would have to be: path-not-found.
        assert!(matches!(
            local.writer("/a/blob/x", false).await,
            Err(StorageError::PathNotFound(_))
        ));
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
