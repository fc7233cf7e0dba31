//! `berth storage ensure|exists|remove`: the configured storage driver's
//! provisioner (creating and configuring a bucket, for S3), the step the
//! operator runs before it deploys the registry, usable by hand; and
//! `berth storage check`, the integrity check of what is stored.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::config;
use crate::plugin::{Condition, Provision};
use crate::store::{CheckProgress, Problem, Store, QUARANTINE};

use super::progress::Progress;

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Create the backing store if missing and bring its settings (public
    /// access, encryption, the cleanup of stale uploads, tags) to what the
    /// configuration asks; one condition per step. Exit status 1 if any step
    /// failed, 2 if the configuration is wrong.
    Ensure(StorageArgs),
    /// Report whether the backing store exists. Exit status 1 if it does not.
    Exists(StorageArgs),
    /// Delete the backing store and everything in it.
    Remove(StorageArgs),
    /// Hash every blob against its digest and follow every repository link
    /// and tag; with --repair, move what is corrupt or dangling below
    /// /berth/quarantine. Reads only (unless repairing), so it runs beside
    /// a serving registry. Exit status 1 if anything was found.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The registry configuration (distribution's config.yml); REGISTRY_*
    /// variables override it.
    #[arg(long, short, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Quarantine what is found: a client then gets 404, not wrong bytes.
    #[arg(long)]
    repair: bool,
}

#[derive(Args)]
pub struct StorageArgs {
    /// The registry configuration (distribution's config.yml); REGISTRY_*
    /// variables override it.
    #[arg(long, short, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// One line per condition: type, status, reason and message.
    Text,
    /// A JSON array of `{type, status, reason, message}`.
    Json,
}

pub async fn run(command: StorageCommand) -> anyhow::Result<ExitCode> {
    let (action, args) = match command {
        StorageCommand::Ensure(args) => (Provision::Ensure, args),
        StorageCommand::Exists(args) => (Provision::Exists, args),
        StorageCommand::Remove(args) => (Provision::Remove, args),
        StorageCommand::Check(args) => return check(args).await,
    };
    let loaded = match config::load(args.config.as_deref(), std::env::vars()) {
        Ok(loaded) => loaded,
        Err(err) => return Ok(super::serve::config_error(&err.to_string())),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let config = loaded.config;
    let host = super::plugin_host(&config, None)?;
    if let Some(code) = super::serve::check(&host, &config).await? {
        return Ok(code);
    }
    let (driver, parameters) = config.storage_driver();
    let conditions = match host.provision(driver, action, &parameters).await? {
        Ok(conditions) => conditions,
        Err(err) => anyhow::bail!("storage.{driver}: {}", crate::plugin::wit_error_text(&err)),
    };
    print(&conditions, args.output)?;
    let failed = conditions.iter().any(|c| c.status == "False");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let driver = match super::open_storage(args.config.as_deref()).await? {
        Ok((_, driver)) => driver,
        Err(code) => return Ok(code),
    };
    let store = Store::new(driver, 0);
    let progress = RefCell::new(Progress::new("berth storage check"));
    let verb = if args.repair { "quarantined" } else { "found" };
    let report = store
        .check(
            args.repair,
            &mut |problem: &Problem| {
                progress.borrow_mut().clear();
                println!("{verb}: {problem}");
            },
            &mut |step| {
                progress.borrow_mut().show(|| match step {
                    CheckProgress::Blobs { blobs, bytes } => format!("hashing: {blobs} blobs, {} MiB", bytes >> 20),
                    CheckProgress::Repositories { repositories, of } => {
                        format!("following links: {repositories}/{of} repositories")
                    }
                })
            },
        )
        .await;
    progress.borrow_mut().clear();
    let report = report.map_err(|err| anyhow::anyhow!("the check stopped: {err}"))?;
    println!(
        "{} blobs ({} bytes) hashed, {} links and tags in {} repositories followed: {} problems{}",
        report.blobs,
        report.bytes,
        report.links,
        report.repositories,
        report.problems,
        if args.repair {
            format!(", {} quarantined below {QUARANTINE}", report.quarantined)
        } else {
            String::new()
        },
    );
    Ok(if report.problems > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print(conditions: &[Condition], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Text => {
            for c in conditions {
                println!("{:<40} {:<7} {}: {}", c.type_, c.status, c.reason, c.message);
            }
        }
        Output::Json => {
            let json: Vec<_> = conditions
                .iter()
                .map(|c| {
                    serde_json::json!({"type": c.type_, "status": c.status, "reason": c.reason, "message": c.message})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(())
}
