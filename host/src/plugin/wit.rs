//! The host's side of the WIT contract: every `bindgen!` output, the names
//! of the interfaces it looks for in a component, and the imports it gives
//! storage plugins. The one file that changes when the contract does.

use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::Engine;

use super::state::HostState;

/// A storage driver as the host reads it: the world with every export it
/// knows, each optional one looked up on its own, so a plugin without
/// `local-files`, `maintenance` or `fixed-answers` is still a driver.
pub(crate) mod storage {
    wasmtime::component::bindgen!({
        world: "maintained-local-storage-driver",
        path: "../wit/storage",
        exports: { default: async },
    });
}

/// A storage driver's `provisioner` export.
pub(crate) mod provisioning {
    wasmtime::component::bindgen!({
        world: "provisioning-storage-driver",
        path: "../wit/storage",
        exports: { default: async },
        // The imports are the storage world's, already in the linker.
        with: {
            "berth:storage/types": crate::plugin::wit::storage::berth::storage::types,
            "berth:storage/host": crate::plugin::wit::storage::berth::storage::host,
        },
    });
}

/// A storage driver's `signed-reads` and `bulk-delete` exports.
pub(crate) mod remote {
    wasmtime::component::bindgen!({
        world: "remote-storage-driver",
        path: "../wit/storage",
        exports: { default: async },
        with: {
            "berth:storage/types": crate::plugin::wit::storage::berth::storage::types,
            "berth:storage/host": crate::plugin::wit::storage::berth::storage::host,
        },
    });
}

/// A configuration validator.
pub(crate) mod validate {
    wasmtime::component::bindgen!({
        world: "config-validator",
        path: "../wit/validate",
        exports: { default: async },
    });
}

/// Export names, without their version: a component exports
/// `berth:storage/driver@0.1.0`.
pub(crate) const DRIVER: &str = "berth:storage/driver@";
pub(crate) const PROVISIONER: &str = "berth:storage/provisioner@";
pub(crate) const LOCAL_FILES: &str = "berth:storage/local-files@";
pub(crate) const MAINTENANCE: &str = "berth:storage/maintenance@";
pub(crate) const FIXED_ANSWERS: &str = "berth:storage/fixed-answers@";
pub(crate) const SIGNED_READS: &str = "berth:storage/signed-reads@";
pub(crate) const BULK_DELETE: &str = "berth:storage/bulk-delete@";
pub(crate) const VALIDATOR: &str = "berth:validate/validator@";

/// Whether `component` exports an interface whose name starts with `prefix`
/// (one of the names above).
pub(crate) fn exports_interface(engine: &Engine, component: &Component, prefix: &str) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(prefix))
}

/// The indices of an optional export found by `lookup`, or `None`. A
/// component that exports the interface in a shape this host cannot read is
/// warned about, saying what it goes without (`lost`).
pub(crate) fn optional_export<T>(
    plugin: &str,
    engine: &Engine,
    pre: &InstancePre<HostState>,
    prefix: &str,
    lost: &str,
    lookup: impl FnOnce(&InstancePre<HostState>) -> wasmtime::Result<T>,
) -> Option<T> {
    match lookup(pre) {
        Ok(indices) => Some(indices),
        Err(err) => {
            if exports_interface(engine, pre.component(), prefix) {
                let interface = prefix.trim_end_matches('@');
                tracing::warn!(
                    plugin,
                    "its {interface} export is not one this host reads ({err:#}); {lost}"
                );
            }
            None
        }
    }
}

/// Adds the imports of the storage worlds (besides WASI) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    storage::MaintainedLocalStorageDriver::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

impl storage::berth::storage::types::Host for HostState {}

impl storage::berth::storage::host::Host for HostState {
    fn log(&mut self, level: storage::berth::storage::host::Level, message: String) {
        use storage::berth::storage::host::Level;
        let plugin = &*self.plugin;
        match level {
            Level::Error => tracing::error!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Trace => tracing::trace!(plugin, "{message}"),
        }
    }
}
