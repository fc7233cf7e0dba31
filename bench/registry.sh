#!/usr/bin/env bash
# Berth against Debian's docker-registry (CNCF distribution 2.8), side by side
# in one run: same machine, same client, filesystem storage in fresh temporary
# roots. Prints a markdown table of ratios. See bench/README.md.
#
# Usage: bench/registry.sh
# Knobs (environment): BENCH_BLOB_MIB (512), BENCH_RUNS (3), BENCH_WRK_SECS (10),
# BENCH_WRK_CONNS (32), BENCH_WRK_THREADS (2), BENCH_KEEP=1 keeps the temp dir,
# BENCH_REF_CACHE=1 gives docker-registry its in-memory blob descriptor cache
# (storage.cache.blobdescriptor: inmemory, as Debian's packaged config has).
set -euo pipefail

BLOB_MIB=${BENCH_BLOB_MIB:-512}
RUNS=${BENCH_RUNS:-3}
WRK_SECS=${BENCH_WRK_SECS:-10}
WRK_CONNS=${BENCH_WRK_CONNS:-32}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

for tool in curl wrk docker-registry python3 sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y docker-registry wrk curl)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP:-} == 1 ]]; then log "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Other load on the machine makes every rate noisy: note it before we add ours.
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- build berth ----------------------------------------------------------
log "bench: cargo build --release -p berth"
(cd "$ROOT" && cargo build --release -p berth >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
BERTH=$TARGET_DIR/release/berth
[[ -x $BERTH ]] || die "no binary at $BERTH"

# ---- start both servers ---------------------------------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

write_config() { # file rootdir port extra-log-lines extra-storage-lines
    cat >"$1" <<EOF
version: 0.1
log:
  level: error
$4
storage:
$5
  filesystem:
    rootdirectory: $2
http:
  addr: 127.0.0.1:$3
EOF
}

wait_ready() { # name base pid
    local i
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$3" 2>/dev/null || die "$1 exited during startup; see $TMP/$1.log"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$2/v2/" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "$1 did not answer /v2/ within 120 s; see $TMP/$1.log"
}

REF_PORT=$(free_port)
mkdir -p "$TMP/ref-root" "$TMP/berth-root"
REF_CACHE=""
[[ ${BENCH_REF_CACHE:-} == 1 ]] && REF_CACHE=$'  cache:\n    blobdescriptor: inmemory'
write_config "$TMP/ref.yml" "$TMP/ref-root" "$REF_PORT" $'  accesslog:\n    disabled: true' "$REF_CACHE"
# docker-registry panics when AWS_CA_BUNDLE is set to something it cannot use.
env -u AWS_CA_BUNDLE docker-registry serve "$TMP/ref.yml" >"$TMP/docker-registry.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
REF=http://127.0.0.1:$REF_PORT

BERTH_PORT=$(free_port)
while [[ $BERTH_PORT == "$REF_PORT" ]]; do BERTH_PORT=$(free_port); done
write_config "$TMP/berth.yml" "$TMP/berth-root" "$BERTH_PORT" "" ""
"$BERTH" serve --config "$TMP/berth.yml" >"$TMP/berth.log" 2>&1 &
BERTH_PID=$!
PIDS+=("$BERTH_PID")
BERTH_URL=http://127.0.0.1:$BERTH_PORT

wait_ready docker-registry "$REF" "$REF_PID"
wait_ready berth "$BERTH_URL" "$BERTH_PID"
log "bench: docker-registry pid $REF_PID on $REF, berth pid $BERTH_PID on $BERTH_URL"

# ---- the OCI push flow: POST, then one PUT with the whole body ------------
# push_blob base repo file digest -> prints "seconds" (POST + PUT), fails on error
push_blob() {
    local base=$1 repo=$2 file=$3 digest=$4 headers location t_post out code t_put
    headers=$TMP/headers
    t_post=$(curl -s -o /dev/null -D "$headers" -w '%{http_code} %{time_total}' \
        -X POST "$base/v2/$repo/blobs/uploads/")
    [[ ${t_post%% *} == 202 ]] || die "POST $base/v2/$repo/blobs/uploads/ answered ${t_post%% *}"
    location=$(tr -d '\r' <"$headers" | awk 'tolower($1) == "location:" { print $2 }')
    [[ -n $location ]] || die "POST $base/v2/$repo/blobs/uploads/ gave no Location"
    [[ $location == /* ]] && location=$base$location
    [[ $location == *\?* ]] && location="$location&digest=$digest" || location="$location?digest=$digest"
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X PUT -T "$file" \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' "$location")
    code=${out%% *}
    t_put=${out#* }
    [[ $code == 201 ]] || die "PUT of $file to $base/v2/$repo answered $code"
    awk -v a="${t_post#* }" -v b="$t_put" 'BEGIN { printf "%.6f\n", a + b }'
}

# CPU time (user + system) a process has used so far, in clock ticks: a view
# of the cost of a workload that other load on the machine disturbs less.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
mibps() { awk -v bytes="$1" -v secs="$2" 'BEGIN { printf "%.1f\n", bytes / 1048576 / secs }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? a : b }'; }

# ---- 1. push --------------------------------------------------------------
BLOB=$TMP/blob
log "bench: generating ${BLOB_MIB} MiB of random data"
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$BLOB"
BYTES=$(stat -c %s "$BLOB")
DIGEST=sha256:$(sha256sum "$BLOB" | cut -d' ' -f1)

REF_PUSH=0 BERTH_PUSH=0 REF_PUSH_CPU=0 BERTH_PUSH_CPU=0
for ((run = 1; run <= RUNS; run++)); do
    # A fresh repository each run; alternate which server goes first.
    for who in ref berth; do
        [[ $((run % 2)) == 0 ]] && who=$([[ $who == ref ]] && echo berth || echo ref)
        if [[ $who == ref ]]; then
            c=$(cpu_ticks "$REF_PID")
            s=$(push_blob "$REF" "bench/push$run" "$BLOB" "$DIGEST")
            REF_PUSH_CPU=$((REF_PUSH_CPU + $(cpu_ticks "$REF_PID") - c))
            REF_PUSH=$(max "$REF_PUSH" "$(mibps "$BYTES" "$s")")
            log "bench: push run $run docker-registry $(mibps "$BYTES" "$s") MiB/s"
        else
            c=$(cpu_ticks "$BERTH_PID")
            s=$(push_blob "$BERTH_URL" "bench/push$run" "$BLOB" "$DIGEST")
            BERTH_PUSH_CPU=$((BERTH_PUSH_CPU + $(cpu_ticks "$BERTH_PID") - c))
            BERTH_PUSH=$(max "$BERTH_PUSH" "$(mibps "$BYTES" "$s")")
            log "bench: push run $run berth           $(mibps "$BYTES" "$s") MiB/s"
        fi
    done
done

# ---- 2. pull --------------------------------------------------------------
pull_blob() { # base -> seconds
    local out
    out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1/v2/bench/push1/blobs/$DIGEST")
    read -r code size secs <<<"$out"
    [[ $code == 200 && $size == "$BYTES" ]] || die "GET blob from $1 answered $code with $size bytes"
    echo "$secs"
}
for base in "$REF" "$BERTH_URL"; do # once, untimed: the content is right
    got=sha256:$(curl -sf "$base/v2/bench/push1/blobs/$DIGEST" | sha256sum | cut -d' ' -f1)
    [[ $got == "$DIGEST" ]] || die "$base served a blob with digest $got, not $DIGEST"
done
REF_PULL=0 BERTH_PULL=0 REF_PULL_CPU=0 BERTH_PULL_CPU=0
for ((run = 1; run <= RUNS; run++)); do
    c=$(cpu_ticks "$REF_PID")
    s=$(pull_blob "$REF")
    REF_PULL_CPU=$((REF_PULL_CPU + $(cpu_ticks "$REF_PID") - c))
    REF_PULL=$(max "$REF_PULL" "$(mibps "$BYTES" "$s")")
    c=$(cpu_ticks "$BERTH_PID")
    s=$(pull_blob "$BERTH_URL")
    BERTH_PULL_CPU=$((BERTH_PULL_CPU + $(cpu_ticks "$BERTH_PID") - c))
    BERTH_PULL=$(max "$BERTH_PULL" "$(mibps "$BYTES" "$s")")
done
log "bench: pull best docker-registry $REF_PULL MiB/s, berth $BERTH_PULL MiB/s"

# ---- 3. manifest GET by tag -----------------------------------------------
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$TMP/config.json"
head -c 4096 /dev/urandom >"$TMP/layer"
CONFIG_DIGEST=sha256:$(sha256sum "$TMP/config.json" | cut -d' ' -f1)
LAYER_DIGEST=sha256:$(sha256sum "$TMP/layer" | cut -d' ' -f1)
cat >"$TMP/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"$OCI_MANIFEST","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CONFIG_DIGEST","size":$(stat -c %s "$TMP/config.json")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$LAYER_DIGEST","size":4096}]}
EOF
MANIFEST_URL_PATH=/v2/bench/manifests/latest
for base in "$REF" "$BERTH_URL"; do
    push_blob "$base" bench "$TMP/config.json" "$CONFIG_DIGEST" >/dev/null
    push_blob "$base" bench "$TMP/layer" "$LAYER_DIGEST" >/dev/null
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $OCI_MANIFEST" \
        --data-binary @"$TMP/manifest.json" "$base$MANIFEST_URL_PATH")
    [[ $code == 201 ]] || die "PUT manifest to $base answered $code"
    code=$(curl -s -o "$TMP/got.json" -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "$base$MANIFEST_URL_PATH")
    [[ $code == 200 ]] || die "GET manifest from $base answered $code"
    cmp -s "$TMP/got.json" "$TMP/manifest.json" || die "GET manifest from $base returned other bytes"
done

# run_wrk base secs -> "requests/s p99_ms"
run_wrk() {
    local out
    out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$2s" --latency -H "Accept: $OCI_MANIFEST" "$1$MANIFEST_URL_PATH")
    printf '%s\n' "$out" >"$TMP/wrk.out"
    if grep -q 'Non-2xx' <<<"$out"; then die "wrk against $1 saw non-2xx answers: $out"; fi
    awk '
        /^ *99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                   p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : v }
        /^Requests\/sec:/ { rps = $2 }
        END { if (rps == "" || p99 == "") exit 1; printf "%s %.3f\n", rps, p99 }' <<<"$out"
}
run_wrk "$REF" 2 >/dev/null # warm-up, both
run_wrk "$BERTH_URL" 2 >/dev/null
c=$(cpu_ticks "$REF_PID")
out=$(run_wrk "$REF" "$WRK_SECS")
read -r REF_RPS REF_P99 <<<"$out"
REF_WRK_CPU=$(($(cpu_ticks "$REF_PID") - c))
cp "$TMP/wrk.out" "$TMP/wrk-ref.out"
c=$(cpu_ticks "$BERTH_PID")
out=$(run_wrk "$BERTH_URL" "$WRK_SECS")
read -r BERTH_RPS BERTH_P99 <<<"$out"
BERTH_WRK_CPU=$(($(cpu_ticks "$BERTH_PID") - c))
cp "$TMP/wrk.out" "$TMP/wrk-berth.out"
log "bench: manifest GET docker-registry $REF_RPS req/s p99 $REF_P99 ms, berth $BERTH_RPS req/s p99 $BERTH_P99 ms"

# ---- 4. memory ------------------------------------------------------------
kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
REF_RSS=$(kib "$REF_PID" VmRSS) REF_HWM=$(kib "$REF_PID" VmHWM)
BERTH_RSS=$(kib "$BERTH_PID" VmRSS) BERTH_HWM=$(kib "$BERTH_PID" VmHWM)

# ---- the table ------------------------------------------------------------
row() { # metric ref berth higher-is-better(1|0) [target]
    awk -v m="$1" -v r="$2" -v b="$3" -v hib="$4" -v t="${5:-}" 'BEGIN {
        ratio = hib ? b / r : r / b
        if (t == "") printf "| %s | %s | %s | %.2fx | | |\n", m, r, b, ratio
        else printf "| %s | %s | %s | %.2fx | >= %sx | %s |\n", m, r, b, ratio, t, (ratio >= t) ? "yes" : "**no**" }'
}
# server CPU seconds per GiB moved: ticks, runs
cpu_per_gib() { awk -v t="$1" -v hz="$HZ" -v n="$RUNS" -v b="$BYTES" 'BEGIN { printf "%.2f", t / hz / (n * b / 1073741824) }'; }
# server CPU microseconds per request: ticks, requests/s
cpu_per_req() { awk -v t="$1" -v hz="$HZ" -v rps="$2" -v d="$WRK_SECS" 'BEGIN { printf "%.0f", t / hz * 1e6 / (rps * d) }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cat <<EOF

Berth vs docker-registry $(docker-registry --version | awk '{ print $3 }'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), berth $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- host 2>/dev/null || echo '+dirty')

| metric | docker-registry | berth | ratio¹ | target | met? |
|---|---|---|---|---|---|
$(row "push ${BLOB_MIB} MiB blob, MiB/s (best of $RUNS)" "$REF_PUSH" "$BERTH_PUSH" 1 1.5)
$(row "pull ${BLOB_MIB} MiB blob, MiB/s (best of $RUNS)" "$REF_PULL" "$BERTH_PULL" 1 1.0)
$(row "manifest GET by tag, req/s (${WRK_CONNS} conns, ${WRK_SECS}s)" "$REF_RPS" "$BERTH_RPS" 1 3)
$(row "manifest GET p99 latency, ms" "$REF_P99" "$BERTH_P99" 0 3)
$(row "RSS after the workload (VmRSS), MiB" "$(mib "$REF_RSS")" "$(mib "$BERTH_RSS")" 0 1)
$(row "peak RSS (VmHWM), MiB" "$(mib "$REF_HWM")" "$(mib "$BERTH_HWM")" 0 1)
$(row "server CPU² per GiB pushed, s" "$(cpu_per_gib "$REF_PUSH_CPU")" "$(cpu_per_gib "$BERTH_PUSH_CPU")" 0)
$(row "server CPU² per GiB pulled, s" "$(cpu_per_gib "$REF_PULL_CPU")" "$(cpu_per_gib "$BERTH_PULL_CPU")" 0)
$(row "server CPU² per manifest GET, µs" "$(cpu_per_req "$REF_WRK_CPU" "$REF_RPS")" "$(cpu_per_req "$BERTH_WRK_CPU" "$BERTH_RPS")" 0)

¹ ratio = berth / docker-registry for throughput, docker-registry / berth for
latency, memory and CPU: above 1 always means berth is better.
² user + system time of the server process over all runs (clock ticks of
1/$HZ s), informational; less disturbed by other load than the rates.
Load average before the run: $LOAD on $(nproc) cores$(awk -v l="${LOAD%% *}" -v n="$(nproc)" 'BEGIN { if (l > n / 2) printf " (busy: other processes compete; rates are noisy)" }').
Reference config: filesystem driver$([[ -n $REF_CACHE ]] && echo ", blobdescriptor cache inmemory" || echo ", no blobdescriptor cache").
EOF
