//! `/healthz`: whether this registry can serve, cached so that probes cost
//! one storage call every few seconds whatever their rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::storage::{StorageDriver, StorageError};

/// How long a storage check answers `/healthz` before the next one: probes
/// and load balancers asking many times a second cost one driver call.
const HEALTH_TTL: Duration = Duration::from_secs(2);

/// Below this much free space in a driver's host directory, the storage
/// counts as full: no layer fits, and writes fail with 507.
const FULL_BELOW: u64 = 1 << 20;

/// The `/healthz` route, answering from `driver` and the drain flag.
pub(super) fn router(driver: Arc<dyn StorageDriver>, draining: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(Arc::new(Health {
            driver,
            draining,
            last: tokio::sync::Mutex::new(None),
        }))
}

struct Health {
    driver: Arc<dyn StorageDriver>,
    draining: Arc<AtomicBool>,
    /// The last check and when it ran. Locked while a check runs, so
    /// concurrent probes wait for it instead of adding more.
    last: tokio::sync::Mutex<Option<(Instant, Verdict)>>,
}

#[derive(Clone)]
enum Verdict {
    Ok,
    /// Reads are served, writes fail: ready still, and saying so.
    Full {
        directory: String,
        free: u64,
    },
    /// The storage does not answer.
    Failed(String),
}

/// 200 when the storage answers: `stat("/")` succeeds or says there is
/// nothing yet (an empty bucket). A full disk is 200 too, because pulls are
/// still served and a readiness probe must not take them away, but the body
/// says `storage full`. 503 with the cause when the storage fails, and once
/// shutting down, so a load balancer stops sending before the listener goes.
async fn healthz(State(health): State<Arc<Health>>) -> Response {
    if health.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let mut last = health.last.lock().await;
    let verdict = match last.as_ref().filter(|(at, _)| at.elapsed() < HEALTH_TTL) {
        Some((_, verdict)) => verdict.clone(),
        None => {
            let verdict = check(health.driver.as_ref()).await;
            *last = Some((Instant::now(), verdict.clone()));
            verdict
        }
    };
    match verdict {
        Verdict::Ok => (StatusCode::OK, "ok\n".to_string()).into_response(),
        Verdict::Full { directory, free } => (
            StatusCode::OK,
            format!("storage full: {free} bytes free in {directory}; pulls are served, pushes fail with 507\n"),
        )
            .into_response(),
        Verdict::Failed(cause) => (StatusCode::SERVICE_UNAVAILABLE, cause).into_response(),
    }
}

async fn check(driver: &dyn StorageDriver) -> Verdict {
    match driver.stat("/").await {
        Ok(_) | Err(StorageError::PathNotFound(_)) => {}
        Err(err) => {
            tracing::warn!(storage = driver.name(), "health check failed: {err}");
            return Verdict::Failed(format!("storage {}: {err}\n", driver.name()));
        }
    }
    let Some(directory) = driver.host_directory().map(str::to_string) else {
        return Verdict::Ok;
    };
    let queried = directory.clone();
    // statvfs can block (a hung network mount): off the async threads.
    match tokio::task::spawn_blocking(move || free_bytes(&queried)).await {
        Ok(Ok(free)) if free < FULL_BELOW => {
            tracing::warn!(storage = driver.name(), directory, free, "storage is full");
            Verdict::Full { directory, free }
        }
        Ok(Ok(_)) => Verdict::Ok,
        Ok(Err(err)) => {
            tracing::warn!(storage = driver.name(), directory, "cannot tell the free space: {err}");
            Verdict::Ok
        }
        Err(err) => Verdict::Failed(format!("storage {}: {err}\n", driver.name())),
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `path`.
fn free_bytes(path: &str) -> std::io::Result<u64> {
    let path = std::ffi::CString::new(path).map_err(std::io::Error::other)?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and `stats` is written by a successful call.
    if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let stats = unsafe { stats.assume_init() };
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_bytes_of_a_real_directory() {
        assert!(super::free_bytes("/").is_ok());
        assert!(super::free_bytes("/nonexistent/berth").is_err());
    }
}
