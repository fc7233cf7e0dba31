//! Reading content straight from the files a plugin names through
//! `local-files`: the bytes go from the file to the client without passing
//! through the plugin's memory. Files are opened read-only and only beneath
//! the directory granted to the plugin.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::{check_file_path, FileReader, Result, StorageError};

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
