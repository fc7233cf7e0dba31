//! What every guest call shares, whatever the world: a Store with the memory
//! limit and the epoch deadline check, arming a call's deadline, and turning
//! a call's outcome into its value or a cause that says what went wrong.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::engine::EPOCH_TICK;
use super::http::Network;
use super::state::{DeadlineExceeded, GuestStderr, HostState, MemoryLimitExceeded};
use super::{PluginError, PluginHostOptions};
use crate::metrics::FailureCause;

/// A fresh Store for one instance of `plugin`: its stderr goes to the log
/// (and is kept to explain a trap), its outgoing HTTP goes through `network`
/// or is refused, its memory is limited, and at every
/// epoch tick a call past its deadline traps while one within it yields, so
/// a guest that computes for long never starves the runtime.
/// A Store for one instance of `plugin`, holding the instance's share of
/// the memory budget (waited for, a bounded time) for as long as it lives.
pub(crate) async fn new_store(
    engine: &Engine,
    plugin: Arc<str>,
    mut wasi: WasiCtxBuilder,
    network: Option<Arc<Network>>,
    options: &PluginHostOptions,
) -> Result<Store<HostState>, PluginError> {
    let reservation = options.budget.reserve(&plugin, options.memory_limit).await?;
    let stderr = GuestStderr::new(plugin.clone());
    wasi.stderr(stderr.clone());
    let state = HostState::new(plugin, wasi.build(), network, options.memory_limit, stderr, reservation);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    let seconds = options.call_timeout.as_secs_f64();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if Instant::now() >= ctx.data().deadline {
            Err(DeadlineExceeded { seconds }.into())
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    Ok(store)
}

/// Sets the deadline of the call about to start; returns it with a margin of
/// one tick, for the host-side timeout that backs the epoch check.
pub(crate) fn arm(store: &mut Store<HostState>, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    store.data_mut().deadline = deadline;
    deadline + EPOCH_TICK
}

/// The value of a guest call, or why it failed: a trap (with the last line
/// the guest printed), the memory limit, or the deadline.
pub(crate) fn outcome<T>(
    store: &Store<HostState>,
    timeout: Duration,
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, String> {
    classified(store, timeout, outcome).map_err(|(_, cause)| cause)
}

/// [`outcome`], with the kind of failure.
pub(crate) fn classified<T>(
    store: &Store<HostState>,
    timeout: Duration,
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, (FailureCause, String)> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(explain(store, err)),
        Err(_) => Err((
            FailureCause::Deadline,
            DeadlineExceeded {
                seconds: timeout.as_secs_f64(),
            }
            .to_string(),
        )),
    }
}

fn explain(store: &Store<HostState>, err: wasmtime::Error) -> (FailureCause, String) {
    if let Some(limit) = err.downcast_ref::<MemoryLimitExceeded>() {
        return (FailureCause::MemoryLimit, limit.to_string());
    }
    if let Some(deadline) = err.downcast_ref::<DeadlineExceeded>() {
        return (FailureCause::Deadline, deadline.to_string());
    }
    let said = store
        .data()
        .stderr
        .last_line()
        .map(|line| format!(" (it printed: {line})"))
        .unwrap_or_default();
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => (FailureCause::Trap, format!("trapped: {trap}{said}")),
        None => (FailureCause::Other, format!("failed: {err:#}{said}")),
    }
}
