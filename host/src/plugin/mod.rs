//! The wasmtime host for plugins.

/// A plugin failed in a way the contract does not describe.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`: {call}: {cause}")]
pub struct PluginError {
    pub plugin: String,
    pub call: String,
    pub cause: String,
}
