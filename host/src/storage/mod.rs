//! The host-side storage driver: the trait the registry stores through, its
//! errors, path rules, and the conformance suite every driver must pass.

pub mod conformance;
mod local_file;
mod path;
mod swap;
mod walk;
mod wasm;

use async_trait::async_trait;

pub use path::{check_directory_path, check_file_path};
pub use swap::{one_driver_per_request, SwappableDriver};
pub use wasm::{open_driver, open_driver_reading, ReadPath};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("path not found: {0}")]
    PathNotFound(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("invalid offset: {0}")]
    InvalidOffset(u64),
    #[error("operation not supported by the driver: {0}")]
    Unsupported(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The plugin itself failed: it trapped, ran past its deadline or memory
    /// limit, or answered something that breaks the contract.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
}

impl StorageError {
    /// Whether the backend ran out of space. The contract has no variant for
    /// it, so this reads the words drivers pass on: ENOSPC as std and as
    /// `wasi:filesystem` (`insufficient-space`) put it.
    pub fn is_storage_full(&self) -> bool {
        const WORDS: [&str; 3] = ["No space left on device", "(os error 28)", "insufficient-space"];
        match self {
            StorageError::Backend(message) => WORDS.iter().any(|words| message.contains(words)),
            _ => false,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What `stat` and `walk` report about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    /// Bytes of content; 0 for directories.
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub modified_ns: u64,
    pub is_dir: bool,
}

/// Distribution's `StorageDriver` semantics. `stat`, `list` and `walk` take
/// directory paths (`/` included); every other operation takes a file path
/// (never `/`). Implementations check paths with [`check_file_path`] /
/// [`check_directory_path`] before they reach a backend.
#[async_trait]
pub trait StorageDriver: Send + Sync {
    /// The driver's name as configured (`filesystem`, `s3`, ...).
    fn name(&self) -> &str;
    /// The host directory the driver stores into, if it has one: where the
    /// host can tell how much space is left.
    fn host_directory(&self) -> Option<&str> {
        None
    }
    /// What the driver's plugin has been asked since it started, if it is a
    /// plugin.
    fn plugin_usage(&self) -> Option<crate::plugin::PluginUsage> {
        None
    }
    /// The whole content at `path`.
    async fn get_content(&self, path: &str) -> Result<Vec<u8>>;
    /// Stores `content` at `path`, replacing what was there.
    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()>;
    /// Streams the content at `path` from `offset`; at or past the end the
    /// reader is at its end.
    async fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>>;
    /// Opens `path` for writing, continuing existing content with `append`.
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>>;
    async fn stat(&self, path: &str) -> Result<FileInfo>;
    /// Full paths of the direct children of the directory `path`.
    async fn list(&self, path: &str) -> Result<Vec<String>>;
    /// Moves `source` to `destination`, replacing the destination.
    async fn move_to(&self, source: &str, destination: &str) -> Result<()>;
    /// Deletes `path` and everything below it.
    async fn delete(&self, path: &str) -> Result<()>;
    /// Whether [`StorageDriver::delete_files`] deletes many files in one
    /// round trip. When it does not, a `delete` of each file's folder costs
    /// the same and leaves no empty folder behind.
    fn deletes_files_in_bulk(&self) -> bool {
        false
    }
    /// Deletes the file at each of `paths` (file paths as `walk` gives them)
    /// and nothing below them; a path with no file is not an error.
    async fn delete_files(&self, paths: &[String]) -> Result<()> {
        delete_each(self, paths).await
    }
    /// Where a client may be redirected for `method` on `path`, if anywhere.
    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>>;
    /// One page of the files below `path` at any depth, in lexical order,
    /// strictly after `start_after`, at most `limit`; a short page ends the walk.
    async fn walk(&self, path: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<FileInfo>>;
    /// Removes the temporary files of the driver's own interrupted writes
    /// that are older than `older_than`, everywhere; returns how many. A
    /// driver that leaves none behind has nothing to do.
    async fn purge_temporary(&self, _older_than: std::time::Duration) -> Result<u64> {
        Ok(0)
    }
}

/// [`StorageDriver::delete_files`] as a `delete` of each path.
pub(crate) async fn delete_each<D: StorageDriver + ?Sized>(driver: &D, paths: &[String]) -> Result<()> {
    for path in paths {
        match driver.delete(path).await {
            Ok(()) | Err(StorageError::PathNotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A stream of content opened by [`StorageDriver::reader`].
#[async_trait]
pub trait FileReader: Send {
    /// Up to `max_bytes` bytes (at least 1 is asked for); empty at the end.
    /// `Bytes`, so content that arrives in shared buffers (an HTTP body) is
    /// passed on without a copy.
    async fn read(&mut self, max_bytes: u32) -> Result<bytes::Bytes>;
}

/// Content being written, opened by [`StorageDriver::writer`].
#[async_trait]
pub trait FileWriter: Send {
    /// Appends all of `data`.
    async fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Bytes written so far, including the content an append continued.
    async fn size(&mut self) -> Result<u64>;
    /// Keeps the content for a later writer with `append` (a writer dropped
    /// without `commit` or `cancel` does the same, reporting no error).
    async fn close(self: Box<Self>) -> Result<()>;
    /// Discards the content.
    async fn cancel(self: Box<Self>) -> Result<()>;
    /// Makes the content durable and visible.
    async fn commit(self: Box<Self>) -> Result<()>;
}
