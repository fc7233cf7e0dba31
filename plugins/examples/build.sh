#!/usr/bin/env bash
# Builds the example plugins written in languages other than Rust:
#
#   plugins/examples/build.sh OUT_DIR
#
# writes OUT_DIR/kms-policy.wasm (Python, by componentize-py) and
# OUT_DIR/endpoint-policy.wasm (JavaScript, by componentize-js), both
# configuration validators of the world `config-validator` in wit/validate,
# and OUT_DIR/py-inmemory.wasm (Python) and OUT_DIR/js-inmemory.wasm
# (JavaScript), storage drivers of the world `storage-driver` in
# wit/storage: the drivers `berth plugin new --kind driver` starts from
# (plugins/templates), named as that command would name them. Copy any into
# the plugin directory to use it. Needs on PATH:
#   componentize-py   pip install componentize-py==0.25.1
#   componentize-js   npm install -g @bytecodealliance/componentize-js@0.23.0
# (scripts/test installs both, pinned, under ~/.cache/berth/test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wit=$here/../../wit/validate
out=${1:?usage: plugins/examples/build.sh OUT_DIR}
mkdir -p "$out"

for tool in componentize-py componentize-js; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is not on PATH (see the top of $0)" >&2; exit 1; }
done

# Python: the module `app` of each folder, with the CPython runtime.
componentize-py -d "$wit" -w config-validator \
    componentize app -p "$here/python-kms-policy" -o "$out/kms-policy.wasm"

# The template drivers, with their name filled in as `berth plugin new` does.
templates=$here/../templates
named=$(mktemp -d)
trap 'rm -rf "$named"' EXIT
mkdir "$named/py" "$named/js"
sed 's/{{name}}/py-inmemory/g' "$templates/python-driver/app.py" >"$named/py/app.py"
sed 's/{{name}}/js-inmemory/g' "$templates/js-driver/driver.js" >"$named/js/driver.js"
componentize-py -d "$here/../../wit/storage" -w storage-driver \
    componentize app -p "$named/py" -o "$out/py-inmemory.wasm"

# JavaScript: the module's `validator` export, on StarlingMonkey; a
# validator makes no HTTP requests, so that part of the runtime is left out.
componentize-js "$here/js-endpoint-policy/endpoint-policy.js" -w "$wit" -n config-validator \
    -d http fetch-event -o "$out/endpoint-policy.wasm"
componentize-js "$named/js/driver.js" -w "$here/../../wit/storage" -n storage-driver \
    -d http fetch-event -o "$out/js-inmemory.wasm"
