//! Checking operator `Config` resources: a table of misconfigured Configs
//! with the findings each must give (spec paths, severities, reasons), valid
//! Configs giving none, the two seed stories (S3 without a region, S3
//! without credentials), a dropped-in validator speaking registry paths
//! translated to spec paths, and `berth config validate --resource`.

mod common;

use std::path::PathBuf;

use berth::operator::{check_resource, ClusterFacts};
use berth::plugin::{PluginHost, PluginHostOptions};
use berth::validate::{Finding, Severity};
use serde_json::{json, Value};

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

const ACCESS: &str = "REGISTRY_STORAGE_S3_ACCESSKEY";
const SECRET: &str = "REGISTRY_STORAGE_S3_SECRETKEY";
const BOTH: &[&str] = &[ACCESS, SECRET];

/// A Config resource around `spec`, as JSON text (which is YAML too).
fn resource(spec: Value) -> String {
    json!({
        "apiVersion": "imageregistry.operator.openshift.io/v1",
        "kind": "Config",
        "metadata": {"name": "cluster"},
        "spec": spec,
    })
    .to_string()
}

/// An S3 spec with a bucket and a region, plus `extra` S3 fields.
fn s3(extra: Value) -> Value {
    let mut s3 = json!({"bucket": "registry-data", "region": "us-east-1"});
    if let (Some(s3), Value::Object(extra)) = (s3.as_object_mut(), extra) {
        s3.extend(extra);
    }
    json!({"storage": {"s3": s3}, "replicas": 1})
}

/// `spec` with `extra` top-level fields.
fn with(mut spec: Value, extra: Value) -> Value {
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

fn empty_dir() -> Value {
    json!({"storage": {"emptyDir": {}}, "replicas": 1})
}

struct Case {
    spec: Value,
    secret_keys: &'static [&'static str],
    pvc_access_modes: Option<&'static [&'static str]>,
    expected: Vec<(&'static str, Severity, &'static str)>,
}

fn case(
    spec: Value,
    secret_keys: &'static [&'static str],
    expected: Vec<(&'static str, Severity, &'static str)>,
) -> Case {
    Case {
        spec,
        secret_keys,
        pvc_access_modes: None,
        expected,
    }
}

