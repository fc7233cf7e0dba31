//! `berth plugin ...` as a plugin author runs it: the real binary.

use std::path::PathBuf;
use std::process::Command;

/// A component the build script built from `plugins/`, fixtures included.
fn plugin_wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR")).join(format!("{name}.wasm"))
}

fn berth(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("running berth");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.code().is_some(),
        "berth was killed by a signal:\n{stdout}"
    );
    (output.status.success(), stdout)
}

#[test]
fn plugin_test_passes_a_bundled_driver() {
    let (ok, stdout) = berth(&["plugin", "test", "inmemory"]);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(ok, "{stdout}");
    assert!(last.ends_with(" passed, 0 failed"), "last line: {last}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 30,
        "{stdout}"
    );
}

#[test]
fn plugin_test_runs_a_file_naming_driver_both_ways() {
    let (ok, stdout) = berth(&["plugin", "test", "filesystem", "--large-stream-mib", "16"]);
    assert!(ok, "{stdout}");
    for how in ["reading the files it names", "reading through its reader"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("conformance suite: plugin filesystem") && l.ends_with(how)),
            "no suite {how}:\n{stdout}"
        );
    }
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(oks >= 60, "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, format!("{oks} passed, 0 failed"));
}

#[test]
fn plugin_test_fails_loudly_on_a_broken_driver() {
    let wasm = plugin_wasm("broken");
    let (ok, stdout) = berth(&["plugin", "test", wasm.to_str().unwrap()]);
    assert!(!ok, "a broken driver passed:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains(" passed, ") && !last.ends_with(" 0 failed"),
        "last line: {last}"
    );
    // Each of its three deliberate bugs is named.
    for symptom in ["not a direct child", "already exists", "reader-offset"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("FAIL") && l.contains(symptom)),
            "no FAIL naming {symptom:?}:\n{stdout}"
        );
    }
}

#[test]
fn plugin_inspect_describes_a_component() {
    let wasm = plugin_wasm("filesystem");
    let (ok, stdout) = berth(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("world:      berth:storage/maintained-local-storage-driver@0.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("provisions: no"), "{stdout}");
    assert!(stdout.contains("  berth:storage/driver@0.1.0"), "{stdout}");
    assert!(stdout.contains("  berth:storage/local-files@0.1.0"), "{stdout}");
    assert!(stdout.contains("  wasi:filesystem/preopens@"), "{stdout}");
    let size = std::fs::metadata(&wasm).expect("wasm").len();
    assert!(stdout.contains(&format!("size:       {size} bytes")), "{stdout}");
}

#[test]
fn a_dropped_in_plugin_replaces_a_bundled_one() {
    let dir = tempfile::tempdir().expect("plugin dir");
    std::fs::copy(plugin_wasm("broken"), dir.path().join("inmemory.wasm")).expect("copy");
    let dir_arg = dir.path().to_str().unwrap();
    let (_, listing) = berth(&["plugin", "list", "--plugin-dir", dir_arg]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("inmemory") && l.contains(dir_arg)),
        "{listing}"
    );
    let (ok, stdout) = berth(&["plugin", "test", "inmemory", "--plugin-dir", dir_arg]);
    assert!(!ok, "the drop-in did not replace the bundled driver:\n{stdout}");
}
