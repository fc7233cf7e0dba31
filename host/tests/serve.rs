//! `berth serve` as a process: configuration errors, health, shutdown, and
//! uploads that outlive the process that started them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::block_on;
use common::http::{request, sha256_hex, Reply};
use common::s3::Moto;
use common::signing::SigningServer;

/// A running `berth serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    /// Where its stderr (the log) goes.
    log: std::path::PathBuf,
}

impl Server {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn berth(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("BERTH_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Where a test's `berth serve` processes keep their data: a filesystem
/// root or an S3 bucket, as the `storage:` section of config.yml. Config
/// files and logs go in `dir`.
struct Storage {
    dir: tempfile::TempDir,
    yaml: String,
    /// The command berth runs under, when not directly (`unshare`, for a
    /// filesystem of its own).
    wrapper: Vec<String>,
    /// The servers the storage lives on, stopped when the test ends.
    _servers: Vec<Box<dyn std::any::Any>>,
}

impl Storage {
    fn filesystem() -> Storage {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = format!(
            "storage:\n  filesystem:\n    rootdirectory: {}\n",
            dir.path().join("root").display()
        );
        Storage {
            dir,
            yaml,
            wrapper: Vec::new(),
            _servers: Vec::new(),
        }
    }

    /// The filesystem driver on a tmpfs of `mib` MiB that only berth sees:
    /// mounted in a mount namespace of its own (`unshare`, as root or in a
    /// user namespace), so a test can fill a disk without touching the
    /// machine's.
    fn filesystem_on_tmpfs(mib: u32) -> Storage {
        let mut storage = Storage::filesystem();
        std::fs::create_dir_all(storage.root()).expect("root");
        let mount = format!("mount -t tmpfs -o size={mib}m berth-test \"$0\" && exec \"$@\"");
        storage.wrapper = ["unshare", "-rm", "sh", "-c", &mount]
            .into_iter()
            .map(String::from)
            .chain([storage.root().display().to_string()])
            .collect();
        storage
    }

    /// A fresh bucket on a moto server.
    fn s3() -> Storage {
        let moto = Moto::start();
        let bucket = block_on(moto.new_bucket());
        let yaml = s3_yaml(&moto.driver_parameters(&bucket));
        Storage {
            dir: tempfile::tempdir().expect("tempdir"),
            yaml,
            wrapper: Vec::new(),
            _servers: vec![Box::new(moto)],
        }
    }

    /// A bucket on a server that checks signatures, with the wrong secret.
    fn s3_with_a_wrong_secret() -> Storage {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime.block_on(SigningServer::start(&dir.path().join("s3"), "signed-bucket"));
        let mut params = server.driver_parameters("signed-bucket");
        params.retain(|(key, _)| key != "secretkey");
        params.push(("secretkey".into(), "not-the-secret".into()));
        Storage {
            dir,
            yaml: s3_yaml(&params),
            wrapper: Vec::new(),
            _servers: vec![Box::new(server), Box::new(runtime)],
        }
    }

    /// The filesystem root (unused on S3).
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    /// The misbehaving fixture driver `name` (`plugins/fixtures`), dropped
    /// into a plugin directory of its own.
    fn fixture(name: &str) -> Storage {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins");
        let wasm = Path::new(env!("BERTH_PLUGIN_BUILD_DIR")).join(format!("{name}.wasm"));
        std::fs::copy(&wasm, plugins.join(format!("{name}.wasm"))).expect("the fixture");
        let yaml = format!(
            "storage:\n  {name}: {{}}\nplugins:\n  directory: {}\n",
            plugins.display()
        );
        Storage {
            dir,
            yaml,
            wrapper: Vec::new(),
            _servers: Vec::new(),
        }
    }

    /// `berth serve --config config`, under the storage's wrapper if any.
    fn berth(&self, config: &Path, env: &[(&str, &str)]) -> Command {
        let command = berth(config, env);
        let Some((program, args)) = self.wrapper.split_first() else {
            return command;
        };
        let mut wrapped = Command::new(program);
        wrapped.args(args).arg(command.get_program()).args(command.get_args());
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        wrapped
    }
}

fn s3_yaml(params: &[(String, String)]) -> String {
    let mut yaml = "storage:\n  s3:\n".to_string();
    for (key, value) in params {
        yaml.push_str(&format!("    {key}: {value}\n"));
    }
    yaml
}

/// Starts berth on `storage` and waits until it answers.
fn start(storage: &Storage) -> Server {
    start_with(storage, "", |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    })
}

/// Starts berth on `storage` with `extra` appended to its config.yml, and
/// waits until `answers(addr)`.
fn start_with(storage: &Storage, extra: &str, answers: impl Fn(&str) -> bool) -> Server {
    start_with_env(storage, extra, &[], answers)
}

/// [`start_with`], with `env` set for the process as well.
fn start_with_env(storage: &Storage, extra: &str, env: &[(&str, &str)], answers: impl Fn(&str) -> bool) -> Server {
    let port = free_port();
    let config = storage.dir.path().join(format!("config-{port}.yml"));
    std::fs::write(&config, format!("version: 0.1\n{}{extra}", storage.yaml)).expect("config");
    let addr = format!("127.0.0.1:{port}");
    let log = storage.dir.path().join(format!("berth-{port}.log"));
    let mut env = env.to_vec();
    env.push(("REGISTRY_HTTP_ADDR", &addr));
    let child = storage
        .berth(&config, &env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("berth serve");
    let mut server = Server { child, addr, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(&server.addr) {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "berth serve exited with {status} before answering:\n{}",
                server.log_text()
            );
        }
        assert!(Instant::now() < deadline, "berth serve did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Starts an upload; returns its path (the Location).
fn start_upload(addr: &str, repository: &str) -> String {
    let reply = request(addr, "POST", &format!("/v2/{repository}/blobs/uploads/"), &[], b"").expect("POST");
    assert_eq!(reply.status, 202, "{}", reply.head);
    reply.header("location").expect("Location").to_string()
}

fn patch(addr: &str, location: &str, start: usize, chunk: &[u8]) -> Reply {
    let range = format!("{start}-{}", start + chunk.len() - 1);
    let headers = [
        ("Content-Range", range.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    request(addr, "PATCH", location, &headers, chunk).expect("PATCH")
}

fn finish(addr: &str, location: &str, digest: &str) -> Reply {
    let separator = if location.contains('?') { '&' } else { '?' };
    request(
        addr,
        "PUT",
        &format!("{location}{separator}digest=sha256:{digest}"),
        &[],
        b"",
    )
    .expect("PUT")
}

/// GET of a blob, following the redirect to the storage (S3 presigns one).
fn blob(addr: &str, repository: &str, digest: &str) -> Reply {
    let reply = request(
        addr,
        "GET",
        &format!("/v2/{repository}/blobs/sha256:{digest}"),
        &[],
        b"",
    )
    .expect("GET blob");
    let Some(location) = reply.header("location").filter(|_| reply.status == 307) else {
        return reply;
    };
    let rest = location.strip_prefix("http://").expect("an http:// redirect");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    request(authority, "GET", path, &[], b"").expect("GET the redirect")
}

/// Asserts that `reply` carries `data`, without printing megabytes.
fn assert_body(reply: &Reply, data: &[u8]) {
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(
        reply.body == data,
        "a body of {} bytes, want the {} bytes uploaded",
        reply.body.len(),
        data.len()
    );
}

fn content(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

#[test]
fn one_chunked_upload_across_two_processes() {
    chunked_upload_across_two_processes(&Storage::filesystem());
}

#[test]
fn one_chunked_upload_across_two_processes_on_s3() {
    chunked_upload_across_two_processes(&Storage::s3());
}

fn chunked_upload_across_two_processes(storage: &Storage) {
    let (first, second) = (start(storage), start(storage));
    let data = content(3 << 20);
    let (a, b) = data.split_at(1 << 20);
    let location = start_upload(&first.addr, "shared/app");
    assert_eq!(patch(&first.addr, &location, 0, a).status, 202);
    let reply = patch(&second.addr, &location, a.len(), b);
    assert_eq!(reply.status, 202, "{}", reply.head);
    let digest = sha256_hex(&data);
    let reply = finish(&first.addr, &location, &digest);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    for server in [&first, &second] {
        assert_body(&blob(&server.addr, "shared/app", &digest), &data);
    }
}

#[test]
fn an_upload_survives_a_killed_process() {
    upload_survives_a_killed_process(&Storage::filesystem());
}

#[test]
fn an_upload_survives_a_killed_process_on_s3() {
    upload_survives_a_killed_process(&Storage::s3());
}

fn upload_survives_a_killed_process(storage: &Storage) {
    let data = content(2 << 20);
    let (a, b) = data.split_at(700_000);
    let location = {
        let server = start(storage);
        let location = start_upload(&server.addr, "resumed");
        assert_eq!(patch(&server.addr, &location, 0, a).status, 202);
        location
        // Dropped: SIGKILL, no chance to clean up.
    };
    let server = start(storage);
    let status = request(&server.addr, "GET", &location, &[], b"").expect("upload status");
    assert_eq!(status.status, 204, "{}", status.head);
    assert_eq!(status.header("range"), Some(format!("0-{}", a.len() - 1).as_str()));
    assert_eq!(patch(&server.addr, &location, a.len(), b).status, 202);
    let digest = sha256_hex(&data);
    assert_eq!(finish(&server.addr, &location, &digest).status, 201);
    assert_body(&blob(&server.addr, "resumed", &digest), &data);
}

#[test]
fn healthz_reports_a_failing_storage() {
    let storage = Storage::filesystem();
    let root = storage.root();
    let server = start(&storage);
    assert_eq!(
        request(&server.addr, "GET", "/healthz", &[], b"")
            .expect("healthz")
            .status,
        200
    );
    // The storage directory disappears and a file takes its place.
    std::fs::remove_dir_all(&root).expect("remove root");
    std::fs::write(&root, b"not a directory").expect("file");
    // A check is reused for 2 s: the failure shows within that.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = request(&server.addr, "GET", "/healthz", &[], b"").expect("healthz");
        if reply.status != 200 || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply.status, 503, "{}", reply.head);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("filesystem"),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// A monolithic push of `data` to `repository`: POST with the digest.
fn push(addr: &str, repository: &str, data: &[u8]) -> (String, Reply) {
    let digest = sha256_hex(data);
    let path = format!("/v2/{repository}/blobs/uploads/?digest=sha256:{digest}");
    let headers = [("Content-Type", "application/octet-stream")];
    (digest, request(addr, "POST", &path, &headers, data).expect("POST"))
}

#[test]
fn a_full_disk_is_507_to_pushes_and_reported_by_healthz() {
    let storage = Storage::filesystem_on_tmpfs(4);
    let server = start(&storage);
    let healthz = || request(&server.addr, "GET", "/healthz", &[], b"").expect("healthz");
    assert_eq!(healthz().body, b"ok\n");

    // 3.5 of the 4 MiB fit; the next MiB does not.
    let kept = content(7 << 19);
    let (digest, reply) = push(&server.addr, "full", &kept);
    assert_eq!(reply.status, 201, "{}\n{}", reply.head, server.log_text());
    let (_, reply) = push(&server.addr, "full", &content(1 << 20));
    assert_eq!(reply.status, 507, "{}\n{}", reply.head, server.log_text());
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.contains("storage is full"), "{body}");
    assert!(!body.contains("os error"), "the system's words stay in the log: {body}");
    // The host writes uploads into the driver's directory itself.
    assert!(
        server.log_text().contains("No space left on device"),
        "{}",
        server.log_text()
    );

    // Pulls are still served, and /healthz says why pushes fail (once its
    // 2 s cache has passed) while staying ready.
    assert_body(&blob(&server.addr, "full", &digest), &kept);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = healthz();
        if reply.body != b"ok\n" || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply.status, 200);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.starts_with("storage full: "), "{body}");
    assert!(body.contains("pushes fail with 507"), "{body}");
}

/// Writes `path` below `root`, last modified `age` ago.
fn write_aged(root: &Path, path: &str, age: Duration) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("parent");
    let file = std::fs::File::create(&path).expect("create");
    file.set_modified(std::time::SystemTime::now() - age).expect("mtime");
}

#[test]
fn upload_purging_removes_what_interrupted_writes_left() {
    let storage = Storage::filesystem();
    let root = storage.root();
    let hours = |n: u64| Duration::from_secs(n * 3600);
    let current = "docker/registry/v2/repositories/r/_manifests/tags/t/current";
    // More files before it than one page of the driver's purge visits.
    for i in 0..1200 {
        write_aged(&root, &format!("docker/registry/v2/blobs/sha256/aa/{i:04}"), hours(2));
    }
    let stale = format!("{current}/.link.0123456789abcdef.tmp");
    write_aged(&root, &stale, hours(2));
    let kept = [
        format!("{current}/.link.fedcba9876543210.tmp"), // a write in progress
        format!("{current}/link"),                       // not a temporary file
        format!("{current}/.link.tmp"),                  // not the driver's pattern
    ];
    write_aged(&root, &kept[0], Duration::ZERO);
    write_aged(&root, &kept[1], hours(2));
    write_aged(&root, &kept[2], hours(2));

    // Purging is on by default and runs once at start.
    let server = start(&storage);
    let deadline = Instant::now() + Duration::from_secs(20);
    while root.join(&stale).exists() {
        assert!(
            Instant::now() < deadline,
            "the stale temporary file is still there:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in &kept {
        assert!(root.join(path).exists(), "{path} was removed");
    }
    assert!(root.join("docker/registry/v2/blobs/sha256/aa/1199").exists());
}

#[test]
fn wrong_s3_credentials_are_a_clear_error_not_a_hang() {
    let storage = Storage::s3_with_a_wrong_secret();
    let server = start(&storage);
    let health = request(&server.addr, "GET", "/healthz", &[], b"").expect("healthz answers");
    let cause = String::from_utf8_lossy(&health.body).into_owned();
    assert_eq!(health.status, 503, "{cause}");
    assert!(
        cause.contains("signed-bucket") && cause.contains("SignatureDoesNotMatch"),
        "{cause}"
    );
    let zeros = "0".repeat(64);
    let reply = request(&server.addr, "GET", &format!("/v2/app/blobs/sha256:{zeros}"), &[], b"").expect("GET");
    assert!(
        reply.status >= 500,
        "a storage failure is not the client's: {}",
        reply.head
    );
    let log = server.log_text();
    assert!(log.contains("SignatureDoesNotMatch"), "the cause is in the log:\n{log}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let storage = Storage::filesystem();
    let mut server = start(&storage);
    let status = terminate(&mut server, Duration::from_secs(20));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// Sends SIGTERM and waits for the exit, failing after `within`.
fn terminate(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "berth serve still runs {within:?} after SIGTERM:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `curl --cacert` over HTTPS: (HTTP status, body), or None if no TLS answer.
fn curl_https(addr: &str, path: &str, ca: &Path) -> Option<(u16, String)> {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("curl (Debian package curl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n')?;
    Some((status.parse().ok().filter(|s| *s != 0)?, body.to_string()))
}

#[test]
fn serves_over_tls() {
    let storage = Storage::filesystem();
    let (cert, key) = common::self_signed(storage.dir.path());
    let tls = format!(
        "http:\n  tls:\n    certificate: {}\n    key: {}\n",
        cert.display(),
        key.display()
    );
    let server = start_with(&storage, &tls, |addr| curl_https(addr, "/v2/", &cert).is_some());
    let (status, body) = curl_https(&server.addr, "/v2/", &cert).expect("an HTTPS answer");
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(curl_https(&server.addr, "/healthz", &cert).map(|r| r.0), Some(200));
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(request(&server.addr, "GET", "/v2/", &[], b"").is_none_or(|reply| reply.status != 200));
}

fn refused(config: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).expect("config");
    common::berth(&["serve", "--config", path.to_str().expect("a UTF-8 path")], env)
}

#[test]
fn bad_configurations_exit_with_status_2_and_name_the_field() {
    // (config.yml, environment, the field the error must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: relative/dir\n",
            &[],
            "rootdirectory",
        ),
        ("version: 0.1\nstorage:\n  nosuchdriver: {}\n", &[], "nosuchdriver"),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: not-an-address\n",
            &[],
            "http.addr",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\n",
            &[("REGISTRY_HTTP_ADDR", "127.0.0.1:99999")],
            "http.addr",
        ),
        ("storage:\n  inmemory: {}\n", &[], "version"),
        ("version: 0.1\nstorage:\n  inmemory:\n    colour: blue\n", &[], "colour"),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    certificate: /nonexistent/cert.pem\n    key: /nonexistent/key.pem\n",
            &[],
            "http.tls.certificate",
        ),
        ("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    key: /nonexistent/key.pem\n", &[], "http.tls"),
        // Access control that cannot be applied is refused, never ignored.
        (
            "version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  htpasswd:\n    realm: r\n    path: /nonexistent/htpasswd\n",
            &[],
            "auth.htpasswd.path",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  ldap:\n    server: ldap://x\n",
            &[],
            "ldap",
        ),
        ("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  prefix: /registry/\n", &[], "http.prefix"),
        // A retention policy that would delete every tag, or names no
        // repository, is refused before anything is deleted.
        (
            "version: 0.1\nstorage:\n  inmemory: {}\n  retention:\n    policies:\n      - repositories: [\"team/**\"]\n        keep: {}\n",
            &[],
            "storage.retention.policies[0].keep",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\n  retention:\n    policies:\n      - keep: {newest: 3}\n",
            &[],
            "storage.retention.policies[0].repositories",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\n  gc:\n    enabled: true\n    interval: 0s\n",
            &[],
            "storage.gc.interval",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\n",
            &[("REGISTRY_AUTH_TOKEN_REALM", "https://auth.example.com/token")],
            "auth.token.service",
        ),
        (
            "version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  token:\n    realm: https://a/token\n    service: s\n    issuer: i\n    jwks: /nonexistent/jwks.json\n",
            &[],
            "/nonexistent/jwks.json",
        ),
    ];
    for (config, env, field) in cases {
        let output = refused(config, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}\n{stderr}");
        assert!(stderr.contains(field), "the error does not name {field}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `Authorization: Basic` for `user:password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// skopeo with a policy accepting anything, on plain HTTP.
fn skopeo(dir: &Path, args: &[&str]) -> Output {
    let policy = dir.join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("policy");
    let mut command = Command::new("skopeo");
    command.arg("--policy").arg(&policy).args(args);
    command.env("REGISTRY_AUTH_FILE", dir.join("auth.json"));
    let output = command.output().expect("skopeo (apt-get install skopeo)");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panic"));
    output
}

/// An OCI layout under `dir` holding one image `v1` (a config and
/// `layer`): the `oci:` reference skopeo copies from, and the config.
fn oci_layout(dir: &Path, layer: &[u8]) -> (String, Vec<u8>) {
    let source = dir.join("source");
    std::fs::create_dir_all(source.join("blobs/sha256")).expect("layout");
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let mut descriptors = Vec::new();
    for content in [&config[..], layer] {
        let digest = sha256_hex(content);
        std::fs::write(source.join(format!("blobs/sha256/{digest}")), content).expect("blob");
        descriptors.push(format!("\"digest\":\"sha256:{digest}\",\"size\":{}", content.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json",{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar",{}}}]}}"#,
        descriptors[0], descriptors[1]
    );
    let manifest_digest = sha256_hex(manifest.as_bytes());
    std::fs::write(source.join(format!("blobs/sha256/{manifest_digest}")), &manifest).expect("manifest");
    std::fs::write(source.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(source.join("index.json"), index).expect("index");
    let from = format!("oci:{}:v1", source.display());
    (from, config)
}

/// `auth.htpasswd`: every `/v2/` request without valid credentials is 401
/// with the Basic challenge, `/healthz` is not; skopeo logs in to push and
/// pull; failed logins are logged with the user, never the password; a
/// changed file is read without a restart.
#[test]
fn htpasswd_auth_lets_in_only_its_users() {
    let storage = Storage::filesystem();
    let file = storage.dir.path().join("htpasswd");
    let hash = |password: &str| bcrypt::hash(password, 4).expect("bcrypt");
    std::fs::write(&file, format!("# users\nalice:{}\n", hash("wonderland"))).expect("htpasswd");
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
        file.display()
    );
    let server = start_with(&storage, &extra, |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(401)
    });
    let addr = server.addr.as_str();

    let alice = basic("alice", "wonderland");
    let refused = [
        None,
        Some(basic("alice", "not-the-password")),
        Some(basic("mallory", "wonderland")),
        Some("Basic !!!not-base64".to_string()),
        Some("Basic YWxpY2U=".to_string()), // no colon
        Some("Bearer eyJhbGciOiJub25lIn0.e30.".to_string()),
    ];
    for path in ["/v2/", "/v2/_catalog", "/v2/a/b/tags/list", "/v2/a/b/manifests/v1"] {
        for authorization in &refused {
            let headers: Vec<(&str, &str)> = authorization.iter().map(|v| ("Authorization", v.as_str())).collect();
            let reply = request(addr, "GET", path, &headers, b"").expect("an answer");
            assert_eq!(reply.status, 401, "{path} with {authorization:?}");
            assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"test-realm\""));
            assert!(String::from_utf8_lossy(&reply.body).contains("UNAUTHORIZED"));
        }
    }
    let (digest, pushed) = {
        let data = b"anonymous layer";
        let digest = sha256_hex(data);
        let path = format!("/v2/a/b/blobs/uploads/?digest=sha256:{digest}");
        (digest, request(addr, "POST", &path, &[], data).expect("POST"))
    };
    assert_eq!(pushed.status, 401, "an anonymous push");
    let blob_path = format!("/v2/a/b/blobs/sha256:{digest}");
    assert_eq!(
        request(addr, "HEAD", &blob_path, &[("Authorization", &alice)], b"").map(|r| r.status),
        Some(404)
    );
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").map(|r| r.status), Some(200));
    assert_eq!(
        request(addr, "GET", "/v2/", &[("Authorization", &alice)], b"").map(|r| r.status),
        Some(200)
    );
    let log = server.log_text();
    assert!(
        log.contains("failed login") && log.contains("mallory") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-password") && !log.contains("wonderland"),
        "a password was logged:\n{log}"
    );

    // A real client: skopeo pushes with credentials, pulls with them, and
    // is refused without.
    let work = storage.dir.path();
    let (from, config) = oci_layout(work, b"layer behind a login");
    let to = format!("docker://{addr}/team/app:v1");
    let out = skopeo(work, &["copy", "--dest-tls-verify=false", &from, &to]);
    assert!(!out.status.success(), "pushed without credentials");
    let out = skopeo(
        work,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wonderland",
            &from,
            &to,
        ],
    );
    assert!(
        out.status.success(),
        "skopeo push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = format!("dir:{}", work.join("pulled").display());
    let out = skopeo(work, &["copy", "--src-tls-verify=false", &to, &pulled]);
    assert!(!out.status.success(), "pulled without credentials");
    let out = skopeo(
        work,
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "alice:wonderland",
            &to,
            &pulled,
        ],
    );
    assert!(
        out.status.success(),
        "skopeo pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo compresses the layer on the way in; every blob it pulled is
    // what the registry holds, and the config is the one pushed.
    let pulled: Vec<String> = std::fs::read_dir(work.join("pulled"))
        .expect("pulled")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() == 64)
        .collect();
    assert_eq!(pulled.len(), 2, "{pulled:?}");
    assert!(pulled.contains(&sha256_hex(&config)), "{pulled:?}");
    for digest in &pulled {
        let path = format!("/v2/team/app/blobs/sha256:{digest}");
        let stored = request(addr, "GET", &path, &[("Authorization", &alice)], b"").expect("GET");
        let content = std::fs::read(work.join("pulled").join(digest)).expect("pulled blob");
        assert!(stored.status == 200 && stored.body == content, "{digest}");
    }

