//! The `StorageDriver` backed by a WebAssembly plugin: paths are checked
//! before the plugin sees them, and what it answers is checked against the
//! contract before anyone else sees it. Content a plugin keeps in files it
//! names through `local-files` is read from those files directly (and,
//! where its directory is its storage, metadata, listings and walks too,
//! and deletions and writers are made there);
//! content one signed GET away (`signed-reads`) is fetched by the host.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use wasmtime::component::ResourceAny;

use super::local_file::LocalRoot;
use super::{
    check_directory_path, check_file_path, walk, FileInfo, FileReader, FileWriter, Result, StorageDriver, StorageError,
};
use crate::plugin::{
    release_later, Answer, DriverPlugin, Network, PluginError, PluginHost, ReadResponse, SendError, SessionRef,
    SignedRequest, WitError, WitFileInfo,
};

/// How a driver's content is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// From the files the plugin names through `local-files`, or by the
    /// GET it signs through `signed-reads`, where it gives one; through its
    /// `reader` otherwise. What the registry uses.
    Direct,
    /// Always through the plugin's own `reader`: to test that reader.
    PluginReader,
}

/// Starts the storage-driver plugin `name` with `parameters`, reading
/// content from the files it names.
pub async fn open_driver(
    host: &PluginHost,
    name: &str,
    parameters: Vec<(String, String)>,
) -> Result<Arc<dyn StorageDriver>> {
    open_driver_reading(host, name, parameters, ReadPath::Direct).await
}

/// [`open_driver`], reading content as `read_path` says.
pub async fn open_driver_reading(
    host: &PluginHost,
    name: &str,
    parameters: Vec<(String, String)>,
    read_path: ReadPath,
) -> Result<Arc<dyn StorageDriver>> {
    let plugin = host.storage_driver(name, parameters).await?;
    let direct = read_path == ReadPath::Direct;
    let local_root = match plugin.directory() {
        Some(dir) if direct && plugin.exports_local_files() => Some(LocalRoot::new(dir)),
        _ => None,
    };
    let signed_reads = direct && plugin.signed_reads().is_some();
    Ok(Arc::new(WasmDriver {
        plugin,
        local_root,
        signed_reads,
    }))
}

struct WasmDriver {
    plugin: DriverPlugin,
    /// The plugin's directory, when it names the files holding content.
    local_root: Option<LocalRoot>,
    /// Whether the host sends the GETs the plugin signs for its reads.
    signed_reads: bool,
}

/// No real file is larger than this; a bigger size is a negative number or
/// garbage from the plugin.
const MAX_SIZE: u64 = i64::MAX as u64;

fn answer<T>(answer: Answer<T>) -> Result<T> {
    answer?.map_err(|err| match err {
        WitError::PathNotFound(path) => StorageError::PathNotFound(path),
        WitError::InvalidPath(path) => StorageError::InvalidPath(path),
        WitError::InvalidOffset(offset) => StorageError::InvalidOffset(offset),
        WitError::Unsupported(op) => StorageError::Unsupported(op),
        WitError::Backend(message) => StorageError::Backend(message),
    })
}

/// The plugin answered something the contract rules out.
fn broke_contract(plugin: &str, call: &str, what: String) -> StorageError {
    crate::metrics::metrics().plugin_failure(plugin, crate::metrics::FailureCause::Contract);
    PluginError::new(plugin, call, format!("broke the storage contract: {what}")).into()
}

fn file_info(info: WitFileInfo) -> FileInfo {
    FileInfo {
        path: info.path,
        size: info.size,
        modified_ns: info.modified_ns,
        is_dir: info.is_dir,
    }
}

