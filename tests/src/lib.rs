//! Helpers for Berth's end-to-end tests: where the build put the `berth`
//! binary and the plugin components, fixtures included.

use std::path::PathBuf;

/// `<target>/<profile>`, from this test executable's place in
/// `<target>/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(2)
        .expect("test executable under <target>/<profile>/deps")
        .to_path_buf()
}

/// The `berth` binary built alongside these tests (`cargo test --workspace`
/// builds it).
pub fn berth_bin() -> PathBuf {
    let bin = profile_dir().join("berth");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A component built from `plugins/` (fixtures included) by the host's
/// build script.
pub fn plugin_wasm(name: &str) -> PathBuf {
    let target = profile_dir().parent().expect("<target>").to_path_buf();
    let wasm = target
        .join("wasm-plugins/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        wasm.is_file(),
        "{} is missing: the host's build script builds plugins/",
        wasm.display()
    );
    wasm
}
