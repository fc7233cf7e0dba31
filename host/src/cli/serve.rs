//! `berth serve`: the registry on the configured storage plugin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::Router;
use clap::Args;

use super::listen;

use crate::auth::Auth;
use crate::config::{self, Config, ListenAddr, LogFormatter, RequestLimitConfig};
use crate::metrics::metrics;
use crate::plugin::PluginHost;
use crate::registry::{Limit, Registry, RegistryOptions, RequestLimits};
use crate::storage::{open_driver, StorageDriver, SwappableDriver};

use super::reload::Reloader;
use crate::store::{online_gc_grace, GcOptions, Purged, Store, GC_WATCH_EVERY};
use crate::validate::{self, Severity};

/// Exit status for a configuration that cannot run: distinct from a failure
/// at run time, so a supervisor can tell "fix the config" from "retry".
const CONFIG_ERROR: u8 = 2;

#[derive(Args)]
pub struct ServeArgs {
    /// The registry configuration (distribution's config.yml). Without one:
    /// the filesystem driver under ~/.local/share/berth/registry, on
    /// 127.0.0.1:5000. REGISTRY_* variables override it either way.
    #[arg(long, short, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The same, as distribution's `registry serve config.yml` takes it.
    #[arg(value_name = "CONFIG", conflicts_with = "config")]
    config_path: Option<PathBuf>,
}

/// Loads the configuration, starts the storage plugin, serves until SIGINT
/// or SIGTERM, then drains requests in flight.
pub async fn run(args: ServeArgs, log_override: Option<&str>) -> anyhow::Result<ExitCode> {
    let path = args.config.or(args.config_path);
    let loaded = match config::load(path.as_deref(), std::env::vars()) {
        Ok(loaded) => loaded,
        Err(err) => return Ok(config_error(&err.to_string())),
    };
    let config = loaded.config;
    super::init_logging(
        log_override.unwrap_or(config.log.level.as_str()),
        config.log.formatter == LogFormatter::Json,
    );
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    super::spawn_heap_trimmer();
    let mut host = super::plugin_host(&config, None)?;
    if let Err(message) = super::add_pulled_plugins(&mut host, &config.plugins.oci).await {
        return Ok(config_error(&message));
    }
    if let Some(code) = check(&host, &config).await? {
        return Ok(code);
    }
    let listen = match config.http.listen_addr() {
        Ok(listen) => listen,
        Err(err) => return Ok(config_error(&err.to_string())),
    };
    let tls = config.http.tls.certificate.is_some() || config.http.tls.key.is_some();
    let tls = match tls.then(|| super::tls::server_config(&config.http.tls)).transpose() {
        Ok(tls) => tls,
        Err(message) => return Ok(config_error(&message)),
    };

    let (driver_name, parameters) = config.storage_driver();
    let driver = match open_driver(&host, driver_name, parameters).await {
        Ok(driver) => Arc::new(SwappableDriver::new(driver)),
        Err(err) => return Ok(config_error(&format!("storage.{driver_name}: {err}"))),
    };
    let mut options = registry_options(&config);
    match Auth::from_config(&config.auth) {
        Ok(auth) => options.auth = auth.map(Arc::new),
        Err((field, why)) => return Ok(config_error(&format!("{field}: {why}"))),
    }
    if options.auth.is_some() && tls.is_none() {
        tracing::warn!("auth on plain HTTP: passwords and tokens cross the network readable; set http.tls");
    }
    let registry = Registry::new(driver.clone(), options);
    tokio::spawn(
        Reloader {
            host,
            config: config.clone(),
            config_path: path.clone(),
            driver: driver.clone(),
        }
        .run(),
    );
    if let Some(age) = registry.options().upload_purge_age {
        spawn_upload_purging(registry.clone(), age, config.storage.maintenance.uploadpurging.interval);
    }
    // Every serving process watches for collections, whether or not it
    // runs them: another process may.
    if let Err(err) = registry.store().watch_collections().await {
        tracing::warn!("cannot read the garbage collection lease: {err}; links are refused until it can be read");
    }
    spawn_collection_watch(registry.store().clone());
    if config.storage.gc.enabled {
        spawn_online_gc(registry.store().clone(), &config);
    }

    let open_files = listen::raise_open_files_limit();
    let limits = match limits(&config, open_files) {
        Ok(limits) => limits,
        Err(message) => return Ok(config_error(&message)),
    };
    let draining = Arc::new(AtomicBool::new(false));
    start_metrics_server(&config, &limits, draining.clone()).await?;
    let app = app(&registry, driver, &config, draining.clone())?;
    let listener = bind(&listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        addr = %listener.local_addr()?,
        scheme,
        storage = driver_name,
        max_connections = limits.max_connections,
        "berth registry listening"
    );
    let tls = tls.map(|tls| tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
    listen::serve(
        listener,
        app,
        tls,
        limits,
        draining,
        announce_shutdown(shutdown_signal()),
    )
    .await;
    // A run this process holds stops, and another process may start one.
    if let Err(err) = registry.store().release_online_run().await {
        tracing::warn!("gc: cannot release the lease: {err}; it expires in a minute");
    }
    Ok(ExitCode::SUCCESS)
}

/// How long requests in flight may finish after SIGTERM when
/// `http.draintimeout` is not set: within Kubernetes' default grace period
/// of 30 s, so the process exits before it is killed.
const DEFAULT_DRAIN: Duration = Duration::from_secs(25);
/// `http.maxconnections` when not set, if the open-files limit allows it.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// The serving bounds of `config`, given the open-files limit: a
/// `maxconnections` the limit cannot hold is refused, the default is cut to
/// what it holds.
fn limits(config: &Config, open_files: u64) -> Result<listen::Limits, String> {
    let http = &config.http;
    let room = open_files.saturating_sub(listen::RESERVED_FDS).max(1);
    let max_connections = match http.maxconnections {
        Some(n) if u64::from(n) > room => {
            return Err(format!(
                "http.maxconnections: {n} connections need {} open files, and this process may open {open_files} \
                 (ulimit -n); raise the limit or lower http.maxconnections",
                u64::from(n) + listen::RESERVED_FDS
            ))
        }
        Some(n) => u64::from(n),
        None => DEFAULT_MAX_CONNECTIONS.min(room),
    };
    Ok(listen::Limits {
        header_timeout: http.readheadertimeout,
        idle_timeout: http.idletimeout,
        max_connections: max_connections as usize,
        drain: http.draintimeout.unwrap_or(DEFAULT_DRAIN),
    })
}

/// Runs the configuration validators: warnings are logged; any error is
/// printed, one line each, and stops the registry with [`CONFIG_ERROR`]
/// before the storage plugin starts or a port is bound.
pub(super) async fn check(host: &PluginHost, config: &Config) -> anyhow::Result<Option<ExitCode>> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let drivers = host.storage_drivers();
    let findings = validate::validate_registry_config(host, config, &drivers, &env).await?;
    for warning in findings.iter().filter(|f| f.severity == Severity::Warning) {
        tracing::warn!(field = %warning.field_path, reason = %warning.reason, "{}", warning.message);
    }
    if !validate::has_errors(&findings) {
        return Ok(None);
    }
    for error in findings.iter().filter(|f| f.severity == Severity::Error) {
        eprintln!("berth: configuration error: {}", validate::format_text(error));
    }
    Ok(Some(ExitCode::from(CONFIG_ERROR)))
}

