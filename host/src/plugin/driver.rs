//! A storage-driver plugin configured with its parameters: what it asked
//! for (a directory, network access) granted, its fixed answers learnt once,
//! and instances made for it as its instance model says (per request, or one
//! resident). What the calls mean is the `storage` module's business.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;
use wasmtime::component::InstancePre;
use wasmtime::Engine;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::call::{arm, new_store};
use super::http::Network;
use super::request;
use super::session::{DriverInfo, FixedAnswers, Guest, InstanceModel, PluginUsage, Session, SessionRef, UsageCounter};
use super::state::HostState;
use super::wit::remote::exports::berth::storage::{bulk_delete, signed_reads};
use super::wit::storage::exports::berth::storage::{driver as driver_export, fixed_answers, local_files, maintenance};
use super::wit::{optional_export, BULK_DELETE, FIXED_ANSWERS, LOCAL_FILES, MAINTENANCE, SIGNED_READS};
use super::{PluginError, PluginHostOptions};

/// A storage-driver plugin configured with its parameters.
pub struct DriverPlugin {
    name: Arc<str>,
    /// Tells this plugin's instances from others' within a request.
    id: u64,
    usage: Arc<UsageCounter>,
    engine: Engine,
    pre: InstancePre<HostState>,
    driver: driver_export::GuestIndices,
    /// Present when the plugin exports `local-files`.
    local_files: Option<local_files::GuestIndices>,
    /// Present when the plugin exports `maintenance`.
    maintenance: Option<maintenance::GuestIndices>,
    /// Present when the plugin exports `fixed-answers`.
    fixed_answers: Option<fixed_answers::GuestIndices>,
    /// Present when the plugin exports `signed-reads`.
    signed_reads: Option<signed_reads::GuestIndices>,
    /// Present when the plugin exports `bulk-delete`.
    bulk_delete: Option<bulk_delete::GuestIndices>,
    options: PluginHostOptions,
    parameters: Vec<(String, String)>,
    info: DriverInfo,
    /// What it answers the same for every path (all `false` when it does not
    /// say).
    answers: FixedAnswers,
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
        let mut session = plugin.new_session().await?;
        if let Some(answers) = session.fixed_answers().await? {
            plugin.answers = answers;
        }
        plugin.check_fixed_answers(&mut session).await?;
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
        let local_files = optional_export(
            &name,
            &engine,
            &pre,
            LOCAL_FILES,
            "its content is read through its reader",
            local_files::GuestIndices::new,
        );
        let maintenance = optional_export(
            &name,
            &engine,
            &pre,
            MAINTENANCE,
            "upload purging does not clean up after it",
            maintenance::GuestIndices::new,
        );
        let fixed_answers = optional_export(
            &name,
            &engine,
            &pre,
            FIXED_ANSWERS,
            "every request asks what it would answer",
            fixed_answers::GuestIndices::new,
        );
        let signed_reads = optional_export(
            &name,
            &engine,
            &pre,
            SIGNED_READS,
            "its content is read through its reader",
            signed_reads::GuestIndices::new,
        );
        let bulk_delete = optional_export(
            &name,
            &engine,
            &pre,
            BULK_DELETE,
            "garbage collection deletes its files one at a time",
            bulk_delete::GuestIndices::new,
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(DriverPlugin {
            name,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            usage: Arc::default(),
            engine,
            pre,
            driver,
            local_files,
            maintenance,
            fixed_answers,
            signed_reads,
            bulk_delete,
            options,
            parameters,
            info: DriverInfo {
                instance_model: InstanceModel::PerCall,
                directory_parameter: None,
                network: None,
            },
            answers: FixedAnswers {
                never_redirects: false,
                files_at_their_paths: false,
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

    /// What the plugin answers the same for every path.
    pub fn fixed_answers(&self) -> &FixedAnswers {
        &self.answers
    }

    /// What the plugin has been asked since it started.
    pub fn usage(&self) -> PluginUsage {
        self.usage.get()
    }

    /// Whether the plugin exports `local-files`.
    pub fn exports_local_files(&self) -> bool {
        self.local_files.is_some()
    }

    /// The endpoint and connection pool of the plugin's reads, when it
    /// signs them for the host to send (`signed-reads`).
    pub fn signed_reads(&self) -> Option<&Network> {
        self.signed_reads.as_ref().and(self.network.as_deref())
    }

    /// Whether the plugin deletes many files in one call (`bulk-delete`).
    pub fn deletes_files_in_bulk(&self) -> bool {
        self.bulk_delete.is_some()
    }

    /// An initialised instance: for `per-call` plugins, the running
    /// request's ([`request::one_instance_per_request`]) or a fresh one;
    /// the resident one otherwise. An instance a failure left unusable is
    /// replaced (for the resident one with a logged error: the data it held
    /// is lost with it).
    pub async fn session(&self) -> Result<SessionRef, PluginError> {
        let Some(slot) = &self.resident else {
            if let Some(session) = request::current(self.id) {
                if session.lock().await.failed().is_none() {
                    return Ok(session);
                }
            }
            let session = Arc::new(Mutex::new(self.new_session().await?));
            request::keep(self.id, &session);
            return Ok(session);
        };
        let mut current = slot.lock().await;
        let failure = current.lock().await.failed().map(str::to_string);
        if let Some(failure) = failure {
            tracing::error!(plugin = %self.name, "the resident instance failed ({failure}); starting a fresh one, the data it held is lost");
            *current = Arc::new(Mutex::new(self.new_session().await?));
        }
        Ok(current.clone())
    }

    /// Refuses a plugin whose fixed answers its own calls contradict, asked
    /// about one path: the host would act on a promise that does not hold.
    async fn check_fixed_answers(&self, session: &mut Session) -> Result<(), PluginError> {
        const PROBE: &str = "/fixed-answers/probe";
        let broken = |what: String| {
            PluginError::new(
                &self.name,
                "fixed-answers.answers",
                format!("broke the storage contract: {what}"),
            )
        };
        if self.answers.never_redirects {
            if let Ok(Some(url)) = session.redirect_url("GET", PROBE).await? {
                return Err(broken(format!(
                    "promised never to redirect, then redirected {PROBE} to {url}"
                )));
            }
        }
        if self.answers.files_at_their_paths {
            let expected = self
                .directory
                .as_deref()
                .map(|dir| format!("{}{PROBE}", dir.trim_end_matches('/')));
            let named = session.file_path(PROBE).await?.ok().flatten();
            if expected.is_none() || named != expected {
                return Err(broken(format!(
                    "promised to keep each path's content at that path in its directory, then named {named:?} for {PROBE}"
                )));
            }
        }
        Ok(())
    }

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
        let instantiated = tokio::time::timeout_at(deadline.into(), async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            Ok(Guest {
                driver: self.driver.load(&mut store, &instance)?,
                local_files: self
                    .local_files
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                maintenance: self
                    .maintenance
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                fixed_answers: self
                    .fixed_answers
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                signed_reads: self
                    .signed_reads
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
                bulk_delete: self
                    .bulk_delete
                    .as_ref()
                    .map(|i| i.load(&mut store, &instance))
                    .transpose()?,
            })
        })
        .await;
        let resident = self.info.instance_model == InstanceModel::Resident;
        Session::new(
            self.name.clone(),
            self.usage.clone(),
            self.options.call_timeout,
            store,
            instantiated,
            resident,
        )
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