/// Whether `child` lies below the directory `dir` (at any depth).
fn is_below(dir: &str, child: &str) -> bool {
    let prefix = if dir == "/" { "" } else { dir };
    child
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

impl WasmDriver {
    /// The plugin's directory, when it is the plugin's storage: the host
    /// reads content, metadata, listings and walks there itself, and
    /// deletes and opens writers there.
    fn tree(&self) -> Option<&LocalRoot> {
        self.local_root
            .as_ref()
            .filter(|_| self.plugin.fixed_answers().files_at_their_paths)
    }

    async fn session(&self) -> Result<SessionRef> {
        Ok(self.plugin.session().await?)
    }

    fn broke(&self, call: &str, what: String) -> StorageError {
        broke_contract(self.plugin.name(), call, what)
    }

    /// Sends the GET the plugin signed for `path` from `offset`, and reads
    /// its answer as `signed-reads` defines it.
    async fn send_read(
        &self,
        network: &Network,
        request: SignedRequest,
        path: &str,
        offset: u64,
    ) -> Result<Box<dyn FileReader>> {
        const CALL: &str = "signed-reads.read-request";
        let response = network
            .send_read(&request.url, &request.headers)
            .await
            .map_err(|err| match err {
                SendError::Refused(why) => self.broke(CALL, format!("signed a read of {path}: {why}")),
                SendError::Failed(why) => StorageError::Backend(format!("{path}: {why}")),
            })?;
        let status = response.status();
        let starts_at_offset = match status {
            200 => offset == 0,
            206 => response
                .header("content-range")
                .and_then(|range| range.strip_prefix("bytes "))
                .and_then(|range| range.split('-').next())
                .is_some_and(|start| start.parse() == Ok(offset)),
            404 => return Err(StorageError::PathNotFound(path.to_string())),
            416 => return Ok(Box::new(SignedReader::at_end())),
            _ => {
                let text = response.text().await;
                return Err(StorageError::Backend(format!(
                    "{path}: the GET to {} answered HTTP {status}: {text}",
                    network.origin()
                )));
            }
        };
        if !starts_at_offset {
            let range = response.header("content-range").unwrap_or("none").to_string();
            let what = format!("GET of {path} from {offset} answered {status} with the content range {range}");
            return Err(self.broke(CALL, what));
        }
        Ok(Box::new(SignedReader {
            path: path.to_string(),
            response: Some(response),
            pending: Bytes::new(),
        }))
    }
}

#[async_trait]
impl StorageDriver for WasmDriver {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn host_directory(&self) -> Option<&str> {
        self.plugin.directory()
    }

    fn plugin_usage(&self) -> Option<crate::plugin::PluginUsage> {
        Some(self.plugin.usage())
    }

    async fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        check_file_path(path)?;
        if let Some(tree) = self.tree() {
            return tree.get_content(path).await;
        }
        answer(self.session().await?.lock().await.get_content(path).await)
    }

    async fn put_content(&self, path: &str, content: &[u8]) -> Result<()> {
        check_file_path(path)?;
        answer(self.session().await?.lock().await.put_content(path, content).await)
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        check_file_path(path)?;
        if let Some(tree) = self.tree() {
            return Ok(Box::new(tree.reader(&path[1..], path, offset).await?));
        }
        let session = self.session().await?;
        if let Some(network) = self.plugin.signed_reads().filter(|_| self.signed_reads) {
            if let Some(request) = answer(session.lock().await.read_request(path, offset).await)? {
                return self.send_read(network, request, path, offset).await;
            }
        }
        if let Some(root) = &self.local_root {
            let named = answer(session.lock().await.file_path(path).await)?;
            if let Some(file) = named {
                let Some(relative) = root.relative(&file) else {
                    let what = format!("named `{file}` for {path}, which is not a file path inside its directory");
                    return Err(self.broke("local-files.file-path", what));
                };
                return Ok(Box::new(root.reader(relative, path, offset).await?));
            }
        }
        let reader = answer(session.lock().await.reader(path, offset).await)?;
        Ok(Box::new(WasmReader {
            plugin: self.plugin.name().to_string(),
            session,
            reader,
        }))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        check_file_path(path)?;
        if let Some(tree) = self.tree() {
            return Ok(Box::new(tree.writer(path, append).await?));
        }
        let session = self.session().await?;
        let writer = answer(session.lock().await.writer(path, append).await)?;
        Ok(Box::new(WasmWriter {
            plugin: self.plugin.name().to_string(),
            session,
            writer,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        check_directory_path(path)?;
        if let Some(tree) = self.tree() {
            return tree.stat(path).await;
        }
        let info = answer(self.session().await?.lock().await.stat(path).await)?;
        if info.path != path {
            return Err(self.broke("stat", format!("asked about {path}, answered about {}", info.path)));
        }
        if info.size > MAX_SIZE {
            return Err(self.broke("stat", format!("gave {path} an impossible size of {} bytes", info.size)));
        }
        Ok(file_info(info))
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        check_directory_path(path)?;
        if let Some(tree) = self.tree() {
            return tree.list(path).await;
        }
        let children = answer(self.session().await?.lock().await.list(path).await)?;
        for child in &children {
            let direct = is_below(path, child) && !child[path.len()..].trim_start_matches('/').contains('/');
            if !direct || check_file_path(child).is_err() {
                return Err(self.broke(
                    "list",
                    format!("listed `{child}`, which is not a direct child of {path}"),
                ));
            }
        }
        Ok(children)
    }

    async fn move_to(&self, source: &str, destination: &str) -> Result<()> {
        check_file_path(source)?;
        check_file_path(destination)?;
        answer(self.session().await?.lock().await.move_to(source, destination).await)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        check_file_path(path)?;
        if let Some(tree) = self.tree() {
            return tree.delete(path).await;
        }
        answer(self.session().await?.lock().await.delete(path).await)
    }

    fn deletes_files_in_bulk(&self) -> bool {
        self.tree().is_none() && self.plugin.deletes_files_in_bulk()
    }

    async fn delete_files(&self, paths: &[String]) -> Result<()> {
        for path in paths {
            check_file_path(path)?;
        }
        if !self.deletes_files_in_bulk() {
            return super::delete_each(self, paths).await;
        }
        let session = self.session().await?;
        for batch in paths.chunks(BULK_DELETE_LIMIT) {
            answer(session.lock().await.delete_files(batch).await)?;
        }
        Ok(())
    }

    async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>> {
        check_file_path(path)?;
        if self.plugin.fixed_answers().never_redirects {
            return Ok(None);
        }
        answer(self.session().await?.lock().await.redirect_url(method, path).await)
    }

    async fn walk(&self, path: &str, start_after: Option<&str>, limit: u32) -> Result<Vec<FileInfo>> {
        check_directory_path(path)?;
        let limit = limit.max(1);
        if let Some(tree) = self.tree() {
            return tree.walk(path, start_after, limit).await;
        }
        // The session's lock must be released before the fallback lists.
        let answered = answer(self.session().await?.lock().await.walk(path, start_after, limit).await);
        let page = match answered {
            Err(StorageError::Unsupported(_)) => return walk::walk_by_listing(self, path, start_after, limit).await,
            other => other?,
        };
        let mut previous = start_after.unwrap_or("");
        if page.len() > limit as usize {
            return Err(self.broke(
                "walk",
                format!("returned {} entries, more than the limit of {limit}", page.len()),
            ));
        }
        for entry in &page {
            if !is_below(path, &entry.path)
                || check_file_path(&entry.path).is_err()
                || entry.is_dir
                || entry.size > MAX_SIZE
            {
                return Err(self.broke(
                    "walk",
                    format!("returned `{}`, which is not a file below {path}", entry.path),
                ));
            }
            if entry.path.as_str() <= previous {
                return Err(self.broke(
                    "walk",
                    format!("returned `{}` after `{previous}`, out of order", entry.path),
                ));
            }
            previous = &entry.path;
        }
        Ok(page.into_iter().map(file_info).collect())
    }

    async fn purge_temporary(&self, older_than: std::time::Duration) -> Result<u64> {
        const OP: &str = "purge-temporary";
        let mut removed = 0;
        let mut next: Option<String> = None;
        loop {
            // A fresh session per page: each page is one call's work.
            let session = self.session().await?;
            let page = session
                .lock()
                .await
                .purge_temporary(older_than.as_secs(), next.as_deref(), PURGE_PAGE)
                .await;
            let Some(page) = answer(page)? else {
                return Ok(removed);
            };
            removed += u64::from(page.removed);
            match page.next {
                None => return Ok(removed),
                // The walk must move on, or a page would repeat forever.
                Some(last) if next.as_ref().is_some_and(|previous| last <= *previous) => {
                    return Err(self.broke(
                        OP,
                        format!("went back to `{last}` after `{}`", next.unwrap_or_default()),
                    ));
                }
                Some(last) => next = Some(last),
            }
        }
    }
}

/// The most paths one `bulk-delete.delete-files` call is given (the
/// contract's bound).
const BULK_DELETE_LIMIT: usize = 1000;

/// Files a `purge-temporary` call visits: small enough for one call's
/// deadline on a slow disk, large enough that a walk takes few instances.
const PURGE_PAGE: u32 = 1000;

struct WasmReader {
    plugin: String,
    session: SessionRef,
    reader: ResourceAny,
}

#[async_trait]
impl FileReader for WasmReader {
    async fn read(&mut self, max_bytes: u32) -> Result<Bytes> {
        let max_bytes = max_bytes.max(1);
        let data = answer(self.session.lock().await.read(self.reader, max_bytes).await)?;
        if data.len() > max_bytes as usize {
            let what = format!("returned {} bytes when asked for at most {max_bytes}", data.len());
            return Err(broke_contract(&self.plugin, "file-reader.read", what));
        }
        Ok(data.into())
    }
}

impl Drop for WasmReader {
    fn drop(&mut self) {
        release_later(&self.session, self.reader);
    }
}

/// The body of a signed read's answer, passed on in the pieces it arrives
/// in (split where a read asks for less).
struct SignedReader {
    path: String,
    /// None at the end.
    response: Option<ReadResponse>,
    /// What arrived and was not yet read.
    pending: Bytes,
}

impl SignedReader {
    fn at_end() -> SignedReader {
        SignedReader {
            path: String::new(),
            response: None,
            pending: Bytes::new(),
        }
    }
}

#[async_trait]
impl FileReader for SignedReader {
    async fn read(&mut self, max_bytes: u32) -> Result<Bytes> {
        if self.pending.is_empty() {
            let Some(response) = self.response.as_mut() else {
                return Ok(Bytes::new());
            };
            match response.next_piece().await {
                Ok(Some(piece)) => self.pending = piece,
                Ok(None) => self.response = None,
                Err(why) => {
                    return Err(StorageError::Backend(format!(
                        "{}: reading the GET's body: {why}",
                        self.path
                    )))
                }
            }
        }
        let take = self.pending.len().min(max_bytes.max(1) as usize);
        Ok(self.pending.split_to(take))
    }
}

struct WasmWriter {
    plugin: String,
    session: SessionRef,
    writer: ResourceAny,
}

#[async_trait]
impl FileWriter for WasmWriter {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        let taken = answer(self.session.lock().await.write(self.writer, data).await)?;
        if taken != data.len() as u64 {
            let what = format!("took {taken} of {} bytes", data.len());
            return Err(broke_contract(&self.plugin, "file-writer.write", what));
        }
        Ok(())
    }

    async fn size(&mut self) -> Result<u64> {
        let size = self.session.lock().await.size(self.writer).await?;
        if size > MAX_SIZE {
            return Err(broke_contract(
                &self.plugin,
                "file-writer.size",
                format!("reported an impossible size of {size} bytes"),
            ));
        }
        Ok(size)
    }

    async fn close(self: Box<Self>) -> Result<()> {
        answer(self.session.lock().await.close(self.writer).await)
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        answer(self.session.lock().await.cancel(self.writer).await)
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        answer(self.session.lock().await.commit(self.writer).await)
    }
}

impl Drop for WasmWriter {
    fn drop(&mut self) {
        release_later(&self.session, self.writer);
    }
}
