//! `berth operator`: the image registry operator (see `crate::operator`),
//! and `berth operator crd`, the CustomResourceDefinition it reconciles.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use clap::{Args, Subcommand};

use crate::config::ListenAddr;
use crate::operator::controller::{self, Options};
use crate::operator::mapping::NAMESPACE;
use crate::plugin::{PluginHost, PluginHostOptions};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OperatorArgs {
    #[command(subcommand)]
    command: Option<OperatorCommand>,
    /// Where the registry's objects (and the operator's Lease) live.
    #[arg(long, env = "BERTH_NAMESPACE", default_value = NAMESPACE)]
    namespace: String,
    /// The image the registry Deployment runs: `berth` serves both roles,
    /// so in a cluster this is the operator's own image.
    #[arg(long, env = "BERTH_IMAGE", value_name = "IMAGE")]
    registry_image: Option<String>,
    /// The Config to reconcile (older clusters call it `instance`).
    #[arg(long, env = "BERTH_CONFIG_NAME", default_value = "cluster")]
    config_name: String,
    /// Drop-in `.wasm` plugins (validators, storage drivers).
    #[arg(long, env = "BERTH_PLUGIN_DIR", value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Where `/healthz` and `/readyz` are served (`:8080`: every interface).
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = ":8080", value_name = "ADDR")]
    metrics_addr: String,
    /// This replica's name in the leader Lease and in Events; default: the
    /// host name (a pod's name) and the process id.
    #[arg(long, env = "BERTH_OPERATOR_IDENTITY")]
    identity: Option<String>,
    /// Seconds between two reconciles when no change is seen (changes to
    /// the Config, the Deployment, Services and Secrets are seen at once).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86400))]
    resync_secs: u64,
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Print the Config CustomResourceDefinition (YAML), generated from the
    /// operator's types: `berth operator crd | kubectl apply -f -`.
    Crd,
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<ExitCode> {
    if let Some(OperatorCommand::Crd) = args.command {
        print!(
            "{}",
            serde_norway::to_string(&crate::operator::crd::custom_resource_definition())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(registry_image) = args.registry_image.filter(|i| !i.is_empty()) else {
        return Ok(super::serve::config_error(
            "no registry image: pass --registry-image IMAGE or set BERTH_IMAGE (the image the registry pods run)",
        ));
    };
    let listen = match ListenAddr::parse(&args.metrics_addr) {
        Ok(listen) => listen,
        Err(message) => return Ok(super::serve::config_error(&format!("--metrics-addr {message}"))),
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(err) => {
            return Ok(super::serve::config_error(&format!(
                "no Kubernetes API server to talk to (in-cluster, or KUBECONFIG): {err}"
            )))
        }
    };
    let host = PluginHost::new(PluginHostOptions {
        plugin_dir: args.plugin_dir,
        ..PluginHostOptions::default()
    })?;
    let identity = args.identity.unwrap_or_else(default_identity);

    let ready = Arc::new(AtomicBool::new(false));
    let listener = super::serve::bind(&listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "health on /healthz and /readyz");
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<Arc<AtomicBool>>| async move {
                if ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not connected to the API server yet")
                }
            }),
        )
        .with_state(ready.clone());
    let health = tokio::spawn(async move { axum::serve(listener, health).await });

    let options = Options {
        namespace: args.namespace,
        config_name: args.config_name,
        registry_image,
        identity,
        resync: Duration::from_secs(args.resync_secs),
    };
    let outcome = controller::run(client, host, options, ready, super::serve::shutdown_signal()).await;
    health.abort();
    match outcome {
        Ok(()) => {
            tracing::info!("stopped; the lease is released");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            tracing::error!("{err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `<hostname>-<pid>`: unique per process, readable in `kubectl get lease`.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "berth-operator".into());
    format!("{host}-{}", std::process::id())
}