fn cases() -> Vec<Case> {
    let no_region = json!({"storage": {"s3": {"bucket": "registry-data"}}});
    let pvc = |modes| Case {
        spec: json!({"storage": {"pvc": {"claim": "registry"}}, "replicas": 2, "httpSecret": "s"}),
        secret_keys: &[],
        pvc_access_modes: Some(modes),
        expected: vec![("spec.replicas", E, "ReplicasNeedSharedStorage")],
    };
    vec![
        // S3, through the registry's own rules, at the spec's fields.
        case(
            no_region.clone(),
            BOTH,
            vec![("spec.storage.s3.region", E, "MissingRegion")],
        ),
        case(
            s3(json!({"region": "", "regionEndpoint": "minio.local:9000"})),
            BOTH,
            vec![("spec.storage.s3.regionEndpoint", E, "InvalidRegionEndpoint")],
        ),
        case(
            s3(json!({"bucket": "Registry_Data"})),
            BOTH,
            vec![("spec.storage.s3.bucket", E, "InvalidBucketName")],
        ),
        case(
            s3(json!({"bucket": "ab"})),
            BOTH,
            vec![("spec.storage.s3.bucket", E, "InvalidBucketName")],
        ),
        case(
            json!({"storage": {"s3": {"region": "us-east-1"}}}),
            BOTH,
            vec![("spec.storage.s3.bucket", E, "MissingBucket")],
        ),
        case(
            s3(json!({"chunkSizeMiB": 4})),
            BOTH,
            vec![("spec.storage.s3.chunkSizeMiB", E, "ChunkSizeOutOfRange")],
        ),
        case(
            s3(json!({"chunkSizeMiB": 5121})),
            BOTH,
            vec![("spec.storage.s3.chunkSizeMiB", E, "ChunkSizeOutOfRange")],
        ),
        case(
            s3(json!({"chunkSizeMiB": 5120})),
            BOTH,
            vec![("spec.storage.s3.chunkSizeMiB", E, "ChunkSizeOverMemoryLimit")],
        ),
        case(
            s3(json!({"keyID": "arn:aws:kms:us-east-1:1:key/k"})),
            BOTH,
            vec![("spec.storage.s3.keyID", E, "KeyIdWithoutEncryption")],
        ),
        // Credentials from the secret.
        case(s3(json!({})), &[], vec![("spec.storage.s3", E, "MissingCredentials")]),
        case(
            s3(json!({})),
            &[ACCESS],
            vec![("spec.storage.s3", E, "IncompleteCredentials")],
        ),
        // Storage types.
        case(json!({"replicas": 1}), &[], vec![("spec.storage", E, "MissingStorage")]),
        case(
            json!({"storage": {"emptyDir": {}, "s3": {"bucket": "b-1", "region": "r"}}}),
            BOTH,
            vec![("spec.storage", E, "MultipleStorageTypes")],
        ),
        case(
            json!({"storage": {"gcs": {"bucket": "registry-data"}}}),
            &[],
            vec![("spec.storage.gcs", E, "UnknownStorageDriver")],
        ),
        case(
            with(
                empty_dir(),
                json!({"storage": {"emptyDir": {}, "managementState": "Sometimes"}}),
            ),
            &[],
            vec![("spec.storage.managementState", E, "InvalidManagementState")],
        ),
        // Replicas need shared storage and one http secret.
        case(
            with(empty_dir(), json!({"replicas": 2, "httpSecret": "s"})),
            &[],
            vec![("spec.replicas", E, "ReplicasNeedSharedStorage")],
        ),
        case(
            with(empty_dir(), json!({"replicas": 2})),
            &[],
            vec![
                ("spec.replicas", E, "ReplicasNeedSharedStorage"),
                ("spec.httpSecret", E, "MissingHttpSecret"),
            ],
        ),
        case(
            with(s3(json!({})), json!({"replicas": 3})),
            BOTH,
            vec![("spec.httpSecret", E, "MissingHttpSecret")],
        ),
        pvc(&["ReadWriteOnce"]),
        pvc(&[]),
        case(
            with(empty_dir(), json!({"replicas": -1})),
            &[],
            vec![("spec.replicas", E, "InvalidReplicas")],
        ),
        // Words with a fixed set of values.
        case(
            with(empty_dir(), json!({"rolloutStrategy": "BlueGreen"})),
            &[],
            vec![("spec.rolloutStrategy", E, "InvalidRolloutStrategy")],
        ),
        case(
            with(empty_dir(), json!({"logLevel": "debug"})),
            &[],
            vec![("spec.logLevel", E, "InvalidLogLevel")],
        ),
        case(
            with(empty_dir(), json!({"operatorLogLevel": "Verbose"})),
            &[],
            vec![("spec.operatorLogLevel", E, "InvalidLogLevel")],
        ),
        case(
            with(empty_dir(), json!({"managementState": "On"})),
            &[],
            vec![("spec.managementState", E, "InvalidManagementState")],
        ),
        // Warnings: deprecated, unknown, not applied.
        case(
            with(empty_dir(), json!({"logging": 2})),
            &[],
            vec![("spec.logging", W, "DeprecatedField")],
        ),
        case(
            json!({"storage": {"s3": {"bucket": "registry-data", "regionEndpont": "https://minio.local"}}}),
            BOTH,
            vec![
                ("spec.storage.s3.region", E, "MissingRegion"),
                ("spec.storage.s3.regionEndpont", W, "UnknownField"),
            ],
        ),
        case(
            s3(json!({"cloudFront": {"baseURL": "https://cf.example.com", "keypairID": "k"}})),
            BOTH,
            vec![("spec.storage.s3.cloudFront", W, "NotApplied")],
        ),
        // Several at once, sorted by path.
        case(
            with(
                json!({"storage": {"s3": {"bucket": "X", "regionEndpoint": "minio:9000", "chunkSizeMiB": 1, "keyID": "k"}}}),
                json!({"replicas": 2, "rolloutStrategy": "Rolling"}),
            ),
            &[],
            vec![
                ("spec.httpSecret", E, "MissingHttpSecret"),
                ("spec.rolloutStrategy", E, "InvalidRolloutStrategy"),
                ("spec.storage.s3", E, "MissingCredentials"),
                ("spec.storage.s3.bucket", E, "InvalidBucketName"),
                ("spec.storage.s3.chunkSizeMiB", E, "ChunkSizeOutOfRange"),
                ("spec.storage.s3.keyID", E, "KeyIdWithoutEncryption"),
                ("spec.storage.s3.regionEndpoint", E, "InvalidRegionEndpoint"),
            ],
        ),
    ]
}

/// Names: the secret's keys, or a claim's access modes.
type Words = &'static [&'static str];

