//! From a `Config` spec to the registry pod's environment: the `REGISTRY_*`
//! variables Berth's registry reads as its configuration (see
//! `crate::config`), the proxy variables, and which keys of the credentials
//! secret it takes. This is the one mapping: the operator puts these
//! variables on the Deployment, and validation loads them through the same
//! configuration loader `berth serve` uses, so a Config is checked by the
//! same rules as a `config.yml`.
//!
//! | spec | registry |
//! |---|---|
//! | `storage.emptyDir` / `storage.pvc` | `filesystem` under `/registry` (the volume) |
//! | `storage.s3.{bucket,region,regionEndpoint,encrypt,keyID,virtualHostedStyle}` | `storage.s3.<lower-case name>` |
//! | `storage.s3.chunkSizeMiB` | `storage.s3.chunksize` in bytes, and `plugins.memorylimitmib` raised to hold a part when above 240 |
//! | S3 credentials | `REGISTRY_STORAGE_S3_ACCESSKEY`/`_SECRETKEY` from the secret `image-registry-private-configuration-user`, when it has them |
//! | `storage.{gcs,swift,azure,ibmcos,oss}` | the driver of that name, each scalar field a parameter (lower-cased) |
//! | `logLevel` (Normal info, else debug); `logging` (0 error, 1 warn, 2-3 info, else debug) | `log.level` |
//! | `readOnly` | `storage.maintenance.readonly.enabled` |
//! | `disableRedirect` | `storage.redirect.disable` |
//! | `httpSecret` | `http.secret` |
//! | `proxy.{http,https,noProxy}` | `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` |
//! | `garbageCollection.{enabled,interval,delay,deleteUntagged}` (Berth's own) | `storage.gc.<lower-case name>` |
//! | `garbageCollection.retention` (Berth's own) | `storage.retention.policies` |
//!
//! Always: `http.addr` `:5000` and `storage.delete.enabled` (image pruning
//! deletes through the registry's API). The rest of the spec (replicas,
//! routes, scheduling, resources) shapes the Deployment and Route, not the
//! registry's configuration.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{ImageRegistrySpec, LogLevel, Storage};

/// `plugins.memorylimitmib` when nothing sets it.
const DEFAULT_PLUGIN_MEMORY_MIB: i64 = crate::plugin::DEFAULT_MEMORY_LIMIT_MIB as i64;
/// The most a (32-bit) plugin can address; registry-rules names a chunk
/// size that needs more.
const MAX_PLUGIN_MEMORY_MIB: i64 = crate::plugin::MAX_MEMORY_LIMIT_MIB as i64;

/// The secret the user puts S3 credentials in (namespace [`NAMESPACE`]).
pub const CREDENTIALS_SECRET: &str = "image-registry-private-configuration-user";
/// Where the registry runs.
pub const NAMESPACE: &str = "openshift-image-registry";
/// The keys of [`CREDENTIALS_SECRET`] holding S3 credentials; each becomes
/// the variable of the same name.
pub const S3_ACCESS_KEY: &str = "REGISTRY_STORAGE_S3_ACCESSKEY";
pub const S3_SECRET_KEY: &str = "REGISTRY_STORAGE_S3_SECRETKEY";
/// Where the registry pod mounts an emptyDir or PVC volume.
pub const STORAGE_ROOT: &str = "/registry";

/// One variable of the registry container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    /// Kubernetes' `valueFrom.secretKeyRef`.
    Secret {
        secret: String,
        key: String,
    },
}

/// The registry pod's environment for a spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryEnv {
    pub vars: Vec<EnvVar>,
    /// Registry configuration path (`storage.s3.regionendpoint`) to the spec
    /// field it came from (`spec.storage.s3.regionEndpoint`).
    pub fields: BTreeMap<String, String>,
    /// Spec fields that are set but Berth does not apply yet: (path, why).
    pub ignored: Vec<(String, String)>,
}

impl RegistryEnv {
    /// The spec field behind a registry configuration path: the longest
    /// mapped prefix, with what follows it appended.
    pub fn spec_path(&self, registry_path: &str) -> Option<String> {
        let mut prefix = registry_path;
        loop {
            if let Some(spec) = self.fields.get(prefix) {
                return Some(format!("{spec}{}", &registry_path[prefix.len()..]));
            }
            prefix = &prefix[..prefix.rfind('.')?];
        }
    }

