//! Real registry clients for the auth tests: podman and oras-py, each
//! logging in, pushing and pulling against a registry on 127.0.0.1. Both
//! must be installed (scripts/test installs them): a missing client fails
//! the test, never skips it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// podman on its own storage under `work` (vfs, so no overlay mount is
/// needed), its own auth file, no systemd: what runs in a sandbox as root.
pub fn podman(work: &Path, args: &[&str]) -> Output {
    let state = work.join("podman");
    let mut command = Command::new("podman");
    command
        .arg("--root")
        .arg(state.join("root"))
        .arg("--runroot")
        .arg(state.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args)
        .env("REGISTRY_AUTH_FILE", state.join("auth.json"))
        .env("TMPDIR", work)
        .stdin(Stdio::null());
    let output = command.output().expect("podman (apt-get install podman)");
    assert!(!text(&output).contains("panic"), "{}", text(&output));
    output
}

/// stdout and stderr of a client, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `podman login` as `user`, then push an image built from one real tar
/// layer to `addr/repository:v1`, delete it locally and pull it back: the
/// pulled image must be the pushed one. The first failing step's output is
/// the error.
pub fn podman_round_trip(addr: &str, work: &Path, repository: &str, user: &str, password: &str) -> Result<(), String> {
    let step = |args: &[&str]| {
        let output = podman(work, args);
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(format!("podman {}: {}", args.join(" "), text(&output)))
        }
    };
    let tar = layer_tar(work, &format!("{repository} as {user}"));
    let local = format!("localhost/{}:v1", repository.replace('/', "-"));
    let image = step(&["import", &tar.to_string_lossy(), &local])?;
    step(&["login", "--tls-verify=false", "-u", user, "-p", password, addr])?;
    let remote = format!("{addr}/{repository}:v1");
    step(&["push", "--tls-verify=false", &local, &format!("docker://{remote}")])?;
    step(&["rmi", "--force", &local])?;
    step(&["pull", "--tls-verify=false", &remote])?;
    let pulled = step(&["image", "inspect", "--format", "{{.Id}}", &remote])?;
    match image.strip_prefix("sha256:").unwrap_or(&image) == pulled {
        true => Ok(()),
        false => Err(format!("pushed image {image}, pulled {pulled}")),
    }
}

/// A tar holding one file whose content is `note`, made by tar(1).
fn layer_tar(work: &Path, note: &str) -> PathBuf {
    let rootfs = work.join("podman-rootfs");
    std::fs::create_dir_all(&rootfs).expect("rootfs");
    std::fs::write(rootfs.join("note.txt"), note).expect("note");
    let tar = work.join("podman-layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("note.txt")
        .status()
        .expect("tar");
    assert!(status.success(), "tar failed");
    tar
}

/// oras-py: log in with `backend` (`basic` for htpasswd, `token` for a
/// token server), push one file as an artifact to `addr/repository:v1`
/// and pull it back with a second client; prints the pulled bytes' match.
///
/// oras-py 0.2.43 keeps the first token it gets for every later request
/// and fetches a new one only after a 403, while registries (distribution
/// and Berth) answer a token without the scope with 401
/// `insufficient_scope`: its push, which starts with a HEAD (scope `pull`),
/// cannot go on to POST. So for tokens the script first asks the token
/// server, through oras-py's own token request, for the scope Berth's
/// challenge to an upload names (`pull,push`).
const ORAS_ROUND_TRIP: &str = r#"
import os, sys
import oras.auth.utils, oras.client

address, repository, user, password, backend, work = sys.argv[1:]
target = f"{address}/{repository}:v1"
def logged_in():
    client = oras.client.OrasClient(hostname=address, insecure=True, auth_backend=backend)
    client.login(username=user, password=password, hostname=address, config_path=os.path.join(work, "oras-config.json"))
    return client
client = logged_in()
if backend == "token":
    challenge = client.session.post(f"http://{address}/v2/{repository}/blobs/uploads/")
    token = client.auth.request_token(oras.auth.utils.parse_auth_header(challenge.headers["WWW-Authenticate"]))
    if not token:
        sys.exit(f"the token server refused {challenge.headers['WWW-Authenticate']}")
    client.auth.set_token_auth(token)
os.chdir(work)
content = f"an artifact of {repository} pushed by {user}\n"
with open("artifact.txt", "w") as f:
    f.write(content)
response = client.push(target=target, files=["artifact.txt:text/plain"], quiet=True)
if response.status_code != 201:
    sys.exit(f"push: {response.status_code} {response.text}")
pulled = logged_in().pull(target=target, outdir=os.path.join(work, "oras-pulled"))
if len(pulled) != 1 or open(pulled[0]).read() != content:
    sys.exit(f"pulled {pulled}, not the pushed file")
print("pushed and pulled")
"#;

/// Runs [`ORAS_ROUND_TRIP`]; the script's output is the error.
pub fn oras_round_trip(
    addr: &str,
    work: &Path,
    repository: &str,
    user: &str,
    password: &str,
    backend: &str,
) -> Result<(), String> {
    let script = work.join("oras_round_trip.py");
    std::fs::write(&script, ORAS_ROUND_TRIP).expect("script");
    let output = Command::new("python3")
        .arg(&script)
        .args([addr, repository, user, password, backend])
        .arg(work)
        .env("HOME", work)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .output()
        .expect("python3 with oras-py (pip install oras; scripts/test installs it)");
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("oras-py as {user}: {}", text(&output))),
    }
}
