//! The registry's storage service: blobs, repository links, manifests,
//! tags, referrers, uploads and the catalog, in the registry's own words,
//! over a [`StorageDriver`] in distribution's layout.
//!
//! It stands where distribution's `registry/storage` does, between the HTTP
//! handlers and the drivers: handlers parse a request, call the store and
//! map its outcome; upload purging and garbage collection (and later
//! retention) call it too. Nothing outside this module
//! builds a storage path or reads a link file.

mod blobs;
mod cache;
mod check;
mod digest;
mod gc;
mod layout;
mod manifests;
mod online;
mod repositories;
mod retention;
mod time;
mod uploads;

use std::sync::Arc;

use crate::storage::{StorageDriver, StorageError};

pub use cache::{DEFAULT_ENTRIES as DEFAULT_CACHE_ENTRIES, MAX_ENTRIES as MAX_CACHE_ENTRIES};
pub use check::{CheckProgress, CheckReport, Problem, QUARANTINE};
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use gc::{Deletion, GcOptions, GcProgress, GcReport};
pub use manifests::{Dependency, Reference};
pub use online::{grace as online_gc_grace, OnlineRun, WATCH_EVERY as GC_WATCH_EVERY};
pub use uploads::{Purged, Upload, STALE_TEMPORARY};

/// The registry's content on one storage. Cheap to clone: clones share the
/// driver, the content cache and the upload turns.
#[derive(Clone)]
pub struct Store {
    driver: Arc<dyn StorageDriver>,
    cache: Arc<cache::ContentCache>,
    /// One request at a time per upload in this process.
    upload_turns: Arc<uploads::Turns>,
    /// Which garbage collection run is in progress, as last read.
    gc_watch: Arc<online::RunWatch>,
}

/// What a store operation can come to besides success.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {digest} is not in {name}")]
    BlobUnknown { name: String, digest: Digest },
    #[error("manifest {reference} is not in {name}")]
    ManifestUnknown { name: String, reference: String },
    /// A manifest refers to a blob or manifest the repository lacks.
    #[error("{digest}, which the manifest references, is not in {name}")]
    DependencyUnknown { name: String, digest: Digest },
    #[error("repository {0} is not known")]
    NameUnknown(String),
    #[error("no upload {id} in {name}")]
    UploadUnknown { name: String, id: String },
    /// The upload's content is not what the client said; it is discarded.
    #[error("the upload's content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The store cannot tell whether linking is safe now (garbage
    /// collection's lease could not be read lately); retry shortly.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl Store {
    /// A store over `driver` that keeps the sizes and manifest bytes of up
    /// to `cache_entries` digests in memory.
    pub fn new(driver: Arc<dyn StorageDriver>, cache_entries: usize) -> Store {
        Store {
            driver,
            cache: Arc::new(cache::ContentCache::new(cache_entries)),
            upload_turns: Arc::default(),
            gc_watch: Arc::default(),
        }
    }

    fn driver(&self) -> &dyn StorageDriver {
        self.driver.as_ref()
    }
}

/// `Ok(None)` for a path that is not there; other failures pass.
fn absent_is_none<T>(result: crate::storage::Result<T>) -> Result<Option<T>, StorageError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StorageError::PathNotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The last component of a storage path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
