//! The `Config` custom resource, `configs.imageregistry.operator.openshift.io/v1`,
//! with OpenShift's field names (github.com/openshift/api, imageregistry/v1).
//!
//! Plain serde types (with their JSON schema, for the CRD), no kube types. Fields the API leaves open
//! (`resources`, `tolerations`, `affinity`, `topologySpreadConstraints`,
//! Azure's `networkAccess`, ...) are kept as JSON values. Values with a fixed
//! set of words (`logLevel`, `rolloutStrategy`, `managementState`) stay
//! strings, so a wrong word is a validator finding rather than a parse
//! failure; [`LogLevel::parse`] and friends read them.
//!
//! Every field is serialised, an absent one as `null`: [`unknown_spec_fields`]
//! compares the spec as written with the spec as typed, so a field that is
//! not serialised would look unknown.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "imageregistry.operator.openshift.io/v1";
/// `kind` of the resource.
pub const KIND: &str = "Config";

/// The registry operator's configuration: a cluster-scoped singleton named
/// `cluster`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ImageRegistrySpec,
    #[serde(default)]
    pub status: ImageRegistryStatus,
}

/// The parts of Kubernetes' `ObjectMeta` the operator reads; others are
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generation: Option<i64>,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// `spec`: OpenShift's `ImageRegistrySpec`, with the inlined `OperatorSpec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageRegistrySpec {
    /// Managed, Unmanaged, Removed or Force.
    pub management_state: Option<String>,
    /// Normal, Debug, Trace or TraceAll: the registry's log level.
    pub log_level: Option<String>,
    /// The same words, for the operator's own log.
    pub operator_log_level: Option<String>,
    pub unsupported_config_overrides: Option<Value>,
    pub observed_config: Option<Value>,
    /// Signs the state the registry hands to clients (upload sessions);
    /// every replica must have the same one.
    pub http_secret: Option<String>,
    pub proxy: Option<Proxy>,
    pub storage: Storage,
    pub read_only: bool,
    pub disable_redirect: bool,
    pub requests: Option<Requests>,
    pub default_route: bool,
    pub routes: Vec<Route>,
    /// How many registry pods; 1 when absent.
    pub replicas: Option<i32>,
    /// Deprecated numeric level: 0 error, 1 warn, 2-3 info, else debug.
    pub logging: Option<i64>,
    pub resources: Option<Value>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Value>,
    /// RollingUpdate or Recreate.
    pub rollout_strategy: Option<String>,
    pub affinity: Option<Value>,
    pub topology_spread_constraints: Vec<Value>,
    /// Berth's own: garbage collection while the registry serves, and the
    /// tags it keeps, instead of OpenShift's pruner CronJob.
    pub garbage_collection: Option<GarbageCollection>,
}

/// `spec.garbageCollection`, Berth's own: the registry's `storage.gc` and
/// `storage.retention`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct GarbageCollection {
    /// Collect while serving (default false).
    pub enabled: bool,
    /// Between runs, a Go duration (default 24h).
    pub interval: Option<String>,
    /// Nothing modified more recently is deleted, a Go duration (default 1h).
    pub delay: Option<String>,
    /// Delete untagged manifests too (default false).
    pub delete_untagged: bool,
    /// Which tags to keep, per repository glob; the first policy matching a
    /// repository decides.
    pub retention: Vec<RetentionPolicy>,
}

/// One retention policy: a tag is kept when any of `keep` says so.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RetentionPolicy {
    /// Repository globs: `*` within a segment, `**` across.
    pub repositories: Vec<String>,
    pub keep: KeepTags,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct KeepTags {
    /// The N most recently pushed tags.
    pub newest: Option<u32>,
    /// Tags pushed within this long, a Go duration.
    pub pushed_within: Option<String>,
    /// Tags matching one of these globs.
    pub patterns: Vec<String>,
}

impl ImageRegistrySpec {
    /// `replicas`, 1 when absent.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Proxy {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
}

/// `spec.storage` (and `status.storage`): exactly one of the storage types,
/// and whether the operator manages the storage unit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Storage {
    pub empty_dir: Option<EmptyDir>,
    pub s3: Option<S3>,
    pub gcs: Option<Gcs>,
    pub swift: Option<Swift>,
    pub pvc: Option<Pvc>,
    pub azure: Option<Azure>,
    pub ibmcos: Option<IbmCos>,
    pub oss: Option<Oss>,
    /// Managed or Unmanaged.
    pub management_state: Option<String>,
}

