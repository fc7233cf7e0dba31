//! Garbage collection while the registry serves, in any number of processes
//! sharing the storage. The rules, each kept here or in the push path:
//!
//! 1. **One run at a time.** A run holds a lease, an object in storage with
//!    an expiry that the run renews; it is taken when absent or expired
//!    (with a margin for clocks that disagree), and confirmed by reading it
//!    back. A run that finds the lease taken from it stops.
//! 2. **Every process knows a run is on before it marks.** Serving
//!    processes read the lease every [`WATCH_EVERY`]; the run waits
//!    [`grace`] after taking it (longer than a watch is trusted plus the
//!    longest request), so every request that began before a process saw
//!    the lease has ended before the mark begins. A process that has not
//!    read the lease for [`WATCH_TRUSTED`] refuses to link (503), since it
//!    cannot tell.
//! 3. **What a push links during a run is recorded first.** An upload
//!    completing, a mount, and a manifest PUT (its digest, every blob and
//!    manifest it references, and its tag) write a record in the run's
//!    folder in storage *before* they look for what they link.
//! 4. **Nothing is deleted in one step.** The run moves a file aside into
//!    its folder, then looks for a record of it: found, the file is moved
//!    back; not found, it is deleted. With rule 3, a push that looks after
//!    the move finds nothing and fails cleanly (`BLOB_UNKNOWN`), and one
//!    that looked before has left its record, so the file comes back: a
//!    manifest never points at data that is gone.
//! 5. **Nothing young is deleted.** A file modified within `delay` stays:
//!    a client uploads layers first and the manifest after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::storage::StorageError;

use super::time::now_ns;
use super::{absent_is_none, base_name, Digest, Result, Store, StoreError};

/// Where the lease and the runs' folders live (outside distribution's layout).
const LEASE: &str = "/berth/gc/lease";
const RUNS: &str = "/berth/gc/runs";

/// How often a serving process reads the lease.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);
/// How long a read of the lease is taken for the truth.
pub const WATCH_TRUSTED: Duration = Duration::from_secs(5);
/// How long a lease holds without renewal; renewed every third of it.
const LEASE_FOR: Duration = Duration::from_secs(60);
/// Clocks of processes sharing a storage may disagree this much.
const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// How long a written lease is left before it is read back.
const LEASE_SETTLES: Duration = Duration::from_secs(1);

/// How long a run waits between taking the lease and marking, given the
/// longest a request may take (`http.requesttimeout`).
pub fn grace(request_timeout: Duration) -> Duration {
    WATCH_TRUSTED + request_timeout + Duration::from_secs(1)
}

/// The lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    run: String,
    holder: String,
    expires_ns: u64,
}

/// What this process knows of the run in progress.
#[derive(Default)]
pub(super) struct RunWatch {
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// Whether this process watches at all (a serving one does; `berth gc`
    /// and tests do not, and record nothing).
    watching: bool,
    /// The run in progress at the last read, if any.
    run: Option<String>,
    /// When the lease was last read; `None` before the first read.
    read_at: Option<Instant>,
    /// A run this process holds: known without reading.
    own: Option<OnlineRun>,
}

/// What a record is of: a blob or manifest digest, or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key<'a> {
    Digest(&'a Digest),
    Tag { name: &'a str, tag: &'a str },
}

impl Key<'_> {
    fn path(&self, run: &str) -> String {
        match self {
            Key::Digest(digest) => format!("{RUNS}/{run}/linked/{}/{}", digest.algorithm().name(), digest.hex()),
            Key::Tag { name, tag } => format!("{RUNS}/{run}/tagged/{name}/_tag/{tag}"),
        }
    }
}

/// A run this process holds: its id, its start and whether the lease was
/// lost (then it stops at its next deletion).
#[derive(Debug, Clone)]
pub struct OnlineRun {
    pub(super) run: String,
    pub(super) delay: Duration,
    pub(super) lost: Arc<AtomicBool>,
}

impl Store {
    /// Reads the lease and remembers which run is in progress; a serving
    /// process calls it every [`WATCH_EVERY`], and once before it serves.
    /// Until a read succeeds, this process refuses to link.
    pub async fn watch_collections(&self) -> Result<()> {
        self.gc_watch.state.lock().unwrap_or_else(|e| e.into_inner()).watching = true;
        let lease = self.read_lease().await?;
        let mut state = self.gc_watch.state.lock().unwrap_or_else(|e| e.into_inner());
        state.run = lease.filter(live).map(|lease| lease.run);
        state.read_at = Some(Instant::now());
        Ok(())
    }