/// (spec, the secret's keys, the claim's access modes).
fn valid() -> Vec<(Value, Words, Option<Words>)> {
    vec![
        (empty_dir(), &[], None),
        (
            with(
                empty_dir(),
                json!({
                    "managementState": "Managed", "logLevel": "Debug", "operatorLogLevel": "Normal",
                    "rolloutStrategy": "Recreate", "readOnly": true, "disableRedirect": true,
                    "defaultRoute": true, "routes": [{"name": "public", "hostname": "registry.example.com"}],
                    "nodeSelector": {"node-role.kubernetes.io/infra": ""},
                    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                    "affinity": {"podAntiAffinity": {}}, "topologySpreadConstraints": [],
                    "proxy": {"https": "http://proxy.example.com:3128", "noProxy": ".svc"},
                    "storage": {"emptyDir": {}, "managementState": "Unmanaged"}
                }),
            ),
            &[],
            None,
        ),
        (
            json!({"storage": {"pvc": {"claim": "registry"}}, "replicas": 2, "httpSecret": "s"}),
            &[],
            Some(&["ReadWriteMany"]),
        ),
        (s3(json!({})), BOTH, None),
        (
            with(
                json!({"storage": {"s3": {
                    "bucket": "my.bucket-1", "regionEndpoint": "https://minio.local:9000", "chunkSizeMiB": 5,
                    "encrypt": true, "keyID": "k", "virtualHostedStyle": true
                }}}),
                json!({"replicas": 3, "httpSecret": "s", "rolloutStrategy": "RollingUpdate"}),
            ),
            BOTH,
            None,
        ),
        // The largest part a plugin's 4 GiB can hold; the mapping raises
        // the plugin memory limit to match.
        (s3(json!({"chunkSizeMiB": 4080})), BOTH, None),
    ]
}

fn host(plugin_dir: Option<PathBuf>) -> PluginHost {
    PluginHost::new(PluginHostOptions {
        plugin_dir,
        ..PluginHostOptions::default()
    })
    .expect("plugin host")
}

fn facts(secret_keys: &[&str], pvc_access_modes: Option<&[&str]>) -> ClusterFacts {
    ClusterFacts {
        secret_keys: secret_keys.iter().map(|k| k.to_string()).collect(),
        pvc_access_modes: pvc_access_modes.map(|m| m.iter().map(|m| m.to_string()).collect()),
    }
}

fn triples(findings: &[Finding]) -> Vec<(String, Severity, String)> {
    findings
        .iter()
        .map(|f| (f.field_path.clone(), f.severity, f.reason.clone()))
        .collect()
}

/// `expected`, plus the unknown-driver error an S3 spec gets while no S3
/// storage plugin is installed (the S3 rules run and report all the same).
fn want(host: &PluginHost, spec: &Value, expected: &[(&str, Severity, &str)]) -> Vec<(String, Severity, String)> {
    let mut want: Vec<_> = expected
        .iter()
        .map(|(p, s, r)| (p.to_string(), *s, r.to_string()))
        .collect();
    let storage = spec["storage"].as_object();
    let only_s3 = storage.is_some_and(|s| s.contains_key("s3") && !s.contains_key("emptyDir"));
    if only_s3 && !host.storage_drivers().iter().any(|d| d == "s3") {
        want.push(("spec.storage.s3".into(), E, "UnknownStorageDriver".into()));
    }
    want.sort();
    want
}

async fn check(host: &PluginHost, spec: &Value, facts: &ClusterFacts) -> Vec<Finding> {
    check_resource(host, &resource(spec.clone()), facts)
        .await
        .expect("validators ran")
}

#[tokio::test]
async fn each_misconfigured_config_gets_its_findings_at_spec_paths() {
    let host = host(None);
    let cases = cases();
    assert!(cases.len() >= 10, "{} cases", cases.len());
    for case in &cases {
        let found = check(&host, &case.spec, &facts(case.secret_keys, case.pvc_access_modes)).await;
        let mut got = triples(&found);
        got.sort();
        assert_eq!(
            got,
            want(&host, &case.spec, &case.expected),
            "{}\n{found:#?}",
            case.spec
        );
        for finding in &found {
            assert!(finding.field_path.starts_with("spec"), "{finding:?}");
            common::assert_well_formed(finding);
        }
    }
}

#[tokio::test]
async fn valid_configs_have_no_findings() {
    let host = host(None);
    for (spec, keys, modes) in valid() {
        let found = check(&host, &spec, &facts(keys, modes)).await;
        assert_eq!(triples(&found), want(&host, &spec, &[]), "{spec}\n{found:#?}");
    }
}

#[tokio::test]
async fn s3_without_region_or_endpoint_says_to_set_one() {
    let host = host(None);
    let spec = json!({"storage": {"s3": {"bucket": "registry-data"}}});
    let found = check(&host, &spec, &facts(BOTH, None)).await;
    common::assert_error_naming(
        &found,
        "spec.storage.s3.region",
        "MissingRegion",
        &["`region`", "us-east-1", "`regionEndpoint`"],
    );
}