impl Storage {
    /// The storage types that are set, by their field names, in the order
    /// of the API.
    pub fn types(&self) -> Vec<&'static str> {
        [
            ("emptyDir", self.empty_dir.is_some()),
            ("s3", self.s3.is_some()),
            ("gcs", self.gcs.is_some()),
            ("swift", self.swift.is_some()),
            ("pvc", self.pvc.is_some()),
            ("azure", self.azure.is_some()),
            ("ibmcos", self.ibmcos.is_some()),
            ("oss", self.oss.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Ephemeral storage on the node; `emptyDir: {}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct EmptyDir {}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct S3 {
    pub bucket: Option<String>,
    pub region: Option<String>,
    /// An S3-compatible service's URL, with its scheme.
    pub region_endpoint: Option<String>,
    /// Multipart chunk size in MiB, 5 to 5120.
    #[serde(rename = "chunkSizeMiB")]
    pub chunk_size_mib: Option<i64>,
    pub encrypt: bool,
    /// A KMS key; only with `encrypt`.
    #[serde(rename = "keyID")]
    pub key_id: Option<String>,
    pub cloud_front: Option<CloudFront>,
    pub virtual_hosted_style: bool,
    /// A config map in openshift-config holding `ca-bundle.crt`.
    #[serde(rename = "trustedCA")]
    pub trusted_ca: Option<TrustedCa>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CloudFront {
    #[serde(rename = "baseURL")]
    pub base_url: Option<String>,
    pub private_key: Option<SecretKeySelector>,
    #[serde(rename = "keypairID")]
    pub keypair_id: Option<String>,
    /// A Go duration, like `20m`.
    pub duration: Option<String>,
}

/// Kubernetes' `SecretKeySelector`: one key of a secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretKeySelector {
    pub name: Option<String>,
    pub key: Option<String>,
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct TrustedCa {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Gcs {
    pub bucket: Option<String>,
    pub region: Option<String>,
    #[serde(rename = "projectID")]
    pub project_id: Option<String>,
    #[serde(rename = "keyID")]
    pub key_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Swift {
    #[serde(rename = "authURL")]
    pub auth_url: Option<String>,
    pub auth_version: Option<String>,
    pub container: Option<String>,
    pub domain: Option<String>,
    #[serde(rename = "domainID")]
    pub domain_id: Option<String>,
    pub tenant: Option<String>,
    #[serde(rename = "tenantID")]
    pub tenant_id: Option<String>,
    pub region_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Pvc {
    /// The claim's name; the operator's default claim when absent.
    pub claim: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Azure {
    pub account_name: Option<String>,
    pub container: Option<String>,
    pub cloud_name: Option<String>,
    pub network_access: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IbmCos {
    pub bucket: Option<String>,
    pub location: Option<String>,
    pub resource_group_name: Option<String>,
    #[serde(rename = "resourceKeyCRN")]
    pub resource_key_crn: Option<String>,
    #[serde(rename = "serviceInstanceCRN")]
    pub service_instance_crn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Oss {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub endpoint_accessibility: Option<String>,
    pub encryption: Option<Value>,
}

/// `spec.requests`: limits on parallel reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Requests {
    pub read: Option<RequestLimits>,
    pub write: Option<RequestLimits>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestLimits {
    pub max_running: Option<i64>,
    pub max_in_queue: Option<i64>,
    /// A Go duration.
    pub max_wait_in_queue: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Route {
    pub name: String,
    pub hostname: Option<String>,
    pub secret_name: Option<String>,
}

/// `status`: OpenShift's `ImageRegistryStatus` with the inlined
/// `OperatorStatus`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageRegistryStatus {
    pub observed_generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub version: Option<String>,
    pub ready_replicas: Option<i32>,
    pub latest_available_revision: Option<i32>,
    pub generations: Vec<Value>,
    /// Deprecated by `storage.managementState`.
    pub storage_managed: bool,
    /// The storage configuration last applied.
    pub storage: Storage,
}

/// An operator condition: `Available`, `Progressing`, `Degraded`, ...
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    pub last_transition_time: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// `spec.logLevel` (and `operatorLogLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Normal,
    Debug,
    Trace,
    TraceAll,
}

impl LogLevel {
    pub const WORDS: &'static [&'static str] = &["Normal", "Debug", "Trace", "TraceAll"];

    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "Normal" => Some(LogLevel::Normal),
            "Debug" => Some(LogLevel::Debug),
            "Trace" => Some(LogLevel::Trace),
            "TraceAll" => Some(LogLevel::TraceAll),
            _ => None,
        }
    }
}

/// `spec.rolloutStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStrategy {
    RollingUpdate,
    Recreate,
}

impl RolloutStrategy {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "RollingUpdate" => Some(RolloutStrategy::RollingUpdate),
            "Recreate" => Some(RolloutStrategy::Recreate),
            _ => None,
        }
    }
}

/// A field of the spec as written that the types do not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// Dotted: `spec.storage.s3.regionEndpont`, `spec.routes[0].hostName`.
    pub path: String,
    /// The known field beside it with the nearest name, if one is near.
    pub suggestion: Option<String>,
}

/// The fields in `given`, the spec as written, that [`ImageRegistrySpec`]
/// does not have. Worth a warning: Kubernetes prunes unknown fields, so the
/// value never reaches the operator.
pub fn unknown_spec_fields(given: &Value, typed: &ImageRegistrySpec) -> Vec<UnknownField> {
    let mut out = Vec::new();
    if let Ok(known) = serde_json::to_value(typed) {
        unknown(given, &known, "spec", &mut out);
    }
    out
}