    // podman and oras-py log in, push and pull; a wrong password stops
    // each of them at the first request it makes.
    use common::clients::{oras_round_trip, podman_round_trip};
    podman_round_trip(addr, work, "team/podman", "alice", "wonderland").unwrap_or_else(|err| panic!("{err}"));
    let refused = podman_round_trip(addr, work, "team/podman", "alice", "guess").expect_err("podman logged in");
    assert!(refused.starts_with("podman login"), "{refused}");
    oras_round_trip(addr, work, "team/oras", "alice", "wonderland", "basic").unwrap_or_else(|err| panic!("{err}"));
    let refused = oras_round_trip(addr, work, "team/oras", "alice", "guess", "basic").expect_err("oras pushed");
    assert!(refused.contains("UNAUTHORIZED"), "{refused}");

    // The file changes: bob is in, alice is out, without a restart.
    std::fs::write(&file, format!("bob:{}\n", hash("builder"))).expect("htpasswd");
    let bob = basic("bob", "builder");
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(addr, "GET", "/v2/", &[("Authorization", &bob)], b"").map(|r| r.status) != Some(200) {
        assert!(Instant::now() < deadline, "the changed htpasswd file was not read");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        request(addr, "GET", "/v2/", &[("Authorization", &alice)], b"").map(|r| r.status),
        Some(401)
    );
}

