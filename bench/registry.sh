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

. "$(dirname "$0")/lib.sh"
need_tools "apt-get install -y docker-registry wrk apache2-utils curl openssl" curl wrk htpasswd docker-registry python3 sha256sum openssl dd
bench_init berth-bench

build_berth

# ---- start both servers ---------------------------------------------------
write_config() { # file rootdir port extra-log-lines extra-storage-lines [extra-top-level-lines]
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
${6:-}
EOF
}

free_port REF_PORT
mkdir -p "$TMP/ref-root" "$TMP/berth-root"
REF_CACHE=""
[[ ${BENCH_REF_CACHE:-} == 1 ]] && REF_CACHE=$'  cache:\n    blobdescriptor: inmemory'
write_config "$TMP/ref.yml" "$TMP/ref-root" "$REF_PORT" $'  accesslog:\n    disabled: true' "$REF_CACHE"
free_port BERTH_PORT
write_config "$TMP/berth.yml" "$TMP/berth-root" "$BERTH_PORT" "" ""
start_pair "$TMP/ref.yml" "$REF_PORT" "$TMP/berth.yml" "$BERTH_PORT"
log "bench: docker-registry pid $REF_PID on $REF, berth pid $BERTH_PID on $BERTH_URL"

# ---- 1. push --------------------------------------------------------------
BLOB=$TMP/blob
log "bench: generating ${BLOB_MIB} MiB of random data"
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$BLOB"
BYTES=$(stat -c %s "$BLOB")
DIGEST=sha256:$(sha256sum "$BLOB" | cut -d' ' -f1)

# ---- 0. the machine's limits, on the same blob and disk ---------------------
# One core's sha256 (openssl uses the CPU's SHA instructions; coreutils'
# sha256sum does not), a synced write of the blob next to the registries'
# roots, and a read of it from the page cache; $RUNS rounds, medians.
SHA_RUNS="" WRITE_RUNS="" READ_RUNS=""
cat "$BLOB" >/dev/null
for ((run = 1; run <= RUNS; run++)); do
    s=$(seconds_of sh -c 'openssl dgst -sha256 -r "$1" >/dev/null' sh "$BLOB")
    SHA_RUNS="${SHA_RUNS:+$SHA_RUNS }$(mibps "$BYTES" "$s")"
    s=$(seconds_of dd if="$BLOB" of="$TMP/synced" bs=4M conv=fsync status=none)
    WRITE_RUNS="${WRITE_RUNS:+$WRITE_RUNS }$(mibps "$BYTES" "$s")"
    rm -f "$TMP/synced"
    s=$(seconds_of dd if="$BLOB" of=/dev/null bs=4M status=none)
    READ_RUNS="${READ_RUNS:+$READ_RUNS }$(mibps "$BYTES" "$s")"
done
SHA=$(median "$SHA_RUNS") SYNCED_WRITE=$(median "$WRITE_RUNS") CACHED_READ=$(median "$READ_RUNS")
PUSH_LIMIT=$(awk -v a="$SHA" -v b="$SYNCED_WRITE" 'BEGIN { print (a + 0 < b + 0) ? a : b }')
log "bench: limits: sha256 $SHA MiB/s, synced write $SYNCED_WRITE MiB/s, page-cache read $CACHED_READ MiB/s"

transfer push

# ---- 2. pull --------------------------------------------------------------
transfer pull
log "bench: pull median docker-registry $REF_PULL MiB/s, berth $BERTH_PULL MiB/s"

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

