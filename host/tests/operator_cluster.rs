//! `berth operator` against a real Kubernetes API server (the kit of
//! `../shared/k8s`, started by `scripts/test`), with moto as S3: the CRD,
//! bootstrap, an S3 Config provisioned and the registry it describes run
//! and pushed to with skopeo, the seed's two stories (no region, no
//! credentials), spec fields shaping the objects, management states and
//! deletion, and leader election between two operators.
//!
//! The kit has no nodes and no controller manager: pods never run, so a
//! test that needs an available Deployment sets its status itself.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::block_on;
use common::kube::{condition, env_var, kubectl, kubectl_ok, Cluster, Operator, CONFIGS};
use common::s3::{Moto, ACCESS_KEY, REGION, SECRET_KEY};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const USER_SECRET: &str = "image-registry-private-configuration-user";
const PRIVATE_SECRET: &str = "image-registry-private-configuration";
const ACCESS: &str = "REGISTRY_STORAGE_S3_ACCESSKEY";
const SECRET: &str = "REGISTRY_STORAGE_S3_SECRETKEY";

fn config_object(cluster: &Cluster, spec: Value) -> Value {
    json!({
        "apiVersion": "imageregistry.operator.openshift.io/v1",
        "kind": "Config",
        "metadata": {"name": cluster.config},
        "spec": spec,
    })
}

/// The seed's secret: `image-registry-private-configuration-user` with the
/// two S3 keys, as `stringData`.
fn credentials_secret(secret_key: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": USER_SECRET},
        "type": "Opaque",
        "stringData": {ACCESS: ACCESS_KEY, SECRET: secret_key},
    })
}

fn s3_spec(moto: &Moto, bucket: &str) -> Value {
    json!({
        "managementState": "Managed",
        "replicas": 1,
        "storage": {"s3": {"bucket": bucket, "region": REGION, "regionEndpoint": moto.endpoint, "encrypt": true}},
    })
}

fn reason(condition: &Value) -> &str {
    condition["reason"].as_str().unwrap_or_default()
}

fn message(condition: &Value) -> &str {
    condition["message"].as_str().unwrap_or_default()
}

#[test]
fn the_crd_installs_and_a_config_round_trips() {
    let cluster = Cluster::new("crd");
    let spec = json!({
        "managementState": "Unmanaged", "logLevel": "Debug", "operatorLogLevel": "Normal",
        "httpSecret": "s3cr3t", "replicas": 2, "logging": 2,
        "proxy": {"http": "http://proxy:3128", "https": "http://proxy:3128", "noProxy": ".cluster.local"},
        "storage": {
            "s3": {"bucket": "b-1", "region": "us-east-1", "regionEndpoint": "https://s3.example.com",
                   "chunkSizeMiB": 10, "encrypt": true, "keyID": "k", "virtualHostedStyle": true,
                   "trustedCA": {"name": "ca"}},
            "managementState": "Unmanaged"
        },
        "readOnly": true, "disableRedirect": true,
        "requests": {"read": {"maxRunning": 1, "maxInQueue": 2, "maxWaitInQueue": "1m"}},
        "defaultRoute": true, "routes": [{"name": "r", "hostname": "h.example.com", "secretName": "s"}],
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "rolloutStrategy": "Recreate",
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
    });
    let mut written = config_object(&cluster, spec.clone());
    written["spec"]["notAField"] = json!(1);
    // Past kubectl's own schema check: the API server prunes what it does
    // not know.
    common::kube::kubectl_stdin(
        &["apply", "--validate=false", "-f", "-"],
        written.to_string().as_bytes(),
    );
    let read = cluster.get_config().expect("the Config");
    assert_eq!(
        read["spec"], spec,
        "every field kept, free-form ones whole, unknown ones pruned"
    );

    // The status is a subresource: a write of the object leaves it alone.
    let mut with_status = read.clone();
    with_status["status"] = json!({"readyReplicas": 5});
    common::kube::kubectl_stdin(&["replace", "-f", "-"], with_status.to_string().as_bytes());
    assert!(cluster.get_config().unwrap()["status"]["readyReplicas"].is_null());

    let table = kubectl_ok(&["get", CONFIGS, &cluster.config]);
    for column in ["MANAGEMENT", "STORAGE", "REPLICAS", "AVAILABLE", "DEGRADED"] {
        assert!(table.contains(column), "{table}");
    }
}

