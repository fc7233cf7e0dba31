#!/usr/bin/env bash
# Builds {{name}}.wasm and runs Berth's storage-driver conformance suite on
# it. BERTH names the berth binary (default: berth on PATH); arguments are
# passed to `berth plugin test` (e.g. --param KEY=VALUE).
set -euo pipefail
cd "$(dirname "$0")"
BERTH=${BERTH:-berth}
if ! command -v "$BERTH" >/dev/null; then
    echo "test.sh: $BERTH not found: put berth on PATH or set BERTH=/path/to/berth" >&2
    exit 1
fi

./build.sh
# A resident driver keeps its data in its own memory, so the suite's large
# stream is 64 MiB (--large-stream-mib N changes it).
if "$BERTH" plugin test ./{{name}}.wasm "$@"; then
    echo "PASS: {{name}} passes the storage-driver conformance suite"
else
    echo "FAIL: {{name}} does not pass the storage-driver conformance suite (see above)" >&2
    exit 1
fi
