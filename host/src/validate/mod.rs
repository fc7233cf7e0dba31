//! Running configuration-validation plugins and turning findings into
//! errors: every validator (bundled, like `registry-rules`, or dropped into
//! the plugin directory) sees the registry configuration as JSON and answers
//! with findings; an `error` finding stops `berth serve` before it binds.
//!
//! # What a validator receives
//!
//! ```json
//! {
//!   "config": { "log": {...}, "storage": {"s3": {"region": "...", ...}, "delete": {...}, ...},
//!               "http": {...}, "health": {...}, "plugins": {...} },
//!   "context": {
//!     "storage-drivers": ["filesystem", "inmemory"],
//!     "environment": { "REGISTRY_STORAGE_S3_ACCESSKEY": "<set>" }
//!   }
//! }
//! ```
//!
//! - `config` is the configuration as Berth read it, after the `REGISTRY_*`
//!   overrides, in distribution's shape (the [`Config`] serialised): storage
//!   driver parameters are strings, durations Go durations, absent optional
//!   values `null`.
//! - `context.storage-drivers`: the storage drivers installed (bundled and
//!   dropped in), sorted.
//! - `context.environment`: the names of the `REGISTRY_*` variables that are
//!   set and not empty, each mapped to `"<set>"`; values are never passed.
//!
//! # When the configuration comes from an operator `Config`
//!
//! The operator maps the `Config` resource's spec to the registry pod's
//! `REGISTRY_*` environment (`crate::operator::mapping`) and loads it like
//! any configuration, so `config` is what the pod would run with, checked by
//! the same rules. The context then has one more member, `operator`:
//!
//! ```json
//! "context": {
//!   "storage-drivers": [...],
//!   "environment": { "REGISTRY_STORAGE": "<set>", "REGISTRY_STORAGE_S3_ACCESSKEY": "<set>", ... },
//!   "operator": {
//!     "spec": { "storage": {"s3": {"bucket": "...", "regionEndpoint": null, ...}}, "replicas": 2, ... },
//!     "fields": { "storage.s3.regionendpoint": "spec.storage.s3.regionEndpoint", ... },
//!     "credentials-secret": { "namespace": "openshift-image-registry",
//!                             "name": "image-registry-private-configuration-user",
//!                             "keys": ["REGISTRY_STORAGE_S3_ACCESSKEY"] },
//!     "pvc-access-modes": ["ReadWriteOnce"]
//!   }
//! }
//! ```
//!
//! - `config` is `null` when the spec cannot be mapped (no storage type, or
//!   several): the rules about the spec still run.
//! - `environment`: the names of the pod's `REGISTRY_*` variables, those
//!   taken from the credentials secret included.
//! - `operator.spec`: the spec as Berth read it, every field present (absent
//!   ones `null`), camelCase; `httpSecret` is `"<set>"` when set, never its
//!   value.
//! - `operator.fields`: which spec field each registry configuration path
//!   came from. The host turns a finding's registry path into the spec path
//!   with this table (the longest mapped prefix), so a validator may answer
//!   in either; a validator uses it to name the field in its message.
//! - `operator.credentials-secret.keys`: the keys the secret has (never the
//!   values); `pvc-access-modes`: the claim's access modes when
//!   `spec.storage.pvc` is used and they are known, else `null`.

use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::plugin::PluginHost;
pub use crate::plugin::{Finding, Severity};

/// What stands in for a variable's value in `context.environment`.
pub const SET: &str = "<set>";

/// Why the validators could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot turn the configuration into JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct Input<'a> {
    config: Option<&'a Config>,
    context: Context<'a>,
}

#[derive(Serialize)]
struct Context<'a> {
    #[serde(rename = "storage-drivers")]
    storage_drivers: &'a [String],
    environment: std::collections::BTreeMap<&'a str, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<&'a serde_json::Value>,
}

/// The JSON every validator receives (see the module documentation).
pub fn validator_input(
    config: &Config,
    known_drivers: &[String],
    environment: &[(String, String)],
) -> Result<String, ValidateError> {
    let environment = environment
        .iter()
        .filter(|(name, value)| name.starts_with("REGISTRY_") && !value.is_empty())
        .map(|(name, _)| (name.as_str(), SET))
        .collect();
    let input = Input {
        config: Some(config),
        context: Context {
            storage_drivers: known_drivers,
            environment,
            operator: None,
        },
    };
    Ok(serde_json::to_string(&input)?)
}

