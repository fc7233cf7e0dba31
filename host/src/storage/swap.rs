//! A storage driver that can be replaced while it serves (a plugin
//! reload). A registry request runs on one driver from its first call to
//! its last ([`one_driver_per_request`]), so a request in flight, and the
//! readers and writers it opened, finish on the driver it began with;
//! outside a request each call takes the driver current when it starts.
//! The old driver goes when the last of them does.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::{FileInfo, FileReader, FileWriter, Result, StorageDriver};

tokio::task_local! {
    /// The drivers the running request took, by swappable driver.
    static TAKEN: Mutex<Vec<(u64, Arc<dyn StorageDriver>)>>;
}

/// Runs `request` as one request: every swappable driver it calls answers
/// it with the driver that was current at its first call.
pub async fn one_driver_per_request<F: Future>(request: F) -> F::Output {
    TAKEN.scope(Mutex::default(), request).await
}

pub struct SwappableDriver {
    /// Tells this driver's entry in a request's [`TAKEN`] from others'.
    id: u64,
    current: RwLock<Arc<dyn StorageDriver>>,
    /// Fixed at the start: a replacement runs with the same configuration,
    /// so it has the same name and directory.
    name: String,
    host_directory: Option<String>,
}

impl SwappableDriver {
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        SwappableDriver {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: driver.name().to_string(),
            host_directory: driver.host_directory().map(str::to_string),
            current: RwLock::new(driver),
        }
    }

    /// New requests go to `driver` from now on.
    pub fn replace(&self, driver: Arc<dyn StorageDriver>) {
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), driver);
        // Dropped outside the lock: the last reference may take a while to go.
        drop(old);
    }

    fn current(&self) -> Arc<dyn StorageDriver> {
        let now = || self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        TAKEN
            .try_with(|taken| {
                let mut taken = taken.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, driver)) = taken.iter().find(|(id, _)| *id == self.id) {
                    return driver.clone();
                }
                let driver = now();
                taken.push((self.id, driver.clone()));
                driver
            })
            .unwrap_or_else(|_| now())
    }
}

#[async_trait]
impl StorageDriver for SwappableDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn host_directory(&self) -> Option<&str> {
        self.host_directory.as_deref()
    }

    fn plugin_usage(&self) -> Option<crate::plugin::PluginUsage> {
        self.current().plugin_usage()
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.current().get_content(path).await
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        self.current().put_content(path, content).await
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        self.current().reader(path, offset).await
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        self.current().writer(path, append).await
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.current().stat(path).await
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        self.current().list(path).await
    }

    async fn move_to(&self, source: &str, destination: &str) -> Result<()> {
        self.current().move_to(source, destination).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.current().delete(path).await
    }

    fn deletes_files_in_bulk(&self) -> bool {
        self.current().deletes_files_in_bulk()
    }

    async fn delete_files(&self, paths: &[String]) -> Result<()> {
        self.current().delete_files(paths).await
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        self.current().redirect_url(method, path).await
    }

    async fn walk(&self, path: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<FileInfo>> {
        self.current().walk(path, start_after, limit).await
    }

    async fn purge_temporary(&self, older_than: std::time::Duration) -> Result<u64> {
        self.current().purge_temporary(older_than).await
    }
}