#[test]
fn bootstrap_creates_an_empty_dir_config_and_every_registry_object() {
    let cluster = Cluster::new("bootstrap");
    let _operator = Operator::start(&cluster, "op-bootstrap");
    let config = cluster.wait("the bootstrapped Config with its httpSecret", || {
        cluster
            .get_config()
            .filter(|c| c["spec"]["httpSecret"].as_str().is_some_and(|s| s.len() == 128))
    });
    assert_eq!(config["spec"]["storage"], json!({"emptyDir": {}}));
    assert_eq!(config["spec"]["managementState"], "Managed");
    assert_eq!(config["spec"]["replicas"], 1);
    let secret = config["spec"]["httpSecret"].clone();

    let deployment = cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/berth:test");
    assert_eq!(container["args"], json!(["serve"]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], 5000);
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/registry");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
        json!({})
    );
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], "registry");
    for (name, value) in [
        ("REGISTRY_STORAGE", json!("filesystem")),
        ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", json!("/registry")),
        ("REGISTRY_HTTP_ADDR", json!(":5000")),
        ("REGISTRY_HTTP_SECRET", secret),
    ] {
        assert_eq!(
            env_var(&deployment, name).map(|v| v["value"].clone()),
            Some(value),
            "{name}"
        );
    }
    let service = cluster.get("service", "image-registry").expect("the Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 5000);
    assert_eq!(service["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(service["spec"]["ports"][1]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][1]["port"], 5001);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "5001");
    assert_eq!(
        env_var(&deployment, "REGISTRY_HTTP_DEBUG_ADDR").map(|v| v["value"].clone()),
        Some(json!(":5001"))
    );
    assert!(cluster.get("serviceaccount", "registry").is_some());
    assert!(cluster.get("secret", PRIVATE_SECRET).is_some());
    let pdb = cluster
        .get("poddisruptionbudget", "image-registry")
        .expect("the PodDisruptionBudget");
    assert_eq!(
        pdb["apiVersion"], "policy/v1beta1",
        "Kubernetes 1.20 serves no policy/v1"
    );
    let role = format!("berth:image-registry:{}", cluster.namespace);
    let binding = kubectl_ok(&["get", "clusterrolebinding", &role, "-o", "json"]);
    let binding: Value = serde_json::from_str(&binding).unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], cluster.namespace.as_str());

    let storage = cluster.wait_condition("StorageExists", "True");
    assert_eq!(reason(&storage), "EmptyDir");
    assert!(message(&storage).contains("lost"), "says that images do not last");
    assert_eq!(reason(&cluster.wait_condition("Degraded", "False")), "AsExpected");
    assert_eq!(
        reason(&cluster.wait_condition("Available", "False")),
        "NoReplicasAvailable"
    );

    cluster.make_deployment_available();
    let available = cluster.wait_condition("Available", "True");
    assert!(message(&available).contains("1 of 1"), "{available}");
    cluster.wait_condition("Progressing", "False");
    let config = cluster.get_config().unwrap();
    assert_eq!(config["status"]["readyReplicas"], 1);
    assert_eq!(config["status"]["observedGeneration"], config["metadata"]["generation"]);
    assert_eq!(config["status"]["storage"], json!({"emptyDir": {}}));
    assert!(
        cluster.events().iter().any(|(reason, _)| reason == "ConfigCreated"),
        "{:?}",
        cluster.events()
    );
}

/// A small OCI image layout at `dir` (one uncompressed layer made with
/// tar); its manifest's digest.
fn image_layout(dir: &Path) -> String {
    let sha = |bytes: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("hello.txt"), format!("hello from {}\n", std::process::id())).unwrap();
    let layer = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cf", "-", "-C"])
        .arg(&files)
        .arg("hello.txt")
        .output()
        .expect("tar");
    assert!(layer.status.success());
    let layer = layer.stdout;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(&sha(blob)[7..]), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    sha(&manifest)
}

