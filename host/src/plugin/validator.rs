//! Configuration-validator plugins (world `berth:validate/config-validator`):
//! one fresh, capability-less instance per call, under the same deadline and
//! memory limit as storage drivers. What the findings mean is the `validate`
//! module's business; this one only runs them.

use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::InstancePre;
use wasmtime::Engine;
use wasmtime_wasi::WasiCtxBuilder;

use super::call::{arm, new_store, outcome};
use super::state::HostState;
use super::wit::validate::exports::berth::validate::validator as wit;
use super::wit::validate::ConfigValidatorPre;
use super::{PluginError, PluginHostOptions};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding of a validator, as the WIT `finding` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Finding {
    /// The dotted configuration key, like `storage.s3.region`; empty for
    /// the configuration as a whole.
    pub field_path: String,
    pub severity: Severity,
    /// A CamelCase word, like `MissingRegion`.
    pub reason: String,
    /// A sentence that names the fix.
    pub message: String,
}

impl From<wit::Finding> for Finding {
    fn from(f: wit::Finding) -> Self {
        Finding {
            field_path: f.field_path,
            severity: match f.severity {
                wit::Severity::Error => Severity::Error,
                wit::Severity::Warning => Severity::Warning,
            },
            reason: f.reason,
            message: f.message,
        }
    }
}

/// Instantiates the validator `name` in a fresh Store with no filesystem, no
/// network and no environment, and calls `validate(config_json)`.
pub(crate) async fn run(
    name: Arc<str>,
    engine: &Engine,
    pre: InstancePre<HostState>,
    options: &PluginHostOptions,
    config_json: &str,
) -> Result<Vec<Finding>, PluginError> {
    let pre = ConfigValidatorPre::new(pre)
        .map_err(|err| PluginError::new(&name, "load", format!("is not a configuration validator: {err:#}")))?;
    let mut store = new_store(engine, name.clone(), WasiCtxBuilder::new(), None, options).await?;
    let fail = |op: &str, cause: String| {
        tracing::warn!(plugin = %name, call = op, "validator failed: {cause}");
        PluginError::new(&name, op, cause)
    };
    let deadline = arm(&mut store, options.call_timeout);
    let instance = tokio::time::timeout_at(deadline.into(), pre.instantiate_async(&mut store)).await;
    let guest = outcome(&store, options.call_timeout, instance).map_err(|cause| fail("instantiate", cause))?;
    let deadline = arm(&mut store, options.call_timeout);
    let call = guest.berth_validate_validator().call_validate(&mut store, config_json);
    let answer = tokio::time::timeout_at(deadline.into(), call).await;
    let findings = outcome(&store, options.call_timeout, answer).map_err(|cause| fail("validate", cause))?;
    Ok(findings.into_iter().map(Finding::from).collect())
}