    /// The spec field behind a `REGISTRY_*` variable.
    pub fn spec_path_of_var(&self, var: &str) -> Option<String> {
        self.spec_path(&registry_path(var)?)
    }
}

/// Why a spec has no registry configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("spec.storage sets no storage type; set exactly one of emptyDir, s3, gcs, swift, pvc, azure, ibmcos, oss")]
    NoStorage,
    #[error("spec.storage sets {} storage types ({}); keep exactly one", .0.len(), .0.join(", "))]
    SeveralStorageTypes(Vec<&'static str>),
}

/// `storage.s3.regionendpoint` for `REGISTRY_STORAGE_S3_REGIONENDPOINT`, as
/// the configuration loader reads a variable.
pub fn registry_path(var: &str) -> Option<String> {
    let rest = var.strip_prefix("REGISTRY_")?;
    Some(rest.to_lowercase().replace('_', "."))
}

/// The registry pod's environment for `spec`, given the keys the credentials
/// secret has (never its values). A key the secret lacks gets no variable,
/// as a reference to a missing key would stop the pod from starting.
pub fn registry_env(spec: &ImageRegistrySpec, secret_keys: &[String]) -> Result<RegistryEnv, MappingError> {
    let mut env = Builder::default();
    env.literal("REGISTRY_HTTP_ADDR", ":5000", None);
    // The metrics, on the port the Service and the scrape annotations name.
    let metrics = format!(":{}", super::resources::METRICS_PORT);
    env.literal("REGISTRY_HTTP_DEBUG_ADDR", &metrics, None);
    env.literal("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true", None);
    env.literal("REGISTRY_STORAGE_DELETE_ENABLED", "true", None);
    storage(&spec.storage, secret_keys, &mut env)?;
    log_level(spec, &mut env);
    env.flag(
        "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
        spec.read_only,
        "spec.readOnly",
    );
    env.flag(
        "REGISTRY_STORAGE_REDIRECT_DISABLE",
        spec.disable_redirect,
        "spec.disableRedirect",
    );
    env.optional("REGISTRY_HTTP_SECRET", spec.http_secret.as_deref(), "spec.httpSecret");
    if let Some(proxy) = &spec.proxy {
        // Not registry configuration: the registry's HTTP client reads them.
        env.optional("HTTP_PROXY", proxy.http.as_deref(), "spec.proxy.http");
        env.optional("HTTPS_PROXY", proxy.https.as_deref(), "spec.proxy.https");
        env.optional("NO_PROXY", proxy.no_proxy.as_deref(), "spec.proxy.noProxy");
    }
    if let Some(gc) = &spec.garbage_collection {
        let field = "spec.garbageCollection";
        env.flag("REGISTRY_STORAGE_GC_ENABLED", gc.enabled, &format!("{field}.enabled"));
        env.optional(
            "REGISTRY_STORAGE_GC_INTERVAL",
            gc.interval.as_deref(),
            &format!("{field}.interval"),
        );
        env.optional(
            "REGISTRY_STORAGE_GC_DELAY",
            gc.delay.as_deref(),
            &format!("{field}.delay"),
        );
        env.flag(
            "REGISTRY_STORAGE_GC_DELETEUNTAGGED",
            gc.delete_untagged,
            &format!("{field}.deleteUntagged"),
        );
        // One variable holding the list, read as YAML (JSON is YAML) by the
        // configuration loader, in its own key names.
        let policies: Vec<Value> = gc
            .retention
            .iter()
            .map(|policy| {
                let mut keep = serde_json::Map::new();
                if let Some(newest) = policy.keep.newest {
                    keep.insert("newest".into(), newest.into());
                }
                if let Some(within) = &policy.keep.pushed_within {
                    keep.insert("pushedwithin".into(), within.clone().into());
                }
                if !policy.keep.patterns.is_empty() {
                    keep.insert("patterns".into(), policy.keep.patterns.clone().into());
                }
                serde_json::json!({"repositories": policy.repositories, "keep": keep})
            })
            .collect();
        let policies = (!policies.is_empty()).then(|| Value::Array(policies).to_string());
        env.optional(
            "REGISTRY_STORAGE_RETENTION_POLICIES",
            policies.as_deref(),
            &format!("{field}.retention"),
        );
    }
    if let Some(requests) = &spec.requests {
        for (kind, limits) in [("READ", &requests.read), ("WRITE", &requests.write)] {
            let Some(limits) = limits else { continue };
            let field = format!("spec.requests.{}", kind.to_lowercase());
            let numbers = [
                ("MAXRUNNING", "maxRunning", limits.max_running),
                ("MAXINQUEUE", "maxInQueue", limits.max_in_queue),
            ];
            for (name, camel, value) in numbers {
                let value = value.map(|v| v.to_string());
                let var = format!("REGISTRY_REQUESTS_{kind}_{name}");
                env.optional(&var, value.as_deref(), &format!("{field}.{camel}"));
            }
            let var = format!("REGISTRY_REQUESTS_{kind}_MAXWAITINQUEUE");
            env.optional(
                &var,
                limits.max_wait_in_queue.as_deref(),
                &format!("{field}.maxWaitInQueue"),
            );
        }
    }
    Ok(env.0)
}