fn skopeo(policy: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("skopeo")
        .arg("--policy")
        .arg(policy)
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("skopeo (Debian package skopeo; scripts/test installs it)");
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs the registry exactly as the Deployment describes it (its arguments,
/// its environment with every `secretKeyRef` read from its Secret), but
/// listening on a loopback port; pushes an image with skopeo and pulls it
/// back.
fn run_the_registry_the_deployment_describes(cluster: &Cluster, deployment: &Value) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut env = Vec::new();
    for var in container["env"].as_array().expect("env") {
        let name = var["name"].as_str().unwrap().to_string();
        let value = match var["valueFrom"]["secretKeyRef"].as_object() {
            Some(reference) => {
                let secret = cluster
                    .get("secret", reference["name"].as_str().unwrap())
                    .expect("the Secret a secretKeyRef names");
                let encoded = secret["data"][reference["key"].as_str().unwrap()]
                    .as_str()
                    .expect("the key");
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
            }
            None => var["value"].as_str().unwrap().to_string(),
        };
        env.push((name, value));
    }
    let free_port = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{}", free_port());
    // The metrics port too, on loopback instead of every interface.
    let metrics = format!("127.0.0.1:{}", free_port());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(&args);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("REGISTRY_") || k.starts_with("BERTH_")) {
        command.env_remove(key);
    }
    let mut registry = Killed(
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("REGISTRY_HTTP_ADDR", &address)
            .env("REGISTRY_HTTP_DEBUG_ADDR", &metrics)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("berth serve"),
    );
    let registry = &mut registry.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&address).is_err() {
        if let Some(status) = registry.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(registry.stderr.as_mut().unwrap(), &mut stderr);
            panic!("the registry the Deployment describes exited ({status}):\n{stderr}");
        }
        assert!(Instant::now() < deadline, "the registry did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let layout = dir.path().join("image");
    let digest = image_layout(&layout);
    let target = format!("docker://{address}/team/app:v1");
    skopeo(
        &policy,
        &[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            &format!("oci:{}:v1", layout.display()),
            &target,
        ],
    );
    let pulled = dir.path().join("pulled");
    skopeo(
        &policy,
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-no-creds",
            &target,
            &format!("oci:{}:v1", pulled.display()),
        ],
    );
    let inspected = skopeo(&policy, &["inspect", "--tls-verify=false", "--no-creds", &target]);
    let inspected: Value = serde_json::from_slice(&inspected).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    let index: Value = serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // What the scrape annotations point at counts the pushes.
    let mut stream = std::net::TcpStream::connect(&metrics).expect("the metrics listen");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut scraped = String::new();
    std::io::Read::read_to_string(&mut stream, &mut scraped).unwrap();
    assert!(
        scraped.contains(r#"berth_http_requests_total{method="PUT",route="manifest",status="201"}"#),
        "{scraped}"
    );
}

