#!/usr/bin/env bash
# Builds {{name}}.wasm and checks that `berth config validate` with it in the
# plugin directory reports the finding REASON for test-config.yml.
# BERTH names the berth binary (default: berth on PATH).
set -euo pipefail
cd "$(dirname "$0")"
BERTH=${BERTH:-berth}
REASON=TlsRequired
if ! command -v "$BERTH" >/dev/null; then
    echo "test.sh: $BERTH not found: put berth on PATH or set BERTH=/path/to/berth" >&2
    exit 1
fi

./build.sh
plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
cp {{name}}.wasm "$plugins/"

# Exits 1 when any finding is an error, as expected here: the findings decide.
findings=$("$BERTH" config validate --config test-config.yml --plugin-dir "$plugins" --output json) || true
if printf '%s' "$findings" | python3 -c '
import json, sys
found = [f for f in json.load(sys.stdin) if f["reason"] == sys.argv[1]]
for f in found:
    print("%s  %s  %s: %s" % (f["severity"], f["field-path"], f["reason"], f["message"]))
sys.exit(0 if found else 1)
' "$REASON"; then
    echo "PASS: {{name}} reports $REASON for test-config.yml"
else
    echo "FAIL: {{name}} did not report $REASON for test-config.yml; berth said:" >&2
    printf '%s\n' "$findings" >&2
    exit 1
fi