# run_wrk base secs [header] -> "requests/s p99_ms"
run_wrk() {
    local out extra=()
    [[ -n ${3:-} ]] && extra=(-H "$3")
    out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$2s" --latency -H "Accept: $OCI_MANIFEST" "${extra[@]}" "$1$MANIFEST_URL_PATH")
    printf '%s\n' "$out" >"$TMP/wrk.out"
    if grep -q 'Non-2xx' <<<"$out"; then die "wrk against $1 saw non-2xx answers: $out"; fi
    awk '
        /^ *99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                   p99 = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : v }
        /^Requests\/sec:/ { rps = $2 }
        END { if (rps == "" || p99 == "") exit 1; printf "%s %.3f\n", rps, p99 }' <<<"$out"
}
# measure_wrk name pid base [header]: warm-up, then a timed run; sets
# name_RPS, name_P99 and name_WRK_CPU, and keeps the output as wrk-name.out.
measure_wrk() {
    local c out rps p99
    run_wrk "$3" 2 "${4:-}" >/dev/null
    c=$(cpu_ticks "$2")
    out=$(run_wrk "$3" "$WRK_SECS" "${4:-}")
    read -r rps p99 <<<"$out"
    printf -v "$1_RPS" %s "$rps"
    printf -v "$1_P99" %s "$p99"
    printf -v "$1_WRK_CPU" %s $(($(cpu_ticks "$2") - c))
    cp "$TMP/wrk.out" "$TMP/wrk-${1,,}.out"
}
measure_wrk REF "$REF_PID" "$REF"
measure_wrk BERTH "$BERTH_PID" "$BERTH_URL"
log "bench: manifest GET docker-registry $REF_RPS req/s p99 $REF_P99 ms, berth $BERTH_RPS req/s p99 $BERTH_P99 ms"

# ---- 4. the same with htpasswd ----------------------------------------------
# A second pair on the same roots (reads only), both with `auth.htpasswd` on
# one users file made by htpasswd(1) with its default bcrypt cost; wrk sends
# the user's Basic credentials on every request, as clients do.
htpasswd -Bbc "$TMP/htpasswd" bench bench-password 2>/dev/null
AUTH_YAML=$(printf 'auth:\n  htpasswd:\n    realm: bench\n    path: %s' "$TMP/htpasswd")
CREDENTIALS="Authorization: Basic $(printf 'bench:bench-password' | base64)"
free_port REF_AUTH_PORT
write_config "$TMP/ref-auth.yml" "$TMP/ref-root" "$REF_AUTH_PORT" $'  accesslog:\n    disabled: true' "$REF_CACHE" "$AUTH_YAML"
free_port BERTH_AUTH_PORT
write_config "$TMP/berth-auth.yml" "$TMP/berth-root" "$BERTH_AUTH_PORT" "" "" "$AUTH_YAML"
read -r REF_NOAUTH REF_NOAUTH_PID BERTH_NOAUTH BERTH_NOAUTH_PID <<<"$REF $REF_PID $BERTH_URL $BERTH_PID"
start_pair "$TMP/ref-auth.yml" "$REF_AUTH_PORT" "$TMP/berth-auth.yml" "$BERTH_AUTH_PORT" 401
for base in "$REF" "$BERTH_URL"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "$base$MANIFEST_URL_PATH")
    [[ $code == 401 ]] || die "GET manifest from $base without credentials answered $code, not 401"
    code=$(curl -s -o "$TMP/got.json" -w '%{http_code}' -H "$CREDENTIALS" -H "Accept: $OCI_MANIFEST" "$base$MANIFEST_URL_PATH")
    [[ $code == 200 ]] && cmp -s "$TMP/got.json" "$TMP/manifest.json" || die "GET manifest from $base with credentials answered $code"
done
measure_wrk REF_AUTH "$REF_PID" "$REF" "$CREDENTIALS"
measure_wrk BERTH_AUTH "$BERTH_PID" "$BERTH_URL" "$CREDENTIALS"
log "bench: manifest GET with htpasswd docker-registry $REF_AUTH_RPS req/s p99 $REF_AUTH_P99 ms, berth $BERTH_AUTH_RPS req/s p99 $BERTH_AUTH_P99 ms"
read -r REF_AUTH_PID BERTH_AUTH_PID <<<"$REF_PID $BERTH_PID"
read -r REF REF_PID BERTH_URL BERTH_PID <<<"$REF_NOAUTH $REF_NOAUTH_PID $BERTH_NOAUTH $BERTH_NOAUTH_PID"

# ---- 5. memory ------------------------------------------------------------
REF_RSS=$(kib "$REF_PID" VmRSS) REF_HWM=$(kib "$REF_PID" VmHWM)
BERTH_RSS=$(kib "$BERTH_PID" VmRSS) BERTH_HWM=$(kib "$BERTH_PID" VmHWM)