#[derive(Default)]
struct Builder(RegistryEnv);

impl Builder {
    /// Sets `var`; `spec` is the field it came from, for findings.
    fn literal(&mut self, var: &str, value: &str, spec: Option<&str>) {
        self.0.vars.push(EnvVar {
            name: var.into(),
            value: EnvValue::Literal(value.into()),
        });
        if let (Some(spec), Some(path)) = (spec, registry_path(var)) {
            self.0.fields.insert(path, spec.into());
        }
    }

    /// Sets `var` when `value` is set and not empty (the API's omitempty:
    /// an empty string is an absent field). The field is in the table
    /// either way: a finding about a missing value names it too.
    fn optional(&mut self, var: &str, value: Option<&str>, spec: &str) {
        match value.filter(|v| !v.is_empty()) {
            Some(value) => self.literal(var, value, Some(spec)),
            None => {
                if let Some(path) = registry_path(var) {
                    self.field(&path, spec);
                }
            }
        }
    }

    /// Sets `var` to `true` when `on` (false is every flag's default).
    fn flag(&mut self, var: &str, on: bool, spec: &str) {
        self.optional(var, on.then_some("true"), spec);
    }

    fn field(&mut self, registry: &str, spec: &str) {
        self.0.fields.insert(registry.into(), spec.into());
    }
}

fn storage(storage: &Storage, secret_keys: &[String], env: &mut Builder) -> Result<(), MappingError> {
    let types = storage.types();
    let kind = match types.as_slice() {
        [] => return Err(MappingError::NoStorage),
        [one] => *one,
        _ => return Err(MappingError::SeveralStorageTypes(types)),
    };
    env.field("storage", "spec.storage");
    match kind {
        "emptyDir" | "pvc" => {
            let spec = format!("spec.storage.{kind}");
            env.literal("REGISTRY_STORAGE", "filesystem", None);
            env.literal("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", STORAGE_ROOT, Some(&spec));
            env.field("storage.filesystem", &spec);
        }
        "s3" => {
            if let Some(s3) = &storage.s3 {
                s3_env(s3, secret_keys, env);
            }
        }
        other => {
            // No bundled driver: a dropped-in plugin of that name gets the
            // fields as parameters.
            let fields = match other {
                "gcs" => serde_json::to_value(&storage.gcs),
                "swift" => serde_json::to_value(&storage.swift),
                "azure" => serde_json::to_value(&storage.azure),
                "ibmcos" => serde_json::to_value(&storage.ibmcos),
                _ => serde_json::to_value(&storage.oss),
            };
            generic_env(other, &fields.unwrap_or(Value::Null), env);
        }
    }
    Ok(())
}