fn unknown(given: &Value, known: &Value, path: &str, out: &mut Vec<UnknownField>) {
    match (given, known) {
        (Value::Object(given), Value::Object(known)) => {
            for (key, value) in given {
                let here = format!("{path}.{key}");
                match known.get(key) {
                    None => out.push(UnknownField {
                        path: here,
                        suggestion: crate::config::closest(key, known.keys().map(String::as_str)).map(str::to_owned),
                    }),
                    Some(known) => unknown(value, known, &here, out),
                }
            }
        }
        (Value::Array(given), Value::Array(known)) => {
            for (i, (given, known)) in given.iter().zip(known).enumerate() {
                unknown(given, known, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
      "apiVersion": "imageregistry.operator.openshift.io/v1",
      "kind": "Config",
      "metadata": {"name": "cluster", "generation": 3, "creationTimestamp": "2024-01-01T00:00:00Z"},
      "spec": {
        "managementState": "Managed", "logLevel": "Normal", "operatorLogLevel": "Normal",
        "unsupportedConfigOverrides": null, "observedConfig": null,
        "httpSecret": "s", "proxy": {"http": "http://p:3128", "https": "http://p:3128", "noProxy": ".cluster.local"},
        "storage": {
          "s3": {"bucket": "b-1", "region": "us-east-1", "regionEndpoint": "https://s3.example.com",
                 "chunkSizeMiB": 10, "encrypt": true, "keyID": "k", "virtualHostedStyle": false,
                 "trustedCA": {"name": "ca"},
                 "cloudFront": {"baseURL": "https://cf", "privateKey": {"name": "cf", "key": "pk"},
                                "keypairID": "kp", "duration": "20m"}},
          "managementState": "Unmanaged"
        },
        "readOnly": false, "disableRedirect": true,
        "requests": {"read": {"maxRunning": 1, "maxInQueue": 2, "maxWaitInQueue": "1m"}, "write": {}},
        "defaultRoute": true, "routes": [{"name": "r", "hostname": "h", "secretName": "s"}],
        "replicas": 2, "logging": 2,
        "resources": {"limits": {"cpu": "1"}}, "nodeSelector": {"a": "b"},
        "tolerations": [{"key": "k", "operator": "Exists"}], "rolloutStrategy": "Recreate",
        "affinity": {"podAntiAffinity": {}}, "topologySpreadConstraints": [{"maxSkew": 1}]
      },
      "status": {
        "observedGeneration": 3, "readyReplicas": 2, "storageManaged": false,
        "conditions": [{"type": "Available", "status": "True", "reason": "Ready", "message": "ok",
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}],
        "storage": {"s3": {"bucket": "b-1"}}
      }
    }"#;

    #[test]
    fn every_openshift_field_reads_and_none_is_unknown() {
        let value: Value = serde_json::from_str(FULL).unwrap();
        let config: Config = serde_json::from_value(value.clone()).unwrap();
        let s3 = config.spec.storage.s3.as_ref().unwrap();
        assert_eq!(s3.chunk_size_mib, Some(10));
        assert_eq!(s3.key_id.as_deref(), Some("k"));
        assert_eq!(s3.trusted_ca.as_ref().and_then(|t| t.name.as_deref()), Some("ca"));
        assert_eq!(
            s3.cloud_front.as_ref().and_then(|c| c.keypair_id.as_deref()),
            Some("kp")
        );
        assert_eq!(config.spec.storage.types(), ["s3"]);
        assert_eq!(config.spec.replicas(), 2);
        assert_eq!(config.status.conditions[0].type_, "Available");
        assert_eq!(config.status.ready_replicas, Some(2));
        assert_eq!(config.metadata.generation, Some(3));
        assert_eq!(unknown_spec_fields(&value["spec"], &config.spec), []);
    }

    #[test]
    fn misspelt_fields_are_named() {
        let value = serde_json::json!({
            "storage": {"s3": {"regionEndpont": "x", "bucket": "b"}, "emptydir": {}},
            "routes": [{"name": "r", "hostName": "h"}],
            "replica": 2
        });
        let spec: ImageRegistrySpec = serde_json::from_value(value.clone()).unwrap();
        let mut found: Vec<(String, Option<String>)> = unknown_spec_fields(&value, &spec)
            .into_iter()
            .map(|f| (f.path, f.suggestion))
            .collect();
        found.sort();
        let near = |path: &str, field: &str| (path.to_string(), Some(field.to_string()));
        assert_eq!(
            found,
            [
                near("spec.replica", "replicas"),
                near("spec.routes[0].hostName", "hostname"),
                near("spec.storage.emptydir", "emptyDir"),
                near("spec.storage.s3.regionEndpont", "regionEndpoint"),
            ]
        );
    }

    #[test]
    fn words_parse() {
        assert_eq!(LogLevel::parse("TraceAll"), Some(LogLevel::TraceAll));
        assert_eq!(LogLevel::parse("debug"), None);
        assert_eq!(RolloutStrategy::parse("Recreate"), Some(RolloutStrategy::Recreate));
        assert_eq!(RolloutStrategy::parse("BlueGreen"), None);
        assert_eq!(ImageRegistrySpec::default().replicas(), 1);
    }
}
