//! `berth gc`: garbage collection of the configured storage, distribution's
//! `registry garbage-collect` (same flags, same layout, same result), with
//! progress on long walks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;

use crate::store::{Deletion, GcOptions, GcProgress, Store};

use super::progress::Progress;

#[derive(Args)]
pub struct GcArgs {
    /// The registry configuration (distribution's config.yml); REGISTRY_*
    /// variables override it.
    #[arg(long, short, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The configuration as distribution takes it: a path after the flags.
    #[arg(value_name = "CONFIG", conflicts_with = "config")]
    config_path: Option<PathBuf>,
    /// Print what would be deleted; delete nothing.
    #[arg(long, short = 'd')]
    dry_run: bool,
    /// Delete manifests no tag points at, unless a kept index lists them or
    /// their subject is kept; without it every manifest is kept.
    #[arg(long, short = 'm')]
    delete_untagged: bool,
    /// Print nothing per deletion, only the summary.
    #[arg(long, short)]
    quiet: bool,
}

pub async fn run(args: GcArgs) -> anyhow::Result<ExitCode> {
    let (config, driver) = match super::open_storage(args.config.or(args.config_path).as_deref()).await? {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let retention = config.storage.retention;
    if !retention.policies.is_empty() && !args.delete_untagged {
        tracing::warn!(
            "storage.retention deletes tags; without --delete-untagged the manifests they named stay, and so does their content"
        );
    }
    let options = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        retention,
        online: None,
    };
    // No content cache: each blob is asked about once.
    let store = Store::new(driver, 0);
    if let Some(holder) = store.collection_in_progress().await? {
        eprintln!("berth gc: a collection is running in a serving registry ({holder}); try again once it ends");
        return Ok(ExitCode::FAILURE);
    }
    let verb = if args.dry_run { "would delete" } else { "deleting" };
    let progress = Mutex::new(Progress::new("berth gc"));
    let mut on_deletion = |deletion: &Deletion| {
        if args.quiet {
            return;
        }
        progress.lock().unwrap_or_else(|e| e.into_inner()).clear();
        match deletion {
            Deletion::Tag { name, tag } => println!("{verb} tag {name}:{tag} (retention)"),
            Deletion::Manifest { name, digest } => println!("{verb} manifest {name}@{digest} (untagged)"),
            Deletion::Link { name, digest } => println!("{verb} link {name} -> {digest}"),
            Deletion::Blob { digest, size } => println!("{verb} blob {digest} ({size} bytes)"),
        }
    };
    let report = store
        .collect_garbage(options, &mut on_deletion, &mut |step| {
            progress.lock().unwrap_or_else(|e| e.into_inner()).show(|| match step {
                GcProgress::Marking { repositories, of } => format!("marking: {repositories}/{of} repositories"),
                GcProgress::Sweeping { blobs } => format!("sweeping: {blobs} blobs looked at"),
            })
        })
        .await;
    progress.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let report = report.map_err(|err| anyhow::anyhow!("garbage collection stopped: {err}"))?;
    println!(
        "{} repositories, {} manifests kept, {} blobs marked, {} blobs looked at; {} {} tags, {} untagged manifests, {} links, {} blobs ({} bytes)",
        report.repositories,
        report.manifests_kept,
        report.blobs_marked,
        report.blobs_seen,
        if args.dry_run { "would delete" } else { "deleted" },
        report.tags_deleted,
        report.manifests_deleted,
        report.links_deleted,
        report.blobs_deleted,
        report.bytes_deleted,
    );
    Ok(ExitCode::SUCCESS)
}
