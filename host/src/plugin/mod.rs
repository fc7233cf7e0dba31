//! The wasmtime host for plugins: one engine, a catalog of components
//! (bundled with the binary, or dropped into the plugin directory), compiled
//! once and cached on disk, instantiated with only the capabilities granted.
//! It knows nothing of HTTP or Kubernetes.

mod budget;
mod call;
mod driver;
mod engine;
mod http;
mod inspect;
mod provisioner;
mod request;
mod session;
mod state;
mod validator;
mod wit;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::Engine;

pub use budget::{default_total_mib, MemoryBudget};
pub use driver::DriverPlugin;
pub use engine::{default_cache_dir, sha256_hex, write_atomically};
pub use http::{tls_config, Network, ReadResponse, SendError};
pub use inspect::Inspection;
pub use provisioner::{Condition, Provision};
pub use request::one_instance_per_request;
pub use session::{
    release_later, wit_error_text, Answer, DriverInfo, FixedAnswers, InstanceModel, PluginUsage, PurgePage, Session,
    SessionRef, SignedRequest, WitError, WitFileInfo,
};
use state::HostState;
pub use validator::{Finding, Severity};

/// The components built from `plugins/` and embedded at build time.
mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));
}

/// A plugin failed in a way the contract does not describe: it trapped, ran
/// past its deadline or memory limit, could not be loaded, or answered
/// something that breaks the contract.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{plugin}`: {call}: {cause}")]
pub struct PluginError {
    pub plugin: String,
    pub call: String,
    pub cause: String,
    /// The call did not run: the plugin memory budget was in use (see
    /// [`MemoryBudget`]); worth retrying later.
    pub busy: bool,
}

impl PluginError {
    pub fn new(plugin: &str, call: &str, cause: String) -> Self {
        PluginError {
            plugin: plugin.to_string(),
            call: call.to_string(),
            cause,
            busy: false,
        }
    }

    /// No instance could be had in time.
    pub fn busy(plugin: &str, cause: String) -> Self {
        PluginError {
            busy: true,
            ..PluginError::new(plugin, "instantiate", cause)
        }
    }
}

/// Limits and places of the plugin host.
#[derive(Debug, Clone)]
pub struct PluginHostOptions {
    /// The longest one guest call may take.
    pub call_timeout: Duration,
    /// The most linear memory one instance may have, in bytes.
    pub memory_limit: u64,
    /// How many instances may exist at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Where drop-in `.wasm` plugins are read from.
    pub plugin_dir: Option<PathBuf>,
    /// The memory all instances may reserve together.
    pub budget: Arc<MemoryBudget>,
}

/// The longest one guest call may take by default (`plugins.calltimeout`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The memory one instance may use by default, in MiB
/// (`plugins.memorylimitmib`).
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 256;
/// The most memory an instance can use, in MiB: a plugin is 32-bit
/// WebAssembly and cannot address more.
pub const MAX_MEMORY_LIMIT_MIB: u64 = 4096;

/// How long a new instance waits for room in the memory budget.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);

