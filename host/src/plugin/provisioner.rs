//! Calling a storage driver's `provisioner` export: `ensure`, `exists` and
//! `remove` of its backing store, each answered with conditions.

use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::Engine;
use wasmtime_wasi::WasiCtxBuilder;

use super::call::{arm, new_store, outcome};
use super::http::Network;
use super::session::Answer;
use super::state::HostState;
use super::wit::provisioning::ProvisioningStorageDriverPre;
use super::{PluginError, PluginHostOptions};

pub use super::wit::provisioning::berth::storage::types::Condition;

/// What a provisioner is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provision {
    /// Create or repair the backing store.
    Ensure,
    /// Report whether it exists.
    Exists,
    /// Remove it and its content.
    Remove,
}

impl Provision {
    pub fn name(self) -> &'static str {
        match self {
            Provision::Ensure => "ensure",
            Provision::Exists => "exists",
            Provision::Remove => "remove",
        }
    }
}

/// Instantiates `name` (a provisioning storage driver) in a fresh Store with
/// its network grant and runs `action` with `parameters`.
pub(crate) async fn run(
    name: Arc<str>,
    engine: &Engine,
    pre: InstancePre<HostState>,
    options: &PluginHostOptions,
    network: Option<Arc<Network>>,
    action: Provision,
    parameters: &[(String, String)],
) -> Answer<Vec<Condition>> {
    let pre = ProvisioningStorageDriverPre::new(pre).map_err(|err| {
        PluginError::new(
            &name,
            "load",
            format!("has nothing to provision: it does not export berth:storage/provisioner ({err:#})"),
        )
    })?;
    let mut store = new_store(engine, name.clone(), WasiCtxBuilder::new(), network, options).await?;
    let fail = |op: &str, cause: String| PluginError::new(&name, op, cause);
    let deadline = arm(&mut store, options.call_timeout);
    let instance = tokio::time::timeout_at(deadline.into(), pre.instantiate_async(&mut store)).await;
    let guest = outcome(&store, options.call_timeout, instance).map_err(|cause| fail("instantiate", cause))?;
    let provisioner = guest.berth_storage_provisioner();
    let deadline = arm(&mut store, options.call_timeout);
    let answer = match action {
        Provision::Ensure => {
            tokio::time::timeout_at(deadline.into(), provisioner.call_ensure(&mut store, parameters)).await
        }
        Provision::Exists => {
            tokio::time::timeout_at(deadline.into(), provisioner.call_exists(&mut store, parameters)).await
        }
        Provision::Remove => {
            tokio::time::timeout_at(deadline.into(), provisioner.call_remove(&mut store, parameters)).await
        }
    };
    outcome(&store, options.call_timeout, answer).map_err(|cause| fail(action.name(), cause))
}
