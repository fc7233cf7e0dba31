//! A second real client against the real router on 127.0.0.1: ORAS (the
//! PyPI package `oras`, oras-py) pushes an artifact of two files with an
//! artifactType and annotations, pulls it back, and attaches a referrer to it
//! through a `subject`; the test checks what Berth serves over HTTP.
//!
//! `.ci/run` installs the package; without it the test fails with the command
//! to install it, it never skips.

mod common;

use common::{http, noise, run, sha256, Berth};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::Command;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The artifactType of the artifact, set on its manifest.
const ARTIFACT_TYPE: &str = "application/vnd.berth.test.artifact";
/// The referrer has no artifactType field: its config's media type is its type.
const REFERRER_TYPE: &str = "application/vnd.berth.test.signature";
/// The longest the ORAS script may take; the child is killed after it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Pushes, pulls and attaches with oras-py; argv: `ADDRESS WORK`. Reads
/// `WORK/source/*`, pulls into `WORK/pulled`, writes `WORK/result.json`.
const ORAS_SCRIPT: &str = r#"
import json, os, sys
import oras.client, oras.defaults, oras.oci

address, work = sys.argv[1], sys.argv[2]
target = f"{address}/repo/artifact:v1"

class Client(oras.client.OrasClient):
    """oras-py has no artifactType option: set it on the manifest it uploads."""
    artifact_type = None

    def upload_manifest(self, manifest, container):
        if self.artifact_type:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)

client = Client(insecure=True)
result = {}

os.chdir(os.path.join(work, "source"))
client.artifact_type = "application/vnd.berth.test.artifact"
response = client.push(
    target=target,
    files=["hello.txt:text/plain", "noise.bin:application/octet-stream"],
    manifest_annotations={"org.opencontainers.image.description": "berth oras test", "com.example.seed": os.environ["BERTH_TEST_SEED"]},
    quiet=True,
)
result["push_status"] = response.status_code
result["pushed_digest"] = response.headers.get("Docker-Content-Digest")

result["pulled"] = sorted(client.pull(target=target, outdir=os.path.join(work, "pulled")))

# The manifest's bytes as served: the subject descriptor of the referrer.
manifest = client.do_request(
    f"http://{address}/v2/repo/artifact/manifests/v1",
    "GET",
    headers={"Accept": oras.defaults.default_manifest_media_type},
)
manifest.raise_for_status()
subject = oras.oci.Subject(
    mediaType=manifest.headers["Content-Type"],
    digest=manifest.headers["Docker-Content-Digest"],
    size=len(manifest.content),
)
result["subject"] = {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size}

client.artifact_type = None
with open("signature.json", "w") as config:
    config.write('{"signed": true}')
response = client.push(
    target=f"{address}/repo/artifact:signature",
    files=["signature.txt"],
    manifest_config="signature.json:application/vnd.berth.test.signature",
    manifest_annotations={"com.example.kind": "signature"},
    subject=subject,
    quiet=True,
)
result["referrer_status"] = response.status_code
result["referrer_digest"] = response.headers.get("Docker-Content-Digest")

with open(os.path.join(work, "result.json"), "w") as out:
    json.dump(result, out)
"#;

async fn get(url: &str, accept: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = http()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap_or_default().to_vec())
}

async fn get_json(url: &str, accept: &str) -> (reqwest::StatusCode, Value) {
    let (status, _, body) = get(url, accept).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `python3` on `PATH`, or a failure saying how to get it.
fn python3() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`python3` is not installed: the ORAS test runs oras-py (`pip install oras`)"))
}

