//! Checking a `Config` resource before it reaches a Deployment: read it,
//! map its spec to the registry pod's environment ([`super::mapping`]), load
//! that environment with the registry's own configuration loader, and run
//! every configuration validator on the result, with the spec and the
//! cluster facts the operator knows as context. Findings come back with the
//! spec's own field paths (`spec.storage.s3.regionEndpoint`).

use serde_json::Value;

use super::config::{Config, API_VERSION, KIND};
use super::mapping::{self, MappingError, RegistryEnv, CREDENTIALS_SECRET, NAMESPACE};
use crate::config::{self as registry_config, ConfigError};
use crate::plugin::PluginHost;
use crate::validate::{self, Finding, Severity, ValidateError, SET};

/// What the operator knows of the cluster besides the Config.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// The keys of the secret `image-registry-private-configuration-user`
    /// (never its values); empty when the secret does not exist.
    pub secret_keys: Vec<String>,
    /// The access modes of the claim `spec.storage.pvc` names, when known.
    pub pvc_access_modes: Option<Vec<String>>,
}

/// Reads a Config resource from YAML or JSON text. The finding says why it
/// cannot be read, naming the field when one is at fault.
pub fn read_resource(text: &str) -> Result<(Config, Value), Finding> {
    let value: Value = serde_norway::from_str(text).map_err(|err| Finding {
        field_path: String::new(),
        severity: Severity::Error,
        reason: "InvalidYaml".into(),
        message: format!("the resource is not valid YAML or JSON: {err}"),
    })?;
    let config = serde_path_to_error::deserialize(&value).map_err(|err| Finding {
        field_path: err.path().to_string(),
        severity: Severity::Error,
        reason: "InvalidValue".into(),
        message: format!("{}; write the value the Config API expects there", err.inner()),
    })?;
    Ok((config, value))
}

/// Reads and checks a Config resource given as text (see [`check_config`]).
pub async fn check_resource(
    host: &PluginHost,
    text: &str,
    facts: &ClusterFacts,
) -> Result<Vec<Finding>, ValidateError> {
    let (config, value) = match read_resource(text) {
        Ok(read) => read,
        Err(finding) => return Ok(vec![finding]),
    };
    let mut findings = Vec::new();
    if config.kind != KIND || config.api_version != API_VERSION {
        findings.push(Finding {
            field_path: if config.kind != KIND { "kind" } else { "apiVersion" }.into(),
            severity: Severity::Error,
            reason: "NotAnImageRegistryConfig".into(),
            message: format!(
                "this is `{} {}`, not the image registry's Config; write `apiVersion: {API_VERSION}` and `kind: {KIND}`",
                config.api_version, config.kind
            ),
        });
    }
    findings.extend(check_config(host, &config, value.get("spec"), facts).await?);
    validate::sort(&mut findings);
    Ok(findings)
}

/// Checks `config` (whose spec was written as `given_spec`, when known: its
/// unknown fields are warnings): every validator's findings on the
/// configuration the registry pod would get, with spec paths, plus warnings
/// for spec fields Berth does not apply yet.
pub async fn check_config(
    host: &PluginHost,
    config: &Config,
    given_spec: Option<&Value>,
    facts: &ClusterFacts,
) -> Result<Vec<Finding>, ValidateError> {
    let spec = &config.spec;
    let mut findings = Vec::new();
    if let Some(given) = given_spec {
        for field in super::config::unknown_spec_fields(given, spec) {
            let fix = match &field.suggestion {
                Some(near) => format!("did you mean `{near}`?"),
                None => "check its spelling or remove it".into(),
            };
            findings.push(warning(
                &field.path,
                "UnknownField",
                format!(
                    "`{}` is not a field of the image registry Config, so the API server drops it; {fix}",
                    field.path
                ),
            ));
        }
    }

    let mapped = mapping::registry_env(spec, &facts.secret_keys);
    let env = mapped.clone().unwrap_or_default();
    for (path, why) in &env.ignored {
        findings.push(warning(
            path,
            "NotApplied",
            format!("{why}; remove `{path}` or expect it to have no effect"),
        ));
    }
    let registry = match &mapped {
        Ok(env) => match registry_config::parse("version: 0.1\n", validation_env(env)) {
            Ok(loaded) => {
                for message in loaded.warnings {
                    findings.push(warning("spec", "ConfigWarning", message));
                }
                Some(loaded.config)
            }
            Err(err) => {
                findings.push(translate(load_error_finding(&err, env), env));
                None
            }
        },
        Err(_) => None,
    };

    let operator = operator_context(spec, &env, facts)?;
    let variables: Vec<String> = env.vars.iter().map(|v| v.name.clone()).collect();
    let drivers = host.storage_drivers();
    let input = validate::operator_validator_input(registry.as_ref(), &drivers, &variables, &operator)?;
    findings.extend(
        validate::run_validators(host, &input)
            .await
            .into_iter()
            .map(|f| translate(f, &env)),
    );

    // The validators report a spec that cannot be mapped; should none of
    // them (a replaced bundle), the spec must still not pass.
    if let Err(err) = &mapped {
        if !validate::has_errors(&findings) {
            let reason = match err {
                MappingError::NoStorage => "MissingStorage",
                MappingError::SeveralStorageTypes(_) => "MultipleStorageTypes",
            };
            findings.push(Finding {
                field_path: "spec.storage".into(),
                severity: Severity::Error,
                reason: reason.into(),
                message: err.to_string(),
            });
        }
    }
    validate::sort(&mut findings);
    Ok(findings)
}

