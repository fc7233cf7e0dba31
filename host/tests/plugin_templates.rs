//! `berth plugin new`: every language's starting point for every kind of
//! plugin is written, builds with its own build.sh, and passes its own
//! test.sh (`berth plugin test` for drivers, its finding for validators),
//! as the README tells a plugin author to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const LANGS: [&str; 3] = ["rust", "python", "js"];
const KINDS: [&str; 2] = ["driver", "validator"];

fn berth_new(lang: &str, kind: &str, dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["plugin", "new", "acme-x", "--lang", lang, "--kind", kind, "--dir"])
        .arg(dir)
        .output()
        .expect("berth plugin new")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn plugin_new_writes_each_starting_point_once() {
    let dir = tempfile::tempdir().unwrap();
    for lang in LANGS {
        for kind in KINDS {
            let target = dir.path().join(format!("{lang}-{kind}"));
            let output = berth_new(lang, kind, &target);
            assert!(output.status.success(), "{lang} {kind}: {}", text(&output));
            let wit = if kind == "driver" {
                "wit/storage.wit"
            } else {
                "wit/validate.wit"
            };
            assert!(target.join(wit).is_file(), "{lang} {kind} has {wit}");
            for file in ["build.sh", "test.sh", "README.md"] {
                let content = std::fs::read_to_string(target.join(file)).unwrap();
                assert!(
                    !content.contains("{{"),
                    "{lang} {kind} {file} has every placeholder filled"
                );
            }
            let again = berth_new(lang, kind, &target);
            assert!(
                !again.status.success() && text(&again).contains("not empty"),
                "nothing is overwritten: {}",
                text(&again)
            );
        }
    }
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["plugin", "new", "9lives", "--lang", "rust", "--kind", "driver", "--dir"])
        .arg(dir.path().join("9lives"))
        .output()
        .unwrap();
    assert!(!output.status.success() && text(&output).contains("starts with a letter"));
}

/// Builds and tests all six with the tools scripts/test puts on PATH
/// (cargo with wasm32-wasip2, componentize-py, componentize-js). The Rust
/// ones build into a target directory kept beside the host's, so that
/// wit-bindgen compiles once per machine.
#[test]
fn every_template_builds_and_passes_its_own_test() {
    let plugin_build = PathBuf::from(env!("BERTH_PLUGIN_BUILD_DIR"));
    // <target>/wasm-plugins/wasm32-wasip2/release
    let target = plugin_build
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .join("template-plugins");
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for lang in LANGS {
        for kind in KINDS {
            let project = dir.path().join(format!("{lang}-{kind}"));
            let output = berth_new(lang, kind, &project);
            assert!(output.status.success(), "{}", text(&output));
            let mut test = Command::new(project.join("test.sh"));
            test.env("BERTH", env!("CARGO_BIN_EXE_berth"))
                .env("CARGO_TARGET_DIR", &target)
                .env("BERTH_LOG", "warn")
                .stdin(Stdio::null());
            // The outer cargo's settings are for the host build.
            for key in [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "RUSTC_WRAPPER",
                "CARGO_BUILD_TARGET",
            ] {
                test.env_remove(key);
            }
            let output = test.output().expect("test.sh");
            let said = text(&output);
            if !output.status.success() || !said.contains("PASS") {
                failures.push(format!("{lang} {kind}:\n{said}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
