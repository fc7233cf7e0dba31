//! A storage driver that can be replaced while it serves: each call runs on
//! the driver current when it starts, so calls in flight (and the readers
//! and writers they opened) finish on the one they began with, and the old
//! driver goes when its last call does.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{FileInfo, FileReader, FileWriter, Result, StorageDriver};

pub struct SwappableDriver {
    current: RwLock<Arc<dyn StorageDriver>>,
    /// Fixed at the start: a replacement runs with the same configuration,
    /// so it has the same name and directory.
    name: String,
    host_directory: Option<String>,
}

impl SwappableDriver {
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        SwappableDriver {
            name: driver.name().to_string(),
            host_directory: driver.host_directory().map(str::to_string),
            current: RwLock::new(driver),
        }
    }

    /// New calls go to `driver` from now on.
    pub fn replace(&self, driver: Arc<dyn StorageDriver>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = driver;
    }

    fn current(&self) -> Arc<dyn StorageDriver> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
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
