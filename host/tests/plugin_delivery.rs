//! Plugins delivered to a running registry: pushed to and pulled from a
//! registry as OCI artifacts and loaded by digest, and replaced in the
//! plugin directory while requests go on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::http::{request, sha256_hex};

fn built(name: &str) -> PathBuf {
    PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join(format!("{name}.wasm"))
}

/// A running `berth serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    /// Starts `berth serve` on `config` (its `http.addr` is set here) and
    /// waits until `/v2/` answers `ready_status`.
    fn start(dir: &Path, config: &str, env: &[(&str, &str)], ready_status: u16) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let path = dir.join(format!("config-{port}.yml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("berth-{port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(["serve", "--config"])
            .arg(&path)
            .env("BERTH_LOG", "info")
            .env("REGISTRY_HTTP_ADDR", &addr)
            .env("XDG_CACHE_HOME", dir.join("cache"));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("berth serve");
        let mut server = Server { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while request(&server.addr, "GET", "/v2/", &[], b"").map(|r| r.status) != Some(ready_status) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("berth serve exited with {status}:\n{}", server.log_text());
            }
            assert!(Instant::now() < deadline, "berth serve did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 30 s) until the log has `count` lines containing `text`.
    fn wait_for_log(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log_text().matches(text).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with `{text}` within 30 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth ARGS` with `stdin`, its environment cleaned of registry settings.
fn berth(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(args).env("BERTH_LOG", "warn");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("REGISTRY_") || k.starts_with("BERTH_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("berth");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// The blob file of `digest` in a filesystem registry rooted at `root`.
fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    root.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
}

/// A validator is pushed to `berth serve` (behind htpasswd) and pulled back
/// unchanged; a second registry loads it by digest, from the network once
/// and from the cache after; content that does not match its digest is
/// refused.
#[test]
fn plugins_travel_as_oci_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("ci:{}\n", bcrypt::hash("open-sesame", 4).unwrap())).unwrap();
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nauth:\n  htpasswd:\n    realm: berth\n    path: {}\n",
        root.display(),
        htpasswd.display()
    );
    let registry = Server::start(dir.path(), &config, &[], 401);
    let wasm_path = built("example_policy");
    let wasm = std::fs::read(&wasm_path).unwrap();
    let reference = format!("{}/plugins/policy:v1", registry.addr);

    let (ok, _, err) = berth(
        &[
            "plugin",
            "push",
            "--plain-http",
            wasm_path.to_str().unwrap(),
            &reference,
        ],
        &[],
        "",
    );
    assert!(
        !ok && err.contains("asks for credentials"),
        "a push without credentials: {err}"
    );
    let (ok, pinned, err) = berth(
        &["plugin", "push", "--plain-http", "--username", "ci", "--password-stdin"],
        &[],
        "",
    );
    assert!(!ok, "push needs a file and a reference: {pinned}{err}");
    let args = ["plugin", "push", "--plain-http", "--username", "ci", "--password-stdin"];
    let (ok, pinned, err) = berth(
        &[&args[..], &[wasm_path.to_str().unwrap(), &reference]].concat(),
        &[],
        "open-sesame\n",
    );
    assert!(ok, "push: {err}");
    let pinned = pinned.trim().to_string();
    assert!(pinned.starts_with(&format!("{reference}@sha256:")), "{pinned}");
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &wasm[..wasm.len() / 2]).unwrap();
    let push_truncated = [
        "plugin",
        "push",
        "--plain-http",
        truncated.to_str().unwrap(),
        &reference,
    ];
    let (ok, _, err) = berth(&push_truncated, &[], "");
    assert!(
        !ok && err.contains("not a valid component"),
        "what would not load is not pushed: {err}"
    );

    // Pulled back with the credentials of a docker auth file.
    let docker_config = dir.path().join("docker");
    std::fs::create_dir(&docker_config).unwrap();
    let auth_file = docker_config.join("config.json");
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ci:open-sesame");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, registry.addr),
    )
    .unwrap();
    let auth_env = [("DOCKER_CONFIG", docker_config.to_str().unwrap())];
    let pulled = dir.path().join("pulled.wasm");
    let (ok, again, err) = berth(
        &[
            "plugin",
            "pull",
            "--plain-http",
            &pinned,
            "-o",
            pulled.to_str().unwrap(),
        ],
        &auth_env,
        "",
    );
    assert!(ok, "pull: {err}");
    assert_eq!(again.trim(), pinned);
    assert!(
        std::fs::read(&pulled).unwrap() == wasm,
        "the pulled component is the pushed one"
    );

    // A registry that loads the validator by digest: it starts, and its
    // configuration check runs the pulled validator.
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();
    let manifest = std::fs::read(blob_file(&root, &digest)).unwrap();
    let layer = serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let pulls = |reference: &str| {
        format!("plugins:\n  oci:\n    - name: acme-policy\n      reference: {reference}\n      plainhttp: true\n")
    };
    let served = format!(
        "version: 0.1\nstorage:\n  inmemory: {{}}\n{}",
        pulls(&format!("{}/plugins/policy@{digest}", registry.addr))
    );
    let loader = Server::start(dir.path(), &served, &auth_env, 200);
    assert!(
        loader.log_text().contains("loaded plugin pulled by digest"),
        "{}",
        loader.log_text()
    );
    drop(loader);
    let cache = dir.path().join("cache");
    let s3 = |reference: &str| {
        format!(
            "version: 0.1\nstorage:\n  s3: {{region: us-east-1, bucket: other, accesskey: a, secretkey: b}}\n{}",
            pulls(reference)
        )
    };
    let check = dir.path().join("check.yml");
    let validate = |config: &str, cache: &Path| {
        std::fs::write(&check, config).unwrap();
        let env = [auth_env[0], ("XDG_CACHE_HOME", cache.to_str().unwrap())];
        berth(&["config", "validate", "--config", check.to_str().unwrap()], &env, "")
    };
    let by_digest = format!("{}/plugins/policy@{digest}", registry.addr);
    let (ok, findings, _) = validate(&s3(&by_digest), &cache);
    assert!(
        !ok && findings.contains("BucketNamePolicy"),
        "the pulled validator ran: {findings}"
    );

    // A tag alone is refused: what runs must be what was reviewed.
    let (ok, findings, _) = validate(&s3(&reference), &cache);
    assert!(!ok && findings.contains("has no digest"), "{findings}");

    // Flipped bytes in the registry's copy of the layer: a fresh pull
    // refuses them; the cache still holds the verified copy and needs no
    // network.
    let layer_file = blob_file(&root, &layer);
    let mut bytes = std::fs::read(&layer_file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&layer_file, &bytes).unwrap();
    let (ok, findings, _) = validate(&s3(&by_digest), &dir.path().join("fresh-cache"));
    assert!(
        !ok && findings.contains("PluginNotPulled") && findings.contains("refused"),
        "{findings}"
    );
    let (ok, _, err) = berth(
        &["plugin", "pull", "--plain-http", &pinned, "-o", "/dev/null"],
        &auth_env,
        "",
    );
    assert!(!ok && err.contains("refused"), "{err}");
    drop(registry);
    let (ok, findings, _) = validate(&s3(&by_digest), &cache);
    assert!(
        !ok && findings.contains("BucketNamePolicy"),
        "offline, from the cache: {findings}"
    );
    // A digest not in the cache, with no registry to pull it from.
    let other = format!("{}/plugins/policy@sha256:{}", "127.0.0.1:9", sha256_hex(b"other"));
    let (ok, findings, _) = validate(&s3(&other), &dir.path().join("fresh-cache"));
    assert!(!ok && findings.contains("PluginNotPulled"), "{findings}");
}

/// Against a registry that takes bearer tokens from a token service, push
/// and pull answer its challenges with the user's password.
#[test]
fn plugins_travel_through_a_registry_with_token_auth() {
    use common::token_server::TokenServer;
    let dir = tempfile::tempdir().unwrap();
    let policy = [(
        "ci",
        ("open-sesame", vec![("repository:plugins/", vec!["pull", "push"])]),
    )]
    .into_iter()
    .collect();
    let tokens = TokenServer::start(dir.path(), policy);
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n{}",
        dir.path().join("data").display(),
        tokens.yaml()
    );
    let registry = Server::start(dir.path(), &config, &[], 401);
    let wasm_path = built("example_policy");
    let reference = format!("{}/plugins/policy:v2", registry.addr);
    let login = ["--plain-http", "--username", "ci", "--password-stdin"];
    let push = [
        &["plugin", "push"][..],
        &login,
        &[wasm_path.to_str().unwrap(), &reference],
    ]
    .concat();
    let (ok, _, err) = berth(&push, &[], "wrong\n");
    assert!(!ok && err.contains("asks for credentials"), "a wrong password: {err}");
    let (ok, pinned, err) = berth(&push, &[], "open-sesame\n");
    assert!(ok, "push: {err}");
    let pulled = dir.path().join("pulled.wasm");
    let pull = [
        &["plugin", "pull"][..],
        &login,
        &[pinned.trim(), "-o", pulled.to_str().unwrap()],
    ]
    .concat();
    let (ok, _, err) = berth(&pull, &[], "open-sesame\n");
    assert!(ok, "pull: {err}");
    assert!(std::fs::read(&pulled).unwrap() == std::fs::read(&wasm_path).unwrap());
    assert!(tokens.issued() >= 2, "the tokens came from the token service");
}

/// A component with one more custom section: the same plugin under another
/// sha256, as a rebuilt plugin would be.
fn rebuilt(wasm: &[u8], mark: &str) -> Vec<u8> {
    let name = b"berth-test";
    let payload_len = 1 + name.len() + mark.len();
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(payload_len as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(mark.as_bytes());
    out
}

/// Replaces `path` with `content` the way a deployment should: a new file
/// renamed over the old one.
fn replace(path: &Path, content: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// The storage driver is replaced three times, once by a broken file, while
/// a client pushes and pulls without pause: no request fails, and the
/// broken replacement leaves the previous driver serving.
#[test]
fn plugins_reload_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let driver_file = plugins.join("filesystem.wasm");
    let wasm = std::fs::read(built("filesystem")).unwrap();
    std::fs::write(&driver_file, &wasm).unwrap();
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nplugins:\n  directory: {}\n  watchinterval: 100ms\n",
        dir.path().join("data").display(),
        plugins.display()
    );
    let server = Server::start(dir.path(), &config, &[], 200);

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let client = {
        let (addr, stop, rounds) = (server.addr.clone(), stop.clone(), rounds.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(120);
            for round in 0..100_000usize {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                push_and_pull(&addr, round)?;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let wait_rounds = |more: usize| {
        let target = rounds.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while rounds.load(Ordering::Relaxed) < target && !client.is_finished() {
            assert!(Instant::now() < deadline, "the client made no progress");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_rounds(5);
    replace(&driver_file, &rebuilt(&wasm, "2"));
    server.wait_for_log("storage driver replaced", 1);
    wait_rounds(5);
    replace(&driver_file, &wasm[..wasm.len() / 2]);
    server.wait_for_log("the previous one keeps serving", 1);
    wait_rounds(5);
    replace(&driver_file, &rebuilt(&wasm, "3"));
    server.wait_for_log("storage driver replaced", 2);
    wait_rounds(5);
    stop.store(true, Ordering::Relaxed);
    let outcome = client.join().unwrap();
    assert_eq!(outcome, Ok(()), "every request succeeded");
    assert!(rounds.load(Ordering::Relaxed) >= 20);
    let log = server.log_text();
    assert!(
        log.contains("is not a valid component"),
        "the broken file's reason is logged:\n{log}"
    );
}

/// One push of a small image (a blob, a manifest by tag) and its pull; an
/// error names the request that failed.
fn push_and_pull(addr: &str, round: usize) -> Result<(), String> {
    let repository = format!("reload/r{}", round % 4);
    let layer = format!("layer {round}").into_bytes();
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let expect = |what: &str, reply: Option<common::http::Reply>, status: u16| {
        let reply = reply.ok_or_else(|| format!("round {round}: {what}: no answer"))?;
        if reply.status != status {
            return Err(format!(
                "round {round}: {what}: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        Ok(reply)
    };
    let start = expect(
        "POST upload",
        request(addr, "POST", &format!("/v2/{repository}/blobs/uploads/"), &[], b""),
        202,
    )?;
    let location = start.header("location").unwrap_or_default().to_string();
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{separator}digest={layer_digest}");
    expect("PUT blob", request(addr, "PUT", &put, &[], &layer), 201)?;
    let config = b"{}";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": format!("sha256:{}", sha256_hex(config)), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer.len()}],
    });
    let config_upload = format!("/v2/{repository}/blobs/uploads/?digest=sha256:{}", sha256_hex(config));
    expect("POST config", request(addr, "POST", &config_upload, &[], config), 201)?;
    let body = serde_json::to_vec(&manifest).unwrap();
    let content_type = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let tag = format!("t{round}");
    expect(
        "PUT manifest",
        request(
            addr,
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &content_type,
            &body,
        ),
        201,
    )?;
    let got = expect(
        "GET manifest",
        request(
            addr,
            "GET",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        ),
        200,
    )?;
    if got.body != body {
        return Err(format!("round {round}: the manifest came back different"));
    }
    let blob = expect(
        "GET blob",
        request(addr, "GET", &format!("/v2/{repository}/blobs/{layer_digest}"), &[], b""),
        200,
    )?;
    if blob.body != layer {
        return Err(format!("round {round}: the blob came back different"));
    }
    Ok(())
}
