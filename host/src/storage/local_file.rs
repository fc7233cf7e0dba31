//! Reading content straight from the files a plugin names through
//! `local-files`: the bytes go from the file to the client without passing
//! through the plugin's memory. Files are opened read-only and only beneath
//! the directory granted to the plugin.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::{check_file_path, FileReader, Result, StorageError};

/// A plugin's granted directory, open for looking files up beneath it.
pub(super) struct LocalRoot {
    /// The directory as the plugin sees it, without a trailing `/`.
    path: String,
    dir: File,
}

impl LocalRoot {
    pub fn open(path: &str) -> io::Result<LocalRoot> {
        let dir = cap_primitives::fs::open_ambient_dir(Path::new(path), cap_primitives::ambient_authority())?;
        let path = path.trim_end_matches('/').to_string();
        Ok(LocalRoot { path, dir })
    }

    /// The path of `file` below the directory, if it is a path of the
    /// storage contract's form there.
    pub fn relative<'a>(&self, file: &'a str) -> Option<&'a str> {
        let rest = file.strip_prefix(&self.path)?;
        check_file_path(rest).ok()?;
        Some(&rest[1..])
    }

    /// Opens `relative` read-only for the content at the storage path
    /// `path`, from `offset`. Symbolic links are followed only while they
    /// stay beneath the directory.
    pub fn reader(&self, relative: &str, path: &str, offset: u64) -> Result<LocalFileReader> {
        let mut options = cap_primitives::fs::OpenOptions::new();
        options.read(true);
        let at = |err: io::Error| match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StorageError::PathNotFound(path.to_string()),
            _ => StorageError::Backend(format!("{path}: {err}")),
        };
        let mut file = cap_primitives::fs::open(&self.dir, Path::new(relative), &options).map_err(at)?;
        if !file.metadata().map_err(at)?.is_file() {
            return Err(StorageError::PathNotFound(path.to_string()));
        }
        // Past the end, reads find nothing: the reader is at its end.
        file.seek(SeekFrom::Start(offset)).map_err(at)?;
        Ok(LocalFileReader {
            path: path.to_string(),
            file: Arc::new(file),
        })
    }
}

/// A file open at the position of the next read.
pub(super) struct LocalFileReader {
    path: String,
    file: Arc<File>,
}

#[async_trait]
impl FileReader for LocalFileReader {
    async fn read(&mut self, max_bytes: u32) -> Result<Vec<u8>> {
        let file = self.file.clone();
        // On the blocking pool: the file may be on a slow or network disk,
        // and the read then overlaps with sending the previous piece.
        let read = tokio::task::spawn_blocking(move || {
            let mut data = Vec::with_capacity(max_bytes as usize);
            (&*file).take(max_bytes.into()).read_to_end(&mut data)?;
            Ok::<_, io::Error>(data)
        })
        .await
        .map_err(|err| StorageError::Backend(format!("{}: the read was abandoned: {err}", self.path)))?;
        read.map_err(|err| StorageError::Backend(format!("{}: {err}", self.path)))
    }
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
        let local = LocalRoot::open(&path).unwrap();
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
        let mut reader = local.reader("a/blob", "/a/blob", 0).unwrap();
        assert_eq!(reader.read(64).await.unwrap(), content);
        let mut reader = local.reader("a/blob", "/a/blob", 10).unwrap();
        assert_eq!(read_all(&mut reader, 7).await, content[10..]);
        for past in [64, 1000] {
            let mut reader = local.reader("a/blob", "/a/blob", past).unwrap();
            assert!(reader.read(16).await.unwrap().is_empty());
        }
        let mut reader = local.reader("a/in", "/a/in", 60).unwrap();
        assert_eq!(read_all(&mut reader, 1 << 20).await, content[60..]);
    }

    #[test]
    fn missing_files_directories_and_links_leading_out_are_refused() {
        let (_top, local, _) = fixture();
        for (relative, missing) in [("a/none", true), ("a/blob/x", true), ("a/dir", true), ("a/out", false)] {
            match local.reader(relative, "/p", 0) {
                Err(StorageError::PathNotFound(path)) if missing => assert_eq!(path, "/p"),
                Err(StorageError::Backend(message)) if !missing => assert!(message.starts_with("/p: "), "{message}"),
                Err(other) => panic!("{relative}: unexpected {other}"),
                Ok(_) => panic!("{relative} was opened"),
            }
        }
    }
}
