#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, in this directory.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v componentize-js >/dev/null; then
    echo "build.sh: componentize-js is not on PATH: install it with" >&2
    echo "  npm install -g @bytecodealliance/componentize-js@0.23.0" >&2
    exit 1
fi

# The module's `validator` export, on the StarlingMonkey runtime, for the
# world config-validator of wit/validate.wit. A validator makes no HTTP
# requests, so that part of the runtime is left out.
componentize-js validator.js -w wit -n config-validator -d http fetch-event -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
