//! `berth config validate`: the configuration checks `berth serve` runs
//! before it starts, without starting anything; with `--resource`, the
//! checks the operator runs on an image registry `Config` resource.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::config;
use crate::operator::{self, ClusterFacts};
use crate::plugin::{PluginHost, PluginHostOptions};
use crate::validate::{self, Finding, Severity};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration and run every configuration validator
    /// (bundled and dropped in); print the findings. Exit status 1 when any
    /// is an error, else 0.
    Validate {
        /// The registry configuration (distribution's config.yml). Without
        /// one: the local default `berth serve` uses. REGISTRY_* variables
        /// override it either way.
        #[arg(long, short, env = "BERTH_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Check an operator `Config` resource
        /// (configs.imageregistry.operator.openshift.io/v1, YAML or JSON)
        /// instead: its spec is mapped to the registry pod's REGISTRY_*
        /// environment and checked by the same validators; findings name
        /// `spec.*` fields. --config and REGISTRY_* variables play no part.
        #[arg(long, value_name = "FILE")]
        resource: Option<PathBuf>,
        /// With --resource: the keys the secret
        /// image-registry-private-configuration-user has (comma-separated,
        /// e.g. REGISTRY_STORAGE_S3_ACCESSKEY,REGISTRY_STORAGE_S3_SECRETKEY).
        #[arg(long, value_name = "KEYS", value_delimiter = ',', requires = "resource")]
        secret_keys: Vec<String>,
        /// With --resource: the access modes of the claim spec.storage.pvc
        /// uses (comma-separated, e.g. ReadWriteOnce); unchecked when absent.
        #[arg(long, value_name = "MODES", value_delimiter = ',', requires = "resource")]
        pvc_access_modes: Option<Vec<String>>,
        /// Directory of drop-in `.wasm` plugins; default: the configuration's
        /// `plugins.directory`.
        #[arg(long, env = "BERTH_PLUGIN_DIR")]
        plugin_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// One line per finding: `error  storage.s3.region  MissingRegion: ...`.
    Text,
    /// A JSON array of `{field-path, severity, reason, message}`.
    Json,
}

pub async fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Validate {
        config,
        resource,
        secret_keys,
        pvc_access_modes,
        plugin_dir,
        output,
    } = command;
    let findings = match resource {
        Some(resource) => {
            let facts = ClusterFacts {
                secret_keys: secret_keys.into_iter().filter(|k| !k.is_empty()).collect(),
                pvc_access_modes,
            };
            check_resource(&resource, &facts, plugin_dir).await?
        }
        None => check_registry_config(config, plugin_dir).await?,
    };
    match output {
        Output::Text => {
            for finding in &findings {
                println!("{}", validate::format_text(finding));
            }
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
    }
    Ok(if validate::has_errors(&findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A Config resource: unreadable is a finding, like a configuration file.
async fn check_resource(
    path: &Path,
    facts: &ClusterFacts,
    plugin_dir: Option<PathBuf>,
) -> anyhow::Result<Vec<Finding>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            return Ok(vec![Finding {
                field_path: String::new(),
                severity: Severity::Error,
                reason: "Unreadable".into(),
                message: format!("cannot read the resource file {}: {err}", path.display()),
            }])
        }
    };
    let host = PluginHost::new(PluginHostOptions {
        plugin_dir,
        ..PluginHostOptions::default()
    })?;
    Ok(operator::check_resource(&host, &text, facts).await?)
}

async fn check_registry_config(config: Option<PathBuf>, plugin_dir: Option<PathBuf>) -> anyhow::Result<Vec<Finding>> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    Ok(match config::load(config.as_deref(), env.clone()) {
        Err(err) => vec![validate::config_error_finding(&err)],
        Ok(loaded) => {
            let mut findings: Vec<Finding> = loaded
                .warnings
                .iter()
                .map(|warning| Finding {
                    field_path: String::new(),
                    severity: Severity::Warning,
                    reason: "ConfigWarning".into(),
                    message: warning.clone(),
                })
                .collect();
            let config = loaded.config;
            let mut host = super::plugin_host(&config, plugin_dir)?;
            if let Err(message) = super::add_pulled_plugins(&mut host, &config.plugins.oci).await {
                findings.push(Finding {
                    field_path: "plugins.oci".into(),
                    severity: Severity::Error,
                    reason: "PluginNotPulled".into(),
                    message,
                });
            }
            let drivers = host.storage_drivers();
            findings.extend(validate::validate_registry_config(&host, &config, &drivers, &env).await?);
            validate::sort(&mut findings);
            findings
        }
    })
}