# ---- 6. pulls over TLS ------------------------------------------------------
# A third pair on the same roots (reads only), both with `http.tls` on one
# self-signed P-256 certificate for 127.0.0.1, which curl trusts: the same
# pulls, to tell what TLS costs each server.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
TLS_YAML=$(printf '  tls:\n    certificate: %s\n    key: %s' "$TMP/tls.crt" "$TMP/tls.key")
free_port REF_TLS_PORT
write_config "$TMP/ref-tls.yml" "$TMP/ref-root" "$REF_TLS_PORT" $'  accesslog:\n    disabled: true' "$REF_CACHE" "$TLS_YAML"
free_port BERTH_TLS_PORT
write_config "$TMP/berth-tls.yml" "$TMP/berth-root" "$BERTH_TLS_PORT" "" "" "$TLS_YAML"
read -r REF_PLAIN REF_PLAIN_PID BERTH_PLAIN BERTH_PLAIN_PID <<<"$REF $REF_PID $BERTH_URL $BERTH_PID"
CURL_CA=(--cacert "$TMP/tls.crt")
SCHEME=https start_pair "$TMP/ref-tls.yml" "$REF_TLS_PORT" "$TMP/berth-tls.yml" "$BERTH_TLS_PORT"
TRANSFER_AS=TLS_PULL transfer pull
log "bench: pull over TLS median docker-registry $REF_TLS_PULL MiB/s, berth $BERTH_TLS_PULL MiB/s"
CURL_CA=()
read -r REF REF_PID BERTH_URL BERTH_PID <<<"$REF_PLAIN $REF_PLAIN_PID $BERTH_PLAIN $BERTH_PLAIN_PID"

# ---- the table ------------------------------------------------------------
# limit_row what berth limit target limit-name: berth as a fraction of a limit
limit_row() {
    awk -v w="$1" -v b="$2" -v l="$3" -v t="$4" -v n="$5" 'BEGIN {
        f = (l + 0 > 0) ? b / l : 0
        printf "| %s | %s | %s (%s) | %.2f | >= %s | %s |\n", w, b, l, n, f, t, (f >= t) ? "yes" : "**no**" }'
}
# cost_row metric without with higher-is-better: berth with htpasswd against
# berth without auth; met when it loses at most 20%.
cost_row() {
    awk -v m="$1" -v a="$2" -v b="$3" -v hib="$4" 'BEGIN {
        f = (a + 0 > 0 && b + 0 > 0) ? (hib ? b / a : a / b) : 0
        printf "| %s | %s | %s | %.2f | >= 0.80 | %s |\n", m, a, b, f, (f >= 0.8) ? "yes" : "**no**" }'
}
# tls_row what without with: the same server with TLS against without.
tls_row() {
    awk -v w="$1" -v a="$2" -v b="$3" 'BEGIN {
        f = (a + 0 > 0 && b + 0 > 0) ? b / a : 0
        printf "| %s | %s | %s | %.2f |\n", w, a, b, f }'
}
# server CPU microseconds per request: ticks, requests/s
cpu_per_req() { awk -v t="$1" -v hz="$HZ" -v rps="$2" -v d="$WRK_SECS" 'BEGIN { printf "%.0f", t / hz * 1e6 / (rps * d) }'; }
cat <<EOF

Berth vs docker-registry $(docker-registry --version | awk '{ print $3 }'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), berth $(berth_revision)

