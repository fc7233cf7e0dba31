//! Storage-driver plugins: instantiating them per call or keeping one
//! resident, and calling their exports under a deadline. What the calls mean
//! is the `storage` module's business; this one only runs them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceAny};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::call::{arm, new_store, outcome as outcome_of};
use super::http::Network;
use super::inspect::{exports_interface, LOCAL_FILES, MAINTENANCE};
use super::state::HostState;
use super::{PluginError, PluginHostOptions};

/// The storage-driver world's imports and types, shared with the
/// provisioning world's bindings.
pub(crate) mod wit {
    pub use super::bindings::berth::storage::{host, types};
}

// The world with every optional export of a driver: each interface is
// looked up on its own, so a plugin without `local-files` or `maintenance` is
// still a driver.
mod bindings {
    wasmtime::component::bindgen!({
        world: "maintained-local-storage-driver",
        path: "../wit/storage",
        exports: { default: async },
    });
}

use bindings::berth::storage::host::Level;
pub use bindings::berth::storage::types::{
    DriverInfo, Error as WitError, FileInfo as WitFileInfo, InstanceModel, NetworkAccess,
};
pub use bindings::exports::berth::storage::maintenance::PurgePage;
use bindings::exports::berth::storage::{driver as driver_export, local_files, maintenance};

/// The result of one guest call: the plugin failed (outer), or the operation
/// answered (inner, with the contract's own error).
pub type Answer<T> = Result<Result<T, WitError>, PluginError>;

/// Adds the imports of the storage-driver world (besides WASI) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::MaintainedLocalStorageDriver::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

impl bindings::berth::storage::types::Host for HostState {}

impl bindings::berth::storage::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            Level::Error => tracing::error!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Trace => tracing::trace!(plugin, "{message}"),
        }
    }
}

/// A storage-driver plugin configured with its parameters.
pub struct DriverPlugin {
    name: Arc<str>,
    engine: Engine,
    pre: InstancePre<HostState>,
    driver: driver_export::GuestIndices,
    /// Present when the plugin exports `local-files`.
    local_files: Option<local_files::GuestIndices>,
    /// Present when the plugin exports `maintenance`.
    maintenance: Option<maintenance::GuestIndices>,
    options: PluginHostOptions,
    parameters: Vec<(String, String)>,
    info: DriverInfo,
    /// The host directory pre-opened for the plugin, if it asked for one.
    directory: Option<String>,
    /// An empty directory pre-opened in its place when only the parameters
    /// are checked ([`DriverPlugin::check_parameters`]).
    scratch: Option<tempfile::TempDir>,
    /// The endpoint and connection pool of a network plugin.
    network: Option<Arc<Network>>,
    /// The one instance of a `resident` plugin.
    resident: Option<Mutex<SessionRef>>,
}

/// An instance in use; shared by a reader or writer and the calls it makes.
pub type SessionRef = Arc<Mutex<Session>>;

impl DriverPlugin {
    /// Asks the plugin how it wants to be run, then initialises it with
    /// `parameters`, so that a bad parameter is found now and not at the
    /// first request.
    pub(crate) async fn start(
        name: Arc<str>,
        engine: Engine,
        pre: InstancePre<HostState>,
        options: PluginHostOptions,
        parameters: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        let mut plugin = Self::start_unconfigured(name, engine, pre, options, parameters)?;
        plugin.info = plugin.instantiate().await?.describe().await?;
        plugin.directory = plugin.granted_directory()?;
        plugin.network = granted_network(&plugin.name, &plugin.info, &plugin.parameters)?;
        let session = plugin.new_session().await?;
        if plugin.info.instance_model == InstanceModel::Resident {
            plugin.resident = Some(Mutex::new(Arc::new(Mutex::new(session))));
        }
        Ok(plugin)
    }

    /// Runs the plugin's own `init` on `parameters` without touching its
    /// backend: no network, and an empty scratch directory pre-opened where
    /// its directory parameter points. The error is what `start` would say.
    pub(crate) async fn check_parameters(
        name: Arc<str>,
        engine: Engine,
        pre: InstancePre<HostState>,
        options: PluginHostOptions,
        parameters: Vec<(String, String)>,
    ) -> Result<(), PluginError> {
        let mut plugin = Self::start_unconfigured(name, engine, pre, options, parameters)?;
        plugin.info = plugin.instantiate().await?.describe().await?;
        plugin.directory = plugin.directory_parameter()?;
        if plugin.directory.is_some() {
            let scratch = tempfile::tempdir()
                .map_err(|err| PluginError::new(&plugin.name, "init", format!("no scratch directory: {err}")))?;
            plugin.scratch = Some(scratch);
        }
        plugin.new_session().await.map(drop)
    }

