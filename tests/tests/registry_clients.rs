//! Real clients against the real router on 127.0.0.1: skopeo pushes, pulls,
//! copies between repositories, lists and deletes through Berth, on the
//! filesystem driver and on the S3 driver (moto); and CNCF
//! distribution (Debian's `docker-registry`) and Berth serve each other's data
//! directories.
//!
//! The tools are Debian packages that `.ci/run` installs; a missing one fails
//! the test with the package to install, it never skips.

mod common;

use common::storage::{blob_data_path, repository_path, uploads_path};
use common::{bounded, deletes_enabled, http, noise, on_every_storage, run, sha256, Berth, TestStorage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The longest one client command may take; the child is killed after it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// The tools

/// The path of `program` on `PATH`, or a failure naming the apt package.
fn tool(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed: `apt-get install {package}` (Debian package `{package}`; \
                 .ci/run installs it)"
            )
        })
}

/// A command with nothing of the caller's proxies, credentials or registry
/// overrides, killed when dropped.
fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("_PROXY") || upper.starts_with("REGISTRY_") || upper == "AWS_CA_BUNDLE" {
            command.env_remove(&name);
        }
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// skopeo with a policy accepting anything, and no credentials ever.
struct Skopeo {
    program: PathBuf,
    policy: PathBuf,
    _dir: tempfile::TempDir,
}

impl Skopeo {
    fn new() -> Skopeo {
        let program = tool("skopeo", "skopeo");
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        Skopeo {
            program,
            policy,
            _dir: dir,
        }
    }

    async fn output(&self, args: &[&str]) -> Output {
        let mut command = command(&self.program);
        command.arg("--policy").arg(&self.policy).args(args);
        run(command, COMMAND_TIMEOUT).await
    }

    /// Runs `skopeo args...`, which must succeed; its standard output.
    async fn ok(&self, args: &[&str]) -> Vec<u8> {
        let output = self.output(args).await;
        assert!(
            output.status.success(),
            "skopeo {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// `copy` from `from` to `to`, registries over plain HTTP, digests kept.
    async fn copy(&self, from: &str, to: &str) {
        self.ok(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            from,
            to,
        ])
        .await;
    }

    /// `inspect --raw`: the manifest's bytes.
    async fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        self.ok(&["inspect", "--raw", "--tls-verify=false", "--no-creds", reference])
            .await
    }

    async fn inspect(&self, reference: &str) -> Value {
        let out = self
            .ok(&["inspect", "--tls-verify=false", "--no-creds", reference])
            .await;
        serde_json::from_slice(&out).expect("skopeo inspect prints JSON")
    }

