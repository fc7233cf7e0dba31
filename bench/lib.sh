# Helpers shared by the side-by-side benchmarks (bench/registry.sh,
# bench/s3.sh). Sourced, not run: it defines functions and, in bench_init, the
# temporary directory, the list of processes to stop and the exit trap.
#
# The measuring functions read these globals, which the scripts set:
#   REF, REF_PID          docker-registry's base URL and process
#   BERTH_URL, BERTH_PID  berth's base URL and process
#   BLOB, BYTES, DIGEST   the file pushed, its size and its digest
#   RUNS                  how many timed runs of each transfer

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HZ=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

# need_tools "install hint" tool... : fails naming the first missing tool.
need_tools() {
    local hint=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found ($hint)"
    done
}

# ---- temporary directory, processes, cleanup ------------------------------
PIDS=()
# bench_init name: makes $TMP, notes the load average in $LOAD (before we add
# ours) and arranges for every process in PIDS to be stopped on any exit.
bench_init() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${BENCH_KEEP:-} == 1 ]]; then log "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
# started pid: stop this process on exit.
started() { PIDS+=("$1"); }

# A line saying how busy the machine was before the run.
load_note() {
    printf 'Load average before the run: %s on %s cores' "$LOAD" "$(nproc)"
    awk -v l="${LOAD%% *}" -v n="$(nproc)" 'BEGIN { if (l > n / 2) printf " (busy: other processes compete; rates are noisy)" }'
    printf '.\n'
}