    fn start_unconfigured(
        name: Arc<str>,
        engine: Engine,
        pre: InstancePre<HostState>,
        options: PluginHostOptions,
        parameters: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        let driver = driver_export::GuestIndices::new(&pre)
            .map_err(|err| PluginError::new(&name, "load", format!("is not a storage driver: {err:#}")))?;
        let local_files = match local_files::GuestIndices::new(&pre) {
            Ok(indices) => Some(indices),
            Err(err) => {
                if exports_interface(&engine, pre.component(), LOCAL_FILES) {
                    tracing::warn!(plugin = %name, "its local-files export is not one this host reads ({err:#}); its content is read through its reader");
                }
                None
            }
        };
        let maintenance = match maintenance::GuestIndices::new(&pre) {
            Ok(indices) => Some(indices),
            Err(err) => {
                if exports_interface(&engine, pre.component(), MAINTENANCE) {
                    tracing::warn!(plugin = %name, "its maintenance export is not one this host reads ({err:#}); upload purging does not clean up after it");
                }
                None
            }
        };
        Ok(DriverPlugin {
            name,
            engine,
            pre,
            driver,
            local_files,
            maintenance,
            options,
            parameters,
            info: DriverInfo {
                instance_model: InstanceModel::PerCall,
                directory_parameter: None,
                network: None,
            },
            directory: None,
            scratch: None,
            network: None,
            resident: None,
        })
    }

    /// Only `describe`, on an instance that has no parameters.
    pub(crate) async fn describe(
        name: Arc<str>,
        engine: Engine,
        pre: InstancePre<HostState>,
        options: PluginHostOptions,
    ) -> Result<DriverInfo, PluginError> {
        let plugin = Self::start_unconfigured(name, engine, pre, options, Vec::new())?;
        plugin.instantiate().await?.describe().await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &DriverInfo {
        &self.info
    }

    /// The host directory granted to the plugin, if it asked for one.
    pub fn directory(&self) -> Option<&str> {
        self.directory.as_deref()
    }

    /// Whether the plugin exports `local-files`.
    pub fn exports_local_files(&self) -> bool {
        self.local_files.is_some()
    }

    /// An initialised instance: a fresh one for `per-call` plugins, the
    /// resident one otherwise (replaced, with a logged error, if a failure
    /// left it unusable: its in-memory data is lost with it).
    pub async fn session(&self) -> Result<SessionRef, PluginError> {
        let Some(slot) = &self.resident else {
            return Ok(Arc::new(Mutex::new(self.new_session().await?)));
        };
        let mut current = slot.lock().await;
        let failure = current.lock().await.failure.clone();
        if let Some(failure) = failure {
            tracing::error!(plugin = %self.name, "the resident instance failed ({failure}); starting a fresh one, the data it held is lost");
            *current = Arc::new(Mutex::new(self.new_session().await?));
        }
        Ok(current.clone())
    }

    /// The directory the plugin asked for through `directory-parameter`,
    /// created if missing. Only an absolute path is granted.
    /// The directory the plugin's directory parameter names, created.
    fn granted_directory(&self) -> Result<Option<String>, PluginError> {
        let Some(dir) = self.directory_parameter()? else {
            return Ok(None);
        };
        std::fs::create_dir_all(&dir)
            .map_err(|err| PluginError::new(&self.name, "init", format!("cannot create {dir}: {err}")))?;
        Ok(Some(dir))
    }

    /// The value of the parameter the plugin declares as its directory,
    /// which must be there and absolute.
    fn directory_parameter(&self) -> Result<Option<String>, PluginError> {
        let Some(key) = &self.info.directory_parameter else {
            return Ok(None);
        };
        let fail = |cause: String| PluginError::new(&self.name, "init", cause);
        let Some((_, dir)) = self.parameters.iter().find(|(k, _)| k == key) else {
            return Err(fail(format!("the parameter `{key}` is required")));
        };
        if !dir.starts_with('/') {
            return Err(fail(format!(
                "the parameter `{key}` must be an absolute path, not `{dir}`"
            )));
        }
        Ok(Some(dir.clone()))
    }

    async fn new_session(&self) -> Result<Session, PluginError> {
        let mut session = self.instantiate().await?;
        session.init(&self.parameters).await?;
        Ok(session)
    }

    async fn instantiate(&self) -> Result<Session, PluginError> {
        let mut wasi = WasiCtxBuilder::new();
        // File operations run on the calling thread instead of a blocking
        // pool: wasmtime-wasi reads at most 64 KiB at a time, and a pool round
        // trip for each piece cost more than the read itself.
        wasi.allow_blocking_current_thread(true);
        if let Some(dir) = &self.directory {
            let host_dir = self.scratch.as_ref().map_or(std::path::Path::new(dir), |s| s.path());
            wasi.preopened_dir(host_dir, dir, FsPerms::ReadWrite)
                .map_err(|err| PluginError::new(&self.name, "init", format!("cannot open {dir}: {err:#}")))?;
        }
        let mut store = new_store(
            &self.engine,
            self.name.clone(),
            wasi,
            self.network.clone(),
            &self.options,
        )
        .await?;
        let deadline = arm(&mut store, self.options.call_timeout);
        let guest = tokio::time::timeout_at(deadline.into(), async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let local_files = match &self.local_files {
                Some(indices) => Some(indices.load(&mut store, &instance)?),
                None => None,
            };
            let maintenance = match &self.maintenance {
                Some(indices) => Some(indices.load(&mut store, &instance)?),
                None => None,
            };
            Ok(Guest {
                driver: self.driver.load(&mut store, &instance)?,
                local_files,
                maintenance,
            })
        })
        .await;
        let mut session = Session {
            plugin: self.name.clone(),
            timeout: self.options.call_timeout,
            store,
            // Placeholder until instantiation succeeds; never called.
            guest: None,
            failure: None,
            resident: self.info.instance_model == InstanceModel::Resident,
        };
        session.guest = Some(session.settle("instantiate", guest)?);
        Ok(session)
    }
}