fn s3_env(s3: &super::config::S3, secret_keys: &[String], env: &mut Builder) {
    env.literal("REGISTRY_STORAGE", "s3", None);
    env.field("storage.s3", "spec.storage.s3");
    env.optional(
        "REGISTRY_STORAGE_S3_BUCKET",
        s3.bucket.as_deref(),
        "spec.storage.s3.bucket",
    );
    env.optional(
        "REGISTRY_STORAGE_S3_REGION",
        s3.region.as_deref(),
        "spec.storage.s3.region",
    );
    env.optional(
        "REGISTRY_STORAGE_S3_REGIONENDPOINT",
        s3.region_endpoint.as_deref(),
        "spec.storage.s3.regionEndpoint",
    );
    let chunk_bytes = s3.chunk_size_mib.map(|mib| (i128::from(mib) << 20).to_string());
    env.optional(
        "REGISTRY_STORAGE_S3_CHUNKSIZE",
        chunk_bytes.as_deref(),
        "spec.storage.s3.chunkSizeMiB",
    );
    // The S3 driver holds a part in plugin memory, plus about 16 MiB (the
    // margin registry-rules checks): a large chunk size raises the limit.
    let plugin_memory = s3
        .chunk_size_mib
        .map(|mib| mib.saturating_add(16).min(MAX_PLUGIN_MEMORY_MIB))
        .filter(|&mib| mib > DEFAULT_PLUGIN_MEMORY_MIB)
        .map(|mib| mib.to_string());
    env.optional(
        "REGISTRY_PLUGINS_MEMORYLIMITMIB",
        plugin_memory.as_deref(),
        "spec.storage.s3.chunkSizeMiB",
    );
    env.flag("REGISTRY_STORAGE_S3_ENCRYPT", s3.encrypt, "spec.storage.s3.encrypt");
    env.optional(
        "REGISTRY_STORAGE_S3_KEYID",
        s3.key_id.as_deref(),
        "spec.storage.s3.keyID",
    );
    env.flag(
        "REGISTRY_STORAGE_S3_VIRTUALHOSTEDSTYLE",
        s3.virtual_hosted_style,
        "spec.storage.s3.virtualHostedStyle",
    );
    // The credentials have no spec field: findings about them belong to s3.
    for key in [S3_ACCESS_KEY, S3_SECRET_KEY] {
        if let Some(path) = registry_path(key) {
            env.field(&path, "spec.storage.s3");
        }
        if secret_keys.iter().any(|k| k == key) {
            env.0.vars.push(EnvVar {
                name: key.into(),
                value: EnvValue::Secret {
                    secret: CREDENTIALS_SECRET.into(),
                    key: key.into(),
                },
            });
        }
    }
    if s3.cloud_front.is_some() {
        env.0.ignored.push((
            "spec.storage.s3.cloudFront".into(),
            "Berth has no CloudFront middleware; blobs are served from S3 directly".into(),
        ));
    }
    if s3
        .trusted_ca
        .as_ref()
        .and_then(|ca| ca.name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        env.0.ignored.push((
            "spec.storage.s3.trustedCA".into(),
            "a CA bundle from a config map is not passed to the S3 plugin yet; it trusts the system roots".into(),
        ));
    }
}

/// `storage.<kind>` with each scalar field as a lower-cased parameter.
fn generic_env(kind: &str, fields: &Value, env: &mut Builder) {
    let upper = kind.to_uppercase();
    env.literal("REGISTRY_STORAGE", kind, None);
    env.field(&format!("storage.{kind}"), &format!("spec.storage.{kind}"));
    let Some(fields) = fields.as_object() else { return };
    for (name, value) in fields {
        let spec = format!("spec.storage.{kind}.{name}");
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            _ => {
                env.0.ignored.push((
                    spec,
                    "only scalar fields are passed to a storage plugin; this one is not".into(),
                ));
                continue;
            }
        };
        let var = format!("REGISTRY_STORAGE_{upper}_{}", name.to_uppercase());
        env.optional(&var, Some(&text), &spec);
    }
}