/// `context.operator` of the validator input (see `crate::validate`).
fn operator_context(
    spec: &super::config::ImageRegistrySpec,
    env: &RegistryEnv,
    facts: &ClusterFacts,
) -> Result<Value, serde_json::Error> {
    let mut spec_json = serde_json::to_value(spec)?;
    if spec.http_secret.as_deref().is_some_and(|s| !s.is_empty()) {
        spec_json["httpSecret"] = SET.into();
    }
    Ok(serde_json::json!({
        "spec": spec_json,
        "fields": env.fields,
        "credentials-secret": {
            "namespace": NAMESPACE,
            "name": CREDENTIALS_SECRET,
            "keys": facts.secret_keys,
        },
        "pvc-access-modes": facts.pvc_access_modes,
    }))
}

/// The environment the loader reads: the literal `REGISTRY_*` variables.
/// Values from the secret are unknown here (their names are in the
/// validator's context), and the http secret is replaced by [`SET`] so it
/// never reaches a plugin.
fn validation_env(env: &RegistryEnv) -> Vec<(String, String)> {
    env.vars
        .iter()
        .filter(|v| v.name.starts_with("REGISTRY_"))
        .filter_map(|v| match &v.value {
            mapping::EnvValue::Literal(_) if v.name == "REGISTRY_HTTP_SECRET" => Some((v.name.clone(), SET.into())),
            mapping::EnvValue::Literal(value) => Some((v.name.clone(), value.clone())),
            mapping::EnvValue::Secret { .. } => None,
        })
        .collect()
}

/// A loader error on the mapped environment, at the spec field behind the
/// key or the variable it names.
fn load_error_finding(err: &ConfigError, env: &RegistryEnv) -> Finding {
    let mut finding = validate::config_error_finding(err);
    if let ConfigError::Syntax { origin, .. } = err {
        let var = origin.strip_prefix("environment variable ").unwrap_or(origin);
        if let Some(path) = env.spec_path_of_var(var) {
            finding.field_path = path;
        }
    }
    finding
}

/// A registry configuration path becomes the spec field it came from;
/// spec paths, `plugins.*` and paths the spec does not set stay as they are.
fn translate(mut finding: Finding, env: &RegistryEnv) -> Finding {
    let path = &finding.field_path;
    let keep = path.is_empty() || path == "spec" || path.starts_with("spec.") || path.starts_with("plugins.");
    if !keep {
        if let Some(spec) = env.spec_path(path) {
            finding.field_path = spec;
        }
    }
    finding
}

fn warning(path: &str, reason: &str, message: String) -> Finding {
    Finding {
        field_path: path.into(),
        severity: Severity::Warning,
        reason: reason.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_its_field() {
        let err = read_resource("kind: Config\nspec:\n  storage:\n    s3:\n      chunkSizeMiB: ten\n").unwrap_err();
        assert_eq!(err.field_path, "spec.storage.s3.chunkSizeMiB");
        assert_eq!(err.reason, "InvalidValue");
        let err = read_resource("spec:\n  routes:\n  - name: [x]\n").unwrap_err();
        assert_eq!(err.field_path, "spec.routes[0].name");
        let err = read_resource("spec: [oops\n").unwrap_err();
        assert_eq!(err.reason, "InvalidYaml");
    }

    #[test]
    fn registry_paths_become_spec_paths() {
        let spec = serde_json::from_value(serde_json::json!({"storage": {"s3": {"region": "r"}}})).unwrap();
        let env = mapping::registry_env(&spec, &[]).unwrap();
        let finding = |path: &str| Finding {
            field_path: path.into(),
            severity: Severity::Error,
            reason: "R".into(),
            message: String::new(),
        };
        for (from, to) in [
            ("storage.s3.regionendpoint", "spec.storage.s3.regionEndpoint"),
            ("storage.s3.secretkey", "spec.storage.s3"),
            ("spec.replicas", "spec.replicas"),
            ("plugins.registry-rules", "plugins.registry-rules"),
            ("http.addr", "http.addr"),
        ] {
            assert_eq!(translate(finding(from), &env).field_path, to);
        }
        let err = ConfigError::Syntax {
            origin: "environment variable REGISTRY_STORAGE_S3_REGION".into(),
            message: "bad".into(),
        };
        assert_eq!(load_error_finding(&err, &env).field_path, "spec.storage.s3.region");
    }

    #[test]
    fn the_http_secret_never_reaches_the_loader() {
        let spec =
            serde_json::from_value(serde_json::json!({"storage": {"emptyDir": {}}, "httpSecret": "hush"})).unwrap();
        let env = mapping::registry_env(&spec, &[]).unwrap();
        let vars = validation_env(&env);
        assert!(vars.contains(&("REGISTRY_HTTP_SECRET".into(), SET.into())));
        assert!(!vars.iter().any(|(_, v)| v == "hush"));
    }
}
