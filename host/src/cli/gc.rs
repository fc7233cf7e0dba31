//! `berth gc`: garbage collection of the configured storage, distribution's
//! `registry garbage-collect` (same flags, same layout, same result), with
//! progress on long walks.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::config;
use crate::storage::open_driver;
use crate::store::{Deletion, GcOptions, GcProgress, Store};

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

/// How often progress is shown: redrawn on a terminal, logged otherwise.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub async fn run(args: GcArgs) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(args.config.or(args.config_path).as_deref(), std::env::vars()) {
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
    let (driver_name, parameters) = config.storage_driver();
    let driver = match open_driver(&host, driver_name, parameters).await {
        Ok(driver) => driver,
        Err(err) => return Ok(super::serve::config_error(&format!("storage.{driver_name}: {err}"))),
    };
    let options = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
    };
    // No content cache: each blob is asked about once.
    let store = Store::new(driver, 0);
    let verb = if options.dry_run { "would delete" } else { "deleting" };
    let progress = RefCell::new(Progress::new());
    let mut on_deletion = |deletion: &Deletion| {
        if args.quiet {
            return;
        }
        progress.borrow_mut().clear();
        match deletion {
            Deletion::Manifest { name, digest } => println!("{verb} manifest {name}@{digest} (untagged)"),
            Deletion::Link { name, digest } => println!("{verb} link {name} -> {digest}"),
            Deletion::Blob { digest, size } => println!("{verb} blob {digest} ({size} bytes)"),
        }
    };
    let report = store
        .collect_garbage(options, &mut on_deletion, &mut |step| progress.borrow_mut().show(step))
        .await;
    progress.borrow_mut().clear();
    let report = report.map_err(|err| anyhow::anyhow!("garbage collection stopped: {err}"))?;
    println!(
        "{} repositories, {} manifests kept, {} blobs marked, {} blobs looked at; {} {} untagged manifests, {} links, {} blobs ({} bytes)",
        report.repositories,
        report.manifests_kept,
        report.blobs_marked,
        report.blobs_seen,
        if options.dry_run { "would delete" } else { "deleted" },
        report.manifests_deleted,
        report.links_deleted,
        report.blobs_deleted,
        report.bytes_deleted,
    );
    Ok(ExitCode::SUCCESS)
}

/// Progress of a long walk on stderr: one line redrawn in place on a
/// terminal, a line every [`LOG_EVERY`] otherwise.
struct Progress {
    terminal: bool,
    shown: Option<Instant>,
    drawn: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            shown: None,
            drawn: false,
        }
    }

    fn show(&mut self, step: GcProgress) {
        let every = if self.terminal { TERMINAL_EVERY } else { LOG_EVERY };
        if self.shown.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.shown = Some(Instant::now());
        let text = match step {
            GcProgress::Marking { repositories, of } => format!("marking: {repositories}/{of} repositories"),
            GcProgress::Sweeping { blobs } => format!("sweeping: {blobs} blobs looked at"),
        };
        if self.terminal {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            eprintln!("berth gc: {text}");
        }
    }

    /// Removes the progress line before other output.
    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