pub(super) fn config_error(message: &str) -> ExitCode {
    eprintln!("berth: configuration error: {message}");
    ExitCode::from(CONFIG_ERROR)
}

fn registry_options(config: &Config) -> RegistryOptions {
    let purging = &config.storage.maintenance.uploadpurging;
    if purging.enabled && purging.dryrun {
        tracing::warn!("storage.maintenance.uploadpurging.dryrun: dry runs are not supported; stale uploads are kept");
    }
    RegistryOptions {
        delete_enabled: config.storage.delete.enabled,
        read_only: config.storage.maintenance.readonly.enabled,
        redirect: !config.storage.redirect.disable,
        upload_purge_age: (purging.enabled && !purging.dryrun).then_some(purging.age),
        request_timeout: Some(config.http.requesttimeout),
        content_cache_entries: config.storage.cache.entries(),
        auth: None,
        limits: request_limits(config),
        access_log: !config.log.accesslog.disabled,
        index_children: config.validation.manifests.indexes.clone(),
    }
}

/// `requests.read` and `requests.write`; a wait of 0 is the request
/// timeout's.
fn request_limits(config: &Config) -> RequestLimits {
    let limit = |limit: &RequestLimitConfig| {
        (limit.maxrunning > 0).then(|| Limit {
            max_running: limit.maxrunning as usize,
            max_in_queue: limit.maxinqueue as usize,
            max_wait: match limit.maxwaitinqueue {
                wait if wait.is_zero() => config.http.requesttimeout,
                wait => wait,
            },
        })
    };
    RequestLimits::new(limit(&config.requests.read), limit(&config.requests.write))
}

/// The registry API, `/healthz` and the configured response headers.
fn app(
    registry: &Registry,
    driver: Arc<dyn StorageDriver>,
    config: &Config,
    draining: Arc<AtomicBool>,
) -> anyhow::Result<Router> {
    let mut headers = Vec::new();
    for (name, values) in &config.http.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|err| anyhow::anyhow!("http.headers: `{name}` is not a header name: {err}"))?;
        for value in values {
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|err| anyhow::anyhow!("http.headers.{name}: `{value}` is not a header value: {err}"))?;
            headers.push((name.clone(), value));
        }
    }
    let headers = Arc::new(headers);
    let health = super::health::router(driver, draining);
    Ok(health
        .merge(registry.router())
        .layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let headers = headers.clone();
            async move {
                let mut response = next.run(request).await;
                for (name, value) in headers.iter() {
                    response.headers_mut().append(name, value.clone());
                }
                response
            }
        })))
}

