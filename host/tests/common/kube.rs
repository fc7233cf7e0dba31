//! The real Kubernetes API server for the operator's tests: the kit of
//! `../shared/k8s` (kube-apiserver 1.20 + etcd on 127.0.0.1, no nodes, no
//! controller manager), which `scripts/test` starts and names in
//! `KUBECONFIG`. Each test gets its own namespace and Config name, so tests
//! run in parallel; `kubectl` is the client, as an admin would use it.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for the operator to reach a state.
pub const WAIT: Duration = Duration::from_secs(60);
/// The Config resource, fully qualified for kubectl.
pub const CONFIGS: &str = "configs.imageregistry.operator.openshift.io";

/// A namespace and a Config name of one test's own.
pub struct Cluster {
    pub namespace: String,
    pub config: String,
}

impl Cluster {
    /// Installs the CRD from `berth operator crd` (once per test binary) and
    /// creates a namespace for the test `name`.
    pub fn new(name: &str) -> Cluster {
        assert!(
            std::env::var_os("KUBECONFIG").is_some(),
            "KUBECONFIG is not set: the operator's tests need the Kubernetes kit's API server; \
             run them through scripts/test, which starts it"
        );
        static CRD: OnceLock<()> = OnceLock::new();
        CRD.get_or_init(|| {
            let crd = super::berth(&["operator", "crd"], &[]);
            assert!(
                crd.status.success(),
                "berth operator crd: {}",
                String::from_utf8_lossy(&crd.stderr)
            );
            kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &crd.stdout);
            kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{CONFIGS}"),
            ]);
        });
        let suffix = format!("{}-{}", std::process::id(), name.replace('_', "-"));
        let cluster = Cluster {
            namespace: format!("t{suffix}"),
            config: format!("c{suffix}"),
        };
        kubectl_ok(&["create", "namespace", &cluster.namespace]);
        cluster
    }

    /// `kubectl -n NAMESPACE args...`, which must succeed; its output.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        kubectl_ok(&all)
    }

    /// `kubectl apply -f -` of `object` (JSON) in the namespace.
    pub fn apply(&self, object: &Value) {
        kubectl_stdin(
            &["-n", &self.namespace, "apply", "-f", "-"],
            object.to_string().as_bytes(),
        );
    }

    /// An object of the namespace as JSON, or `None` when it does not exist.
    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        get_json(&["-n", &self.namespace, "get", kind, name, "-o", "json"])
    }

    /// The test's Config.
    pub fn get_config(&self) -> Option<Value> {
        get_json(&["get", CONFIGS, &self.config, "-o", "json"])
    }

    /// `kubectl patch config NAME --type merge -p PATCH`, as the seed does.
    pub fn patch_config(&self, patch: &Value) {
        kubectl_ok(&[
            "patch",
            CONFIGS,
            &self.config,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ]);
    }

    /// Waits until `probe` returns something, at most [`WAIT`].
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; Config: {:#}",
                self.get_config().unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the Config's condition `type_` has `status`; returns it.
    pub fn wait_condition(&self, type_: &str, status: &str) -> Value {
        self.wait(&format!("{type_}={status}"), || {
            condition(&self.get_config()?, type_).filter(|c| c["status"] == status)
        })
    }

    /// Plays the Deployment controller the kit does not run: marks every
    /// replica of the registry Deployment updated, ready and available.
    pub fn make_deployment_available(&self) {
        let deployment = self
            .get("deployment", "image-registry")
            .expect("the registry Deployment");
        let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = serde_json::json!({"status": {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
        }});
        self.kubectl(&[
            "patch",
            "deployment",
            "image-registry",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            &status.to_string(),
        ]);
    }

    /// The messages of the events recorded on the test's Config.
    pub fn events(&self) -> Vec<(String, String)> {
        let selector = format!("involvedObject.name={}", self.config);
        let listed = get_json(&[
            "-n",
            "default",
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "json",
        ])
        .unwrap_or_default();
        listed["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (text(&e["reason"]), text(&e["message"]))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Without a controller manager nothing finishes a namespace's
        // deletion or a finalizer: drop the finalizer, delete, move on.
        let _ = kubectl(&[
            "patch",
            CONFIGS,
            &self.config,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        let _ = kubectl(&["delete", CONFIGS, &self.config, "--ignore-not-found", "--wait=false"]);
        let _ = kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

/// The condition `type_` of a Config's status.
pub fn condition(config: &Value, type_: &str) -> Option<Value> {
    config["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// The value of the container variable `name` in a Deployment.
pub fn env_var(deployment: &Value, name: &str) -> Option<Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
}

/// `berth operator` for a test's Cluster, logging to a file, stopped with
/// SIGTERM when dropped.
pub struct Operator {
    child: Child,
    pub identity: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub fn start(cluster: &Cluster, identity: &str) -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "operator",
                "--namespace",
                &cluster.namespace,
                "--config-name",
                &cluster.config,
            ])
            .args([
                "--registry-image",
                "registry.example/berth:test",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(["--resync-secs", "3", "--identity", identity])
            .env("BERTH_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("berth operator");
        Operator {
            child,
            identity: identity.into(),
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 15 s) for the exit; its status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the operator did not stop within 15 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("--- operator {} log ---\n{}", self.identity, self.log());
            }
        }
    }
}

/// `kubectl args...` against the kit, at most 60 s.
pub fn kubectl(args: &[&str]) -> Output {
    run_kubectl(args, None)
}

/// `kubectl args...`, which must succeed; its standard output.
pub fn kubectl_ok(args: &[&str]) -> String {
    succeeded(args, kubectl(args))
}

/// [`kubectl_ok`] with `input` on its standard input.
pub fn kubectl_stdin(args: &[&str], input: &[u8]) -> String {
    succeeded(args, run_kubectl(args, Some(input)))
}

fn succeeded(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn get_json(args: &[&str]) -> Option<Value> {
    let output = kubectl(args);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("NotFound") || stderr.contains("not found"),
            "kubectl {args:?}: {stderr}"
        );
        return None;
    }
    Some(serde_json::from_slice(&output.stdout).expect("kubectl prints JSON"))
}

fn run_kubectl(args: &[&str], input: Option<&[u8]>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new("kubectl")
        .args(["--request-timeout=30s"])
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl (installed on these machines; any version talks to the kit's 1.20)");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input).expect("kubectl stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubectl {args:?} took longer than 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("kubectl output")
}