impl Default for PluginHostOptions {
    fn default() -> Self {
        let memory_limit = DEFAULT_MEMORY_LIMIT_MIB << 20;
        PluginHostOptions {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            memory_limit,
            max_instances: 1000,
            cache_dir: default_cache_dir(),
            plugin_dir: None,
            budget: MemoryBudget::new(budget::default_total_mib(memory_limit), BUDGET_WAIT),
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Bundled,
    File(PathBuf),
    /// Pulled from a registry: the reference, pinned by digest.
    Oci(String),
}

/// A component known to the host by name.
#[derive(Clone)]
pub struct PluginSource {
    pub name: String,
    pub origin: Origin,
    /// Borrowed for bundled plugins: copying them would make every process
    /// pay their size in memory, used or not.
    wasm: Cow<'static, [u8]>,
    /// The component's sha256, hex: its identity in the compiled cache.
    sha256: Cow<'static, str>,
}

impl PluginSource {
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The plugin host of the process.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    options: PluginHostOptions,
    sources: BTreeMap<String, PluginSource>,
    compiled: Mutex<HashMap<String, Component>>,
}

impl PluginHost {
    /// The engine, the bundled plugins, and the `.wasm` files of the plugin
    /// directory, which add to or replace bundled ones by name.
    pub fn new(options: PluginHostOptions) -> anyhow::Result<Self> {
        let engine = engine::new_engine(&options)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wit::add_to_linker(&mut linker)?;
        let mut host = PluginHost {
            engine,
            linker,
            options,
            sources: BTreeMap::new(),
            compiled: Mutex::default(),
        };
        for (name, wasm, sha256) in bundled::PLUGINS {
            host.add(name, Origin::Bundled, Cow::Borrowed(wasm), Cow::Borrowed(sha256));
        }
        if let Some(dir) = host.options.plugin_dir.clone() {
            host.add_dir(&dir)?;
        }
        Ok(host)
    }

    /// Every known plugin, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginSource> {
        self.sources.values()
    }

    /// Adds the component at `path`, named after its file stem; returns the name.
    pub fn add_file(&mut self, path: &Path) -> anyhow::Result<String> {
        let name = plugin_name(path)?;
        let wasm =
            std::fs::read(path).map_err(|err| anyhow::anyhow!("cannot read plugin {}: {err}", path.display()))?;
        let sha256 = sha256_hex(&wasm);
        self.add(
            &name,
            Origin::File(path.to_path_buf()),
            Cow::Owned(wasm),
            Cow::Owned(sha256),
        );
        Ok(name)
    }

    /// Adds a component pulled from a registry under `name`; it wins over a
    /// bundled or dropped-in plugin of that name, also across rescans.
    pub fn add_pulled(&mut self, name: &str, reference: &str, wasm: Vec<u8>) {
        let sha256 = sha256_hex(&wasm);
        self.add(
            name,
            Origin::Oci(reference.to_string()),
            Cow::Owned(wasm),
            Cow::Owned(sha256),
        );
    }

    fn add_dir(&mut self, dir: &Path) -> anyhow::Result<()> {
        for path in wasm_files(dir)? {
            let name = self.add_file(&path)?;
            tracing::info!(plugin = %name, path = %path.display(), "loaded drop-in plugin");
        }
        Ok(())
    }

    /// Reads the plugin directory again: a file that is new or whose
    /// content changed replaces what was known by its name, and a file gone
    /// hands its name back to the bundled plugin, if there is one. Plugins
    /// pulled from a registry stay. A file that cannot be read or named is
    /// skipped with a warning (what was known by its name stays). Returns
    /// the names whose component changed, sorted; only a directory that
    /// cannot be listed changes nothing and is an error.
    pub fn rescan_dir(&mut self) -> anyhow::Result<Vec<String>> {
        let Some(dir) = self.options.plugin_dir.clone() else {
            return Ok(Vec::new());
        };
        let mut present = Vec::new();
        let mut fresh = Vec::new();
        for path in wasm_files(&dir)? {
            let read = plugin_name(&path).and_then(|name| {
                let wasm =
                    std::fs::read(&path).map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
                Ok((name, wasm))
            });
            let (name, wasm) = match read {
                Ok(found) => found,
                Err(err) => {
                    tracing::warn!("skipping a plugin file: {err:#}");
                    if let Ok(name) = plugin_name(&path) {
                        present.push(name);
                    }
                    continue;
                }
            };
            present.push(name.clone());
            let known = self.sources.get(&name);
            if known.is_some_and(|s| matches!(s.origin, Origin::Oci(_))) {
                continue;
            }
            let sha256 = sha256_hex(&wasm);
            if known.is_some_and(|s| s.sha256 == sha256 && s.origin == Origin::File(path.clone())) {
                continue;
            }
            fresh.push((name, path, wasm, sha256));
        }
        let gone: Vec<String> = (self.sources.values())
            .filter(|s| matches!(&s.origin, Origin::File(path) if path.parent() == Some(dir.as_path())))
            .filter(|s| !present.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        let mut changed = Vec::new();
        for (name, path, wasm, sha256) in fresh {
            self.add(&name, Origin::File(path), Cow::Owned(wasm), Cow::Owned(sha256));
            changed.push(name);
        }
        for name in gone {
            self.sources.remove(&name);
            self.compiled.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
            if let Some((_, wasm, sha256)) = bundled::PLUGINS.iter().find(|(bundled, _, _)| *bundled == name) {
                self.add(&name, Origin::Bundled, Cow::Borrowed(wasm), Cow::Borrowed(sha256));
            }
            changed.push(name);
        }
        changed.sort();
        Ok(changed)
    }

    fn add(&mut self, name: &str, origin: Origin, wasm: Cow<'static, [u8]>, sha256: Cow<'static, str>) {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        let source = PluginSource {
            name: name.to_string(),
            origin,
            wasm,
            sha256,
        };
        self.sources.insert(name.to_string(), source);
    }

    /// Runs the storage driver `name`'s own check of `parameters` (its
    /// `init`) without reaching its backend: what starting it would refuse.
    pub async fn check_storage_parameters(
        &self,
        name: &str,
        parameters: Vec<(String, String)>,
    ) -> Result<(), PluginError> {
        let pre = self.instance_pre(name)?;
        DriverPlugin::check_parameters(name.into(), self.engine.clone(), pre, self.options.clone(), parameters).await
    }

    /// Starts the storage driver `name` with its parameters.
    pub async fn storage_driver(
        &self,
        name: &str,
        parameters: Vec<(String, String)>,
    ) -> Result<DriverPlugin, PluginError> {
        let pre = self.instance_pre(name)?;
        DriverPlugin::start(name.into(), self.engine.clone(), pre, self.options.clone(), parameters).await
    }

    /// How the storage driver `name` wants to be run, before it is
    /// configured: tools use it to supply a directory it needs.
    pub async fn describe_storage_driver(&self, name: &str) -> Result<DriverInfo, PluginError> {
        let pre = self.instance_pre(name)?;
        DriverPlugin::describe(name.into(), self.engine.clone(), pre, self.options.clone()).await
    }

    /// Runs `action` of the provisioning storage driver `name` with
    /// `parameters` in a fresh instance, granted the network its parameters
    /// name.
    pub async fn provision(
        &self,
        name: &str,
        action: Provision,
        parameters: &[(String, String)],
    ) -> Answer<Vec<Condition>> {
        let info = self.describe_storage_driver(name).await?;
        let network = driver::granted_network(name, &info, parameters)?;
        let pre = self.instance_pre(name)?;
        provisioner::run(
            name.into(),
            &self.engine,
            pre,
            &self.options,
            network,
            action,
            parameters,
        )
        .await
    }

    /// The names of the plugins whose component exports `berth:storage/driver`
    /// (bundled and dropped in), sorted. A component that cannot be loaded
    /// is left out, with a warning.
    pub fn storage_drivers(&self) -> Vec<String> {
        self.exporting(wit::DRIVER)
    }

    /// The names of the plugins whose component exports
    /// `berth:validate/validator` (bundled and dropped in), sorted.
    pub fn validators(&self) -> Vec<String> {
        self.exporting(wit::VALIDATOR)
    }

    /// Runs the validator `name` on `config_json` in a fresh instance that
    /// has no filesystem, network or environment, under the call deadline
    /// and memory limit.
    pub async fn run_validator(&self, name: &str, config_json: &str) -> Result<Vec<Finding>, PluginError> {
        let pre = self.instance_pre(name)?;
        validator::run(name.into(), &self.engine, pre, &self.options, config_json).await
    }

    fn exporting(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        for name in self.sources.keys() {
            match self.component(name) {
                Ok(component) if wit::exports_interface(&self.engine, &component, prefix) => names.push(name.clone()),
                Ok(_) => {}
                Err(err) => tracing::warn!(plugin = %name, "skipping a plugin that cannot be loaded: {err}"),
            }
        }
        names
    }

    /// The directory drop-in plugins are read from.
    pub fn plugin_dir(&self) -> Option<&Path> {
        self.options.plugin_dir.as_deref()
    }

    /// Where compiled components, and plugins pulled by digest, are cached.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.options.cache_dir.as_deref()
    }

    /// What the component `name` is: its world, exports, imports, size.
    pub fn inspect(&self, name: &str) -> Result<Inspection, PluginError> {
        let source = self.sources.get(name).ok_or_else(|| self.unknown(name))?;
        Ok(inspect::inspect(&self.engine, &self.component(name)?, source))
    }

    fn instance_pre(&self, name: &str) -> Result<InstancePre<HostState>, PluginError> {
        let component = self.component(name)?;
        self.linker
            .instantiate_pre(&component)
            .map_err(|err| PluginError::new(name, "load", format!("needs what the host does not grant: {err:#}")))
    }

    /// Compiles the plugin `name` now (or loads its compiled form), so that
    /// its first use does not.
    pub fn compile(&self, name: &str) -> Result<(), PluginError> {
        self.component(name).map(drop)
    }

    fn component(&self, name: &str) -> Result<Component, PluginError> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(component) = compiled.get(name) {
            return Ok(component.clone());
        }
        let source = self.sources.get(name).ok_or_else(|| self.unknown(name))?;
        let component = engine::compile(&self.engine, source, self.options.cache_dir.as_deref()).map_err(|err| {
            // The parser's message spreads byte lists over lines: one line
            // reads in a log and in a finding.
            let cause = format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            PluginError::new(name, "load", format!("is not a valid component: {cause}"))
        })?;
        compiled.insert(name.to_string(), component.clone());
        Ok(component)
    }