/// python3 with nothing of the caller's proxies or credentials (`HOME` is
/// `home`, so no `~/.docker/config.json`), killed when dropped.
fn python(home: &Path) -> Command {
    let mut command = Command::new(python3());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("_PROXY") || upper.starts_with("DOCKER_") || upper.starts_with("REQUESTS_") {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", home)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_push_pull_attach() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let scratch = tempfile::tempdir().unwrap();
        let home = scratch.path().join("home");
        let work = scratch.path().join("work");
        let source = work.join("source");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&source).unwrap();

        // oras-py must be there: never skip.
        let mut check = python(&home);
        check.arg("-c").arg("import oras.client");
        let checked = run(check, COMMAND_TIMEOUT).await;
        assert!(
            checked.status.success(),
            "oras-py is not installed: `python3 -m pip install oras` (PyPI package `oras`; .ci/run installs it):\n{}",
            output_text(&checked)
        );

        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default()
            ^ u64::from(std::process::id());
        eprintln!("artifact seed {seed:#x}");
        let files = [
            ("hello.txt", format!("hello from berth, seed {seed}\n").into_bytes()),
            ("noise.bin", noise(256 * 1024 + 17, seed)),
        ];
        for (name, content) in &files {
            std::fs::write(source.join(name), content).unwrap();
        }
        std::fs::write(source.join("signature.txt"), format!("signed {seed}\n")).unwrap();

        let root = tempfile::tempdir().unwrap();
        let berth = Berth::serve(root.path(), false).await;
        let base = format!("http://{}/v2/repo/artifact", berth.address);

        // Push, pull and attach with ORAS.
        let script = scratch.path().join("oras_test.py");
        std::fs::write(&script, ORAS_SCRIPT).unwrap();
        let mut oras = python(&home);
        oras.arg(&script)
            .arg(&berth.address)
            .arg(&work)
            .env("BERTH_TEST_SEED", seed.to_string());
        let output = run(oras, COMMAND_TIMEOUT).await;
        assert!(
            output.status.success(),
            "the oras-py script failed ({}):\n{}",
            output.status,
            output_text(&output)
        );
        let result: Value =
            serde_json::from_slice(&std::fs::read(work.join("result.json")).expect("the script wrote result.json"))
                .expect("result.json is JSON");
        eprintln!("oras-py: {result}");
        assert_eq!(result["push_status"], 201, "{result}");
        assert_eq!(result["referrer_status"], 201, "{result}");

        // The pulled files are the pushed ones, byte for byte.
        let pulled = work.join("pulled");
        let expected: Vec<String> = files
            .iter()
            .map(|(name, _)| pulled.join(name).display().to_string())
            .collect();
        assert_eq!(result["pulled"], json!(expected), "{result}");
        for (name, content) in &files {
            let got = std::fs::read(pulled.join(name)).unwrap_or_else(|err| panic!("pulled {name}: {err}"));
            assert!(got == *content, "pulled {name} differs from the pushed file");
        }

        // The tag.
        let (status, tags) = get_json(&format!("{base}/tags/list"), "application/json").await;
        assert_eq!(status, reqwest::StatusCode::OK, "{tags}");
        let listed: Vec<&str> = tags["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v2/repo/artifact/tags/list: no tags in {tags}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(listed.contains(&"v1"), "{tags}");
        assert_eq!(tags["name"], "repo/artifact", "{tags}");

        // The manifest as ORAS wrote it.
        let (status, headers, raw) = get(&format!("{base}/manifests/v1"), OCI_MANIFEST).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{}", String::from_utf8_lossy(&raw));
        let digest = sha256(&raw);
        assert_eq!(headers["docker-content-digest"], digest.as_str());
        assert_eq!(headers["content-type"], OCI_MANIFEST);
        assert_eq!(result["pushed_digest"], digest.as_str(), "{result}");
        assert_eq!(
            result["subject"],
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": raw.len()}),
            "{result}"
        );
        let manifest: Value = serde_json::from_slice(&raw).expect("the manifest is JSON");
        assert_eq!(manifest["artifactType"], ARTIFACT_TYPE, "{manifest}");
        assert_eq!(
            manifest["annotations"],
            json!({"org.opencontainers.image.description": "berth oras test", "com.example.seed": seed.to_string()}),
            "{manifest}"
        );
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 2, "{manifest}");
        for (layer, (name, content)) in layers.iter().zip(&files) {
            assert_eq!(layer["digest"], sha256(content).as_str(), "{manifest}");
            assert_eq!(layer["size"], content.len(), "{manifest}");
            assert_eq!(
                layer["annotations"]["org.opencontainers.image.title"], *name,
                "{manifest}"
            );
        }
        assert_eq!(layers[0]["mediaType"], "text/plain", "{manifest}");

        // The referrer, listed for the artifact's digest with its type.
        let referrer_digest = result["referrer_digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no digest for the referrer push: {result}"));
        let (status, headers, referrer_raw) = get(&format!("{base}/manifests/{referrer_digest}"), OCI_MANIFEST).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(sha256(&referrer_raw), referrer_digest);
        assert_eq!(headers["content-type"], OCI_MANIFEST);
        let referrer: Value = serde_json::from_slice(&referrer_raw).unwrap();
        assert_eq!(referrer["subject"]["digest"], digest.as_str(), "{referrer}");
        assert_eq!(referrer["config"]["mediaType"], REFERRER_TYPE, "{referrer}");

        let url = format!("{base}/referrers/{digest}");
        let (status, headers, body) = get(&url, OCI_INDEX).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, reqwest::StatusCode::OK, "GET {url}: {text}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with(OCI_INDEX),
            "GET {url}: Content-Type {:?}",
            headers["content-type"]
        );
        let index: Value = serde_json::from_slice(&body).unwrap_or_else(|err| panic!("GET {url}: {err}: {text}"));
        assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
        assert_eq!(
            index["manifests"],
            json!([{
                "mediaType": OCI_MANIFEST,
                "digest": referrer_digest,
                "size": referrer_raw.len(),
                "artifactType": REFERRER_TYPE,
                "annotations": {"com.example.kind": "signature"},
            }]),
            "GET {url}"
        );
        // The filter by artifactType.
        let (status, filtered) = get_json(&format!("{url}?artifactType={REFERRER_TYPE}"), OCI_INDEX).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{filtered}");
        assert_eq!(filtered["manifests"], index["manifests"], "{filtered}");
        let (status, none) = get_json(&format!("{url}?artifactType={ARTIFACT_TYPE}"), OCI_INDEX).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{none}");
        assert_eq!(none["manifests"], json!([]), "{none}");
    })
    .await
    .expect("the test took longer than 5 minutes");
}