/// `REGISTRY_LOG_LEVEL` from `logLevel`, or from the deprecated `logging`
/// when `logLevel` is absent or Normal (the API server defaults `logLevel`
/// to Normal, which would otherwise always hide `logging`). A word that is
/// not a level is left to the validators to report.
fn log_level(spec: &ImageRegistrySpec, env: &mut Builder) {
    let word = spec.log_level.as_deref().and_then(LogLevel::parse);
    let (level, from) = match (word, spec.logging) {
        (Some(level), _) if level != LogLevel::Normal => (Some("debug"), "spec.logLevel"),
        (_, Some(n)) => (Some(logging_level(n)), "spec.logging"),
        (Some(_), None) => (Some("info"), "spec.logLevel"),
        (None, None) => (None, "spec.logLevel"),
    };
    env.optional("REGISTRY_LOG_LEVEL", level, from);
}

/// The deprecated numeric `logging`: 0 error, 1 warn, 2-3 info, else debug.
pub fn logging_level(n: i64) -> &'static str {
    match n {
        0 => "error",
        1 => "warn",
        2 | 3 => "info",
        _ => "debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> ImageRegistrySpec {
        serde_json::from_value(json).unwrap()
    }

    fn literals(env: &RegistryEnv) -> Vec<(String, String)> {
        env.vars
            .iter()
            .filter_map(|v| match &v.value {
                EnvValue::Literal(value) => Some((v.name.clone(), value.clone())),
                EnvValue::Secret { .. } => None,
            })
            .collect()
    }

    fn var<'a>(env: &'a RegistryEnv, name: &str) -> Option<&'a EnvValue> {
        env.vars.iter().find(|v| v.name == name).map(|v| &v.value)
    }

    fn lit(value: &str) -> Option<EnvValue> {
        Some(EnvValue::Literal(value.into()))
    }

    #[test]
    fn s3_maps_field_by_field() {
        let env = registry_env(
            &spec(serde_json::json!({"storage": {"s3": {
                "bucket": "b-1", "region": "eu-west-1", "regionEndpoint": "https://s3.example.com",
                "chunkSizeMiB": 10, "encrypt": true, "keyID": "k", "virtualHostedStyle": true
            }}})),
            &[S3_ACCESS_KEY.into(), S3_SECRET_KEY.into(), "OTHER".into()],
        )
        .unwrap();
        let table = [
            ("REGISTRY_STORAGE", "s3"),
            ("REGISTRY_STORAGE_S3_BUCKET", "b-1"),
            ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
            ("REGISTRY_STORAGE_S3_REGIONENDPOINT", "https://s3.example.com"),
            ("REGISTRY_STORAGE_S3_CHUNKSIZE", "10485760"),
            ("REGISTRY_STORAGE_S3_ENCRYPT", "true"),
            ("REGISTRY_STORAGE_S3_KEYID", "k"),
            ("REGISTRY_STORAGE_S3_VIRTUALHOSTEDSTYLE", "true"),
            ("REGISTRY_HTTP_ADDR", ":5000"),
            ("REGISTRY_HTTP_DEBUG_ADDR", ":5001"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ];
        for (name, value) in table {
            assert_eq!(var(&env, name), lit(value).as_ref(), "{name}");
        }
        for key in [S3_ACCESS_KEY, S3_SECRET_KEY] {
            assert_eq!(
                var(&env, key),
                Some(&EnvValue::Secret {
                    secret: CREDENTIALS_SECRET.into(),
                    key: key.into()
                })
            );
        }
        assert_eq!(var(&env, "OTHER"), None);
        assert_eq!(env.vars.len(), table.len() + 2);
        for (registry, spec) in [
            ("storage.s3.region", "spec.storage.s3.region"),
            ("storage.s3.regionendpoint", "spec.storage.s3.regionEndpoint"),
            ("storage.s3.chunksize", "spec.storage.s3.chunkSizeMiB"),
            ("storage.s3.keyid", "spec.storage.s3.keyID"),
            ("storage.s3.accesskey", "spec.storage.s3"),
            ("storage.s3", "spec.storage.s3"),
            ("storage.s3.unknown", "spec.storage.s3.unknown"),
            ("storage", "spec.storage"),
        ] {
            assert_eq!(env.spec_path(registry).as_deref(), Some(spec), "{registry}");
        }
        assert_eq!(env.spec_path("http.addr"), None);
        assert_eq!(
            env.spec_path_of_var("REGISTRY_STORAGE_S3_REGIONENDPOINT").as_deref(),
            Some("spec.storage.s3.regionEndpoint")
        );
        assert!(env.ignored.is_empty());
    }

    #[test]
    fn a_large_chunk_size_raises_the_plugin_memory_limit() {
        for (chunk, limit) in [(10, None), (240, None), (1024, Some("1040")), (5120, Some("4096"))] {
            let env = registry_env(
                &spec(serde_json::json!({"storage": {"s3": {"bucket": "b-1", "chunkSizeMiB": chunk}}})),
                &[],
            )
            .unwrap();
            let expected = limit.and_then(lit);
            assert_eq!(
                var(&env, "REGISTRY_PLUGINS_MEMORYLIMITMIB"),
                expected.as_ref(),
                "{chunk}"
            );
        }
    }

    #[test]
    fn credentials_come_only_for_the_keys_the_secret_has() {
        let s3 = spec(serde_json::json!({"storage": {"s3": {"bucket": "b-1", "region": "r"}}}));
        let env = registry_env(&s3, &[S3_ACCESS_KEY.into()]).unwrap();
        assert!(var(&env, S3_ACCESS_KEY).is_some());
        assert!(var(&env, S3_SECRET_KEY).is_none());
        let env = registry_env(&s3, &[]).unwrap();
        assert!(var(&env, S3_ACCESS_KEY).is_none());
    }

    #[test]
    fn empty_dir_and_pvc_are_the_filesystem_under_the_volume() {
        for kind in ["emptyDir", "pvc"] {
            let env = registry_env(&spec(serde_json::json!({"storage": {kind: {}}})), &[]).unwrap();
            assert_eq!(var(&env, "REGISTRY_STORAGE"), lit("filesystem").as_ref());
            assert_eq!(
                var(&env, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
                lit(STORAGE_ROOT).as_ref()
            );
            // The directory is the volume's mount, not a spec field.
            assert_eq!(
                env.spec_path("storage.filesystem.rootdirectory"),
                Some(format!("spec.storage.{kind}"))
            );
        }
    }

    #[test]
    fn other_storage_types_name_their_driver() {
        let env = registry_env(
            &spec(serde_json::json!({"storage": {"gcs": {"bucket": "b", "projectID": "p"}}})),
            &[],
        )
        .unwrap();
        assert_eq!(var(&env, "REGISTRY_STORAGE"), lit("gcs").as_ref());
        assert_eq!(var(&env, "REGISTRY_STORAGE_GCS_PROJECTID"), lit("p").as_ref());
        assert_eq!(
            env.spec_path("storage.gcs.projectid").as_deref(),
            Some("spec.storage.gcs.projectID")
        );
        let env = registry_env(
            &spec(serde_json::json!({"storage": {"azure": {"networkAccess": {"type": "Internal"}}}})),
            &[],
        )
        .unwrap();
        assert_eq!(env.ignored.len(), 1, "{:?}", env.ignored);
    }

    #[test]
    fn storage_must_be_exactly_one_type() {
        assert_eq!(
            registry_env(&spec(serde_json::json!({})), &[]),
            Err(MappingError::NoStorage)
        );
        assert_eq!(
            registry_env(&spec(serde_json::json!({"storage": {"emptyDir": {}, "s3": {}}})), &[]),
            Err(MappingError::SeveralStorageTypes(vec!["emptyDir", "s3"]))
        );
    }

    #[test]
    fn log_levels() {
        let level = |mut json: serde_json::Value| {
            json["storage"] = serde_json::json!({"emptyDir": {}});
            let env = registry_env(&spec(json), &[]).unwrap();
            let level = literals(&env).into_iter().find(|(k, _)| k == "REGISTRY_LOG_LEVEL");
            (level.map(|(_, v)| v), env.spec_path("log.level"))
        };
        let some = |level: &str, from: &str| (Some(level.to_string()), Some(from.to_string()));
        let unset = (None, Some("spec.logLevel".to_string()));
        assert_eq!(level(serde_json::json!({})), unset);
        assert_eq!(
            level(serde_json::json!({"logLevel": "Normal"})),
            some("info", "spec.logLevel")
        );
        assert_eq!(
            level(serde_json::json!({"logLevel": "TraceAll"})),
            some("debug", "spec.logLevel")
        );
        assert_eq!(
            level(serde_json::json!({"logLevel": "Normal", "logging": 1})),
            some("warn", "spec.logging")
        );
        assert_eq!(
            level(serde_json::json!({"logLevel": "Debug", "logging": 0})),
            some("debug", "spec.logLevel")
        );
        assert_eq!(level(serde_json::json!({"logLevel": "Loud"})), unset);
        for (n, want) in [
            (0, "error"),
            (1, "warn"),
            (2, "info"),
            (3, "info"),
            (4, "debug"),
            (-1, "debug"),
        ] {
            assert_eq!(logging_level(n), want);
        }
    }

    #[test]
    fn the_rest_of_the_registry_settings() {
        let env = registry_env(
            &spec(serde_json::json!({
                "storage": {"emptyDir": {}}, "readOnly": true, "disableRedirect": true,
                "httpSecret": "s3cret", "proxy": {"https": "http://proxy:3128", "noProxy": ".svc"},
                "requests": {"read": {"maxRunning": 3}}
            })),
            &[],
        )
        .unwrap();
        for (name, value) in [
            ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true"),
            ("REGISTRY_STORAGE_REDIRECT_DISABLE", "true"),
            ("REGISTRY_HTTP_SECRET", "s3cret"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", ".svc"),
        ] {
            assert_eq!(var(&env, name), lit(value).as_ref(), "{name}");
        }
        assert_eq!(var(&env, "HTTP_PROXY"), None);
        assert_eq!(
            env.spec_path("storage.maintenance.readonly.enabled").as_deref(),
            Some("spec.readOnly")
        );
        assert_eq!(env.spec_path("http.secret").as_deref(), Some("spec.httpSecret"));
        assert_eq!(var(&env, "REGISTRY_REQUESTS_READ_MAXRUNNING"), lit("3").as_ref());
        assert_eq!(var(&env, "REGISTRY_REQUESTS_READ_MAXINQUEUE"), None);
        assert_eq!(
            env.spec_path("requests.read.maxrunning").as_deref(),
            Some("spec.requests.read.maxRunning")
        );
        assert!(env.ignored.is_empty(), "{:?}", env.ignored);
    }

    /// `spec.garbageCollection` becomes `storage.gc` and
    /// `storage.retention`, loaded by the registry's own loader.
    #[test]
    fn garbage_collection_and_retention() {
        let env = registry_env(
            &spec(serde_json::json!({
                "storage": {"emptyDir": {}},
                "garbageCollection": {
                    "enabled": true, "interval": "12h", "deleteUntagged": true,
                    "retention": [{"repositories": ["team/**"], "keep": {"newest": 5, "pushedWithin": "720h", "patterns": ["v*"]}}]
                }
            })),
            &[],
        )
        .unwrap();
        assert_eq!(var(&env, "REGISTRY_STORAGE_GC_ENABLED"), lit("true").as_ref());
        assert_eq!(var(&env, "REGISTRY_STORAGE_GC_DELAY"), None, "the registry's default");
        let vars: Vec<(String, String)> = env
            .vars
            .iter()
            .filter_map(|v| match &v.value {
                EnvValue::Literal(value) => Some((v.name.clone(), value.clone())),
                _ => None,
            })
            .chain([(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".to_string(),
                "/registry".to_string(),
            )])
            .collect();
        let loaded = crate::config::load(None, vars).expect("the registry loads what the operator sets");
        let storage = &loaded.config.storage;
        assert!(storage.gc.enabled && storage.gc.deleteuntagged);
        assert_eq!(storage.gc.interval, std::time::Duration::from_secs(12 * 3600));
        let policy = storage.retention.policy_for("team/app").expect("the policy");
        assert_eq!(policy.keep.newest, Some(5));
        assert_eq!(
            policy.keep.pushedwithin,
            Some(std::time::Duration::from_secs(720 * 3600))
        );
        assert_eq!(policy.keep.patterns, ["v*"]);
        assert_eq!(
            env.spec_path("storage.retention.policies").as_deref(),
            Some("spec.garbageCollection.retention")
        );
    }
}
