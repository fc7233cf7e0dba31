//! The `berth` command line.

mod config;
mod gc;
mod health;
mod listen;
mod operator;
mod plugin;
mod plugin_new;
mod progress;
mod reload;
mod serve;
mod storage;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, OciPlugin};
use crate::oci::{Client, Credentials, Reference};
use crate::plugin::{PluginHost, PluginHostOptions};
use crate::storage::StorageDriver;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "OCI image registry with WebAssembly storage plugins"
)]
struct Cli {
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    /// Default: the configuration's log.level for `serve`, warn otherwise.
    #[arg(long, global = true, env = "BERTH_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (OCI Distribution API) on the configured storage.
    Serve(serve::ServeArgs),
    /// Test, inspect and list storage-driver plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Check a registry configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Delete the blobs no manifest references, and with --delete-untagged
    /// the manifests no tag references (distribution's garbage-collect).
    /// Run it while nothing pushes: on a stopped or read-only registry.
    Gc(gc::GcArgs),
    /// Create, check or remove the configured storage's backing store.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Run the image registry operator: reconcile the `Config` resource
    /// into a registry Deployment, its storage and its objects.
    Operator(operator::OperatorArgs),
}

/// glibc's malloc, left to itself, keeps what blob transfers free: after the
/// first multi-MiB buffer is freed it raises its mmap threshold above that
/// size, so later ones come from per-thread arenas that rarely shrink, and a
/// registry idling after a push held 20 MiB more than it needed
/// (`bench/registry.sh`). Fixed thresholds keep buffers of 2 MiB and more
/// (upload pieces) mapped on their own and given back when freed, while the
/// 1 MiB pieces of downloads are reused from the heap rather than trimmed
/// and faulted in again. One arena, because freed memory then serves every
/// thread; the small allocations of the request path go through glibc's
/// per-thread caches without taking its lock.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// How often a serving process gives freed heap memory back to the system.
/// The trim threshold lets the heap keep up to 8 MiB of freed download
/// pieces for reuse while transfers run; this returns them once transfers
/// stop (5.6 MiB of a 29 MiB RSS after pushes, pulls and manifest GETs like
/// `bench/registry.sh`'s).
const HEAP_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Trims the heap every [`HEAP_TRIM_INTERVAL`] on a thread of its own:
/// `malloc_trim` holds the allocator's lock while it walks the free memory,
/// which must not stall a runtime worker.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_heap_trimmer() {
    let spawned = std::thread::Builder::new()
        .name("berth-heap-trim".into())
        .spawn(|| loop {
            std::thread::sleep(HEAP_TRIM_INTERVAL);
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe {
                libc::malloc_trim(0);
            }
        });
    if let Err(err) = spawned {
        tracing::warn!("freed heap memory will not be given back: cannot start a thread: {err}");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn spawn_heap_trimmer() {}

/// Runs the command line; the exit status says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tune_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let log = cli.log.as_deref();
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args, log).await,
            Command::Plugin(command) => {
                init_logging(log.unwrap_or("warn"), false);
                plugin::run(command).await
            }
            Command::Config(command) => {
                init_logging(log.unwrap_or("warn"), false);
                config::run(command).await
            }
            Command::Gc(args) => {
                init_logging(log.unwrap_or("warn"), false);
                gc::run(args).await
            }
            Command::Storage(command) => {
                init_logging(log.unwrap_or("warn"), false);
                storage::run(command).await
            }
            Command::Operator(args) => {
                init_logging(log.unwrap_or("info"), false);
                operator::run(args).await
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin host a configuration asks for: its limits, and its plugin
/// directory unless `plugin_dir` overrides it.
fn plugin_host(config: &Config, plugin_dir: Option<PathBuf>) -> anyhow::Result<PluginHost> {
    let memory_limit = config.plugins.memorylimitmib << 20;
    let total = config
        .plugins
        .totalmemorymib
        .unwrap_or_else(|| crate::plugin::default_total_mib(memory_limit));
    PluginHost::new(PluginHostOptions {
        call_timeout: config.plugins.calltimeout,
        memory_limit,
        plugin_dir: plugin_dir.or_else(|| config.plugins.directory.clone()),
        budget: crate::plugin::MemoryBudget::new(total, crate::plugin::BUDGET_WAIT),
        ..PluginHostOptions::default()
    })
}

/// Adds to `host` the plugins `plugins.oci` names: from the cache beside
/// the compiled components, or pulled (with the credentials of the docker
/// or podman auth file) and verified against their digests. The error names
/// the entry.
async fn add_pulled_plugins(host: &mut PluginHost, entries: &[OciPlugin]) -> Result<(), String> {
    for (i, entry) in entries.iter().enumerate() {
        let failed = |why: String| format!("plugins.oci[{i}] ({}): {why}", entry.name);
        let reference = Reference::parse(&entry.reference).map_err(failed)?;
        let wasm = match crate::oci::cached(&reference, host.cache_dir()) {
            Some(wasm) => wasm,
            None => {
                let credentials = Credentials::from_auth_file(&reference.registry, None).map_err(failed)?;
                let client = Client::new(&reference.registry, entry.plainhttp, credentials).map_err(failed)?;
                crate::oci::pull_pinned(&client, &reference, host.cache_dir())
                    .await
                    .map_err(failed)?
            }
        };
        host.add_pulled(&entry.name, &entry.reference, wasm);
        tracing::info!(plugin = %entry.name, reference = %entry.reference, "loaded plugin pulled by digest");
    }
    Ok(())
}

/// A configuration and the storage it names, opened as `berth serve` opens
/// them: loaded (its warnings logged), checked by the validators, its
/// driver started. A configuration that cannot run is the exit status to
/// end with, its message printed.
async fn open_storage(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Result<(Config, Arc<dyn StorageDriver>), ExitCode>> {
    let loaded = match crate::config::load(path, std::env::vars()) {
        Ok(loaded) => loaded,
        Err(err) => return Ok(Err(serve::config_error(&err.to_string()))),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    let mut host = plugin_host(&config, None)?;
    if let Err(message) = add_pulled_plugins(&mut host, &config.plugins.oci).await {
        return Ok(Err(serve::config_error(&message)));
    }
    if let Some(code) = serve::check(&host, &config).await? {
        return Ok(Err(code));
    }
    let (driver_name, parameters) = config.storage_driver();
    match crate::storage::open_driver(&host, driver_name, parameters).await {
        Ok(driver) => Ok(Ok((config, driver))),
        Err(err) => Ok(Err(serve::config_error(&format!("storage.{driver_name}: {err}")))),
    }
}

/// Logs to stderr, as text or one JSON object per line.
fn init_logging(filter: &str, json: bool) {
    let parsed = tracing_subscriber::EnvFilter::try_new(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(parsed.as_ref().map_or_else(|_| "info".into(), Clone::clone))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in files or log collectors,
        // and not where NO_COLOR asks for none.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        );
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Err(err) = parsed {
        tracing::warn!("the log filter `{filter}` is not valid ({err}); logging at info");
    }
}
