//! Builds the guest crates of `plugins/` for wasm32-wasip2 and embeds the
//! bundled plugins (storage drivers and configuration validators) in the
//! binary. The components land in
//! `<target>/wasm-plugins/wasm32-wasip2/release/`, where the tests also find
//! the fixture plugins built alongside.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The plugins shipped inside `berth`: (plugin name, the library name its
/// crate builds `<lib>.wasm` from).
const BUNDLED: &[(&str, &str)] = &[
    ("filesystem", "filesystem"),
    ("inmemory", "inmemory"),
    ("registry-rules", "registry_rules"),
    ("s3", "s3"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<package>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR below the target directory")
        .join("wasm-plugins");

    for watched in [
        "../wit",
        "../plugins/Cargo.toml",
        "../plugins/Cargo.lock",
        "../plugins/filesystem",
        "../plugins/inmemory",
        "../plugins/s3",
        "../plugins/fixtures",
        "../plugins/validators",
        "../plugins/templates",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }

    ensure_wasm_target();
    build_plugins(&plugins, &target_dir);

    let built = target_dir.join("wasm32-wasip2/release");
    let mut entries = String::new();
    for (name, lib) in BUNDLED {
        let wasm = built.join(format!("{lib}.wasm"));
        let copy = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &copy).unwrap_or_else(|err| panic!("copying {}: {err}", wasm.display()));
        let bytes = std::fs::read(&copy).unwrap_or_else(|err| panic!("reading {}: {err}", copy.display()));
        entries.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}), {:?}),\n",
            copy.display().to_string(),
            hex(&Sha256::digest(&bytes)),
        ));
    }
    // The digests are computed here so that a starting process need not read
    // (and so keep resident) every bundled component to name its cache entry.
    let source = format!(
        "/// (name, component, its sha256 in hex) of each bundled plugin.\n\
         pub static PLUGINS: &[(&str, &[u8], &str)] = &[\n{entries}];\n"
    );
    std::fs::write(out_dir.join("bundled_plugins.rs"), source).unwrap();
    std::fs::write(
        out_dir.join("plugin_templates.rs"),
        templates(&plugins.join("templates")),
    )
    .unwrap();
    println!("cargo:rustc-env=BERTH_PLUGIN_BUILD_DIR={}", built.display());
}

/// The guests need the standard library for wasm32-wasip2. rustup installs
/// the targets of `rust-toolchain.toml` only with a toolchain it installs
/// itself, not into one that is already there, so a machine with Rust 1.95.0
/// preinstalled lacks it: add it here, once (a later build finds it and needs
/// no network), or say exactly what to install when there is no rustup.
fn ensure_wasm_target() {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .expect("`rustc --print sysroot` failed");
    if sysroot.join("lib/rustlib").join(TARGET).join("lib").is_dir() {
        return;
    }
    // rustup names the toolchain in the environment of the cargo it runs;
    // otherwise its sysroot is ~/.rustup/toolchains/<name>.
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN")
        .ok()
        .or_else(|| sysroot.file_name().map(|name| name.to_string_lossy().into_owned()));
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        add.args(["--toolchain", toolchain]);
    }
    match add.status() {
        Ok(status) if status.success() => println!(
            "cargo:warning=added the {TARGET} target to toolchain {} (rustup target add {TARGET}); \
             the bundled plugins are built for it",
            toolchain.as_deref().unwrap_or("default"),
        ),
        Ok(status) => panic!(
            "`rustup target add {TARGET}` failed ({status}); the bundled plugins need it: \
             run it by hand and build again"
        ),
        Err(_) => panic!(
            "the Rust standard library for {TARGET} is not installed in {} and there is no rustup \
             to add it: install rustup and run `rustup target add {TARGET}`, \
             or install your distribution's {TARGET} standard library for this rustc",
            sysroot.display()
        ),
    }
}

/// `cargo build --release --target wasm32-wasip2` in `plugins/`, with the
/// outer build's compiler wrappers and flags removed (they are for the host:
/// clippy's wrapper, for one, must not lint the guests).
fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
            "--target-dir",
        ])
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo for the plugins");
    assert!(
        status.success(),
        "building plugins/ for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
}

/// The starting points `berth plugin new` writes: every file below
/// `plugins/templates/<lang>-<kind>/`, but what building them leaves behind.
fn templates(dir: &Path) -> String {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | "__pycache__" | "node_modules" | "wit") {
                    walk(&path, files);
                }
            } else if !name.ends_with(".wasm") && name != "Cargo.lock" {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut entries = String::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        let (template, path) = relative.split_once('/').expect("a file inside a template folder");
        entries.push_str(&format!(
            "    ({template:?}, {path:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    format!(
        "/// (template, path inside it, content) of each file of `plugins/templates`.\n\
         pub static TEMPLATES: &[(&str, &str, &str)] = &[\n{entries}];\n"
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
