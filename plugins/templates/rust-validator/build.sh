#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, in this directory.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null; then
    echo "build.sh: cargo is not on PATH: install Rust from https://rustup.rs" >&2
    exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build.sh: the Rust target wasm32-wasip2 is missing: run  rustup target add wasm32-wasip2" >&2
    exit 1
fi

cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" ./{{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