/// A child process killed when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_s3_config_gets_its_bucket_and_the_registry_it_describes_serves_skopeo() {
    let moto = Moto::start();
    let cluster = Cluster::new("s3");
    let bucket = common::s3::unique_bucket_name();
    cluster.apply(&credentials_secret(SECRET_KEY));
    cluster.apply(&config_object(&cluster, s3_spec(&moto, &bucket)));
    let _operator = Operator::start(&cluster, "op-s3");

    let deployment = cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    let config = cluster.get_config().unwrap();
    assert_eq!(
        config["spec"]["storage"]["managementState"], "Managed",
        "the operator created the bucket, so it manages it"
    );
    for (type_, reason_) in [
        ("StorageExists", "BucketCreated"),
        ("StoragePublicAccessBlocked", "PublicAccessBlocked"),
        ("StorageEncrypted", "EncryptionEnabled"),
        ("StorageIncompleteUploadCleanupEnabled", "LifecycleRuleSet"),
    ] {
        let found = condition(&config, type_).unwrap_or_else(|| panic!("no {type_}: {config:#}"));
        assert_eq!(found["status"], "True", "{found}");
        if type_ != "StorageExists" {
            assert_eq!(reason(&found), reason_);
        }
    }
    assert!(
        cluster
            .events()
            .iter()
            .any(|(reason, note)| reason == "StorageCreated" && note.contains(&bucket)),
        "{:?}",
        cluster.events()
    );
    let client = moto.client();
    block_on(async {
        client
            .head_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("the bucket exists in moto");
        let encryption = client
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .expect("encryption");
        assert!(encryption.server_side_encryption_configuration().is_some());
        let lifecycle = client
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .expect("a lifecycle rule");
        let abort = lifecycle.rules()[0]
            .abort_incomplete_multipart_upload()
            .expect("aborts uploads");
        assert_eq!(abort.days_after_initiation(), Some(1));
    });

    for (name, value) in [
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_BUCKET", bucket.as_str()),
        ("REGISTRY_STORAGE_S3_REGION", REGION),
        ("REGISTRY_STORAGE_S3_REGIONENDPOINT", moto.endpoint.as_str()),
        ("REGISTRY_STORAGE_S3_ENCRYPT", "true"),
    ] {
        assert_eq!(
            env_var(&deployment, name).map(|v| v["value"].clone()),
            Some(json!(value)),
            "{name}"
        );
    }
    for key in [ACCESS, SECRET] {
        let var = env_var(&deployment, key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(
            var["valueFrom"]["secretKeyRef"],
            json!({"name": PRIVATE_SECRET, "key": key})
        );
    }
    let private = cluster
        .get("secret", PRIVATE_SECRET)
        .expect("the private configuration");
    assert_eq!(
        private["data"][ACCESS],
        base64::engine::general_purpose::STANDARD.encode(ACCESS_KEY)
    );

    run_the_registry_the_deployment_describes(&cluster, &deployment);
    let keys = block_on(moto.keys(&bucket, ""));
    assert!(
        keys.iter().any(|k| k.contains("docker/registry/v2/blobs/sha256")),
        "{keys:?}"
    );

    // A changed credentials secret changes the pods' checksum: they roll.
    let checksum = |d: &Value| {
        d["spec"]["template"]["metadata"]["annotations"]["imageregistry.operator.openshift.io/dependencies-checksum"]
            .clone()
    };
    let before = checksum(&deployment);
    cluster.apply(&credentials_secret("rotated-secret-key"));
    let rolled = cluster.wait("the checksum annotation to change", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| checksum(d) != before)
    });
    assert!(checksum(&rolled).as_str().unwrap().starts_with("sha256:"));
    let private = cluster.get("secret", PRIVATE_SECRET).unwrap();
    assert_eq!(
        private["data"][SECRET],
        base64::engine::general_purpose::STANDARD.encode("rotated-secret-key")
    );
    cluster.wait("a SecretChanged event", || {
        cluster
            .events()
            .into_iter()
            .find(|(reason, _)| reason == "SecretChanged")
    });

    // Removed: a bucket that holds images is kept, whoever made it.
    cluster.patch_config(&json!({"spec": {"managementState": "Removed"}}));
    cluster.wait_condition("Removed", "True");
    cluster.wait("a StorageKept event", || {
        cluster.events().into_iter().find(|(reason, _)| reason == "StorageKept")
    });
    block_on(moto.client().head_bucket().bucket(&bucket).send()).expect("the bucket with images is still there");
    assert!(cluster.get("deployment", "image-registry").is_none());
}

#[test]
fn a_config_without_region_is_refused_and_the_running_registry_stays_until_the_seed_patch() {
    let moto = Moto::start();
    let cluster = Cluster::new("region");
    let bucket = common::s3::unique_bucket_name();
    cluster.apply(&credentials_secret(SECRET_KEY));
    cluster.apply(&config_object(&cluster, s3_spec(&moto, &bucket)));
    let _operator = Operator::start(&cluster, "op-region");
    cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    cluster.make_deployment_available();
    cluster.wait_condition("Available", "True");
    let running = cluster.get("deployment", "image-registry").unwrap();

    // No region and no endpoint: the registry would not start. Refused.
    cluster.patch_config(&json!({"spec": {"storage": {"s3": {"region": null, "regionEndpoint": null}}}}));
    let degraded = cluster.wait_condition("Degraded", "True");
    assert_eq!(reason(&degraded), "MissingRegion");
    assert!(message(&degraded).contains("spec.storage.s3.region"), "{degraded}");
    assert_eq!(reason(&cluster.wait_condition("Progressing", "False")), "ConfigRefused");
    let unchanged = cluster.get("deployment", "image-registry").unwrap();
    assert_eq!(
        unchanged["metadata"]["resourceVersion"], running["metadata"]["resourceVersion"],
        "the running Deployment stays exactly as it was"
    );
    assert_eq!(cluster.wait_condition("Available", "True")["status"], "True");
    cluster.wait("a ConfigRefused event", || {
        cluster
            .events()
            .into_iter()
            .find(|(reason, note)| reason == "ConfigRefused" && note.contains("region"))
    });

    // The seed's patch adds the region (and, here, the local endpoint, so
    // no request leaves the machine); a changed endpoint rolls the pods.
    let other_endpoint = moto.endpoint.replace("127.0.0.1", "localhost");
    let patched = Instant::now();
    cluster.patch_config(&json!({"spec": {"storage": {"s3": {"region": REGION, "regionEndpoint": other_endpoint}}}}));
    let rolled = cluster.wait("the Deployment with the new endpoint", || {
        cluster.get("deployment", "image-registry").filter(|d| {
            env_var(d, "REGISTRY_STORAGE_S3_REGIONENDPOINT").is_some_and(|v| v["value"] == other_endpoint.as_str())
        })
    });
    eprintln!(
        "a changed Config reached the Deployment in {} ms",
        patched.elapsed().as_millis()
    );
    assert_ne!(rolled["metadata"]["generation"], running["metadata"]["generation"]);
    assert_eq!(reason(&cluster.wait_condition("Degraded", "False")), "AsExpected");
}

