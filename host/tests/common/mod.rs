//! What several of the host's integration tests share.
#![allow(dead_code)] // each test binary uses its own part of this

pub mod clients;
pub mod http;
pub mod kube;
pub mod s3;
pub mod signing;
pub mod token_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A self-signed certificate for 127.0.0.1, made by openssl: (cert, key).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            // A leaf, not a CA: rustls's webpki refuses a CA certificate
            // presented as the server's own.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl)");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

/// `berth <args>` with `env` and no other REGISTRY_* or BERTH_* setting from
/// the test's environment, waiting at most 60 s.
pub fn berth(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(args).env("BERTH_LOG", "warn");
    for (key, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("REGISTRY_") || k == "BERTH_CONFIG" || k == "BERTH_PLUGIN_DIR")
    {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Runs `future` to its end on a runtime of its own, for synchronous tests.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A finding as every validator must shape it: a message, and a reason that
/// is one CamelCase word (a Kubernetes condition reason).
pub fn assert_well_formed(finding: &berth::validate::Finding) {
    assert!(!finding.message.is_empty(), "{finding:?}");
    assert!(
        finding.reason.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && finding.reason.chars().all(|c| c.is_ascii_alphanumeric()),
        "{finding:?}"
    );
}

/// The error finding at `field_path` with `reason`, asserting that its
/// message names each of `words`.
pub fn assert_error_naming<'a>(
    found: &'a [berth::validate::Finding],
    field_path: &str,
    reason: &str,
    words: &[&str],
) -> &'a berth::validate::Finding {
    let finding = found
        .iter()
        .find(|f| f.field_path == field_path && f.reason == reason)
        .unwrap_or_else(|| panic!("no {reason} at {field_path}: {found:#?}"));
    assert_eq!(finding.severity, berth::validate::Severity::Error, "{finding:?}");
    for words in words {
        assert!(finding.message.contains(words), "{}", finding.message);
    }
    finding
}