    fn unknown(&self, name: &str) -> PluginError {
        let known: Vec<&str> = self.sources.keys().map(String::as_str).collect();
        PluginError::new(name, "load", format!("no such plugin (known: {})", known.join(", ")))
    }
}

/// The `.wasm` files of `dir`, sorted.
fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|err| anyhow::anyhow!("cannot read the plugin directory {}: {err}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// A plugin's name is its file's stem: `acme-s3.wasm` is `acme-s3`.
fn plugin_name(path: &Path) -> anyhow::Result<String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    check_plugin_name(stem).map_err(|why| anyhow::anyhow!("plugin file {}: {why}", path.display()))?;
    Ok(stem.to_string())
}

/// A plugin name is letters, digits, `-`, `_` and `.`, as file stems are.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(format!(
            "`{name}` is not a plugin name: use letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: &PluginHost, name: &str) -> Option<Origin> {
        host.plugins().find(|p| p.name == name).map(|p| p.origin.clone())
    }

    #[test]
    fn a_rescan_reports_what_changed_in_the_plugin_directory() {
        let dir = tempfile::tempdir().unwrap();
        let options = PluginHostOptions {
            plugin_dir: Some(dir.path().to_path_buf()),
            cache_dir: None,
            ..PluginHostOptions::default()
        };
        let mut host = PluginHost::new(options).unwrap();
        assert_eq!(host.rescan_dir().unwrap(), Vec::<String>::new());

        let built = Path::new(env!("BERTH_PLUGIN_BUILD_DIR"));
        let file = dir.path().join("filesystem.wasm");
        std::fs::copy(built.join("inmemory.wasm"), &file).unwrap();
        std::fs::write(dir.path().join("extra.wasm"), b"not a component").unwrap();
        assert_eq!(host.rescan_dir().unwrap(), ["extra", "filesystem"]);
        assert_eq!(origin(&host, "filesystem"), Some(Origin::File(file.clone())));
        assert_eq!(host.rescan_dir().unwrap(), Vec::<String>::new(), "nothing changed");

        // The same bytes written again are no change; other bytes are.
        std::fs::copy(built.join("inmemory.wasm"), &file).unwrap();
        assert_eq!(host.rescan_dir().unwrap(), Vec::<String>::new());
        std::fs::copy(built.join("filesystem.wasm"), &file).unwrap();
        assert_eq!(host.rescan_dir().unwrap(), ["filesystem"]);

        // A file gone hands its name back to the bundled plugin, or drops it.
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_file(dir.path().join("extra.wasm")).unwrap();
        assert_eq!(host.rescan_dir().unwrap(), ["extra", "filesystem"]);
        assert_eq!(origin(&host, "filesystem"), Some(Origin::Bundled));
        assert_eq!(origin(&host, "extra"), None);

        // A file whose name is no plugin name is skipped, not fatal.
        std::fs::write(dir.path().join("a b.wasm"), b"x").unwrap();
        std::fs::copy(built.join("inmemory.wasm"), &file).unwrap();
        assert_eq!(host.rescan_dir().unwrap(), ["filesystem"]);
        std::fs::remove_file(dir.path().join("a b.wasm")).unwrap();

        // A pulled plugin is not replaced by a file of its name.
        host.add_pulled(
            "pulled",
            "reg.io/p@sha256:0",
            std::fs::read(built.join("inmemory.wasm")).unwrap(),
        );
        std::fs::write(dir.path().join("pulled.wasm"), b"not a component").unwrap();
        assert_eq!(host.rescan_dir().unwrap(), Vec::<String>::new());
        assert!(matches!(origin(&host, "pulled"), Some(Origin::Oci(_))));
    }
}