/// The JSON every validator receives for an operator `Config` (see the
/// module documentation): `config` as loaded from the mapped environment,
/// `variables` the names of the pod's variables, `operator` the operator's
/// part of the context.
pub fn operator_validator_input(
    config: Option<&Config>,
    known_drivers: &[String],
    variables: &[String],
    operator: &serde_json::Value,
) -> Result<String, ValidateError> {
    let environment = variables
        .iter()
        .filter(|name| name.starts_with("REGISTRY_"))
        .map(|name| (name.as_str(), SET))
        .collect();
    let input = Input {
        config,
        context: Context {
            storage_drivers: known_drivers,
            environment,
            operator: Some(operator),
        },
    };
    Ok(serde_json::to_string(&input)?)
}

/// Runs every validator the host knows on `config`, with `known_drivers`
/// (usually [`PluginHost::storage_drivers`]) and the names of the set
/// `REGISTRY_*` variables of `environment` as context; returns all findings,
/// sorted by field path (then severity, reason). A validator that fails (a
/// trap, its deadline, its memory limit) is an error finding at
/// `plugins.<name>` with reason `ValidatorFailed`: a check that did not run
/// must not pass silently. When no validator found an error, the storage
/// driver's own `init` checks its parameters too (without reaching its
/// backend): a rejection is an error at `storage.<driver>` with reason
/// `DriverRejectedParameters`.
pub async fn validate_registry_config(
    host: &PluginHost,
    config: &Config,
    known_drivers: &[String],
    environment: &[(String, String)],
) -> Result<Vec<Finding>, ValidateError> {
    let input = validator_input(config, known_drivers, environment)?;
    let mut findings = run_validators(host, &input).await;
    // The auth files as serving reads them: an htpasswd file present and
    // bcrypt, token keys present and parsable.
    if let Err((field, why)) = crate::auth::Auth::from_config(&config.auth) {
        let (reason, fix) = match field {
            "auth.htpasswd.path" => (
                "HtpasswdUnusable",
                "give an htpasswd file of bcrypt entries (`htpasswd -Bc FILE USER`)",
            ),
            _ => (
                "TokenKeysUnusable",
                "give the token server's PEM root certificates or its JWKS",
            ),
        };
        findings.push(Finding {
            field_path: field.into(),
            severity: Severity::Error,
            reason: reason.into(),
            message: format!("{why}; {fix}"),
        });
    }
    // The driver's own check of its parameters, as starting it would do,
    // so `config validate` refuses what `serve` refuses; only when the
    // validators found nothing wrong, which would say it twice.
    let (driver, parameters) = config.storage_driver();
    if let Some(unusable) = unusable_plugin(host, driver, known_drivers) {
        // The plugin is there but cannot be used: that is the cause, not
        // a missing driver.
        findings.retain(|f| !(f.field_path == format!("storage.{driver}") && f.reason == "UnknownStorageDriver"));
        findings.push(unusable);
    }
    if !has_errors(&findings) && known_drivers.iter().any(|d| d == driver) {
        if let Err(err) = host.check_storage_parameters(driver, parameters).await {
            findings.push(Finding {
                field_path: format!("storage.{driver}"),
                severity: Severity::Error,
                reason: "DriverRejectedParameters".into(),
                message: format!("{err}; fix the parameter it names"),
            });
        }
    }
    Ok(findings)
}