/// `auth.access`: a public glob pulls anonymously and refuses anonymous
/// pushes with 401; users get what their grants say and 403 `DENIED`
/// beyond; the catalog lists only what the caller may pull; a mount brings
/// in only a blob the caller may pull from the repository it names.
#[test]
fn access_rules_grant_per_repository() {
    let storage = Storage::filesystem();
    let file = storage.dir.path().join("htpasswd");
    let hash = |password: &str| bcrypt::hash(password, 4).expect("bcrypt");
    std::fs::write(&file, format!("alice:{}\nbob:{}\n", hash("a-pass"), hash("b-pass"))).expect("htpasswd");
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: r\n    path: {}\n  access:\n    groups:\n      builders: [alice]\n    repositories:\n\
         \x20     - match: library/**\n        anonymous: [pull]\n        grants: [{{groups: [builders], actions: [push]}}]\n\
         \x20     - match: team/**\n        grants:\n          - {{users: [alice], actions: [pull, push, delete]}}\n          - {{users: [bob], actions: [pull]}}\n\
         \x20     - match: secret/**\n        grants: [{{users: [alice], actions: [pull, push]}}]\n",
        file.display()
    );
    let server = start_with(&storage, &extra, |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let addr = server.addr.as_str();
    let (alice, bob) = (basic("alice", "a-pass"), basic("bob", "b-pass"));
    let post = |who: Option<&str>, repository: &str, data: &[u8]| {
        let path = format!("/v2/{repository}/blobs/uploads/?digest=sha256:{}", sha256_hex(data));
        let headers: Vec<(&str, &str)> = who.iter().map(|v| ("Authorization", *v)).collect();
        request(addr, "POST", &path, &headers, data).expect("POST")
    };
    let status = |who: Option<&str>, method: &str, path: &str| {
        let headers: Vec<(&str, &str)> = who.iter().map(|v| ("Authorization", *v)).collect();
        request(addr, method, path, &headers, b"").expect("an answer").status
    };

    let public = b"a public layer";
    assert_eq!(post(None, "library/alpine", public).status, 401, "anonymous push");
    assert_eq!(
        post(Some(&bob), "library/alpine", public).status,
        403,
        "bob is no builder"
    );
    assert_eq!(post(Some(&alice), "library/alpine", public).status, 201);
    let public_path = format!("/v2/library/alpine/blobs/sha256:{}", sha256_hex(public));
    assert_eq!(
        status(None, "GET", &public_path),
        200,
        "anonymous pull of a public glob"
    );
    assert_eq!(status(None, "GET", "/v2/"), 200);

    let private = b"a team layer";
    assert_eq!(post(Some(&alice), "team/app", private).status, 201);
    let denied = post(Some(&bob), "team/app", b"bob's layer");
    assert_eq!(denied.status, 403);
    assert!(String::from_utf8_lossy(&denied.body).contains("DENIED"));
    let private_path = format!("/v2/team/app/blobs/sha256:{}", sha256_hex(private));
    assert_eq!(status(Some(&bob), "GET", &private_path), 200);
    assert_eq!(status(None, "GET", &private_path), 401);
    assert_eq!(status(Some(&bob), "DELETE", &private_path), 403);
    assert_eq!(
        status(Some(&alice), "GET", "/v2/elsewhere/tags/list"),
        403,
        "no glob grants anything"
    );
    let secret = b"a secret layer";
    assert_eq!(post(Some(&alice), "secret/keys", secret).status, 201);

    let catalog = |who: Option<&str>| {
        let headers: Vec<(&str, &str)> = who.iter().map(|v| ("Authorization", *v)).collect();
        let reply = request(addr, "GET", "/v2/_catalog", &headers, b"").expect("catalog");
        assert_eq!(reply.status, 200);
        String::from_utf8(reply.body).expect("JSON")
    };
    assert_eq!(catalog(None), r#"{"repositories":["library/alpine"]}"#);
    assert_eq!(catalog(Some(&bob)), r#"{"repositories":["library/alpine","team/app"]}"#);
    assert_eq!(
        catalog(Some(&alice)),
        r#"{"repositories":["library/alpine","secret/keys","team/app"]}"#
    );

    // Bob may push nowhere; alice mounts the secret layer into team/app
    // only by naming secret/keys, which she may pull.
    let mount = |who: &str, from: Option<&str>| {
        let from = from.map(|f| format!("&from={f}")).unwrap_or_default();
        let path = format!("/v2/team/app/blobs/uploads/?mount=sha256:{}{from}", sha256_hex(secret));
        request(addr, "POST", &path, &[("Authorization", who)], b"")
            .expect("POST")
            .status
    };
    assert_eq!(mount(&bob, Some("secret/keys")), 403);
    assert_eq!(
        mount(&alice, None),
        202,
        "no mount without a repository to pull from: an upload starts"
    );
    assert_eq!(
        mount(&alice, Some("library/alpine")),
        202,
        "library/alpine does not link it"
    );
    assert_eq!(mount(&alice, Some("secret/keys")), 201);
}

/// `auth.token`: every request without a good token is 401 with the
/// Bearer challenge naming the scope it needs; skopeo gets tokens from the
/// test's token server to push and pull; a reader's token pulls and does
/// not push; bad tokens (none, unsigned, tampered, expired, another
/// audience, another repository) are 401, never a 500.
#[test]
fn token_auth_takes_tokens_from_the_token_server() {
    use common::token_server::{claims, TokenServer};
    let storage = Storage::filesystem();
    let work = storage.dir.path();
    let policy = [
        (
            "alice",
            ("wonderland", vec![("repository:team/", vec!["pull", "push", "delete"])]),
        ),
        ("reader", ("reads", vec![("repository:team/", vec!["pull"])])),
    ]
    .into_iter()
    .collect();
    let tokens = TokenServer::start(work, policy);
    let server = start_with(&storage, &tokens.yaml(), |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(401)
    });
    let addr = server.addr.as_str();
    let realm = &tokens.realm;
    let challenge = |scope: &str| {
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(",scope=\"{scope}\"")
        };
        format!("Bearer realm=\"{realm}\",service=\"berth-test\"{scope}")
    };
    for (method, path, scope) in [
        ("GET", "/v2/", ""),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/team/app/manifests/v1", "repository:team/app:pull"),
        ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
        (
            "DELETE",
            "/v2/team/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "repository:team/app:delete",
        ),
    ] {
        let reply = request(addr, method, path, &[], b"").expect("an answer");
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(challenge(scope).as_str()),
            "{method} {path}"
        );
        assert!(String::from_utf8_lossy(&reply.body).contains("UNAUTHORIZED"));
    }

    let bearer = |token: &str| format!("Bearer {token}");
    let grant =
        |name: &str, actions: &[&str]| serde_json::json!([{"type": "repository", "name": name, "actions": actions}]);
    let signer = tokens.signer();
    let pull_app = signer.sign(&claims("alice", grant("team/app", &["pull"])));
    let tags = "/v2/team/app/tags/list";
    let with = |token: &str| vec![("Authorization".to_string(), bearer(token))];
    let get = |path: &str, headers: &[(String, String)]| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request(addr, "GET", path, &headers, b"").expect("an answer")
    };
    assert_eq!(
        get(tags, &with(&pull_app)).status,
        404,
        "a good token reaches the repository"
    );
    assert_eq!(get("/v2/", &with(&pull_app)).status, 200);
    // The same token on another repository, or for the catalog: the client
    // is told to fetch one with the scope.
    let other = get("/v2/team/other/tags/list", &with(&pull_app));
    assert_eq!(other.status, 401);
    assert!(
        other
            .header("www-authenticate")
            .unwrap()
            .ends_with(",error=\"insufficient_scope\""),
        "{:?}",
        other.head
    );
    assert_eq!(get("/v2/_catalog", &with(&pull_app)).status, 401);
    let catalog = signer.sign(&claims(
        "alice",
        serde_json::json!([{"type": "registry", "name": "catalog", "actions": ["*"]}]),
    ));
    assert_eq!(get("/v2/_catalog", &with(&catalog)).status, 200);

    let mut expired = claims("alice", grant("team/app", &["pull"]));
    expired["exp"] = serde_json::json!(jsonwebtoken::get_current_timestamp() - 600);
    let mut elsewhere = claims("alice", grant("team/app", &["pull"]));
    elsewhere["aud"] = serde_json::json!("another-registry");
    let (signed, signature) = pull_app.rsplit_once('.').expect("a JWT");
    let header = signed.split('.').next().expect("a header");
    let b64 = |value: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let widened = b64(claims("alice", grant("team/app", &["pull", "push", "delete"])));
    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none"})),
        b64(claims("alice", grant("team/app", &["pull"])))
    );
    for authorization in [
        bearer(&signer.sign(&expired)),
        bearer(&signer.sign(&elsewhere)),
        bearer(&format!("{header}.{widened}.{signature}")),
        bearer(&unsigned),
        bearer("not-a-jwt"),
        "Bearer".to_string(),
        basic("alice", "wonderland"),
    ] {
        let reply = get(tags, &[("Authorization".to_string(), authorization.clone())]);
        assert_eq!(reply.status, 401, "{authorization}");
        assert!(
            reply.header("www-authenticate").unwrap().starts_with("Bearer realm="),
            "{authorization}"
        );
    }
    let log = server.log_text();
    assert!(
        log.contains("refused a bearer token") && log.contains("ExpiredSignature"),
        "{log}"
    );

    // Real clients: skopeo logs in at the token server to push and pull;
    // the reader pulls and may not push.
    let (from, config) = oci_layout(work, b"layer behind a token");
    let to = format!("docker://{addr}/team/app:v1");
    let out = skopeo(
        work,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wonderland",
            &from,
            &to,
        ],
    );
    assert!(
        out.status.success(),
        "skopeo push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled = work.join("pulled");
    let into = format!("dir:{}", pulled.display());
    let out = skopeo(
        work,
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "reader:reads",
            &to,
            &into,
        ],
    );
    assert!(
        out.status.success(),
        "skopeo pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pulled.join(sha256_hex(&config)).exists(), "the config was pulled");
    let again = format!("docker://{addr}/team/copy:v1");
    let out = skopeo(
        work,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "reader:reads",
            &from,
            &again,
        ],
    );
    assert!(!out.status.success(), "the reader pushed");
    let out = skopeo(
        work,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "mallory:guess",
            &from,
            &again,
        ],
    );
    assert!(!out.status.success(), "an unknown user pushed");
    assert!(tokens.issued() >= 2, "skopeo did not use the token server");

    // podman and oras-py take tokens from the token server too; podman
    // logs in as the reader but may not push.
    use common::clients::{oras_round_trip, podman_round_trip};
    let issued = tokens.issued();
    podman_round_trip(addr, work, "team/podman", "alice", "wonderland").unwrap_or_else(|err| panic!("{err}"));
    oras_round_trip(addr, work, "team/oras", "alice", "wonderland", "token").unwrap_or_else(|err| panic!("{err}"));
    let refused = podman_round_trip(addr, work, "team/by-reader", "reader", "reads").expect_err("the reader pushed");
    assert!(refused.starts_with("podman push"), "{refused}");
    assert!(
        tokens.issued() > issued + 2,
        "podman and oras-py did not use the token server"
    );
}

/// The head of a monolithic push of `data` and its first `sent` bytes, on a
/// connection of its own: the rest is the caller's to send.
fn start_push(addr: &str, data: &[u8], sent: usize) -> TcpStream {
    let digest = sha256_hex(data);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST /v2/team/app/blobs/uploads/?digest=sha256:{digest} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&data[..sent]).expect("body");
    stream
}

/// The status of the answer on `stream`.
fn status_of(stream: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `requests.write` of one running and one waiting: a third push at once
/// is 429 `TOOMANYREQUESTS` with `Retry-After`, the first two are served,
/// and reads are not held up by the writes.
#[test]
fn a_write_limit_refuses_what_its_queue_cannot_hold() {
    let storage = Storage::filesystem();
    let debug = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "requests:\n  write:\n    maxrunning: 1\n    maxinqueue: 1\n    maxwaitinqueue: 60s\n\
         http:\n  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n"
    );
    let server = start_with(&storage, &extra, |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let addr = server.addr.as_str();
    // Each step waits until the registry's gauges show it happened.
    let until = |series: &str, value: f64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let scraped = request(&debug, "GET", "/metrics", &[], b"").expect("metrics");
            if sample(&String::from_utf8_lossy(&scraped.body), series) == Some(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{series} never reached {value}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (first, second) = (content(1 << 20), content((1 << 20) + 1));
    let mut running = start_push(addr, &first, 1000);
    until(r#"berth_limited_requests_running{kind="write"}"#, 1.0);
    let mut waiting = start_push(addr, &second, 0);
    until(r#"berth_limited_requests_waiting{kind="write"}"#, 1.0);
    let refused = push(addr, "team/app", b"a third push").1;
    assert_eq!(refused.status, 429, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&refused.body).contains("TOOMANYREQUESTS"));
    assert_eq!(
        request(addr, "GET", "/v2/_catalog", &[], b"").map(|r| r.status),
        Some(200)
    );
    running.write_all(&first[1000..]).expect("the rest");
    waiting.write_all(&second).expect("the body");
    assert_eq!((status_of(&mut running), status_of(&mut waiting)), (201, 201));
    until(r#"berth_limited_requests_running{kind="write"}"#, 0.0);
    assert_eq!(push(addr, "team/app", b"a push once they ended").1.status, 201);
}

/// The value of the sample `name{labels}` in a Prometheus exposition.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `http.debug.prometheus`: the metrics on the debug address (and not on
/// the API's) count what a workload did, by route and status, uploads by
/// outcome, bytes both ways, and the storage plugin's calls and instances.
#[test]
fn metrics_count_what_the_registry_did() {
    let storage = Storage::filesystem();
    let debug = format!("127.0.0.1:{}", free_port());
    let extra = format!("http:\n  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n");
    let server = start_with(&storage, &extra, |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let addr = server.addr.as_str();
    let data = content(3 << 20);
    let (digest, reply) = push(addr, "team/app", &data);
    assert_eq!(reply.status, 201);
    for _ in 0..2 {
        assert_body(&blob(addr, "team/app", &digest), &data);
    }
    let missing = request(addr, "GET", "/v2/team/app/manifests/nope", &[], b"").expect("GET");
    assert_eq!(missing.status, 404);
    let bad = request(
        addr,
        "POST",
        "/v2/team/app/blobs/uploads/?digest=sha256:0000",
        &[],
        b"x",
    )
    .expect("POST");
    assert!(bad.status >= 400);

    assert_eq!(request(addr, "GET", "/metrics", &[], b"").map(|r| r.status), Some(404));
    let scraped = request(&debug, "GET", "/metrics", &[], b"").expect("the metrics answer");
    assert_eq!(scraped.status, 200);
    assert!(scraped
        .header("content-type")
        .is_some_and(|t| t.contains("openmetrics-text")));
    let text = String::from_utf8(scraped.body).expect("text");
    let get = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(
        get(r#"berth_http_requests_total{method="GET",route="blob",status="200"}"#),
        2.0
    );
    assert_eq!(
        get(r#"berth_http_requests_total{method="GET",route="manifest",status="404"}"#),
        1.0
    );
    assert_eq!(
        get(r#"berth_http_response_bytes_total{method="GET",route="blob"}"#),
        2.0 * data.len() as f64
    );
    assert!(get(r#"berth_http_request_bytes_total{method="POST",route="upload_start"}"#) >= data.len() as f64);
    assert_eq!(
        get(r#"berth_http_request_duration_seconds_count{method="GET",route="blob"}"#),
        2.0
    );
    assert_eq!(get(r#"berth_blob_uploads_total{outcome="completed"}"#), 1.0);
    assert_eq!(get(r#"berth_blob_uploads_total{outcome="failed"}"#), 1.0);
    assert!(get(r#"berth_plugin_instances_created_total{plugin="filesystem"}"#) >= 4.0);
    // Reads and upload writers are the host's, in the driver's directory;
    // `put-content` is the plugin's.
    assert!(get(r#"berth_plugin_calls_total{plugin="filesystem",operation="put-content"}"#) >= 1.0);
    let writers = r#"berth_plugin_calls_total{plugin="filesystem",operation="writer"}"#;
    assert_eq!(sample(&text, writers), None, "{text}");
}

/// Each request is one log line naming its method, path, status, bytes and
/// repository; written to a file, the log has no terminal colour codes. A
/// log filter that does not parse is said to be wrong, and info is used.
#[test]
fn each_request_is_one_plain_log_line() {
    let storage = Storage::filesystem();
    let server = start_with_env(&storage, "", &[("BERTH_LOG", "info,[[")], |addr| {
        request(addr, "GET", "/healthz", &[], b"").is_some()
    });
    let log = server.log_text();
    assert!(log.contains("the log filter `info,[[` is not valid"), "{log}");
    let zeros = "0".repeat(64);
    let path = format!("/v2/some/repo/blobs/sha256:{zeros}");
    let reply = request(&server.addr, "GET", &path, &[], b"").expect("GET");
    assert_eq!(reply.status, 404, "{}", reply.head);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = server.log_text();
        if let Some(line) = log.lines().find(|line| line.contains(&path)) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no log line for {path}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let bytes = format!("bytes={}", reply.body.len());
    for field in ["method=GET", "status=404", &bytes, "repository=\"some/repo\""] {
        assert!(line.contains(field), "{field} missing from: {line}");
    }
    assert!(!server.log_text().contains('\u{1b}'), "colour codes in the log file");
}

/// `log.accesslog.disabled`: requests are counted but not logged. The line
/// would be written when the request is counted, so once the metrics show
/// it, its absence from the log is final.
#[test]
fn a_disabled_access_log_writes_no_request_lines() {
    let storage = Storage::filesystem();
    let debug = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "log:\n  accesslog:\n    disabled: true\nhttp:\n  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n"
    );
    let server = start_with_env(&storage, &extra, &[("BERTH_LOG", "info")], |addr| {
        request(addr, "GET", "/healthz", &[], b"").is_some()
    });
    let path = "/v2/quiet/repo/tags/list";
    assert_eq!(
        request(&server.addr, "GET", path, &[], b"").map(|r| r.status),
        Some(404)
    );
    let counted = r#"berth_http_requests_total{method="GET",route="tags",status="404"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scraped = request(&debug, "GET", "/metrics", &[], b"").expect("metrics");
        if sample(&String::from_utf8_lossy(&scraped.body), counted) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the request was never counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log_text();
    assert!(log.contains("berth registry listening"), "{log}");
    assert!(
        !log.contains(path),
        "a request line despite log.accesslog.disabled:\n{log}"
    );
}

/// Raises this test process's own open-files limit, for its many sockets.
fn raise_own_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// Whether the server closed `stream` (EOF or reset) within `wait`.
fn closed_by_server(mut stream: &TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// 1,100 idle connections (more than the 1,024 open files a process
/// starts with here) and 20 clients sending their headers a byte at a time
/// leave a normal client answered; the server closes the idle ones after
/// `http.idletimeout` and the slow ones after `http.readheadertimeout`,
/// while an upload whose body moves slowly keeps its connection.
#[test]
fn idle_and_slow_clients_do_not_starve_a_normal_one() {
    assert!(raise_own_open_files() > 1300, "this test needs 1,300 open files");
    let storage = Storage::filesystem();
    let server = start_with(
        &storage,
        "http:\n  idletimeout: 3s\n  readheadertimeout: 2s\n",
        |addr| request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200),
    );
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect(&server.addr).expect("an idle connection"))
        .collect();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).expect("a slow connection");
            stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").expect("write");
            stream
        })
        .collect();
    let reply = request(&server.addr, "GET", "/v2/", &[], b"").expect("an answer beside 1,120 other clients");
    assert_eq!(reply.status, 200);

    // A body that moves a little every second keeps going past the idle
    // timeout; the slow-header clients trickle bytes all the while.
    let location = start_upload(&server.addr, "team/slow");
    let mut upload = TcpStream::connect(&server.addr).expect("connect");
    let data = content(6 * 1024);
    write!(
        upload,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: 0-{}\r\nContent-Length: {}\r\n\r\n",
        data.len() - 1,
        data.len()
    )
    .expect("headers");
    for piece in data.chunks(1024) {
        upload.write_all(piece).expect("a piece of the body");
        for stream in &mut slow {
            let _ = stream.write_all(b"X");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut answer = String::new();
    upload.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    upload.read_to_string(&mut answer).expect("the PATCH answer");
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    // Six seconds on: past both limits.
    let closed_idle = idle
        .iter()
        .take(50)
        .filter(|s| closed_by_server(s, Duration::from_secs(1)))
        .count();
    assert_eq!(closed_idle, 50, "idle connections are closed after http.idletimeout");
    let closed_slow = slow
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_secs(1)))
        .count();
    assert_eq!(
        closed_slow, 20,
        "headers sent too slowly are cut off after http.readheadertimeout"
    );
    assert_eq!(
        request(&server.addr, "GET", "/v2/", &[], b"").map(|r| r.status),
        Some(200)
    );
}

/// Beyond `http.maxconnections` new clients wait (in the listen backlog)
/// until a slot frees, and the log says the limit was reached.
#[test]
fn the_connection_limit_holds_clients_back_and_is_logged() {
    let storage = Storage::filesystem();
    let server = start_with(&storage, "http:\n  maxconnections: 5\n  idletimeout: 2s\n", |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The sixth is answered once the idle five are closed (2 s).
    let reply = request(&server.addr, "GET", "/v2/", &[], b"").expect("answered after a slot freed");
    assert_eq!(reply.status, 200);
    assert!(
        server.log_text().contains("connection limit reached"),
        "{}",
        server.log_text()
    );
    drop(held);
}

/// SIGTERM while a client holds a half-sent request, with no
/// `http.draintimeout` set: the process exits once the default drain limit
/// (25 s, inside Kubernetes' 30 s grace period) has passed, whatever the
/// client does.
#[test]
fn sigterm_with_a_half_sent_request_exits_after_the_default_drain_limit() {
    let storage = Storage::filesystem();
    let mut server = start(&storage);
    let location = start_upload(&server.addr, "team/half");
    let mut half = TcpStream::connect(&server.addr).expect("connect");
    write!(
        half,
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nonly a little"
    )
    .expect("half a request");
    std::thread::sleep(Duration::from_millis(300));
    let status = terminate(&mut server, Duration::from_secs(45));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(server.log_text().contains("stopping anyway"), "{}", server.log_text());
    drop(half);
}

#[test]
fn connection_limits_that_cannot_hold_are_refused() {
    for (extra, field) in [
        ("http:\n  idletimeout: 0s\n", "http.idletimeout"),
        ("http:\n  readheadertimeout: 0s\n", "http.readheadertimeout"),
        ("http:\n  requesttimeout: 0s\n", "http.requesttimeout"),
        ("http:\n  maxconnections: 0\n", "http.maxconnections"),
        ("http:\n  maxconnections: 4000000000\n", "http.maxconnections"),
    ] {
        let output = refused(&format!("version: 0.1\nstorage:\n  inmemory: {{}}\n{extra}"), &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra}\n{stderr}");
        assert!(stderr.contains(field), "{stderr}");
    }
}

/// The access log line is written when the response has gone out: a
/// download the client gives up half way is marked aborted, with the bytes
/// that were really sent, and a whole one is not.
#[test]
fn the_access_log_tells_an_aborted_download_from_a_whole_one() {
    let storage = Storage::filesystem();
    let server = start_with_env(&storage, "", &[("BERTH_LOG", "info")], |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let data = content(64 << 20);
    let digest = sha256_hex(&data);
    let location = start_upload(&server.addr, "team/big");
    assert_eq!(patch(&server.addr, &location, 0, &data).status, 202);
    assert_eq!(finish(&server.addr, &location, &digest).status, 201);
    let path = format!("/v2/team/big/blobs/sha256:{digest}");

    let whole = blob(&server.addr, "team/big", &digest);
    assert_eq!(whole.body.len(), data.len());
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut some = vec![0u8; 1 << 20];
    stream.read_exact(&mut some).expect("the first MiB");
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines: Vec<String> = server
            .log_text()
            .lines()
            .filter(|l| l.contains(&path) && l.contains("method=GET"))
            .map(str::to_string)
            .collect();
        if lines.len() == 2 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "two GET lines expected:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        lines[0].contains(&format!("bytes={}", data.len())) && lines[0].contains("aborted=false"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("aborted=true"), "{}", lines[1]);
    let sent: u64 = lines[1]
        .split("bytes=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("bytes=");
    assert!(
        sent < data.len() as u64,
        "an aborted download logged as its full size: {}",
        lines[1]
    );
}

/// The peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        >> 10
}

/// Thirty concurrent `/healthz` on a driver whose `stat` allocates to its
/// memory limit (256 MiB): one check answers them all, and the process
/// stays far below thirty instances' worth of memory (it once reached
/// 6.8 GB).
#[test]
fn concurrent_health_probes_cost_one_check() {
    let storage = Storage::fixture("hog");
    let server = start_with(&storage, "", |addr| request(addr, "GET", "/v2/", &[], b"").is_some());
    let probes: Vec<_> = (0..30)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || request(&addr, "GET", "/healthz", &[], b"").map(|r| r.status))
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.join().expect("probe"), Some(503));
    }
    let checks = server.log_text().matches("health check failed").count();
    assert!(
        (1..=3).contains(&checks),
        "{checks} storage checks for 30 probes:\n{}",
        server.log_text()
    );
    let peak = peak_rss_mib(server.child.id());
    eprintln!("peak RSS after 30 concurrent probes of the hog driver: {peak} MiB");
    assert!(peak < 2048, "peak RSS {peak} MiB");
}

/// Eight PATCHes of the same chunk at the same offset, at once: exactly one
/// is acknowledged, the others get 416 with the offset, and the upload
/// holds that one chunk.
#[test]
fn concurrent_patches_at_one_offset_keep_one_and_refuse_the_rest() {
    let storage = Storage::filesystem();
    let server = start(&storage);
    let location = start_upload(&server.addr, "team/race");
    // Small enough to sit in the socket buffers whole, so a client refused
    // before its body was read still reads its answer.
    let chunk = content(512 << 10);
    let replies: Vec<u16> = std::thread::scope(|scope| {
        let patches: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| patch(&server.addr, &location, 0, &chunk).status))
            .collect();
        patches.into_iter().map(|p| p.join().expect("patch")).collect()
    });
    assert_eq!(replies.iter().filter(|&&s| s == 202).count(), 1, "{replies:?}");
    assert_eq!(replies.iter().filter(|&&s| s == 416).count(), 7, "{replies:?}");
    let status = request(&server.addr, "GET", &location, &[], b"").expect("status");
    assert_eq!(status.header("range"), Some(&*format!("0-{}", chunk.len() - 1)));
    let digest = sha256_hex(&chunk);
    assert_eq!(finish(&server.addr, &location, &digest).status, 201);
}

/// A symbolic link loop below the repositories is skipped, with a log
/// line, instead of failing the whole catalog.
#[test]
fn a_link_loop_in_the_storage_is_skipped_by_the_catalog() {
    let storage = Storage::filesystem();
    let server = start_with_env(&storage, "", &[("BERTH_LOG", "warn")], |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    let data = b"a layer".to_vec();
    let digest = sha256_hex(&data);
    let location = start_upload(&server.addr, "team/ok");
    assert_eq!(patch(&server.addr, &location, 0, &data).status, 202);
    assert_eq!(finish(&server.addr, &location, &digest).status, 201);
    let repositories = storage.root().join("docker/registry/v2/repositories");
    std::os::unix::fs::symlink("loop", repositories.join("loop")).expect("a link loop");
    let reply = request(&server.addr, "GET", "/v2/_catalog", &[], b"").expect("catalog");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(body["repositories"], serde_json::json!(["team/ok"]));
    assert!(
        server.log_text().contains("skipped in the repository list"),
        "{}",
        server.log_text()
    );
}

/// A request whose plugin call would run to the 30 s call deadline is
/// stopped at `http.requesttimeout` and answered 503 saying so.
#[test]
fn a_request_ends_at_its_deadline_whatever_its_plugin_calls_do() {
    let storage = Storage::fixture("spin");
    let server = start_with(&storage, "http:\n  requesttimeout: 2s\n", |addr| {
        request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200)
    });
    // The upload's status stats the upload, and this driver's stat spins.
    let reply = request(&server.addr, "GET", "/v2/team/app/blobs/uploads/some-id", &[], b"").expect("an answer");
    assert_eq!(reply.status, 503, "{}", reply.head);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.contains("http.requesttimeout"), "{body}");
    // The server is free for the next request.
    assert_eq!(
        request(&server.addr, "GET", "/v2/", &[], b"").map(|r| r.status),
        Some(200)
    );
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// A client that goes away takes its request's work with it: the plugin
/// call spinning for it stops, instead of running to its 30 s deadline.
#[test]
fn a_client_that_disconnects_cancels_its_request() {
    let storage = Storage::fixture("spin");
    let server = start(&storage);
    let pid = server.child.id();
    let mut client = TcpStream::connect(&server.addr).expect("connect");
    write!(
        client,
        "GET /v2/team/app/blobs/uploads/some-id HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .expect("request");
    std::thread::sleep(Duration::from_millis(500));
    // Lenient bounds: other tests share the two cores.
    let spinning = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(2));
    let busy = cpu_seconds(pid) - spinning;
    assert!(
        busy > 0.4,
        "the plugin call should spin while the client waits ({busy} CPU s in 2 s)"
    );
    drop(client);
    std::thread::sleep(Duration::from_millis(500));
    let after = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(pid) - after;
    assert!(used < 0.25, "{used} CPU seconds in the 2 s after the client left");
}

#[test]
fn online_gc_keeps_every_pushed_image() {
    online_gc_under_load(&Storage::filesystem(), Duration::ZERO, 2);
}

#[test]
fn online_gc_keeps_every_pushed_image_on_s3() {
    // moto, one Python process, answers far fewer requests than a disk: the
    // clients pace themselves and stop after one collection under load.
    online_gc_under_load(&Storage::s3(), Duration::from_millis(200), 1);
}

/// One image pushed whole: layers (monolithic POSTs), then the manifest
/// under `tag`. The manifest's digest and its blobs' digests, or the status
/// that stopped it.
fn push_image(addr: &str, repository: &str, tag: &str, layers: &[Vec<u8>]) -> Result<(String, Vec<String>), u16> {
    let mut descriptors = Vec::new();
    let mut digests = Vec::new();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","layers":"{}"}}"#,
        sha256_hex(&layers.concat())
    );
    for (i, data) in std::iter::once(config.as_bytes())
        .chain(layers.iter().map(Vec::as_slice))
        .enumerate()
    {
        let (digest, reply) = push(addr, repository, data);
        if reply.status != 201 {
            return Err(reply.status);
        }
        let media_type = if i == 0 {
            "application/vnd.oci.image.config.v1+json"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        descriptors.push(format!(
            r#"{{"mediaType":"{media_type}","digest":"sha256:{digest}","size":{}}}"#,
            data.len()
        ));
        digests.push(format!("sha256:{digest}"));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        descriptors[0],
        descriptors[1..].join(",")
    );
    let path = format!("/v2/{repository}/manifests/{tag}");
    let headers = [("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
    let reply = request(addr, "PUT", &path, &headers, manifest.as_bytes()).ok_or(0u16)?;
    if reply.status != 201 {
        return Err(reply.status);
    }
    Ok((format!("sha256:{}", sha256_hex(manifest.as_bytes())), digests))
}

/// The servers' log lines but the access log.
fn gc_log_lines(servers: &[Server]) -> String {
    let logs: String = servers.iter().map(Server::log_text).collect();
    logs.lines()
        .filter(|l| !l.contains("access_log") && !l.contains("skipped") && !l.contains("manifest stored"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The servers' log lines at warning level or above.
fn error_lines(servers: &[Server]) -> String {
    let logs: String = servers.iter().map(Server::log_text).collect();
    logs.lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many collections the servers' logs say completed.
fn runs_completed(servers: &[Server]) -> usize {
    servers
        .iter()
        .map(|s| s.log_text().matches("gc: run completed").count())
        .sum()
}

/// Two `berth serve` on one storage, both with `storage.gc` back to back
/// (one at a time by the lease) and a delay of 1 s, while three clients
/// push images sharing a layer, move tags (so older images become
/// untagged and are collected) and delete images, until
/// `runs_under_load` collections have completed. A push the collection
/// refused (a layer it took between the upload and the manifest) is pushed
/// again; no other failure is allowed. At the end every tag still pushed
/// pulls whole with its digests verified; once two more runs have
/// completed after the clients stopped, an offline `berth gc --dry-run
/// --delete-untagged` finds nothing left to delete.
fn online_gc_under_load(storage: &Storage, pace: Duration, runs_under_load: usize) {
    let extra = "  delete:\n    enabled: true\n  gc:\n    enabled: true\n    interval: 100ms\n    delay: 1s\n    deleteuntagged: true\n";
    let yaml = storage.yaml.replacen("storage:\n", &format!("storage:\n{extra}"), 1);
    let http = "http:\n  requesttimeout: 2s\n";
    let storage = Storage {
        dir: tempfile::tempdir().expect("tempdir"),
        yaml: format!("{yaml}{http}"),
        wrapper: Vec::new(),
        _servers: Vec::new(),
    };
    let up = |addr: &str| request(addr, "GET", "/v2/", &[], b"").map(|r| r.status) == Some(200);
    let servers = [
        start_with_env(&storage, "", &[("BERTH_LOG", "info")], up),
        start_with_env(&storage, "", &[("BERTH_LOG", "info")], up),
    ];
    let shared = vec![7u8; 64 << 10];
    let stop = std::sync::atomic::AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(150);
    let pushed: Vec<std::collections::BTreeMap<String, (String, Vec<String>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|worker| {
                let (addr, shared, stop, servers) = (servers[worker % 2].addr.clone(), &shared, &stop, &servers);
                scope.spawn(move || {
                    let mut tags = std::collections::BTreeMap::new();
                    let mut round = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let tag = format!("w{worker}-{}", round % 3);
                        let own = format!("worker {worker} round {round}").into_bytes().repeat(1000);
                        let mut tries = 0;
                        let image = loop {
                            tries += 1;
                            match push_image(&addr, "team/app", &tag, &[shared.clone(), own.clone()]) {
                                Ok(image) => break image,
                                // The manifest named a layer the collection took: push again.
                                Err(400) if tries < 5 => continue,
                                Err(status) => panic!(
                                    "worker {worker} round {round}: push answered {status}; the servers' errors:\n{}",
                                    error_lines(servers)
                                ),
                            }
                        };
                        if round % 4 == 3 {
                            let path = format!("/v2/team/app/manifests/{}", image.0);
                            let status = request(&addr, "DELETE", &path, &[], b"").map(|r| r.status);
                            assert_eq!(status, Some(202), "DELETE {path}");
                            tags.remove(&tag);
                        } else {
                            tags.insert(tag, image);
                        }
                        round += 1;
                        std::thread::sleep(pace);
                    }
                    tags
                })
            })
            .collect();
        // Stops the clients however this thread leaves the scope.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _stop = Stop(&stop);
        while runs_completed(&servers) < runs_under_load {
            assert!(
                Instant::now() < deadline,
                "{runs_under_load} collections did not complete under load in 150 s:\n{}",
                gc_log_lines(&servers)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        drop(_stop);
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });

    let addr = servers[0].addr.as_str();
    for tags in &pushed {
        for (tag, (manifest, blobs)) in tags {
            let path = format!("/v2/team/app/manifests/{tag}");
            let reply = request(
                addr,
                "GET",
                &path,
                &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
                b"",
            )
            .expect("GET");
            assert_eq!(reply.status, 200, "{tag}");
            assert_eq!(format!("sha256:{}", sha256_hex(&reply.body)), *manifest, "{tag}");
            for digest in blobs {
                let reply = blob(addr, "team/app", &digest[7..]);
                assert_eq!(reply.status, 200, "{tag}: {digest}\n{}", gc_log_lines(&servers));
                assert_eq!(format!("sha256:{}", sha256_hex(&reply.body)), *digest, "{tag}");
            }
        }
    }
    let after = runs_completed(&servers);
    let deadline = Instant::now() + Duration::from_secs(240);
    while runs_completed(&servers) < after + 2 {
        assert!(
            Instant::now() < deadline,
            "the collections stopped:\n{}",
            gc_log_lines(&servers)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs: String = servers.iter().map(Server::log_text).collect();
    assert!(!logs.contains("gc: run stopped"), "{logs}");
    // Stopped as a supervisor stops them: a run in progress gives up its
    // lease, so the offline collection below may start at once.
    let mut servers = servers;
    for server in &mut servers {
        assert!(terminate(server, Duration::from_secs(30)).success());
    }
    drop(servers);
    let config = storage.dir.path().join("offline.yml");
    std::fs::write(&config, format!("version: 0.1\n{}", storage.yaml)).expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--dry-run", "--delete-untagged", "--config"])
        .arg(&config)
        .output()
        .expect("berth gc");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("would delete 0 tags, 0 untagged manifests, 0 links, 0 blobs"),
        "the collections left garbage behind:\n{text}"
    );
}
