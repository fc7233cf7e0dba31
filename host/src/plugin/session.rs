//! One instance of a storage-driver plugin and its Store, and its exports
//! called one at a time under the call deadline. A trap or a missed deadline
//! leaves the instance unusable, since its state cannot be trusted after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use wasmtime::component::ResourceAny;
use wasmtime::Store;

use super::call::{arm, classified};
use super::state::HostState;
use super::wit::remote::exports::berth::storage::{bulk_delete, signed_reads};
use super::wit::storage::exports::berth::storage::{driver as driver_export, fixed_answers, local_files, maintenance};
use super::PluginError;
use crate::metrics::metrics;

pub use super::wit::remote::exports::berth::storage::signed_reads::SignedRequest;
pub use super::wit::storage::berth::storage::types::{
    DriverInfo, Error as WitError, FileInfo as WitFileInfo, InstanceModel, NetworkAccess,
};
pub use super::wit::storage::exports::berth::storage::fixed_answers::AnswerSet as FixedAnswers;
pub use super::wit::storage::exports::berth::storage::maintenance::PurgePage;

/// The result of one guest call: the plugin failed (outer), or the operation
/// answered (inner, with the contract's own error).
pub type Answer<T> = Result<Result<T, WitError>, PluginError>;

/// An instance in use; shared by a reader or writer and the calls it makes,
/// and by the calls of one registry request.
pub type SessionRef = Arc<Mutex<Session>>;

/// What a plugin has been asked since it started: instances made, and the
/// calls into them (not counting each instance's `init`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginUsage {
    pub instances: u64,
    pub calls: u64,
}

/// [`PluginUsage`] as it is counted, shared by a plugin's instances.
#[derive(Debug, Default)]
pub(crate) struct UsageCounter {
    instances: AtomicU64,
    calls: AtomicU64,
}