#[test]
fn missing_credentials_are_named_and_the_seed_secret_recovers() {
    let moto = Moto::start();
    let cluster = Cluster::new("credentials");
    let bucket = common::s3::unique_bucket_name();
    cluster.apply(&config_object(&cluster, s3_spec(&moto, &bucket)));
    let _operator = Operator::start(&cluster, "op-credentials");
    let degraded = cluster.wait_condition("Degraded", "True");
    assert_eq!(reason(&degraded), "MissingCredentials");
    for word in [USER_SECRET, ACCESS, SECRET] {
        assert!(message(&degraded).contains(word), "{degraded}");
    }
    assert!(
        cluster.get("deployment", "image-registry").is_none(),
        "nothing is deployed"
    );

    let created = Instant::now();
    cluster.apply(&credentials_secret(SECRET_KEY));
    let deployment = cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    eprintln!(
        "a created secret reached the Deployment in {} ms",
        created.elapsed().as_millis()
    );
    assert!(env_var(&deployment, ACCESS).is_some());
    assert_eq!(reason(&cluster.wait_condition("Degraded", "False")), "AsExpected");
}

#[test]
fn spec_fields_shape_the_applied_objects() {
    let cluster = Cluster::new("fields");
    // Several replicas need storage they share: a ReadWriteMany claim.
    cluster.apply(&json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "shared"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }));
    cluster.apply(&config_object(
        &cluster,
        json!({"managementState": "Managed", "replicas": 1, "storage": {"pvc": {"claim": "shared"}}}),
    ));
    let _operator = Operator::start(&cluster, "op-fields");
    let first = cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    assert_eq!(
        first["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "shared"
    );
    assert_eq!(reason(&cluster.wait_condition("StorageExists", "True")), "ClaimExists");

    cluster.patch_config(&json!({"spec": {
        "replicas": 3, "logLevel": "Debug", "readOnly": true, "disableRedirect": true,
        "nodeSelector": {"disk": "ssd"}, "rolloutStrategy": "Recreate", "defaultRoute": true,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "registry", "effect": "NoSchedule"}],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    }}));
    let deployment = cluster.wait("the Deployment with 3 replicas", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| d["spec"]["replicas"] == 3)
    });
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "500m");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    for (name, value) in [
        ("REGISTRY_LOG_LEVEL", "debug"),
        ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", "true"),
        ("REGISTRY_STORAGE_REDIRECT_DISABLE", "true"),
    ] {
        assert_eq!(
            env_var(&deployment, name).map(|v| v["value"].clone()),
            Some(json!(value)),
            "{name}"
        );
    }
    let ingress = cluster.wait("the default route (an Ingress: no route.openshift.io here)", || {
        cluster.get("ingress", "default-route")
    });
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "image-registry"
    );

    // The deprecated numeric level, and a route no longer asked for.
    cluster.patch_config(&json!({"spec": {"logLevel": "Normal", "logging": 0, "defaultRoute": false}}));
    cluster.wait("the log level from `logging: 0`", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| env_var(d, "REGISTRY_LOG_LEVEL").is_some_and(|v| v["value"] == "error"))
    });
    cluster.wait("the default route deleted", || {
        cluster.get("ingress", "default-route").is_none().then_some(())
    });
}