    async fn list_tags(&self, repository: &str) -> Vec<String> {
        let out = self
            .ok(&["list-tags", "--tls-verify=false", "--no-creds", repository])
            .await;
        let listed: Value = serde_json::from_slice(&out).expect("skopeo list-tags prints JSON");
        listed["Tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no Tags in {listed}"))
            .iter()
            .map(|tag| tag.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Berth and docker-registry

/// Debian's `docker-registry` (CNCF distribution 2.8) with filesystem
/// storage at a root, on a free loopback port; killed when dropped.
struct DockerRegistry {
    address: String,
    child: Child,
    log: PathBuf,
}

impl DockerRegistry {
    async fn start(root: &Path, scratch: &Path) -> DockerRegistry {
        let program = tool("docker-registry", "docker-registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = scratch.join(format!("docker-registry-{port}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
                 \x20 cache:\n    blobdescriptor: inmemory\n\
                 http:\n  addr: {address}\n  secret: berth-tests\n",
                root = root.display()
            ),
        )
        .unwrap();
        let log = scratch.join(format!("docker-registry-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = command(&program);
        // `command` has removed AWS_CA_BUNDLE: distribution panics on it here.
        command
            .arg("serve")
            .arg(&config)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let child = command.spawn().expect("start docker-registry");
        let mut registry = DockerRegistry { address, child, log };
        registry.wait_ready().await;
        registry
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Until `GET /v2/` answers 200; fails if the process ends first.
    async fn wait_ready(&mut self) {
        let client = http();
        let url = format!("http://{}/v2/", self.address);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("docker-registry status") {
                panic!(
                    "docker-registry exited ({status}) before answering:\n{}",
                    self.log_text()
                );
            }
            if let Ok(response) = client.get(&url).timeout(Duration::from_secs(2)).send().await {
                if response.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer GET /v2/ within 30 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        self.child.kill().await.expect("kill docker-registry");
    }
}

// ---------------------------------------------------------------------------
// A small OCI image layout, built here

/// What an image layout holds: its manifest and blobs by digest.
struct Image {
    manifest: Vec<u8>,
    manifest_digest: String,
    config_digest: String,
    layer_digests: Vec<String>,
    blobs: BTreeMap<String, Vec<u8>>,
}

/// A tar of one regular file.
fn tar_of(path: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, content).expect("tar");
    builder.into_inner().expect("tar")
}

fn gzip(content: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(content).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A seed that differs between runs, so no client-side cache remembers the
/// blobs from an earlier run; printed for reproducing a failure.
fn run_seed(salt: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default();
    let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    eprintln!("image seed {seed:#x}");
    seed
}

/// An image of two gzipped layers (a small file; a few MiB of noise, which
/// crosses every chunk boundary), written as an OCI layout at `dir` under
/// `tag`.
fn image_layout(dir: &Path, tag: &str, seed: u64) -> Image {
    let small = tar_of("etc/berth-test", format!("seed {seed}\n").as_bytes());
    let large = tar_of("data/noise.bin", &noise(3 * 1024 * 1024 + 12_345, seed));
    let tars = [small, large];
    let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [format!("BERTH_TEST_SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| sha256(t)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let descriptor = |media_type: &str, content: &[u8]| json!({"mediaType": media_type, "digest": sha256(content), "size": content.len()});
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": layers.iter().map(|layer| descriptor(OCI_LAYER_GZIP, layer)).collect::<Vec<_>>(),
    }))
    .unwrap();

    let mut blobs = BTreeMap::new();
    for blob in layers.iter().chain([&config, &manifest]) {
        blobs.insert(sha256(blob), blob.clone());
    }
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    for (digest, content) in &blobs {
        std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), content).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    Image {
        manifest_digest: sha256(&manifest),
        config_digest: sha256(&config),
        layer_digests: layers.iter().map(|layer| sha256(layer)).collect(),
        blobs,
        manifest,
    }
}

/// Reads the image tagged `tag` back from an OCI layout that skopeo wrote
/// and checks that it is `expected`, blob for blob, each blob's content
/// hashing to its digest.
fn assert_layout_holds(dir: &Path, tag: &str, expected: &Image) {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .and_then(|manifests| {
            manifests
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        })
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"));
    let blob = |digest: &str| {
        let content = std::fs::read(dir.join("blobs/sha256").join(&digest[7..]))
            .unwrap_or_else(|err| panic!("blob {digest} in {}: {err}", dir.display()));
        assert_eq!(sha256(&content), digest, "the content of blob {digest}");
        content
    };
    assert_eq!(entry["digest"], expected.manifest_digest.as_str(), "{index}");
    let manifest = blob(&expected.manifest_digest);
    assert_eq!(manifest, expected.manifest);
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(parsed["config"]["digest"], expected.config_digest.as_str());
    let layers: Vec<&str> = parsed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap())
        .collect();
    assert_eq!(layers, expected.layer_digests);
    for digest in layers.iter().copied().chain([expected.config_digest.as_str()]) {
        assert_eq!(&blob(digest), &expected.blobs[digest], "blob {digest}");
    }
}

/// `%XX` escapes decoded, enough to read a logged request line.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

async fn get_json(url: &str) -> (reqwest::StatusCode, Value) {
    let response = http().get(url).send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

// ---------------------------------------------------------------------------
// The tests

// skopeo's round trip on both storages (`filesystem::` and `s3::`). The two
// interoperability tests with docker-registry stay on the filesystem: they
// are about sharing a data directory with the Debian docker-registry, which
// runs here with its filesystem driver.
on_every_storage!(skopeo_push_pull_copy_list_delete);

async fn skopeo_push_pull_copy_list_delete(storage: TestStorage) {
    let skopeo = Skopeo::new();
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source");
    let seed = run_seed(1);
    let image = image_layout(&source, "v1", seed);
    let berth = Berth::serve_on(&storage, deletes_enabled()).await;
    let at = |reference: &str| format!("docker://{}/{reference}", berth.address);

    // Push.
    skopeo
        .copy(&format!("oci:{}:v1", source.display()), &at("team/app:v1"))
        .await;
    let requests = berth.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("PATCH /v2/team/app/blobs/uploads/")),
        "skopeo streamed the layers in uploads: {requests:#?}"
    );
    // In the backend itself: every blob in distribution's layout, the tag,
    // and no upload left behind (nor, on S3, a multipart upload).
    for (digest, content) in &image.blobs {
        let stored = storage.read(&blob_data_path(digest)).await;
        assert!(stored.as_ref() == Some(content), "blob {digest} as stored");
    }
    let tag = format!("{}/_manifests/tags/v1/current/link", repository_path("team/app"));
    assert_eq!(storage.read_text(&tag).await, image.manifest_digest);
    assert_eq!(
        storage.paths_under(&uploads_path("team/app")).await,
        Vec::<String>::new()
    );
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());

