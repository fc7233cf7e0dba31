//! One instance per registry request. The calls a request makes into a
//! `per-call` plugin share one instance, which goes when the request ends:
//! a request pays for one instantiation instead of one per call, and still
//! nothing a request leaves in an instance is seen by the next.

use std::future::Future;
use std::sync::Mutex;

use super::session::SessionRef;

tokio::task_local! {
    static INSTANCES: Instances;
}

/// The instances of the running request, by plugin.
#[derive(Default)]
struct Instances(Mutex<Vec<(u64, SessionRef)>>);

/// Runs `request` as one request: each per-call plugin it calls keeps one
/// instance for all of it. Outside such a scope (background work), every
/// call gets a fresh instance.
pub async fn one_instance_per_request<F: Future>(request: F) -> F::Output {
    INSTANCES.scope(Instances::default(), request).await
}

/// The instance of plugin `plugin` the running request already has.
pub(crate) fn current(plugin: u64) -> Option<SessionRef> {
    INSTANCES
        .try_with(|instances| {
            let instances = instances.0.lock().unwrap_or_else(|e| e.into_inner());
            instances.iter().find(|(id, _)| *id == plugin).map(|(_, s)| s.clone())
        })
        .ok()
        .flatten()
}

/// Makes `session` the instance of `plugin` for the rest of the running
/// request, if one is running.
pub(crate) fn keep(plugin: u64, session: &SessionRef) {
    let _ = INSTANCES.try_with(|instances| {
        let mut instances = instances.0.lock().unwrap_or_else(|e| e.into_inner());
        instances.retain(|(id, _)| *id != plugin);
        instances.push((plugin, session.clone()));
    });
}