/// Logs in as `USER` and pushes, then pulls, one file; argv: `ADDRESS WORK
/// USER PASSWORD`. Writes `WORK/result.json`
/// with what happened, failures included.
const ORAS_LOGIN_SCRIPT: &str = r#"
import json, os, sys
import oras.client

address, work = sys.argv[1], sys.argv[2]
target = f"{address}/team/notes:v1"
client = oras.client.OrasClient(hostname=address, insecure=True, auth_backend="basic")
result = {}
client.login(username=sys.argv[3], password=sys.argv[4], hostname=address)
os.chdir(os.path.join(work, "source"))
try:
    response = client.push(target=target, files=["note.txt:text/plain"], quiet=True)
    result["push_status"] = response.status_code
    result["pulled"] = sorted(client.pull(target=target, outdir=os.path.join(work, "pulled")))
except Exception as err:
    result["error"] = str(err)
with open(os.path.join(work, "result.json"), "w") as out:
    json.dump(result, out)
"#;

/// oras-py against htpasswd auth: logged in, it pushes and pulls. oras-py's
/// default auth backend asks for bearer tokens; against Basic auth it is
/// given its `basic` backend, as it would be against distribution. Pushes
/// without credentials are checked with skopeo in host/tests/serve.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_logs_in_with_htpasswd() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let scratch = tempfile::tempdir().unwrap();
        let home = scratch.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let htpasswd = scratch.path().join("htpasswd");
        let hash = bcrypt::hash("open-sesame", 4).unwrap();
        std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
        let auth = berth::auth::Auth::htpasswd("oras-test", &htpasswd, None).expect("htpasswd");
        let root = tempfile::tempdir().unwrap();
        let host = berth::plugin::PluginHost::new(berth::plugin::PluginHostOptions::default()).unwrap();
        let driver =
            berth::storage::open_driver(&host, "filesystem", common::storage::filesystem_parameters(root.path()))
                .await
                .unwrap();
        let options = berth::registry::RegistryOptions {
            auth: Some(std::sync::Arc::new(auth)),
            ..berth::registry::RegistryOptions::default()
        };
        let berth = Berth::serve_driver(host, driver, options).await;
        let script = scratch.path().join("oras_login.py");
        std::fs::write(&script, ORAS_LOGIN_SCRIPT).unwrap();

        let attempt = |name: &str, login: &[&str]| {
            let work = scratch.path().join(name);
            std::fs::create_dir_all(work.join("source")).unwrap();
            std::fs::write(work.join("source/note.txt"), format!("a note for {name}\n")).unwrap();
            let mut oras = python(&home);
            oras.arg(&script).arg(&berth.address).arg(&work).args(login);
            async move {
                let output = run(oras, COMMAND_TIMEOUT).await;
                assert!(output.status.success(), "{}", output_text(&output));
                let result: Value = serde_json::from_slice(&std::fs::read(work.join("result.json")).unwrap()).unwrap();
                (result, work)
            }
        };
        // Without credentials the registry asks for them.
        let anonymous = http()
            .get(format!("http://{}/v2/", berth.address))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
        let (logged_in, work) = attempt("alice", &["alice", "open-sesame"]).await;
        assert_eq!(logged_in["push_status"], 201, "{logged_in}");
        let pulled = std::fs::read_to_string(work.join("pulled/note.txt")).expect("the pulled note");
        assert_eq!(pulled, "a note for alice\n");
        assert!(
            berth
                .requests()
                .iter()
                .any(|line| line.starts_with("PUT /v2/team/notes/manifests/v1 -> 201")),
            "{:?}",
            berth.requests()
        );
    })
    .await
    .expect("the ORAS login test ends within 5 minutes");
}