/// The endpoint `info` asks for through `network`, read from `parameters`,
/// with the connection pool the plugin's instances share.
pub(crate) fn granted_network(
    name: &str,
    info: &DriverInfo,
    parameters: &[(String, String)],
) -> Result<Option<Arc<Network>>, PluginError> {
    let Some(access) = &info.network else {
        return Ok(None);
    };
    let network = Network::new(access, parameters).map_err(|cause| PluginError::new(name, "init", cause))?;
    tracing::info!(plugin = name, endpoint = %network.origin(), "network access granted");
    Ok(Some(Arc::new(network)))
}

/// One plugin instance and its Store.
pub struct Session {
    plugin: Arc<str>,
    timeout: Duration,
    store: Store<HostState>,
    guest: Option<Guest>,
    /// Why this instance can no longer be called, after a trap or deadline.
    failure: Option<String>,
    resident: bool,
}

/// The exports of one instance.
struct Guest {
    driver: driver_export::Guest,
    local_files: Option<local_files::Guest>,
    maintenance: Option<maintenance::Guest>,
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
    async fn describe(&mut self) -> Result<DriverInfo, PluginError> {
        call!(self, "describe", |driver, store| driver.call_describe(store))
    }

    async fn init(&mut self, parameters: &[(String, String)]) -> Result<(), PluginError> {
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
        op: &str,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginError> {
        let cause = match outcome_of(&self.store, self.timeout, outcome) {
            Ok(value) => return Ok(value),
            Err(cause) => cause,
        };
        tracing::warn!(plugin = %self.plugin, call = op, "plugin call failed: {cause}");
        self.failure = Some(cause.clone());
        Err(PluginError::new(&self.plugin, op, cause))
    }
}

/// The instance's exports, unless a failure made it unusable.
fn usable<'a>(
    plugin: &str,
    op: &str,
    failure: &Option<String>,
    guest: &'a Option<Guest>,
) -> Result<&'a Guest, PluginError> {
    match (failure, guest) {
        (None, Some(guest)) => Ok(guest),
        (Some(failure), _) => Err(PluginError::new(
            plugin,
            op,
            format!("instance unusable after an earlier failure: {failure}"),
        )),
        (None, None) => Err(PluginError::new(plugin, op, "instance not started".into())),
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