#[test]
fn removed_unmanaged_and_deleting_the_config() {
    let cluster = Cluster::new("states");
    cluster.apply(&config_object(
        &cluster,
        json!({"managementState": "Managed", "replicas": 1, "storage": {"emptyDir": {}}}),
    ));
    let _operator = Operator::start(&cluster, "op-states");
    cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));

    cluster.patch_config(&json!({"spec": {"managementState": "Removed"}}));
    assert_eq!(reason(&cluster.wait_condition("Removed", "True")), "Removed");
    for (kind, name) in [
        ("deployment", "image-registry"),
        ("service", "image-registry"),
        ("serviceaccount", "registry"),
        ("secret", PRIVATE_SECRET),
    ] {
        cluster.wait(&format!("{kind} {name} deleted"), || {
            cluster.get(kind, name).is_none().then_some(())
        });
    }
    assert_eq!(reason(&cluster.wait_condition("Available", "False")), "Removed");

    cluster.patch_config(&json!({"spec": {"managementState": "Managed"}}));
    cluster.wait("the Deployment recreated", || {
        cluster.get("deployment", "image-registry")
    });
    cluster.wait_condition("Removed", "False");

    // Unmanaged: a hand edit stays.
    cluster.patch_config(&json!({"spec": {"managementState": "Unmanaged"}}));
    assert_eq!(reason(&cluster.wait_condition("Progressing", "False")), "Unmanaged");
    cluster.kubectl(&["scale", "deployment", "image-registry", "--replicas=4"]);
    cluster.patch_config(&json!({"spec": {"logLevel": "Debug"}}));
    // Three resyncs (3 s each) and the change to the Config pass untouched.
    std::thread::sleep(Duration::from_secs(10));
    let deployment = cluster.get("deployment", "image-registry").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 4);
    assert!(env_var(&deployment, "REGISTRY_LOG_LEVEL").is_none());

    // Deleting the Config: its finalizer removes the registry first; then,
    // as OpenShift's operator does, a Config with the defaults replaces it
    // and a new registry is made from that.
    cluster.patch_config(&json!({"spec": {"managementState": "Managed"}}));
    let managed = cluster.wait("the Deployment managed again", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| d["spec"]["replicas"] == 1)
    });
    let old = cluster.get_config().unwrap();
    kubectl_ok(&["delete", CONFIGS, &cluster.config, "--wait=false"]);
    let new = cluster.wait("a new Config", || {
        cluster
            .get_config()
            .filter(|c| c["metadata"]["uid"] != old["metadata"]["uid"])
    });
    assert_eq!(new["spec"]["storage"], json!({"emptyDir": {}}));
    cluster.wait("a new Deployment, the old one deleted", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| d["metadata"]["uid"] != managed["metadata"]["uid"])
    });
}