# ---- build ----------------------------------------------------------------
# build_berth: cargo build --release -p berth; sets BERTH to the binary.
build_berth() {
    local target_dir
    if [[ -n ${BENCH_BERTH:-} ]]; then # a binary built elsewhere, e.g. an older commit
        BERTH=$BENCH_BERTH
        [[ -x $BERTH ]] || die "BENCH_BERTH=$BERTH is not an executable"
        return
    fi
    log "bench: cargo build --release -p berth"
    (cd "$BENCH_ROOT" && cargo build --release -p berth >&2)
    target_dir=${CARGO_TARGET_DIR:-$BENCH_ROOT/target}
    [[ $target_dir == /* ]] || target_dir=$BENCH_ROOT/$target_dir
    BERTH=$target_dir/release/berth
    [[ -x $BERTH ]] || die "no binary at $BERTH"
}
# The commit measured, +dirty when host/ or plugins/ differ from it.
berth_revision() {
    [[ -n ${BENCH_BERTH:-} ]] && { printf '%s' "$BENCH_BERTH"; return; }
    (cd "$BENCH_ROOT" && printf '%s' "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" &&
        { git diff --quiet HEAD -- host plugins 2>/dev/null || printf '+dirty'; })
}

# ---- ports and readiness --------------------------------------------------
USED_PORTS=()
# free_port var: sets var to a loopback port nobody listens on, distinct from
# the earlier answers (not called in $(...), so that it remembers them).
free_port() {
    local candidate
    while :; do
        candidate=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        [[ " ${USED_PORTS[*]} " == *" $candidate "* ]] || break
    done
    USED_PORTS+=("$candidate")
    printf -v "$1" %s "$candidate"
}

# wait_ready name url pid [code]: until url answers code (200), for 120 s at
# most; fails early if the process has exited. Its log is $TMP/name.log.
wait_ready() {
    local i
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$3" 2>/dev/null || die "$1 exited during startup; see $TMP/$1.log"
        [[ $(curl "${CURL_CA[@]}" -s -o /dev/null -w '%{http_code}' "$2" || true) == "${4:-200}" ]] && return 0
        sleep 0.1
    done
    die "$1 did not answer $2 within 120 s; see $TMP/$1.log"
}

# start_pair ref-config ref-port berth-config berth-port [code]: starts
# docker-registry and berth on their configurations (logs appended to
# $TMP/docker-registry.log and $TMP/berth.log), waits until both answer /v2/
# with code (200; 401 behind auth), and sets REF, REF_PID, BERTH_URL and
# BERTH_PID. SCHEME=https for servers with TLS (curl then trusts $CURL_CA).
start_pair() {
    # docker-registry panics (LoadCustomCABundleError in its s3 driver) when
    # AWS_CA_BUNDLE is set, whatever the storage.
    env -u AWS_CA_BUNDLE docker-registry serve "$1" >>"$TMP/docker-registry.log" 2>&1 &
    REF_PID=$!
    started "$REF_PID"
    REF=${SCHEME:-http}://127.0.0.1:$2
    "$BERTH" serve --config "$3" >>"$TMP/berth.log" 2>&1 &
    BERTH_PID=$!
    started "$BERTH_PID"
    BERTH_URL=${SCHEME:-http}://127.0.0.1:$4
    wait_ready docker-registry "$REF/v2/" "$REF_PID" "${5:-200}"
    wait_ready berth "$BERTH_URL/v2/" "$BERTH_PID" "${5:-200}"
}

# ---- the client: curl -----------------------------------------------------
# curl's options to trust the servers' certificate, when they have TLS.
CURL_CA=()

# push_blob base repo file digest -> prints seconds (POST + PUT), fails on
# error. The OCI monolithic flow: POST, then one PUT with the whole body.
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

# pull_blob base repo -> prints seconds of GET blob $DIGEST to /dev/null;
# fails unless it is a 200 of $BYTES bytes. BENCH_PULL_FOLLOW=1 follows
# redirects, and fails unless there was one.
pull_blob() {
    local out code size secs redirects follow=()
    [[ ${BENCH_PULL_FOLLOW:-} == 1 ]] && follow=(-L)
    out=$(curl "${CURL_CA[@]}" -s "${follow[@]}" -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{num_redirects}' \
        "$1/v2/$2/blobs/$DIGEST")
    read -r code size secs redirects <<<"$out"
    [[ $code == 200 && $size == "$BYTES" ]] || die "GET blob from $1/v2/$2 answered $code with $size bytes"
    [[ ${BENCH_PULL_FOLLOW:-} != 1 || $redirects -gt 0 ]] || die "GET blob from $1/v2/$2 did not redirect"
    echo "$secs"
}

# check_blob base repo: once, untimed, the content served is $DIGEST's.
check_blob() {
    local got follow=()
    [[ ${BENCH_PULL_FOLLOW:-} == 1 ]] && follow=(-L)
    got=sha256:$(curl "${CURL_CA[@]}" -sf "${follow[@]}" "$1/v2/$2/blobs/$DIGEST" | sha256sum | cut -d' ' -f1)
    [[ $got == "$DIGEST" ]] || die "$1/v2/$2 served a blob with digest $got, not $DIGEST"
}

# ---- arithmetic and process accounting ------------------------------------
# CPU time (user + system) a process has used so far, in clock ticks: a view
# of the cost of a workload that other load on the machine disturbs less.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
mibps() { awk -v bytes="$1" -v secs="$2" 'BEGIN { printf "%.1f\n", bytes / 1048576 / secs }'; }
kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# server CPU seconds per GiB moved: ticks (over $RUNS runs of $BYTES)
cpu_per_gib() { awk -v t="$1" -v hz="$HZ" -v n="$RUNS" -v b="$BYTES" 'BEGIN { printf "%.2f", t / hz / (n * b / 1073741824) }'; }

# median "a b c ..." [decimals, 1] and spread "a b c ..." (min-max) of
# space-separated numbers
median() { tr ' ' '\n' <<<"$1" | sort -g | awk -v d="${2:-1}" '{ a[NR] = $1 } END { printf "%." d "f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' <<<"$1" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s\n", lo, hi }'; }

# seconds COMMAND... takes, printed with 6 decimals
seconds_of() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

# ---- the blob workloads ---------------------------------------------------
# transfer push|pull [extra-pid]: $RUNS timed runs against each server, the
# two taking turns to go first. push sends $BLOB to a fresh repository
# bench/push<run> each run; pull GETs it back from bench/push1 (checked once
# against the digest first, untimed). Sets, for X = PUSH or PULL:
#   REF_X, BERTH_X            median MiB/s
#   REF_X_SPREAD, BERTH_X_... the lowest and highest run, as "lo-hi"
#   REF_X_CPU, BERTH_X_CPU    server CPU ticks over all runs
#   REF_X_RUNS, BERTH_X_RUNS  every run's MiB/s, space separated
#   REF_X_XCPU, BERTH_X_XCPU  CPU ticks of extra-pid (a shared backend, say)
#                             during that server's runs
# TRANSFER_AS=NAME puts them under NAME in place of X.
transfer() {
    local op=$1 extra=${2:-} X run who side base pid s c x rate
    X=${TRANSFER_AS:-${op^^}}
    for side in REF BERTH; do
        printf -v "${side}_$X" 0
        printf -v "${side}_${X}_CPU" 0
        printf -v "${side}_${X}_XCPU" 0
        printf -v "${side}_${X}_RUNS" ''
    done
    if [[ $op == pull ]]; then
        check_blob "$REF" bench/push1
        check_blob "$BERTH_URL" bench/push1
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for who in ref berth; do
            [[ $((run % 2)) == 0 ]] && who=$([[ $who == ref ]] && echo berth || echo ref)
            if [[ $who == ref ]]; then side=REF base=$REF pid=$REF_PID; else side=BERTH base=$BERTH_URL pid=$BERTH_PID; fi
            c=$(cpu_ticks "$pid")
            [[ -n $extra ]] && x=$(cpu_ticks "$extra")
            if [[ $op == push ]]; then
                s=$(push_blob "$base" "bench/push$run" "$BLOB" "$DIGEST")
            else
                s=$(pull_blob "$base" bench/push1)
            fi
            printf -v "${side}_${X}_CPU" %s $((${side}_${X}_CPU + $(cpu_ticks "$pid") - c))
            [[ -n $extra ]] && printf -v "${side}_${X}_XCPU" %s $((${side}_${X}_XCPU + $(cpu_ticks "$extra") - x))
            rate=$(mibps "$BYTES" "$s")
            local runs=${side}_${X}_RUNS
            printf -v "$runs" %s "${!runs:+${!runs} }$rate"
            log "bench: $op run $run $(printf '%-15s' "$([[ $who == ref ]] && echo docker-registry || echo berth)") $rate MiB/s"
        done
    done
    for side in REF BERTH; do
        local runs=${side}_${X}_RUNS
        printf -v "${side}_$X" %s "$(median "${!runs}")"
        printf -v "${side}_${X}_SPREAD" %s "$(spread "${!runs}")"
    done
}

# ---- the table ------------------------------------------------------------
# row metric ref berth higher-is-better(1|0) [target]: one markdown row with
# the ratio oriented so that above 1 means berth is better.
row() {
    awk -v m="$1" -v r="$2" -v b="$3" -v hib="$4" -v t="${5:-}" 'BEGIN {
        if (r + 0 == 0 || b + 0 == 0) ratio = "n/a"
        else ratio = sprintf("%.2fx", hib ? b / r : r / b)
        if (t == "") printf "| %s | %s | %s | %s | | |\n", m, r, b, ratio
        else printf "| %s | %s | %s | %s | >= %sx | %s |\n", m, r, b, ratio, t, (ratio != "n/a" && ratio + 0 >= t) ? "yes" : "**no**" }'
}

# A moto S3 server on a free loopback port, stopped with the run: sets S3
# (its URL) and MOTO_PID; its log is $TMP/moto.log.
start_moto() {
    free_port S3_PORT
    S3=http://127.0.0.1:$S3_PORT
    python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$TMP/moto.log" 2>&1 &
    MOTO_PID=$!
    started "$MOTO_PID"
    wait_ready moto "$S3/" "$MOTO_PID"
}
