#!/usr/bin/env bash
# Builds {{name}}.wasm and checks that `berth config validate` with it in the
# plugin directory reports the finding REASON for test-config.yml.
# BERTH names the berth binary (default: berth on PATH).
set -euo pipefail
cd "$(dirname "$0")"
BERTH=${BERTH:-berth}
REASON=AuthenticationRequired
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
if printf '%s' "$findings" | node -e '
const reason = process.argv[1];
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const found = JSON.parse(input).filter((f) => f.reason === reason);
  for (const f of found) console.log(`${f.severity}  ${f["field-path"]}  ${f.reason}: ${f.message}`);
  process.exit(found.length > 0 ? 0 : 1);
});
' "$REASON"; then
    echo "PASS: {{name}} reports $REASON for test-config.yml"
else
    echo "FAIL: {{name}} did not report $REASON for test-config.yml; berth said:" >&2
    printf '%s\n' "$findings" >&2
    exit 1
fi