    /// Whether a run holds the lease: its holder, if so.
    pub async fn collection_in_progress(&self) -> Result<Option<String>> {
        Ok(self.read_lease().await?.filter(live).map(|lease| lease.holder))
    }

    /// Records that a push is about to link `key`, if a run is in progress
    /// (rule 3). Fails when this process cannot tell (rule 2).
    pub(super) async fn record_link(&self, key: Key<'_>) -> Result<()> {
        let run = {
            let state = self.gc_watch.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(own) = &state.own {
                Some(own.run.clone())
            } else if !state.watching {
                None
            } else {
                match state.read_at {
                    Some(at) if at.elapsed() <= WATCH_TRUSTED => state.run.clone(),
                    _ => {
                        return Err(StoreError::Unavailable(format!(
                            "cannot tell whether garbage collection is running: {LEASE} could not be read lately"
                        )))
                    }
                }
            }
        };
        let Some(run) = run else {
            return Ok(());
        };
        // The driver creates the record's folders; a run that ends removes
        // its folder, so a write racing that removal finds a folder gone.
        // Then the run is over (its lease went first) or it is not: only in
        // the second case is the record owed.
        match self.driver().put_content(&key.path(&run), b"").await {
            Err(StorageError::PathNotFound(_)) => {}
            other => return Ok(other?),
        }
        if self.read_lease().await?.is_some_and(|lease| lease.run == run) {
            self.driver().put_content(&key.path(&run), b"").await?;
        }
        Ok(())
    }

    /// Takes the lease for a new run, waits `grace` so that every process
    /// knows (rule 2), and clears what earlier runs left. `None`: another
    /// run holds it.
    pub async fn begin_online_run(&self, delay: Duration, grace: Duration) -> Result<Option<OnlineRun>> {
        if self.read_lease().await?.is_some_and(|lease| live(&lease)) {
            return Ok(None);
        }
        let lease = Lease {
            run: new_run_id(),
            holder: holder(),
            expires_ns: now_ns() + LEASE_FOR.as_nanos() as u64,
        };
        self.write_lease(&lease).await?;
        tokio::time::sleep(LEASE_SETTLES).await;
        if self.read_lease().await?.as_ref() != Some(&lease) {
            return Ok(None);
        }
        let run = OnlineRun {
            run: lease.run.clone(),
            delay,
            lost: Arc::default(),
        };
        self.gc_watch.state.lock().unwrap_or_else(|e| e.into_inner()).own = Some(run.clone());
        self.spawn_lease_renewal(lease, run.lost.clone());
        tracing::info!(run = %run.run, grace_seconds = grace.as_secs(), "gc: took the lease; marking after the grace period");
        for dir in absent_is_none(self.driver().list(RUNS).await)?.unwrap_or_default() {
            if base_name(&dir) != run.run {
                self.clear_old_run(&dir).await?;
            }
        }
        tokio::time::sleep(grace).await;
        Ok(Some(run))
    }

    /// Ends a run: its lease goes, then its folder (which the next run
    /// clears if processes still record into it meanwhile).
    pub async fn end_online_run(&self, run: &OnlineRun) -> Result<()> {
        run.lost.store(true, Ordering::SeqCst); // stops the renewal
        if self.read_lease().await?.is_some_and(|lease| lease.run == run.run) {
            self.driver().delete(LEASE).await?;
        }
        self.gc_watch.state.lock().unwrap_or_else(|e| e.into_inner()).own = None;
        if let Err(err) = self.driver().delete(&format!("{RUNS}/{}", run.run)).await {
            tracing::debug!("gc: the run's folder stays until the next run: {err}");
        }
        Ok(())
    }

    /// Stops a run this process holds, if any, and gives up its lease: on
    /// shutdown, so that another process may collect without waiting for
    /// the lease to expire.
    pub async fn release_online_run(&self) -> Result<()> {
        let own = self
            .gc_watch
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .own
            .clone();
        if let Some(run) = own {
            return self.end_online_run(&run).await;
        }
        // Written and not yet confirmed: still ours to give up.
        if self.read_lease().await?.is_some_and(|lease| lease.holder == holder()) {
            self.driver().delete(LEASE).await?;
        }
        Ok(())
    }