#[test]
fn of_two_operators_only_the_leader_writes_and_the_other_takes_over() {
    let cluster = Cluster::new("leader");
    cluster.apply(&config_object(
        &cluster,
        json!({"managementState": "Managed", "replicas": 1, "storage": {"emptyDir": {}}}),
    ));
    let holder = || {
        cluster
            .get("lease", "berth-operator-lock")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let mut first = Operator::start(&cluster, "op-first");
    cluster.wait("op-first to lead", || holder().filter(|h| h == "op-first"));
    cluster.wait("the Deployment", || cluster.get("deployment", "image-registry"));
    let second = Operator::start(&cluster, "op-second");
    cluster.wait("op-second to stand by", || {
        second.log().contains("standing by").then_some(())
    });
    assert!(!second.log().contains("leading"), "{}", second.log());
    assert_eq!(holder().as_deref(), Some("op-first"));

    let stopped = Instant::now();
    assert!(first.stop().success(), "SIGTERM is a clean stop:\n{}", first.log());
    cluster.wait("op-second to lead", || holder().filter(|h| h == "op-second"));
    eprintln!("the standby led {} ms after SIGTERM", stopped.elapsed().as_millis());
    cluster.patch_config(&json!({"spec": {"logLevel": "Debug"}}));
    cluster.wait("op-second to apply a change", || {
        cluster
            .get("deployment", "image-registry")
            .filter(|d| env_var(d, "REGISTRY_LOG_LEVEL").is_some_and(|v| v["value"] == "debug"))
    });
}

#[test]
fn the_deploy_manifests_apply_and_hold_the_generated_crd() {
    let crd = common::berth(&["operator", "crd"], &[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = std::fs::read(root.join("deploy/01-crd.yaml")).expect("deploy/01-crd.yaml");
    assert!(
        committed == crd.stdout,
        "deploy/01-crd.yaml is not `berth operator crd`: regenerate it with `cargo run -p berth -- operator crd > deploy/01-crd.yaml`"
    );
    // Real objects, applied for real: the operator's pods stay Pending here.
    let _cluster = Cluster::new("deploy");
    let applied = kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        root.join("deploy").to_str().unwrap(),
    ]);
    for object in [
        "namespace/openshift-image-registry",
        "deployment.apps/berth-operator",
        "clusterrole.rbac.authorization.k8s.io/berth-operator",
    ] {
        assert!(applied.contains(object), "{applied}");
    }
    // The operator's service account may do what the operator does.
    let account = "system:serviceaccount:openshift-image-registry:berth-operator";
    for (verb, resource, namespace) in [
        ("watch", CONFIGS, None),
        ("patch", &format!("{CONFIGS}/status") as &str, None),
        ("patch", "deployments.apps", Some("openshift-image-registry")),
        (
            "delete",
            "ingresses.networking.k8s.io",
            Some("openshift-image-registry"),
        ),
        ("update", "leases.coordination.k8s.io", Some("openshift-image-registry")),
        ("get", "secrets", Some("openshift-image-registry")),
        ("create", "events", Some("default")),
        ("patch", "clusterrolebindings.rbac.authorization.k8s.io", None),
    ] {
        let mut args = vec!["auth", "can-i", verb, resource, "--as", account];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        let output = kubectl(&args);
        assert!(output.status.success(), "the operator may not {verb} {resource}");
    }
    let output = kubectl(&[
        "auth",
        "can-i",
        "delete",
        "secrets",
        "-n",
        "kube-system",
        "--as",
        account,
    ]);
    assert!(
        !output.status.success(),
        "the operator's Role is bound to its namespace only"
    );
}

#[test]
fn an_unreachable_storage_endpoint_is_degraded_naming_the_bucket_and_retried() {
    let moto = Moto::start();
    let cluster = Cluster::new("unreachable");
    let bucket = common::s3::unique_bucket_name();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut spec = s3_spec(&moto, &bucket);
    spec["storage"]["s3"]["regionEndpoint"] = json!(format!("http://127.0.0.1:{closed}"));
    cluster.apply(&credentials_secret(SECRET_KEY));
    cluster.apply(&config_object(&cluster, spec));
    let _operator = Operator::start(&cluster, "op-unreachable");
    let degraded = cluster.wait_condition("Degraded", "True");
    assert_eq!(reason(&degraded), "StorageError");
    eprintln!("Degraded: {}", message(&degraded));
    assert!(message(&degraded).contains(&bucket), "{degraded}");
    assert_eq!(reason(&cluster.wait_condition("Progressing", "True")), "Retrying");
    assert!(
        cluster.get("deployment", "image-registry").is_none(),
        "nothing is deployed on storage that fails"
    );
    // Retries (after 1, 2 and 4 s) fail the same way: told once.
    std::thread::sleep(Duration::from_secs(8));
    let told = cluster
        .events()
        .into_iter()
        .filter(|(reason, _)| reason == "StorageFailed")
        .count();
    assert_eq!(told, 1, "{:?}", cluster.events());
    assert!(
        cluster.get_config().unwrap()["spec"]["storage"]["managementState"].is_null(),
        "a bucket nobody could see is neither Managed nor Unmanaged yet"
    );

    cluster.patch_config(&json!({"spec": {"storage": {"s3": {"regionEndpoint": moto.endpoint}}}}));
    cluster.wait("the Deployment once the storage answers", || {
        cluster.get("deployment", "image-registry")
    });
    assert_eq!(reason(&cluster.wait_condition("Degraded", "False")), "AsExpected");
    assert_eq!(
        cluster.get_config().unwrap()["spec"]["storage"]["managementState"],
        "Managed"
    );

    // Removed: the operator made this bucket and nothing is in it, so it
    // goes too.
    cluster.patch_config(&json!({"spec": {"managementState": "Removed"}}));
    cluster.wait_condition("Removed", "True");
    cluster.wait("a StorageRemoved event", || {
        cluster
            .events()
            .into_iter()
            .find(|(reason, note)| reason == "StorageRemoved" && note.contains(&bucket))
    });
    let head = block_on(moto.client().head_bucket().bucket(&bucket).send());
    assert!(head.is_err(), "the empty bucket the operator made is deleted");
}
