#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, in this directory.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v componentize-js >/dev/null; then
    echo "build.sh: componentize-js is not on PATH: install it with" >&2
    echo "  npm install -g @bytecodealliance/componentize-js@0.23.0" >&2
    exit 1
fi

# The module's `driver` export, on the StarlingMonkey runtime, for the world
# storage-driver of wit/storage.wit. The driver makes no HTTP requests, so
# that part of the runtime is left out; clocks stay (Date.now() gives the
# modification times), and stdio (the runtime reports errors there).
componentize-js driver.js -w wit -n storage-driver -d http fetch-event -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
