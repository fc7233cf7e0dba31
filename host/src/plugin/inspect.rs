//! What a component is, for `berth plugin inspect`.

use wasmtime::component::Component;
use wasmtime::Engine;

use super::wit::{DRIVER, LOCAL_FILES, MAINTENANCE, PROVISIONER, SIGNED_READS, VALIDATOR};
use super::PluginSource;

/// The interfaces a component exports and imports, and what that makes it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: String,
    /// The Berth world it targets, with its version, when it targets one.
    pub world: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub provisions_storage: bool,
    /// Whether it names the files holding its content (`local-files`).
    pub names_local_files: bool,
    /// Whether it signs GETs of its content for the host (`signed-reads`).
    pub signs_reads: bool,
    pub size: usize,
    pub sha256: String,
}

impl Inspection {
    /// Whether the host reads its content without its `reader` (from the
    /// files it names, or by the GETs it signs), so that the reader needs a
    /// test of its own.
    pub fn reads_directly(&self) -> bool {
        self.names_local_files || self.signs_reads
    }
}

pub(crate) fn inspect(engine: &Engine, component: &Component, source: &PluginSource) -> Inspection {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    let version = |prefix: &str| exports.iter().find_map(|e| e.strip_prefix(prefix).map(str::to_string));
    let provisions_storage = version(PROVISIONER).is_some();
    let names_local_files = version(LOCAL_FILES).is_some();
    let signs_reads = version(SIGNED_READS).is_some();
    let world = version(DRIVER)
        .map(|v| {
            let world = if provisions_storage && signs_reads {
                "remote-storage-driver"
            } else if provisions_storage {
                "provisioning-storage-driver"
            } else if names_local_files && version(MAINTENANCE).is_some() {
                "maintained-local-storage-driver"
            } else if names_local_files {
                "local-storage-driver"
            } else {
                "storage-driver"
            };
            format!("berth:storage/{world}@{v}")
        })
        .or_else(|| version(VALIDATOR).map(|v| format!("berth:validate/config-validator@{v}")));
    Inspection {
        name: source.name.clone(),
        world,
        exports,
        imports,
        provisions_storage,
        names_local_files,
        signs_reads,
        size: source.wasm().len(),
        sha256: source.sha256().to_string(),
    }
}
