//! Configuration validators: the bundled `registry-rules` on a table of
//! misconfigurations, valid configurations, `berth serve` refusing every
//! error with exit status 2, `berth config validate`, and dropped-in
//! validators (the example policies, in Rust, Python and JavaScript)
//! running beside the bundled one.

mod common;

use std::path::{Path, PathBuf};

use berth::plugin::{PluginHost, PluginHostOptions};
use berth::validate::{self, Finding, Severity};

const E: Severity = Severity::Error;

/// Credentials and a region, so an S3 case shows only what it is about.
const S3_OK: &str =
    "    region: us-east-1\n    bucket: registry-data\n    accesskey: AKIAEXAMPLE\n    secretkey: example-secret\n";

fn s3(params: &str) -> String {
    format!("version: 0.1\nstorage:\n  s3:\n{params}")
}

fn inmemory(extra: &str) -> String {
    format!("version: 0.1\nstorage:\n  inmemory: {{}}\n{extra}")
}

/// (config.yml, environment, the findings expected, exactly).
type Case = (
    String,
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, Severity, &'static str)>,
);

fn cases() -> Vec<Case> {
    let no_region = "    bucket: registry-data\n    accesskey: a\n    secretkey: b\n";
    let with = |extra: &str| s3(&format!("{S3_OK}{extra}"));
    let bucket = |name: &str| {
        s3(&format!(
            "    region: us-east-1\n    bucket: \"{name}\"\n    accesskey: a\n    secretkey: b\n"
        ))
    };
    vec![
        // S3: region
        (s3(no_region), vec![], vec![("storage.s3.region", E, "MissingRegion")]),
        (
            s3(&format!("{no_region}    region: \"\"\n")),
            vec![],
            vec![("storage.s3.region", E, "MissingRegion")],
        ),
        (
            s3(&format!("{no_region}    regionendpoint: minio.local:9000\n")),
            vec![],
            vec![("storage.s3.regionendpoint", E, "InvalidRegionEndpoint")],
        ),
        (
            with("    regionendpoint: \"://minio.local\"\n"),
            vec![],
            vec![("storage.s3.regionendpoint", E, "InvalidRegionEndpoint")],
        ),
        // S3: bucket
        (
            s3("    region: us-east-1\n    accesskey: a\n    secretkey: b\n"),
            vec![],
            vec![("storage.s3.bucket", E, "MissingBucket")],
        ),
        (
            bucket("ab"),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        (
            bucket(&"a".repeat(64)),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        (
            bucket("Registry-Data"),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        (
            bucket("registry_data"),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        (
            bucket("-registry"),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        (
            bucket("registry."),
            vec![],
            vec![("storage.s3.bucket", E, "InvalidBucketName")],
        ),
        // S3: chunksize
        (
            with("    chunksize: 1048576\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "ChunkSizeOutOfRange")],
        ),
        (
            with("    chunksize: 6442450944\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "ChunkSizeOutOfRange")],
        ),
        (
            with("    chunksize: 10MB\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "InvalidChunkSize")],
        ),
        // A part must fit the plugin memory limit (256 MiB unless set).
        (
            with("    chunksize: 268435456\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "ChunkSizeOverMemoryLimit")],
        ),
        (
            with("    chunksize: 5368709120\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "ChunkSizeOverMemoryLimit")],
        ),
        (
            with("plugins:\n  memorylimitmib: 20\n"),
            vec![],
            vec![("storage.s3.chunksize", E, "ChunkSizeOverMemoryLimit")],
        ),
        // S3: encryption
        (
            with("    keyid: arn:aws:kms:us-east-1:1:key/k\n"),
            vec![],
            vec![("storage.s3.keyid", E, "KeyIdWithoutEncryption")],
        ),
        (
            with("    encrypt: false\n    keyid: k\n"),
            vec![],
            vec![("storage.s3.keyid", E, "KeyIdWithoutEncryption")],
        ),
        // S3: credentials
        (
            s3("    region: us-east-1\n    bucket: registry-data\n    accesskey: a\n"),
            vec![],
            vec![("storage.s3.secretkey", E, "IncompleteCredentials")],
        ),
        (
            s3("    region: us-east-1\n    bucket: registry-data\n    secretkey: b\n"),
            vec![],
            vec![("storage.s3.accesskey", E, "IncompleteCredentials")],
        ),
        (
            s3("    region: us-east-1\n    bucket: registry-data\n"),
            vec![],
            vec![("storage.s3.accesskey", E, "MissingCredentials")],
        ),
        (
            s3("    region: us-east-1\n    bucket: registry-data\n"),
            vec![("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIAEXAMPLE")],
            vec![("storage.s3.secretkey", E, "IncompleteCredentials")],
        ),
        // Storage drivers
        (
            "version: 0.1\nstorage:\n  gcs:\n    bucket: b\n".into(),
            vec![],
            vec![("storage.gcs", E, "UnknownStorageDriver")],
        ),
        (
            inmemory(""),
            vec![("REGISTRY_STORAGE", "azure")],
            vec![("storage.azure", E, "UnknownStorageDriver")],
        ),
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: var/lib/registry\n".into(),
            vec![],
            vec![("storage.filesystem.rootdirectory", E, "RelativeRootDirectory")],
        ),
        (
            "version: 0.1\nstorage:\n  filesystem: {}\n".into(),
            vec![],
            vec![("storage.filesystem.rootdirectory", E, "MissingRootDirectory")],
        ),
        // TLS
        (
            inmemory("http:\n  tls:\n    certificate: /etc/berth/cert.pem\n"),
            vec![],
            vec![("http.tls.key", E, "IncompleteTls")],
        ),
        (
            inmemory("http:\n  tls:\n    key: /etc/berth/key.pem\n"),
            vec![],
            vec![("http.tls.certificate", E, "IncompleteTls")],
        ),
        // Several at once, sorted by field path.
        (
            s3("    regionendpoint: minio:9000\n    bucket: X\n    chunksize: 1\n    keyid: k\n"),
            vec![],
            vec![
                ("storage.s3.accesskey", E, "MissingCredentials"),
                ("storage.s3.bucket", E, "InvalidBucketName"),
                ("storage.s3.chunksize", E, "ChunkSizeOutOfRange"),
                ("storage.s3.keyid", E, "KeyIdWithoutEncryption"),
                ("storage.s3.regionendpoint", E, "InvalidRegionEndpoint"),
            ],
        ),
    ]
}

/// Misconfigurations the loader itself refuses before any validator runs:
/// `berth config validate` reports them as findings with reason
/// `InvalidValue` at the key, `berth serve` exits with status 2.
fn load_error_cases() -> Vec<Case> {
    vec![
        (
            inmemory("log:\n  level: verbose\n"),
            vec![],
            vec![("log.level", E, "InvalidValue")],
        ),
        (
            inmemory("http:\n  addr: localhost\n"),
            vec![],
            vec![("http.addr", E, "InvalidValue")],
        ),
        (
            inmemory("http:\n  addr: \"::1:5000\"\n"),
            vec![],
            vec![("http.addr", E, "InvalidValue")],
        ),
        (
            inmemory(""),
            vec![("REGISTRY_HTTP_ADDR", ":99999")],
            vec![("http.addr", E, "InvalidValue")],
        ),
        // A safety setting Berth does not implement is refused, not ignored.
        (
            inmemory("auth:\n  htpasswd:\n    realm: r\n    path: /etc/htpasswd\n"),
            vec![],
            vec![("auth", E, "InvalidValue")],
        ),
        (
            inmemory("http:\n  tls:\n    letsencrypt:\n      cachefile: /var/cache/le\n"),
            vec![],
            vec![("http.tls.letsencrypt", E, "InvalidValue")],
        ),
    ]
}

/// Parameters only the storage driver itself refuses (its `init`):
/// `berth config validate` reports them as `serve` would refuse them.
fn driver_rejection_cases() -> Vec<Case> {
    let rejected = |driver: &'static str| vec![(driver, E, "DriverRejectedParameters")];
    vec![
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n    rootdir: /srv\n".into(),
            vec![],
            rejected("storage.filesystem"),
        ),
        (
            s3(&format!("{S3_OK}    colour: blue\n")),
            vec![],
            rejected("storage.s3"),
        ),
        (
            s3(&format!("{S3_OK}    v4auth: \"false\"\n")),
            vec![],
            rejected("storage.s3"),
        ),
    ]
}

#[tokio::test]
async fn what_only_the_driver_refuses_is_found_too() {
    let host = host(None);
    for (text, env, expected) in driver_rejection_cases() {
        let found = findings(&host, &text, &env).await;
        assert_eq!(triples(&found), want(&expected), "{text}\n{found:#?}");
        let words = if text.contains("rootdir:") {
            "rootdir"
        } else if text.contains("colour") {
            "colour"
        } else {
            "v4auth"
        };
        assert!(found[0].message.contains(words), "{}", found[0].message);
    }
    // Checking did not create the root directory it names.
    let root = tempfile::tempdir().expect("tempdir");
    let unborn = root.path().join("not-yet");
    let text = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        unborn.display()
    );
    assert!(findings(&host, &text, &[]).await.is_empty());
    assert!(!unborn.exists(), "validation touched the storage");
}

fn valid_configs() -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (inmemory(""), vec![]),
        // A large part with the plugin memory to hold it.
        (
            s3(&format!(
                "{S3_OK}    chunksize: 268435456\nplugins:\n  memorylimitmib: 512\n"
            )),
            vec![],
        ),
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n".into(),
            vec![],
        ),
        (
            inmemory("log:\n  level: DEBUG\nhttp:\n  addr: \"[::1]:5000\"\n"),
            vec![],
        ),
        (inmemory("http:\n  addr: 127.0.0.1:0\n"), vec![]),
        (
            inmemory("http:\n  tls:\n    certificate: /etc/berth/cert.pem\n    key: /etc/berth/key.pem\n"),
            vec![],
        ),
    ]
}

/// Valid S3 configurations: only the (truthful) unknown-driver error.
fn valid_s3_configs() -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (s3(S3_OK), vec![]),
        (
            s3("    regionendpoint: https://minio.local:9000\n    bucket: my.bucket-1\n    accesskey: a\n    secretkey: b\n    chunksize: 5242880\n    encrypt: true\n    keyid: k\n"),
            vec![],
        ),
        (
            // The largest part a plugin's 4 GiB can hold.
            s3("    region: eu-west-1\n    bucket: abc\n    chunksize: 4278190080\nplugins:\n  memorylimitmib: 4096\n"),
            vec![
                ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIAEXAMPLE"),
                ("REGISTRY_STORAGE_S3_SECRETKEY", "secret"),
            ],
        ),
    ]
}

fn env_of(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn host(plugin_dir: Option<PathBuf>) -> PluginHost {
    PluginHost::new(PluginHostOptions {
        plugin_dir,
        ..PluginHostOptions::default()
    })
    .expect("plugin host")
}

async fn findings(host: &PluginHost, text: &str, env: &[(&str, &str)]) -> Vec<Finding> {
    let env = env_of(env);
    let config = berth::config::parse(text, env.clone())
        .unwrap_or_else(|err| panic!("{text}: {err}"))
        .config;
    let drivers = host.storage_drivers();
    validate::validate_registry_config(host, &config, &drivers, &env)
        .await
        .expect("validators ran")
}

fn triples(findings: &[Finding]) -> Vec<(String, Severity, String)> {
    findings
        .iter()
        .map(|f| (f.field_path.clone(), f.severity, f.reason.clone()))
        .collect()
}

fn want(expected: &[(&str, Severity, &str)]) -> Vec<(String, Severity, String)> {
    let mut want: Vec<_> = expected
        .iter()
        .map(|(p, s, r)| (p.to_string(), *s, r.to_string()))
        .collect();
    want.sort();
    want
}

#[tokio::test]
async fn the_bundled_rules_find_each_misconfiguration() {
    let host = host(None);
    assert_eq!(host.validators(), ["registry-rules"]);
    assert_eq!(host.storage_drivers(), ["filesystem", "inmemory", "s3"]);
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    for (text, env, expected) in &cases {
        let found = findings(&host, text, env).await;
        assert_eq!(triples(&found), want(expected), "{text}\n{env:?}\n{found:#?}");
        for finding in &found {
            common::assert_well_formed(finding);
        }
    }
}

#[tokio::test]
async fn valid_configurations_have_no_findings() {
    let host = host(None);
    for (text, env) in valid_configs() {
        let found = findings(&host, &text, &env).await;
        assert!(found.is_empty(), "{text}\n{found:#?}");
    }
    for (text, env) in valid_s3_configs() {
        let found = findings(&host, &text, &env).await;
        assert!(found.is_empty(), "{text}\n{found:#?}");
    }
}

#[tokio::test]
async fn s3_without_region_or_endpoint_says_to_set_one() {
    let host = host(None);
    let found = findings(
        &host,
        &s3("    bucket: registry-data\n    accesskey: a\n    secretkey: b\n"),
        &[],
    )
    .await;
    common::assert_error_naming(
        &found,
        "storage.s3.region",
        "MissingRegion",
        &["`region`", "us-east-1", "`regionendpoint`"],
    );
}

#[tokio::test]
async fn s3_without_credentials_names_the_variables() {
    let host = host(None);
    let found = findings(&host, &s3("    region: us-east-1\n    bucket: registry-data\n"), &[]).await;
    common::assert_error_naming(
        &found,
        "storage.s3.accesskey",
        "MissingCredentials",
        &["REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY"],
    );
}

fn example_policy() -> PathBuf {
    PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join("example_policy.wasm")
}

/// A plugin directory holding the example policy as `acme-policy.wasm`.
fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(example_policy(), dir.path().join("acme-policy.wasm")).expect("copy the example policy");
    dir
}

#[tokio::test]
async fn a_dropped_in_validator_runs_beside_the_bundled_one() {
    let dir = policy_dir();
    let host = host(Some(dir.path().to_path_buf()));
    assert_eq!(host.validators(), ["acme-policy", "registry-rules"]);
    let found = findings(&host, &s3(S3_OK), &[]).await;
    assert_eq!(
        triples(&found),
        want(&[("storage.s3.bucket", E, "BucketNamePolicy")]),
        "{found:#?}"
    );
    let ok = s3("    region: us-east-1\n    bucket: acme-registry\n    accesskey: a\n    secretkey: b\n");
    assert!(findings(&host, &ok, &[]).await.is_empty());
}

/// A plugin directory holding the example validators in Python
/// (`kms-policy`) and JavaScript (`endpoint-policy`), as
/// `plugins/examples/build.sh` built them into `$BERTH_EXAMPLE_PLUGINS`
/// (scripts/test builds them there).
fn other_languages_dir() -> tempfile::TempDir {
    let built = std::env::var_os("BERTH_EXAMPLE_PLUGINS")
        .map(PathBuf::from)
        .expect("BERTH_EXAMPLE_PLUGINS names where plugins/examples/build.sh wrote its plugins (scripts/test sets it)");
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["kms-policy.wasm", "endpoint-policy.wasm"] {
        std::fs::copy(built.join(name), dir.path().join(name))
            .unwrap_or_else(|err| panic!("{}: {err}", built.join(name).display()));
    }
    dir
}

#[tokio::test]
async fn validators_in_python_and_javascript_run_as_drop_ins() {
    let dir = other_languages_dir();
    let host = host(Some(dir.path().to_path_buf()));
    assert_eq!(host.validators(), ["endpoint-policy", "kms-policy", "registry-rules"]);
    let prod = "    region: us-east-1\n    bucket: team-prod-images\n    accesskey: a\n    secretkey: b\n";
    let found = findings(&host, &s3(prod), &[]).await;
    assert_eq!(
        triples(&found),
        want(&[
            ("storage.s3.encrypt", E, "EncryptionRequired"),
            ("storage.s3.keyid", E, "KmsKeyRequired"),
        ]),
        "{found:#?}"
    );
    assert!(
        found.iter().all(|f| f.message.contains("team-prod-images")),
        "{found:#?}"
    );
    let kms = "    encrypt: true\n    keyid: arn:aws:kms:us-east-1:111122223333:key/example\n";
    for fine in [
        format!("{prod}{kms}"),
        prod.replace("team-prod-images", "team-product-images"),
    ] {
        let found = findings(&host, &s3(&fine), &[]).await;
        assert!(found.is_empty(), "{fine}\n{found:#?}");
    }

    let endpoint = |url: &str| s3(&format!("{S3_OK}    regionendpoint: {url}\n"));
    let found = findings(&host, &endpoint("https://minio.example.org:9000"), &[]).await;
    assert_eq!(
        triples(&found),
        want(&[("storage.s3.regionendpoint", E, "EndpointNotApproved")]),
        "{found:#?}"
    );
    assert!(found[0].message.starts_with("minio.example.org is not"), "{found:#?}");
    for approved in [
        "https://storage.internal.example.com",
        "https://eu.storage.internal.example.com:443",
    ] {
        let found = findings(&host, &endpoint(approved), &[]).await;
        assert!(found.is_empty(), "{approved}: {found:#?}");
    }

    // The CLI loads them from the plugin directory too: `config validate`
    // names the findings, `serve` refuses with status 2 before it binds.
    let work = tempfile::tempdir().expect("tempdir");
    let plugin_dir = dir.path().display().to_string();
    let path = write_config(work.path(), &s3(prod));
    let output = common::berth(
        &["config", "validate", "--config", &path, "--plugin-dir", &plugin_dir],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("error  storage.s3.keyid  KmsKeyRequired: "), "{stdout}");
    let text = format!(
        "{}plugins:\n  directory: {plugin_dir}\nhttp:\n  addr: 127.0.0.1:0\n",
        endpoint("https://minio.example.org")
    );
    let path = write_config(work.path(), &text);
    let output = common::berth(&["serve", "--config", &path], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("storage.s3.regionendpoint  EndpointNotApproved"),
        "{stderr}"
    );
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.yml");
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

#[test]
fn serve_refuses_every_error_with_status_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, env, expected) in cases()
        .into_iter()
        .chain(load_error_cases())
        .chain(driver_rejection_cases())
    {
        // Any port would do: the configuration must stop berth before it binds.
        let text = if text.contains("http:") {
            text
        } else {
            format!("{text}http:\n  addr: 127.0.0.1:0\n")
        };
        let path = write_config(dir.path(), &text);
        let output = common::berth(&["serve", "--config", &path], &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}\n{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        for (field, _, reason) in &expected {
            assert!(stderr.contains(field), "does not name {field}:\n{text}\n{stderr}");
            // The loader's own errors name the key, not a reason word.
            if *reason != "InvalidValue" {
                assert!(stderr.contains(reason), "does not say {reason}:\n{text}\n{stderr}");
            }
        }
    }
}

#[test]
fn config_validate_prints_findings_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &s3("    bucket: registry-data\n"));
    let output = common::berth(&["config", "validate", "--config", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("error  storage.s3.region  MissingRegion: "))
        .unwrap_or_else(|| panic!("no MissingRegion line:\n{stdout}"));
    assert!(line.contains("us-east-1"), "{line}");
    assert!(
        stdout.contains("error  storage.s3.accesskey  MissingCredentials: "),
        "{stdout}"
    );

    let output = common::berth(&["config", "validate", "--config", &path, "--output", "json"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON array");
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
        .collect();
    assert_eq!(
        reasons,
        [
            ("storage.s3.accesskey", "error", "MissingCredentials"),
            ("storage.s3.region", "error", "MissingRegion"),
        ]
    );

    let path = write_config(dir.path(), &inmemory(""));
    let output = common::berth(&["config", "validate", "--config", &path], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));

    // A configuration the loader refuses is a finding too.
    let path = write_config(dir.path(), &inmemory("log:\n  level: verbose\n"));
    let output = common::berth(&["config", "validate", "--config", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("error  log.level  InvalidValue: "), "{stdout}");
}

#[test]
fn the_example_policy_runs_from_the_plugin_directory() {
    let plugins = policy_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = "    region: us-east-1\n    bucket: team-registry\n    accesskey: a\n    secretkey: b\n";
    let path = write_config(dir.path(), &s3(bucket));
    let plugin_dir = plugins.path().display().to_string();

    let output = common::berth(
        &["config", "validate", "--config", &path, "--plugin-dir", &plugin_dir],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("error  storage.s3.bucket  BucketNamePolicy: "),
        "{stdout}"
    );
    assert!(stdout.contains("acme-"), "{stdout}");

    // Without the plugin directory the policy does not run.
    let output = common::berth(&["config", "validate", "--config", &path], &[]);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("BucketNamePolicy"));

    // `berth serve` with plugins.directory: refused, naming the policy's finding.
    let text = inmemory(&format!(
        "plugins:\n  directory: {plugin_dir}\nhttp:\n  addr: 127.0.0.1:0\n"
    ))
    .replace("  inmemory: {}\n", &format!("  s3:\n{bucket}"));
    let path = write_config(dir.path(), &text);
    let output = common::berth(&["serve", "--config", &path], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}\n{stderr}");
    assert!(stderr.contains("storage.s3.bucket  BucketNamePolicy"), "{stderr}");
}

#[tokio::test]
async fn a_configured_driver_whose_file_cannot_load_is_named_as_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").expect("junk");
    let host = host(Some(dir.path().to_path_buf()));
    let text = "version: 0.1\nstorage:\n  junk: {}\n";
    let found = findings(&host, text, &[]).await;
    let finding = common::assert_error_naming(
        &found,
        "storage.junk",
        "PluginNotLoadable",
        &[&junk.display().to_string()],
    );
    assert!(!found.iter().any(|f| f.reason == "UnknownStorageDriver"), "{found:#?}");
    assert!(!finding.message.contains("drop `junk.wasm`"), "{}", finding.message);

    let path = write_config(dir.path(), &format!("{text}http:\n  addr: 127.0.0.1:0\n"));
    let plugins = dir.path().display().to_string();
    let output = common::berth(
        &["serve", "--config", &path],
        &[("REGISTRY_PLUGINS_DIRECTORY", &plugins)],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PluginNotLoadable") && stderr.contains("junk.wasm"),
        "{stderr}"
    );
}