#[tokio::test]
async fn s3_without_credentials_names_the_secret_and_its_keys() {
    let host = host(None);
    let found = check(&host, &s3(json!({})), &facts(&[], None)).await;
    common::assert_error_naming(
        &found,
        "spec.storage.s3",
        "MissingCredentials",
        &["image-registry-private-configuration-user", ACCESS, SECRET],
    );
    // One key present: the message names the one missing.
    let found = check(&host, &s3(json!({})), &facts(&[SECRET], None)).await;
    let incomplete = found
        .iter()
        .find(|f| f.reason == "IncompleteCredentials")
        .unwrap_or_else(|| panic!("no IncompleteCredentials: {found:#?}"));
    assert!(incomplete.message.contains(ACCESS), "{}", incomplete.message);
    assert!(!incomplete.message.contains(SECRET), "{}", incomplete.message);
}

#[tokio::test]
async fn a_resource_that_cannot_be_read_is_a_finding_at_its_field() {
    let host = host(None);
    let found = check_resource(&host, "spec: [unclosed\n", &ClusterFacts::default())
        .await
        .unwrap();
    assert_eq!(triples(&found), [(String::new(), E, "InvalidYaml".to_string())]);
    let text = resource(json!({"storage": {"emptyDir": {}}, "replicas": "two"}));
    let found = check_resource(&host, &text, &ClusterFacts::default()).await.unwrap();
    assert_eq!(
        triples(&found),
        [("spec.replicas".to_string(), E, "InvalidValue".to_string())]
    );
    let text = resource(empty_dir()).replace("\"Config\"", "\"Deployment\"");
    let found = check_resource(&host, &text, &ClusterFacts::default()).await.unwrap();
    assert_eq!(
        triples(&found),
        [("kind".to_string(), E, "NotAnImageRegistryConfig".to_string())]
    );
}

fn example_policy() -> PathBuf {
    PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join("example_policy.wasm")
}

/// The example policy speaks registry paths (`storage.s3.bucket`); on a
/// Config its finding comes back at the spec's field.
#[tokio::test]
async fn a_dropped_in_validator_is_answered_at_spec_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(example_policy(), dir.path().join("acme-policy.wasm")).expect("copy the example policy");
    let host = host(Some(dir.path().to_path_buf()));
    let found = check(&host, &s3(json!({})), &facts(BOTH, None)).await;
    let mut got = triples(&found);
    got.sort();
    assert_eq!(
        got,
        want(
            &host,
            &s3(json!({})),
            &[("spec.storage.s3.bucket", E, "BucketNamePolicy")]
        )
    );
}

const S3_NO_REGION_YAML: &str = "\
apiVersion: imageregistry.operator.openshift.io/v1
kind: Config
metadata:
  name: cluster
spec:
  managementState: Managed
  replicas: 1
  storage:
    s3:
      bucket: registry-data
";

#[test]
fn config_validate_resource_prints_spec_paths_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, S3_NO_REGION_YAML).expect("resource");
    let path = path.display().to_string();

    let output = common::berth(&["config", "validate", "--resource", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("error  spec.storage.s3.region  MissingRegion: "))
        .unwrap_or_else(|| panic!("no MissingRegion line:\n{stdout}"));
    assert!(line.contains("`regionEndpoint`"), "{line}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("error  spec.storage.s3  MissingCredentials: "))
        .unwrap_or_else(|| panic!("no MissingCredentials line:\n{stdout}"));
    assert!(line.contains("image-registry-private-configuration-user"), "{line}");

    // With the secret's keys, as JSON: only the region (and, while there is
    // no S3 plugin, the driver) remain.
    let output = common::berth(
        &[
            "config",
            "validate",
            "--resource",
            &path,
            "--secret-keys",
            &BOTH.join(","),
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&output.stdout).expect("a JSON array");
    let reasons: Vec<(&str, &str, &str)> = json
        .as_array()
        .expect("an array")
        .iter()
        .map(|f| {
            (
                f["field-path"].as_str().unwrap_or_default(),
                f["severity"].as_str().unwrap_or_default(),
                f["reason"].as_str().unwrap_or_default(),
            )
        })
        .filter(|(_, _, reason)| *reason != "UnknownStorageDriver")
        .collect();
    assert_eq!(reasons, [("spec.storage.s3.region", "error", "MissingRegion")]);

    // A valid Config: nothing printed, exit 0.
    let valid = S3_NO_REGION_YAML.replace("    s3:\n      bucket: registry-data\n", "    emptyDir: {}\n");
    std::fs::write(&path, valid).expect("resource");
    let output = common::berth(&["config", "validate", "--resource", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");

    // A file that is not YAML is a finding too; a missing one as well.
    std::fs::write(&path, "spec: [unclosed\n").expect("resource");
    let output = common::berth(&["config", "validate", "--resource", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("error  (file)  InvalidYaml: "));
    let missing = dir.path().join("absent.yaml").display().to_string();
    let output = common::berth(&["config", "validate", "--resource", &missing], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("error  (file)  Unreadable: "));
}