/// The finding for a configured driver whose plugin exists but is not a
/// storage driver the host can load (a corrupt or wrong `.wasm`), naming
/// the file and why.
fn unusable_plugin(host: &PluginHost, driver: &str, known_drivers: &[String]) -> Option<Finding> {
    if known_drivers.iter().any(|d| d == driver) {
        return None;
    }
    let source = host.plugins().find(|p| p.name == driver)?;
    let file = match &source.origin {
        crate::plugin::Origin::File(path) => path.display().to_string(),
        crate::plugin::Origin::Bundled => format!("the bundled {driver}"),
        crate::plugin::Origin::Oci(reference) => format!("{driver} pulled from {reference}"),
    };
    let cause = match host.inspect(driver) {
        Err(err) => err.to_string(),
        Ok(_) => "it is a component, but not a storage driver: it does not export berth:storage/driver".into(),
    };
    Some(Finding {
        field_path: format!("storage.{driver}"),
        severity: Severity::Error,
        reason: "PluginNotLoadable".into(),
        message: format!("{file} is the configured storage driver but cannot be used: {cause}; replace it with a storage driver component"),
    })
}

/// Runs every validator the host knows on `input` (from [`validator_input`]
/// or [`operator_validator_input`]); all findings, sorted. A validator that
/// fails is an error finding at `plugins.<name>` (see
/// [`validate_registry_config`]).
pub async fn run_validators(host: &PluginHost, input: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for name in host.validators() {
        match host.run_validator(&name, input).await {
            Ok(found) => findings.extend(found),
            Err(err) => findings.push(Finding {
                field_path: format!("plugins.{name}"),
                severity: Severity::Error,
                reason: "ValidatorFailed".into(),
                message: format!("the configuration validator could not check the configuration: {err}"),
            }),
        }
    }
    sort(&mut findings);
    findings
}

/// Sorts by field path, then severity (errors first), reason and message.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.field_path, a.severity, &a.reason, &a.message).cmp(&(&b.field_path, b.severity, &b.reason, &b.message))
    });
}

/// A configuration that cannot be read, as a finding: the key it names (empty
/// for the file as a whole), reason `InvalidValue`, `InvalidYaml` or
/// `Unreadable`.
pub fn config_error_finding(err: &ConfigError) -> Finding {
    let (field_path, reason, message) = match err {
        ConfigError::Invalid { key, message } => (key.clone(), "InvalidValue", message.clone()),
        ConfigError::Syntax { .. } => (String::new(), "InvalidYaml", err.to_string()),
        ConfigError::Read { .. } => (String::new(), "Unreadable", err.to_string()),
    };
    Finding {
        field_path,
        severity: Severity::Error,
        reason: reason.into(),
        message,
    }
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// One line: `error  storage.s3.region  MissingRegion: set ...`.
pub fn format_text(finding: &Finding) -> String {
    let path = if finding.field_path.is_empty() {
        "(file)"
    } else {
        &finding.field_path
    };
    format!(
        "{}  {path}  {}: {}",
        finding.severity.as_str(),
        finding.reason,
        finding.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_carries_config_drivers_and_only_the_names_of_set_variables() {
        let config = crate::config::parse("version: 0.1\nstorage: inmemory\n", Vec::new())
            .unwrap()
            .config;
        let env = vec![
            ("REGISTRY_STORAGE_S3_ACCESSKEY".to_string(), "AKIA-secret".to_string()),
            ("REGISTRY_EMPTY".to_string(), String::new()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let json = validator_input(&config, &["inmemory".into()], &env).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["context"]["storage-drivers"], serde_json::json!(["inmemory"]));
        assert_eq!(
            value["context"]["environment"],
            serde_json::json!({"REGISTRY_STORAGE_S3_ACCESSKEY": "<set>"})
        );
        assert!(value["config"]["storage"]["inmemory"].is_object());
        assert!(!json.contains("AKIA-secret"));
    }

    #[test]
    fn findings_sort_by_path_then_errors_first() {
        let f = |path: &str, severity| Finding {
            field_path: path.into(),
            severity,
            reason: "R".into(),
            message: String::new(),
        };
        let mut findings = vec![
            f("storage.s3", Severity::Warning),
            f("http.addr", Severity::Error),
            f("storage.s3", Severity::Error),
        ];
        sort(&mut findings);
        let order: Vec<_> = findings.iter().map(|f| (f.field_path.as_str(), f.severity)).collect();
        assert_eq!(
            order,
            [
                ("http.addr", Severity::Error),
                ("storage.s3", Severity::Error),
                ("storage.s3", Severity::Warning)
            ]
        );
        assert!(has_errors(&findings));
        assert_eq!(format_text(&findings[0]), "error  http.addr  R: ");
    }
}