    /// What an earlier run left: a file it moved aside and did not get to
    /// delete or move back (its process stopped in between) goes back where
    /// it was, unless something is there now (restoring garbage only puts
    /// off its deletion); then the folder goes. A folder that will not go
    /// (a process still records into it) goes next time.
    async fn clear_old_run(&self, dir: &str) -> Result<()> {
        let aside = format!("{dir}/aside");
        let mut after: Option<String> = None;
        loop {
            let page = absent_is_none(self.driver().walk(&aside, after.as_deref(), 1000).await)?.unwrap_or_default();
            for file in &page {
                let Some(original) = file.path.strip_prefix(&aside) else {
                    continue;
                };
                if absent_is_none(self.driver().stat(original).await)?.is_none() {
                    tracing::info!(
                        path = original,
                        "gc: moved back what an interrupted run had moved aside"
                    );
                    self.driver().move_to(&file.path, original).await?;
                }
            }
            if page.len() < 1000 {
                break;
            }
            after = page.last().map(|file| file.path.clone());
        }
        if let Err(err) = self.driver().delete(dir).await {
            tracing::debug!("gc: {dir} stays for now: {err}");
        }
        Ok(())
    }

    /// Deletes `path` by rule 4 (and 5, unless `modified_ns` is known to be
    /// old enough): moved aside, then deleted unless `key` was recorded
    /// meanwhile, when it is moved back. Whether it was deleted.
    pub(super) async fn remove_while_serving(
        &self,
        run: &OnlineRun,
        path: &str,
        key: Key<'_>,
        modified_ns: Option<u64>,
    ) -> Result<bool> {
        if run.lost.load(Ordering::SeqCst) {
            return Err(StoreError::Storage(StorageError::Backend(
                "the garbage collection lease was lost; the run stops".into(),
            )));
        }
        let modified_ns = match modified_ns {
            Some(ns) => ns,
            None => match absent_is_none(self.driver().stat(path).await)? {
                Some(info) => info.modified_ns,
                None => return Ok(false),
            },
        };
        if now_ns().saturating_sub(modified_ns) < run.delay.as_nanos() as u64 {
            return Ok(false);
        }
        let aside = format!("{RUNS}/{}/aside{path}", run.run);
        match self.driver().move_to(path, &aside).await {
            Ok(()) => {}
            Err(StorageError::PathNotFound(_)) => return Ok(false),
            Err(err) => return Err(err.into()),
        }
        if absent_is_none(self.driver().stat(&key.path(&run.run)).await)?.is_some() {
            self.driver().move_to(&aside, path).await?;
            return Ok(false);
        }
        self.driver().delete(&aside).await?;
        Ok(true)
    }

    fn spawn_lease_renewal(&self, mut lease: Lease, lost: Arc<AtomicBool>) {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_FOR / 3).await;
                if lost.load(Ordering::SeqCst) {
                    return;
                }
                let held = match store.read_lease().await {
                    Ok(current) => current.is_some_and(|current| current.run == lease.run),
                    // Unreadable: keep trying until the lease would expire.
                    Err(err) => {
                        tracing::warn!("gc: cannot read the lease to renew it: {err}");
                        now_ns() < lease.expires_ns
                    }
                };
                lease.expires_ns = now_ns() + LEASE_FOR.as_nanos() as u64;
                if !held || store.write_lease(&lease).await.is_err() {
                    tracing::error!(run = %lease.run, "gc: the lease was lost; the run stops");
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
    }

    async fn read_lease(&self) -> Result<Option<Lease>> {
        let bytes = absent_is_none(self.driver().get_content(LEASE).await)?;
        // A lease that does not parse was not written by a run: ignored.
        Ok(bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    async fn write_lease(&self, lease: &Lease) -> Result<()> {
        let bytes = serde_json::to_vec(lease).unwrap_or_default();
        Ok(self.driver().put_content(LEASE, &bytes).await?)
    }
}

/// Whether a lease still holds, allowing for clock skew.
fn live(lease: &Lease) -> bool {
    now_ns() < lease.expires_ns.saturating_add(CLOCK_SKEW.as_nanos() as u64)
}

/// Who holds a lease: host and process, for the logs.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

fn new_run_id() -> String {
    let digest = Digest::of(
        super::Algorithm::Sha256,
        format!("{}:{}", holder(), now_ns()).as_bytes(),
    );
    digest.hex()[..16].to_string()
}
