//! The storage under a test registry: a filesystem root or an S3 bucket on
//! moto. How to open its driver, and checks that read the backend directly
//! (std::fs, a native S3 client), independently of the plugin.
//!
//! Paths are registry paths without the leading `/`, as
//! `docker/registry/v2/blobs/...`; on S3 (no `rootdirectory`) they are the
//! object keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use berth::plugin::PluginHost;
use berth::storage::{open_driver, StorageDriver};
use tempfile::TempDir;

use super::s3::Moto;

/// Which storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Filesystem,
    S3,
}

/// A storage of its own for one test, removed (or its server stopped) when
/// dropped.
pub enum TestStorage {
    /// The bundled `filesystem` driver at a temporary root.
    Filesystem(TempDir),
    /// The bundled `s3` driver on a fresh bucket of a moto server of its own.
    S3 { moto: Moto, bucket: String },
}

/// The `filesystem` driver's parameters for `root`.
pub fn filesystem_parameters(root: &Path) -> Vec<(String, String)> {
    vec![("rootdirectory".to_string(), root.display().to_string())]
}

/// Where distribution keeps the content of the blob `digest`.
pub fn blob_data_path(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    format!("docker/registry/v2/blobs/{algorithm}/{}/{hex}/data", &hex[..2])
}

/// The directory of the repository `name`.
pub fn repository_path(name: &str) -> String {
    format!("docker/registry/v2/repositories/{name}")
}

/// The directory of the uploads in progress of the repository `name`.
pub fn uploads_path(name: &str) -> String {
    format!("{}/_uploads", repository_path(name))
}

impl TestStorage {
    pub async fn new(kind: StorageKind) -> TestStorage {
        match kind {
            StorageKind::Filesystem => TestStorage::Filesystem(tempfile::tempdir().expect("a temporary root")),
            StorageKind::S3 => {
                // Moto::start waits for the server with blocking sleeps.
                let moto = tokio::task::spawn_blocking(Moto::start).await.expect("moto start");
                let bucket = moto.new_bucket().await;
                TestStorage::S3 { moto, bucket }
            }
        }
    }

    pub fn kind(&self) -> StorageKind {
        match self {
            TestStorage::Filesystem(_) => StorageKind::Filesystem,
            TestStorage::S3 { .. } => StorageKind::S3,
        }
    }

    /// The filesystem root, if this is one.
    pub fn root(&self) -> Option<&Path> {
        match self {
            TestStorage::Filesystem(root) => Some(root.path()),
            TestStorage::S3 { .. } => None,
        }
    }

    /// The driver's name and parameters, as `storage: {NAME: {params}}`.
    pub fn driver(&self) -> (&'static str, Vec<(String, String)>) {
        match self {
            TestStorage::Filesystem(root) => ("filesystem", filesystem_parameters(root.path())),
            TestStorage::S3 { moto, bucket } => ("s3", moto.driver_parameters(bucket)),
        }
    }

    /// A new instance of the driver on `host`.
    pub async fn open(&self, host: &PluginHost) -> Arc<dyn StorageDriver> {
        let (name, parameters) = self.driver();
        open_driver(host, name, parameters)
            .await
            .unwrap_or_else(|err| panic!("opening the {name} driver: {err}"))
    }

    fn file(root: &Path, path: &str) -> PathBuf {
        root.join(path.trim_matches('/'))
    }

    /// The content stored at `path`, read from the backend itself.
    pub async fn read(&self, path: &str) -> Option<Vec<u8>> {
        match self {
            TestStorage::Filesystem(root) => match std::fs::read(Self::file(root.path(), path)) {
                Ok(content) => Some(content),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => panic!("reading {path}: {err}"),
            },
            TestStorage::S3 { moto, bucket } => moto.object(bucket, path.trim_matches('/')).await,
        }
    }

    /// The content at `path` as text; fails if there is none.
    pub async fn read_text(&self, path: &str) -> String {
        let content = self
            .read(path)
            .await
            .unwrap_or_else(|| panic!("nothing stored at {path}"));
        String::from_utf8(content).unwrap_or_else(|err| panic!("{path} is not UTF-8: {err}"))
    }

    /// Every file (object) below the directory `prefix`, sorted; empty when
    /// there is none. On a filesystem an empty directory below `prefix`
    /// counts too, as `its/path/` (S3 has no directories to leave behind).
    pub async fn paths_under(&self, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim_matches('/');
        let mut paths = match self {
            TestStorage::Filesystem(root) => {
                let mut found = Vec::new();
                walk(root.path(), &Self::file(root.path(), prefix), &mut found);
                found
            }
            TestStorage::S3 { moto, bucket } => {
                let dir = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                moto.keys(bucket, &dir).await
            }
        };
        paths.sort();
        paths
    }

    /// Stores `content` at `path` directly in the backend, as another
    /// registry (or an operator) would have written it.
    pub async fn write(&self, path: &str, content: &[u8]) {
        match self {
            TestStorage::Filesystem(root) => {
                let file = Self::file(root.path(), path);
                std::fs::create_dir_all(file.parent().expect("a parent")).expect("create directories");
                std::fs::write(&file, content).unwrap_or_else(|err| panic!("writing {path}: {err}"));
            }
            TestStorage::S3 { moto, bucket } => {
                moto.client()
                    .put_object()
                    .bucket(bucket)
                    .key(path.trim_matches('/'))
                    .body(ByteStream::from(content.to_vec()))
                    .send()
                    .await
                    .unwrap_or_else(|err| panic!("PutObject {bucket}/{path}: {err:?}"));
            }
        }
    }

    /// The keys of the S3 multipart uploads still in progress (none on a
    /// filesystem).
    pub async fn multipart_uploads(&self) -> Vec<String> {
        match self {
            TestStorage::Filesystem(_) => Vec::new(),
            TestStorage::S3 { moto, bucket } => moto.multipart_uploads(bucket).await,
        }
    }
}

/// The files below `dir`, as paths relative to `root` joined with `/`.
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
        Err(err) => panic!("listing {}: {err}", dir.display()),
    };
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let relative = path.strip_prefix(root).expect("below the root");
        let parts: Vec<String> = relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        if entry.file_type().expect("a file type").is_dir() {
            let before = found.len();
            walk(root, &path, found);
            if found.len() == before {
                found.push(format!("{}/", parts.join("/")));
            }
        } else {
            found.push(parts.join("/"));
        }
    }
}