    // The manifest as stored, byte for byte, and as skopeo reads it.
    let raw = skopeo.raw_manifest(&at("team/app:v1")).await;
    assert_eq!(sha256(&raw), image.manifest_digest);
    assert_eq!(raw, image.manifest);
    let inspected = skopeo.inspect(&at("team/app:v1")).await;
    assert_eq!(inspected["Digest"], image.manifest_digest.as_str(), "{inspected}");
    assert_eq!(inspected["Layers"], json!(image.layer_digests), "{inspected}");
    assert_eq!(inspected["RepoTags"], json!(["v1"]), "{inspected}");
    assert_eq!(
        inspected["Env"],
        json!([format!("BERTH_TEST_SEED={seed}")]),
        "{inspected}"
    );

    // The large layer, straight from Berth.
    let large = &image.layer_digests[1];
    let response = http()
        .get(format!("http://{}/v2/team/app/blobs/{large}", berth.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(sha256(&response.bytes().await.unwrap()), *large);

    // Pull into a new layout: the same manifest and blobs.
    let pulled = scratch.path().join("pulled");
    skopeo
        .copy(&at("team/app:v1"), &format!("oci:{}:v1", pulled.display()))
        .await;
    assert_layout_holds(&pulled, "v1", &image);

    // Registry to registry, into another repository: the layers are
    // mounted from team/app, not uploaded again.
    berth.clear_requests();
    skopeo.copy(&at("team/app:v1"), &at("other/app:v2")).await;
    let requests: Vec<String> = berth.requests().iter().map(|r| percent_decode(r)).collect();
    for layer in &image.layer_digests {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("POST /v2/other/app/blobs/uploads/?")
                    && r.contains(&format!("mount={layer}"))
                    && r.contains("from=team/app")
                    && r.ends_with(" -> 201")),
            "no cross-repository mount of {layer}: {requests:#?}"
        );
    }
    // Only the config (which skopeo never mounts) is uploaded again.
    let uploaded: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("PUT /v2/other/app/blobs/uploads/"))
        .collect();
    assert!(
        uploaded
            .iter()
            .all(|r| r.contains(&format!("digest={}", image.config_digest))),
        "a layer was uploaded instead of mounted: {requests:#?}"
    );
    assert_eq!(
        sha256(&skopeo.raw_manifest(&at("other/app:v2")).await),
        image.manifest_digest
    );

    // Converted to a Docker schema 2 manifest on the way: Berth keeps that
    // media type and serves it under the digest of its bytes.
    skopeo
        .ok(&[
            "copy",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-no-creds",
            "--dest-no-creds",
            &at("team/app:v1"),
            &at("docker/app:v1"),
        ])
        .await;
    let raw = skopeo.raw_manifest(&at("docker/app:v1")).await;
    let converted: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(converted["mediaType"], DOCKER_MANIFEST, "{converted}");
    assert_eq!(converted["layers"][1]["digest"], large.as_str(), "{converted}");
    let response = http()
        .head(format!("http://{}/v2/docker/app/manifests/v1", berth.address))
        .header("accept", DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], DOCKER_MANIFEST);
    assert_eq!(headers["docker-content-digest"], sha256(&raw).as_str());

    // Another tag in the same repository, then the tags.
    skopeo.copy(&at("team/app:v1"), &at("team/app:latest")).await;
    assert_eq!(skopeo.list_tags(&at("team/app")).await, ["latest", "v1"]);
    assert_eq!(skopeo.list_tags(&at("other/app")).await, ["v2"]);
    let (status, catalog) = get_json(&format!("http://{}/v2/_catalog", berth.address)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{catalog}");
    assert_eq!(
        catalog,
        json!({"repositories": ["docker/app", "other/app", "team/app"]})
    );

    // Delete: skopeo resolves the tag and deletes the manifest by digest,
    // which takes every tag of it along, in that repository only.
    berth.clear_requests();
    skopeo
        .ok(&["delete", "--tls-verify=false", "--no-creds", &at("team/app:v1")])
        .await;
    let deleted = format!("DELETE /v2/team/app/manifests/{} -> 202", image.manifest_digest);
    let requests: Vec<String> = berth.requests().iter().map(|r| percent_decode(r)).collect();
    assert!(requests.contains(&deleted), "{requests:#?}");
    let gone = skopeo
        .output(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            &at("team/app:v1"),
        ])
        .await;
    assert!(!gone.status.success(), "team/app:v1 is still there after skopeo delete");
    for reference in ["v1", "latest", image.manifest_digest.as_str()] {
        let (status, body) = get_json(&format!("http://{}/v2/team/app/manifests/{reference}", berth.address)).await;
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "team/app:{reference}: {body}");
        assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN", "{body}");
    }
    assert_eq!(
        sha256(&skopeo.raw_manifest(&at("other/app:v2")).await),
        image.manifest_digest,
        "deleting in team/app left other/app alone"
    );
    for repository in ["team/app", "other/app", "docker/app"] {
        assert_eq!(
            storage.paths_under(&uploads_path(repository)).await,
            Vec::<String>::new()
        );
    }
    assert_eq!(storage.multipart_uploads().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_serves_what_docker_registry_wrote() {
    bounded(async {
        let skopeo = Skopeo::new();
        let scratch = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let source = scratch.path().join("source");
        let image = image_layout(&source, "v1", run_seed(2));
        let oci_source = format!("oci:{}:v1", source.display());

        // distribution writes.
        let distribution = DockerRegistry::start(root.path(), scratch.path()).await;
        let at = |address: &str, reference: &str| format!("docker://{address}/{reference}");
        skopeo
            .copy(&oci_source, &at(&distribution.address, "team/app:v1"))
            .await;
        skopeo
            .copy(&oci_source, &at(&distribution.address, "team/app:v2"))
            .await;
        skopeo
            .copy(&oci_source, &at(&distribution.address, "library/base:1.0"))
            .await;
        let raw = skopeo.raw_manifest(&at(&distribution.address, "team/app:v1")).await;
        assert_eq!(sha256(&raw), image.manifest_digest, "docker-registry kept the manifest");
        distribution.stop().await;
        let blob_data = root.path().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &image.layer_digests[1][7..9],
            &image.layer_digests[1][7..]
        ));
        assert!(
            blob_data.is_file(),
            "docker-registry's layout at {}",
            blob_data.display()
        );

        // Berth serves the same directory.
        let berth = Berth::serve(root.path(), false).await;
        let raw = skopeo.raw_manifest(&at(&berth.address, "team/app:v1")).await;
        assert_eq!(raw, image.manifest);
        assert_eq!(sha256(&raw), image.manifest_digest);
        let inspected = skopeo.inspect(&at(&berth.address, "library/base:1.0")).await;
        assert_eq!(inspected["Digest"], image.manifest_digest.as_str(), "{inspected}");
        assert_eq!(inspected["Layers"], json!(image.layer_digests), "{inspected}");

        let pulled = scratch.path().join("pulled");
        skopeo
            .copy(
                &at(&berth.address, "team/app:v2"),
                &format!("oci:{}:v2", pulled.display()),
            )
            .await;
        assert_layout_holds(&pulled, "v2", &image);

        assert_eq!(skopeo.list_tags(&at(&berth.address, "team/app")).await, ["v1", "v2"]);
        assert_eq!(skopeo.list_tags(&at(&berth.address, "library/base")).await, ["1.0"]);
        let (status, tags) = get_json(&format!("http://{}/v2/team/app/tags/list", berth.address)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{tags}");
        assert_eq!(tags, json!({"name": "team/app", "tags": ["v1", "v2"]}));
        let (status, catalog) = get_json(&format!("http://{}/v2/_catalog", berth.address)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{catalog}");
        assert_eq!(catalog, json!({"repositories": ["library/base", "team/app"]}));
        let (status, page) = get_json(&format!("http://{}/v2/_catalog?n=1", berth.address)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        assert_eq!(page, json!({"repositories": ["library/base"]}));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_registry_serves_what_berth_wrote() {
    bounded(async {
        let skopeo = Skopeo::new();
        let scratch = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let source = scratch.path().join("source");
        let image = image_layout(&source, "v1", run_seed(3));
        let at = |address: &str, reference: &str| format!("docker://{address}/{reference}");

        // Berth writes: a push, and a copy into another repository (a mount).
        let berth = Berth::serve(root.path(), true).await;
        skopeo
            .copy(
                &format!("oci:{}:v1", source.display()),
                &at(&berth.address, "team/app:v1"),
            )
            .await;
        skopeo
            .copy(
                &at(&berth.address, "team/app:v1"),
                &at(&berth.address, "mounted/app:v1"),
            )
            .await;
        drop(berth);

        // distribution serves the same directory.
        let distribution = DockerRegistry::start(root.path(), scratch.path()).await;
        for repository in ["team/app", "mounted/app"] {
            let raw = skopeo
                .raw_manifest(&at(&distribution.address, &format!("{repository}:v1")))
                .await;
            assert_eq!(sha256(&raw), image.manifest_digest, "{repository}");
            let pulled = scratch.path().join(repository.replace('/', "-"));
            skopeo
                .copy(
                    &at(&distribution.address, &format!("{repository}:v1")),
                    &format!("oci:{}:v1", pulled.display()),
                )
                .await;
            assert_layout_holds(&pulled, "v1", &image);
        }
        assert_eq!(skopeo.list_tags(&at(&distribution.address, "team/app")).await, ["v1"]);
        let (status, catalog) = get_json(&format!("http://{}/v2/_catalog", distribution.address)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{catalog}");
        assert_eq!(catalog, json!({"repositories": ["mounted/app", "team/app"]}));
        distribution.stop().await;
    })
    .await;
}