| metric | docker-registry | berth | ratio¹ | target | met? |
|---|---|---|---|---|---|
$(row "push ${BLOB_MIB} MiB blob, MiB/s (median of $RUNS)" "$REF_PUSH" "$BERTH_PUSH" 1 1.5)
$(row "pull ${BLOB_MIB} MiB blob, MiB/s (median of $RUNS)" "$REF_PULL" "$BERTH_PULL" 1 1.5)
$(row "manifest GET by tag, req/s (${WRK_CONNS} conns, ${WRK_SECS}s)" "$REF_RPS" "$BERTH_RPS" 1 10)
$(row "manifest GET p99 latency, ms" "$REF_P99" "$BERTH_P99" 0 10)
$(row "RSS after the workload (VmRSS), MiB" "$(mib "$REF_RSS")" "$(mib "$BERTH_RSS")" 0 1)
$(row "peak RSS (VmHWM), MiB" "$(mib "$REF_HWM")" "$(mib "$BERTH_HWM")" 0 1)
$(row "server CPU² per GiB pushed, s" "$(cpu_per_gib "$REF_PUSH_CPU")" "$(cpu_per_gib "$BERTH_PUSH_CPU")" 0)
$(row "server CPU² per GiB pulled, s" "$(cpu_per_gib "$REF_PULL_CPU")" "$(cpu_per_gib "$BERTH_PULL_CPU")" 0)
$(row "server CPU² per manifest GET, µs" "$(cpu_per_req "$REF_WRK_CPU" "$REF_RPS")" "$(cpu_per_req "$BERTH_WRK_CPU" "$BERTH_RPS")" 0)
$(row "pull over TLS, MiB/s (median of $RUNS)" "$REF_TLS_PULL" "$BERTH_TLS_PULL" 1)
$(row "server CPU² per GiB pulled over TLS, s" "$(cpu_per_gib "$REF_TLS_PULL_CPU")" "$(cpu_per_gib "$BERTH_TLS_PULL_CPU")" 0)
$(row "manifest GET with htpasswd, req/s" "$REF_AUTH_RPS" "$BERTH_AUTH_RPS" 1 3)
$(row "manifest GET with htpasswd, p99 latency, ms" "$REF_AUTH_P99" "$BERTH_AUTH_P99" 0 3)
$(row "server CPU² per manifest GET with htpasswd, µs" "$(cpu_per_req "$REF_AUTH_WRK_CPU" "$REF_AUTH_RPS")" "$(cpu_per_req "$BERTH_AUTH_WRK_CPU" "$BERTH_AUTH_RPS")" 0)

What htpasswd costs berth (same wrk run; fraction above 1 is better):

| berth, manifest GET | without auth | with htpasswd | fraction | target | met? |
|---|---|---|---|---|---|
$(cost_row "req/s" "$BERTH_RPS" "$BERTH_AUTH_RPS" 1)
$(cost_row "p99 latency, ms" "$BERTH_P99" "$BERTH_AUTH_P99" 0)

What TLS costs a pull (self-signed P-256 certificate, curl's default
cipher; same servers, same blob): the rate kept and the CPU multiplied.

| pull of ${BLOB_MIB} MiB | without TLS | with TLS | with / without |
|---|---|---|---|
$(tls_row "docker-registry, MiB/s" "$REF_PULL" "$REF_TLS_PULL")
$(tls_row "berth, MiB/s" "$BERTH_PULL" "$BERTH_TLS_PULL")
$(tls_row "docker-registry, server CPU² per GiB, s" "$(cpu_per_gib "$REF_PULL_CPU")" "$(cpu_per_gib "$REF_TLS_PULL_CPU")")
$(tls_row "berth, server CPU² per GiB, s" "$(cpu_per_gib "$BERTH_PULL_CPU")" "$(cpu_per_gib "$BERTH_TLS_PULL_CPU")")

Against the machine's limits (medians of $RUNS rounds: sha256 $SHA, synced
write $SYNCED_WRITE, page-cache read $CACHED_READ MiB/s):

| berth | MiB/s | limit, MiB/s | fraction | target | met? |
|---|---|---|---|---|---|
$(limit_row push "$BERTH_PUSH" "$PUSH_LIMIT" 0.8 "the slower of sha256 and the synced write")
$(limit_row pull "$BERTH_PULL" "$CACHED_READ" 0.6 "the page-cache read")

Every run, MiB/s (lowest-highest): push docker-registry $REF_PUSH_SPREAD, berth
$BERTH_PUSH_SPREAD; pull docker-registry $REF_PULL_SPREAD, berth $BERTH_PULL_SPREAD;
pull over TLS docker-registry $REF_TLS_PULL_SPREAD, berth $BERTH_TLS_PULL_SPREAD;
sha256 $(spread "$SHA_RUNS"), synced write $(spread "$WRITE_RUNS"), page-cache read $(spread "$READ_RUNS").

¹ ratio = berth / docker-registry for throughput, docker-registry / berth for
latency, memory and CPU: above 1 always means berth is better.
² user + system time of the server process over all runs (clock ticks of
1/$HZ s), informational; less disturbed by other load than the rates.
$(load_note)
Reference config: filesystem driver$([[ -n $REF_CACHE ]] && echo ", blobdescriptor cache inmemory" || echo ", no blobdescriptor cache").
EOF