impl UsageCounter {
    pub fn get(&self) -> PluginUsage {
        PluginUsage {
            instances: self.instances.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// One plugin instance and its Store.
pub struct Session {
    plugin: Arc<str>,
    usage: Arc<UsageCounter>,
    timeout: Duration,
    store: Store<HostState>,
    guest: Guest,
    /// Why this instance can no longer be called, after a trap or deadline.
    failure: Option<String>,
    resident: bool,
}

/// The exports of one instance.
pub(crate) struct Guest {
    pub driver: driver_export::Guest,
    pub local_files: Option<local_files::Guest>,
    pub maintenance: Option<maintenance::Guest>,
    pub fixed_answers: Option<fixed_answers::Guest>,
    pub signed_reads: Option<signed_reads::Guest>,
    pub bulk_delete: Option<bulk_delete::Guest>,
}

/// Calls one guest export under the deadline: `call!(self, "name", |driver,
/// store| driver.call_x(store, ...))`.
macro_rules! call {
    ($session:ident, $op:literal, |$driver:ident, $store:ident| $call:expr) => {{
        let guest = usable(&$session.plugin, $op, &$session.failure, &$session.guest)?;
        let deadline = arm(&mut $session.store, $session.timeout);
        let $driver = &guest.driver;
        let $store = &mut $session.store;
        let outcome = tokio::time::timeout_at(deadline.into(), $call).await;
        $session.settle($op, outcome)
    }};
}

impl Session {
    /// The instance that `instantiated` (the outcome of instantiating it in
    /// `store`) is, or the reason there is none.
    pub(crate) fn new(
        plugin: Arc<str>,
        usage: Arc<UsageCounter>,
        timeout: Duration,
        store: Store<HostState>,
        instantiated: Result<wasmtime::Result<Guest>, tokio::time::error::Elapsed>,
        resident: bool,
    ) -> Result<Session, PluginError> {
        let guest = match classified(&store, timeout, instantiated) {
            Ok(guest) => guest,
            Err((kind, cause)) => {
                tracing::warn!(plugin = %plugin, call = "instantiate", "plugin call failed: {cause}");
                metrics().plugin_failure(&plugin, kind);
                return Err(PluginError::new(&plugin, "instantiate", cause));
            }
        };
        usage.instances.fetch_add(1, Ordering::Relaxed);
        metrics().plugin_instance(&plugin);
        Ok(Session {
            plugin,
            usage,
            timeout,
            store,
            guest,
            failure: None,
            resident,
        })
    }

    /// Whether an earlier call left this instance unusable.
    pub(crate) fn failed(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub(crate) async fn describe(&mut self) -> Result<DriverInfo, PluginError> {
        call!(self, "describe", |driver, store| driver.call_describe(store))
    }

    pub(crate) async fn init(&mut self, parameters: &[(String, String)]) -> Result<(), PluginError> {
        let answer = call!(self, "init", |driver, store| driver.call_init(store, parameters))?;
        answer.map_err(|err| {
            PluginError::new(
                &self.plugin,
                "init",
                format!("rejected its parameters: {}", wit_error_text(&err)),
            )
        })
    }

    pub async fn get_content(&mut self, path: &str) -> Answer<Vec<u8>> {
        call!(self, "get-content", |driver, store| driver
            .call_get_content(store, path))
    }

    pub async fn put_content(&mut self, path: &str, content: &[u8]) -> Answer<()> {
        call!(self, "put-content", |driver, store| driver
            .call_put_content(store, path, content))
    }

    pub async fn reader(&mut self, path: &str, offset: u64) -> Answer<ResourceAny> {
        call!(self, "reader", |driver, store| driver.call_reader(store, path, offset))
    }

    pub async fn read(&mut self, reader: ResourceAny, max_bytes: u32) -> Answer<Vec<u8>> {
        call!(self, "file-reader.read", |driver, store| driver
            .file_reader()
            .call_read(store, reader, max_bytes))
    }

    pub async fn writer(&mut self, path: &str, append: bool) -> Answer<ResourceAny> {
        call!(self, "writer", |driver, store| driver.call_writer(store, path, append))
    }

    pub async fn write(&mut self, writer: ResourceAny, data: &[u8]) -> Answer<u64> {
        call!(self, "file-writer.write", |driver, store| driver
            .file_writer()
            .call_write(store, writer, data))
    }

    pub async fn size(&mut self, writer: ResourceAny) -> Result<u64, PluginError> {
        call!(self, "file-writer.size", |driver, store| driver
            .file_writer()
            .call_size(store, writer))
    }

    pub async fn close(&mut self, writer: ResourceAny) -> Answer<()> {
        call!(self, "file-writer.close", |driver, store| driver
            .file_writer()
            .call_close(store, writer))
    }

    pub async fn cancel(&mut self, writer: ResourceAny) -> Answer<()> {
        call!(self, "file-writer.cancel", |driver, store| driver
            .file_writer()
            .call_cancel(store, writer))
    }

    pub async fn commit(&mut self, writer: ResourceAny) -> Answer<()> {
        call!(self, "file-writer.commit", |driver, store| driver
            .file_writer()
            .call_commit(store, writer))
    }

    pub async fn stat(&mut self, path: &str) -> Answer<WitFileInfo> {
        call!(self, "stat", |driver, store| driver.call_stat(store, path))
    }

    pub async fn list(&mut self, path: &str) -> Answer<Vec<String>> {
        call!(self, "list", |driver, store| driver.call_list(store, path))
    }

    pub async fn move_to(&mut self, source: &str, destination: &str) -> Answer<()> {
        call!(self, "move-path", |driver, store| driver.call_move_path(
            store,
            source,
            destination
        ))
    }

    pub async fn delete(&mut self, path: &str) -> Answer<()> {
        call!(self, "delete", |driver, store| driver.call_delete(store, path))
    }

    pub async fn redirect_url(&mut self, method: &str, path: &str) -> Answer<Option<String>> {
        call!(self, "redirect-url", |driver, store| driver
            .call_redirect_url(store, method, path))
    }

    /// The file holding the content at `path`, if the plugin names one
    /// (only plugins exporting `local-files` do).
    pub async fn file_path(&mut self, path: &str) -> Answer<Option<String>> {
        const OP: &str = "local-files.file-path";
        let guest = usable(&self.plugin, OP, &self.failure, &self.guest)?;
        let Some(local_files) = &guest.local_files else {
            return Ok(Ok(None));
        };
        let deadline = arm(&mut self.store, self.timeout);
        let outcome = tokio::time::timeout_at(deadline.into(), local_files.call_file_path(&mut self.store, path)).await;
        self.settle(OP, outcome)
    }

    /// The signed GET of `path` from `offset` for the host to send, if the
    /// plugin gives one (only plugins exporting `signed-reads` do).
    pub async fn read_request(&mut self, path: &str, offset: u64) -> Answer<Option<SignedRequest>> {
        const OP: &str = "signed-reads.read-request";
        let guest = usable(&self.plugin, OP, &self.failure, &self.guest)?;
        let Some(signed_reads) = &guest.signed_reads else {
            return Ok(Ok(None));
        };
        let deadline = arm(&mut self.store, self.timeout);
        let call = signed_reads.call_read_request(&mut self.store, path, offset);
        let outcome = tokio::time::timeout_at(deadline.into(), call).await;
        self.settle(OP, outcome)
    }

    /// Deletes the files at `paths`; `unsupported` when the plugin does not
    /// export `bulk-delete`.
    pub async fn delete_files(&mut self, paths: &[String]) -> Answer<()> {
        const OP: &str = "bulk-delete.delete-files";
        let guest = usable(&self.plugin, OP, &self.failure, &self.guest)?;
        let Some(bulk_delete) = &guest.bulk_delete else {
            return Ok(Err(WitError::Unsupported(OP.into())));
        };
        let deadline = arm(&mut self.store, self.timeout);
        let call = bulk_delete.call_delete_files(&mut self.store, paths);
        let outcome = tokio::time::timeout_at(deadline.into(), call).await;
        self.settle(OP, outcome)
    }

    /// What the plugin answers the same for every path; `None` when it does
    /// not export `fixed-answers`.
    pub async fn fixed_answers(&mut self) -> Result<Option<FixedAnswers>, PluginError> {
        const OP: &str = "fixed-answers.answers";
        let guest = usable(&self.plugin, OP, &self.failure, &self.guest)?;
        let Some(fixed_answers) = &guest.fixed_answers else {
            return Ok(None);
        };
        let deadline = arm(&mut self.store, self.timeout);
        let outcome = tokio::time::timeout_at(deadline.into(), fixed_answers.call_answers(&mut self.store)).await;
        self.settle(OP, outcome).map(Some)
    }

    /// One page of removing the plugin's stale temporary files; `None` when
    /// the plugin does not export `maintenance`.
    pub async fn purge_temporary(
        &mut self,
        older_than_seconds: u64,
        start_after: Option<&str>,
        limit: u32,
    ) -> Answer<Option<PurgePage>> {
        const OP: &str = "maintenance.purge-temporary";
        let guest = usable(&self.plugin, OP, &self.failure, &self.guest)?;
        let Some(maintenance) = &guest.maintenance else {
            return Ok(Ok(None));
        };
        let deadline = arm(&mut self.store, self.timeout);
        let call = maintenance.call_purge_temporary(&mut self.store, older_than_seconds, start_after, limit);
        let outcome = tokio::time::timeout_at(deadline.into(), call).await;
        self.settle(OP, outcome).map(|answer| answer.map(Some))
    }

    pub async fn walk(&mut self, path: &str, start_after: Option<&str>, limit: u32) -> Answer<Vec<WitFileInfo>> {
        call!(self, "walk", |driver, store| driver.call_walk(
            store,
            path,
            start_after,
            limit
        ))
    }

    /// Drops a reader or writer in the guest, so a resident instance does
    /// not accumulate them. (A per-call instance frees all with its Store.)
    pub async fn release(&mut self, resource: ResourceAny) {
        if self.failure.is_none() {
            let deadline = arm(&mut self.store, self.timeout);
            let outcome = tokio::time::timeout_at(deadline.into(), resource.resource_drop_async(&mut self.store)).await;
            let _ = self.settle("drop", outcome);
        }
    }

    /// Turns the outcome of a guest call into its value or a clear error,
    /// marking the instance unusable: after a trap or an abandoned call its
    /// state cannot be trusted.
    fn settle<T>(
        &mut self,
        op: &'static str,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginError> {
        if op != "init" {
            self.usage.calls.fetch_add(1, Ordering::Relaxed);
        }
        // `arm` set the deadline a timeout after the call began.
        let began = self.store.data().deadline.checked_sub(self.timeout);
        let took = began.map_or(Duration::ZERO, |began| began.elapsed());
        metrics().plugin_call(&self.plugin, op, took);
        let (kind, cause) = match classified(&self.store, self.timeout, outcome) {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        metrics().plugin_failure(&self.plugin, kind);
        tracing::warn!(plugin = %self.plugin, call = op, "plugin call failed: {cause}");
        self.failure = Some(cause.clone());
        Err(PluginError::new(&self.plugin, op, cause))
    }
}

/// The instance's exports, unless a failure made it unusable.
fn usable<'a>(plugin: &str, op: &str, failure: &Option<String>, guest: &'a Guest) -> Result<&'a Guest, PluginError> {
    match failure {
        None => Ok(guest),
        Some(failure) => Err(PluginError::new(
            plugin,
            op,
            format!("instance unusable after an earlier failure: {failure}"),
        )),
    }
}

/// Releases `resource` in the background when its owner is dropped.
pub fn release_later(session: &SessionRef, resource: ResourceAny) {
    let session = session.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut session = session.lock().await;
            if session.resident {
                session.release(resource).await;
            }
        });
    }
}

/// The contract's error as a sentence.
pub fn wit_error_text(err: &WitError) -> String {
    match err {
        WitError::PathNotFound(path) => format!("path not found: {path}"),
        WitError::InvalidPath(path) => format!("invalid path: {path}"),
        WitError::InvalidOffset(offset) => format!("invalid offset: {offset}"),
        WitError::Unsupported(op) => format!("unsupported: {op}"),
        WitError::Backend(message) => message.clone(),
    }
}
