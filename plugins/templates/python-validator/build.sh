#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, in this directory.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v componentize-py >/dev/null; then
    echo "build.sh: componentize-py is not on PATH: install it with" >&2
    echo "  pip install componentize-py==0.25.1" >&2
    exit 1
fi

# The module `app` (app.py), with the CPython runtime, for the world
# config-validator of wit/validate.wit.
componentize-py -d wit -w config-validator componentize app -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
