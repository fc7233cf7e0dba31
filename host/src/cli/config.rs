//! `berth config validate`: the configuration checks `berth serve` runs
//! before it starts, without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::config;
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
        plugin_dir,
        output,
    } = command;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let findings = match config::load(config.as_deref(), env.clone()) {
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
            let host = PluginHost::new(PluginHostOptions {
                call_timeout: config.plugins.calltimeout,
                memory_limit: config.plugins.memorylimitmib << 20,
                plugin_dir: plugin_dir.or_else(|| config.plugins.directory.clone()),
                ..PluginHostOptions::default()
            })?;
            let drivers = host.storage_drivers();
            findings.extend(validate::validate_registry_config(&host, &config, &drivers, &env).await?);
            validate::sort(&mut findings);
            findings
        }
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