/// The debug server on `http.debug.addr`: the Prometheus metrics, when
/// `http.debug.prometheus.enabled`. Never behind auth or request limits.
async fn start_metrics_server(
    config: &Config,
    limits: &listen::Limits,
    draining: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let Some(addr) = config.http.debug_listen_addr()? else {
        return Ok(());
    };
    let prometheus = &config.http.debug.prometheus;
    if !prometheus.enabled {
        tracing::warn!("http.debug.addr: Berth's debug server serves only the metrics, and http.debug.prometheus.enabled is off; not listening");
        return Ok(());
    }
    let listener = bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, path = %prometheus.path, "metrics listening");
    let metrics = || async {
        let exposition = crate::metrics::metrics().encode();
        ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], exposition)
    };
    let router = Router::new().route(&prometheus.path, axum::routing::get(metrics));
    tokio::spawn(listen::serve(
        listener,
        router,
        None,
        limits.clone(),
        draining,
        shutdown_signal(),
    ));
    Ok(())
}

fn spawn_upload_purging(registry: Registry, age: Duration, interval: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            match registry.purge_uploads(age).await {
                Ok(purged) if purged == Purged::default() => {}
                Ok(Purged {
                    uploads,
                    temporary_files,
                }) => tracing::info!(uploads, temporary_files, "purged stale uploads and temporary files"),
                Err(err) => tracing::warn!("purging stale uploads failed: {err}"),
            }
        }
    });
}

/// Reads the garbage collection lease every [`GC_WATCH_EVERY`].
fn spawn_collection_watch(store: Store) {
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            tokio::time::sleep(GC_WATCH_EVERY).await;
            match store.watch_collections().await {
                Ok(()) => warned = false,
                Err(err) if !warned => {
                    tracing::warn!("cannot read the garbage collection lease: {err}");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    });
}

/// `storage.gc`: a collection every `interval` while serving, when no
/// other process holds the lease; its result logged and counted.
fn spawn_online_gc(store: Store, config: &Config) {
    let gc = config.storage.gc.clone();
    let retention = config.storage.retention.clone();
    let grace = online_gc_grace(config.http.requesttimeout);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(gc.interval).await;
            let run = match store.begin_online_run(gc.delay, grace).await {
                Ok(Some(run)) => run,
                Ok(None) => {
                    tracing::info!("gc: another process holds the lease; skipped");
                    metrics().gc_run("skipped");
                    continue;
                }
                Err(err) => {
                    tracing::warn!("gc: cannot take the lease: {err}");
                    metrics().gc_run("failed");
                    continue;
                }
            };
            let options = GcOptions {
                dry_run: false,
                delete_untagged: gc.deleteuntagged,
                retention: retention.clone(),
                online: Some(run.clone()),
            };
            let started = std::time::Instant::now();
            let outcome = store.collect_garbage(options, &mut |_| {}, &mut |_| {}).await;
            if let Err(err) = store.end_online_run(&run).await {
                tracing::warn!("gc: cannot clear the run's lease and folder: {err}");
            }
            match outcome {
                Ok(report) => {
                    for (kind, count) in [
                        ("tag", report.tags_deleted),
                        ("manifest", report.manifests_deleted),
                        ("link", report.links_deleted),
                        ("blob", report.blobs_deleted),
                    ] {
                        metrics().gc_deleted(kind, count, 0);
                    }
                    metrics().gc_deleted("blob", 0, report.bytes_deleted);
                    metrics().gc_run("completed");
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f64(),
                        repositories = report.repositories,
                        blobs_marked = report.blobs_marked,
                        tags = report.tags_deleted,
                        manifests = report.manifests_deleted,
                        links = report.links_deleted,
                        blobs = report.blobs_deleted,
                        bytes = report.bytes_deleted,
                        "gc: run completed"
                    );
                }
                Err(err) => {
                    metrics().gc_run("failed");
                    tracing::warn!("gc: run stopped: {err}");
                }
            }
        }
    });
}

/// `:5000` listens on every interface, IPv6 and IPv4 where possible.
pub(super) async fn bind(listen: &ListenAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let candidates: Vec<String> = match &listen.host {
        Some(host) if host.contains(':') => vec![format!("[{host}]:{}", listen.port)],
        Some(host) => vec![format!("{host}:{}", listen.port)],
        None => vec![format!("[::]:{}", listen.port), format!("0.0.0.0:{}", listen.port)],
    };
    let mut last = None;
    for candidate in &candidates {
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(anyhow::anyhow!("cannot listen on {candidate}: {err}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to listen on")))
}

async fn announce_shutdown(signal: impl std::future::Future<Output = ()>) {
    signal.await;
    tracing::info!("shutting down: draining requests in flight");
}

pub(super) async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
