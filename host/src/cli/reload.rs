//! Plugins replaced while `berth serve` runs: the plugin directory is
//! watched, and SIGHUP also re-reads `plugins.oci` from the configuration
//! file. A replacement that cannot be loaded, targets the wrong world or
//! fails `init` is logged and the plugin it would replace keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{self, Config};
use crate::plugin::PluginHost;
use crate::storage::{open_driver, SwappableDriver};
use crate::validate::{self, Severity};

pub struct Reloader {
    pub host: PluginHost,
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub driver: Arc<SwappableDriver>,
}

/// What the directory's `.wasm` files look like from outside: a change of
/// any is a reason to read them again.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Fingerprint = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "wasm"))
        .filter_map(|entry| {
            // Followed: Kubernetes volumes swap their files by symbolic links.
            let meta = std::fs::metadata(entry.path()).ok()?;
            Some((entry.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    found.sort();
    found
}

impl Reloader {
    /// Runs until the process ends: a watch of the plugin directory every
    /// `plugins.watchinterval` (when there is a directory and the interval
    /// is not 0), and SIGHUP.
    pub async fn run(mut self) {
        let dir = self.host.plugin_dir().map(Path::to_path_buf);
        let interval = self.config.plugins.watchinterval;
        let watch = dir.clone().filter(|_| !interval.is_zero());
        let mut seen = watch.as_deref().map(fingerprint).unwrap_or_default();
        let mut ticker = tokio::time::interval(if interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            interval
        });
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!("cannot listen for SIGHUP: {err}; plugins reload only by the directory watch");
                None
            }
        };
        if let Some(dir) = &watch {
            tracing::info!(directory = %dir.display(), interval = ?interval, "watching the plugin directory");
        }
        // What changed while the registry was starting.
        self.reload(false).await;
        loop {
            let hung_up = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticker.tick() => {
                    let Some(dir) = &watch else { continue };
                    let now = fingerprint(dir);
                    if now != seen {
                        seen = now;
                        self.reload(false).await;
                    }
                }
                _ = hung_up => {
                    tracing::info!("SIGHUP: reloading plugins");
                    if let Some(dir) = &watch {
                        seen = fingerprint(dir);
                    }
                    self.reload(true).await;
                }
            }
        }
    }

    /// Reads the plugin directory again (and with `pull`, the
    /// configuration's `plugins.oci`), then puts what changed to use.
    async fn reload(&mut self, pull: bool) {
        let mut changed = match off_the_runtime(|| self.host.rescan_dir()) {
            Ok(changed) => changed,
            Err(err) => {
                tracing::error!("cannot read the plugin directory: {err:#}; the plugins loaded keep serving");
                Vec::new()
            }
        };
        if pull {
            changed.extend(self.pull_changed().await);
        }
        if changed.is_empty() {
            return;
        }
        changed.sort();
        changed.dedup();
        tracing::info!(plugins = ?changed, "plugins changed");
        // Compiling a component takes from a fraction of a second to tens of
        // seconds (a language runtime inside): not on a thread that serves.
        off_the_runtime(|| {
            for name in &changed {
                // A component that does not compile says so below, where it is used.
                let _ = self.host.compile(name);
            }
        });
        let validators = self.host.validators();
        if changed.iter().any(|name| validators.contains(name)) {
            self.revalidate().await;
        }
        let (name, parameters) = self.config.storage_driver();
        if !changed.iter().any(|changed| changed == name) {
            return;
        }
        match open_driver(&self.host, name, parameters).await {
            Ok(driver) => {
                self.driver.replace(driver);
                tracing::info!(
                    driver = name,
                    "storage driver replaced: new requests use the new plugin, requests in flight finish on the old one"
                );
            }
            Err(err) => tracing::error!(
                driver = name,
                "the replacement storage driver cannot serve: {err}; the previous one keeps serving"
            ),
        }
    }

    /// Pulls the `plugins.oci` entries of the configuration file that are
    /// new or point elsewhere; returns their names.
    async fn pull_changed(&mut self) -> Vec<String> {
        let loaded = match config::load(self.config_path.as_deref(), std::env::vars()) {
            Ok(loaded) => loaded.config,
            Err(err) => {
                tracing::error!("SIGHUP: the configuration no longer loads: {err}; nothing is pulled");
                return Vec::new();
            }
        };
        let entries = loaded.plugins.oci.clone();
        let fresh: Vec<_> = entries
            .iter()
            .filter(|entry| !self.config.plugins.oci.contains(entry))
            .cloned()
            .collect();
        if self
            .config
            .plugins
            .oci
            .iter()
            .any(|old| !entries.iter().any(|e| e.name == old.name))
        {
            tracing::warn!("SIGHUP: a plugins.oci entry was removed; its plugin keeps serving until a restart");
        }
        let mut unchanged = self.config.clone();
        unchanged.plugins.oci = entries;
        if unchanged != loaded {
            tracing::warn!("SIGHUP reloads plugins.oci only; restart for the other changes to the configuration");
        }
        if let Err(message) = super::add_pulled_plugins(&mut self.host, &fresh).await {
            tracing::error!("SIGHUP: {message}; the plugins loaded keep serving");
            return Vec::new();
        }
        self.config.plugins.oci = unchanged.plugins.oci;
        fresh.into_iter().map(|entry| entry.name).collect()
    }

    /// Runs the validators on the running configuration again: a changed
    /// validator may judge it differently. The registry keeps serving
    /// either way; an operator reading the log decides.
    async fn revalidate(&self) {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let drivers = self.host.storage_drivers();
        match validate::validate_registry_config(&self.host, &self.config, &drivers, &env).await {
            Ok(findings) => {
                for finding in &findings {
                    let text = validate::format_text(finding);
                    match finding.severity {
                        Severity::Error => tracing::error!("the running configuration now fails: {text}"),
                        Severity::Warning => tracing::warn!("{text}"),
                    }
                }
            }
            Err(err) => tracing::error!("cannot run the validators: {err:#}"),
        }
    }
}

/// Runs `work`, which blocks, without holding up the requests the
/// runtime's other tasks serve.
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}
