#!/usr/bin/env bash
# Berth's s3 driver against Debian's docker-registry (CNCF distribution 2.8)
# and its s3 driver, side by side in one run: one moto S3 server on 127.0.0.1,
# a bucket each, the same driver parameters, the same client (curl). Blob push
# and pull through the registries (storage.redirect.disable: true). Prints a
# markdown table of ratios. See bench/README.md.
#
# Usage: bench/s3.sh
# Knobs (environment): BENCH_BLOB_MIB (256), BENCH_RUNS (3), BENCH_KEEP=1 keeps
# the temp dir (configs, server logs, moto's request log), BENCH_S3_REDIRECT=1
# adds a second table: pull with redirects on (curl follows the 307 to moto).
set -euo pipefail

BLOB_MIB=${BENCH_BLOB_MIB:-256}
RUNS=${BENCH_RUNS:-3}
# distribution's default part size (2 x S3's 5 MiB minimum), also Berth's;
# written into both configurations so that neither relies on its default.
CHUNK=10485760
REGION=us-east-1
ACCESS_KEY=berth-bench-access-key # moto accepts any; they only have to match
SECRET_KEY=berth-bench-secret-key

. "$(dirname "$0")/lib.sh"
need_tools "apt-get install -y docker-registry curl; pip install 'moto[server]'" \
    curl docker-registry python3 sha256sum
python3 -c 'import moto.server, boto3' 2>/dev/null || die "moto not importable (pip install 'moto[server]')"
bench_init berth-bench-s3

build_berth

# ---- one S3 server, two buckets -------------------------------------------
start_moto
MOTO_VERSION=$(python3 -c 'import moto; print(moto.__version__)')
python3 - "$S3" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" <<'EOF' || die "creating the buckets on $S3 failed"
import sys, boto3
endpoint, region, key, secret = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key, aws_secret_access_key=secret)
for bucket in ("bench-ref", "bench-berth"):
    s3.create_bucket(Bucket=bucket)
EOF

# ---- both registries, the same s3 parameters ------------------------------
# Distribution 2.8's driver has no `forcepathstyle` (that came in 3.0): it
# uses path-style addressing whenever `regionendpoint` is set, and so does
# Berth's; moto's log shows /bench-ref/... and /bench-berth/... requests.
# secure: false and v4auth: true are 2.8's way to say http:// and SigV4.
write_config() { # file bucket port redirect-disable
    cat >"$1" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    region: $REGION
    regionendpoint: $S3
    bucket: $2
    accesskey: $ACCESS_KEY
    secretkey: $SECRET_KEY
    secure: false
    v4auth: true
    chunksize: $CHUNK
  redirect:
    disable: $4
http:
  addr: 127.0.0.1:$3
EOF
}

# start_servers redirect-disable: starts both, sets REF, REF_PID, BERTH_URL,
# BERTH_PID.
start_servers() {
    local ref_port berth_port
    free_port ref_port
    write_config "$TMP/ref.yml" bench-ref "$ref_port" "$1"
    free_port berth_port
    write_config "$TMP/berth.yml" bench-berth "$berth_port" "$1"
    start_pair "$TMP/ref.yml" "$ref_port" "$TMP/berth.yml" "$berth_port"
    log "bench: redirect.disable $1: docker-registry pid $REF_PID on $REF, berth pid $BERTH_PID on $BERTH_URL, moto pid $MOTO_PID on $S3"
}
stop_servers() {
    kill "$REF_PID" "$BERTH_PID" 2>/dev/null || true
    wait "$REF_PID" "$BERTH_PID" 2>/dev/null || true
}

# s3_requests bucket from-line: requests moto logged for bucket since from-line.
s3_requests() {
    tail -n +"$(($2 + 1))" "$TMP/moto.log" | grep -c "\"[A-Z]* /$1[/? ]" || true
}
lines() { wc -l <"$TMP/moto.log"; }
per_run() { awk -v n="$1" -v r="$RUNS" 'BEGIN { printf "%.0f", n / r }'; }

start_servers true

BLOB=$TMP/blob
log "bench: generating ${BLOB_MIB} MiB of random data"
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$BLOB"
BYTES=$(stat -c %s "$BLOB")
DIGEST=sha256:$(sha256sum "$BLOB" | cut -d' ' -f1)

# ---- 1. push, 2. pull -----------------------------------------------------
from=$(lines)
transfer push "$MOTO_PID"
REF_PUSH_REQ=$(s3_requests bench-ref "$from") BERTH_PUSH_REQ=$(s3_requests bench-berth "$from")
from=$(lines)
transfer pull "$MOTO_PID"
REF_PULL_REQ=$(s3_requests bench-ref "$from") BERTH_PULL_REQ=$(s3_requests bench-berth "$from")
log "bench: median push docker-registry $REF_PUSH, berth $BERTH_PUSH; pull docker-registry $REF_PULL, berth $BERTH_PULL MiB/s"

# ---- the native client's limit --------------------------------------------
# boto3 straight to the same moto, same part size, its own bucket: what the
# S3 server allows a client that is not a registry; $RUNS rounds, medians.
read -r NATIVE_PUSH_RUNS NATIVE_PULL_RUNS < <(python3 - "$S3" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$BLOB" "$CHUNK" "$RUNS" <<'EOF'
import os, sys, time, boto3
from boto3.s3.transfer import TransferConfig
endpoint, region, key, secret, blob, chunk, runs = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key, aws_secret_access_key=secret)
s3.create_bucket(Bucket="bench-native")
config = TransferConfig(multipart_threshold=int(chunk), multipart_chunksize=int(chunk))
size = os.path.getsize(blob)
push, pull = [], []
for run in range(int(runs)):
    started = time.monotonic()
    s3.upload_file(blob, "bench-native", f"blob{run}", Config=config)
    push.append(size / 1048576 / (time.monotonic() - started))
    started = time.monotonic()
    body = s3.get_object(Bucket="bench-native", Key=f"blob{run}")["Body"]
    while body.read(1 << 20):
        pass
    pull.append(size / 1048576 / (time.monotonic() - started))
print(",".join(f"{r:.1f}" for r in push), ",".join(f"{r:.1f}" for r in pull))
EOF
)
NATIVE_PUSH_RUNS=${NATIVE_PUSH_RUNS//,/ } NATIVE_PULL_RUNS=${NATIVE_PULL_RUNS//,/ }
[[ -n $NATIVE_PULL_RUNS ]] || die "the native client's runs against $S3 failed"
NATIVE_PUSH=$(median "$NATIVE_PUSH_RUNS") NATIVE_PULL=$(median "$NATIVE_PULL_RUNS")
log "bench: native client (boto3) push $NATIVE_PUSH, pull $NATIVE_PULL MiB/s"

# ---- 3. memory ------------------------------------------------------------
REF_RSS=$(kib "$REF_PID" VmRSS) REF_HWM=$(kib "$REF_PID" VmHWM)
BERTH_RSS=$(kib "$BERTH_PID" VmRSS) BERTH_HWM=$(kib "$BERTH_PID" VmHWM)

# ---- the table ------------------------------------------------------------
cat <<EOF

Berth vs docker-registry $(docker-registry --version | awk '{ print $3 }'), both on the s3 driver against one moto $MOTO_VERSION S3 server on 127.0.0.1, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), berth $(berth_revision)
Blob data through the registries: storage.redirect.disable: true on both; chunksize $CHUNK (10 MiB, distribution's default) on both.

| metric | docker-registry | berth | ratio¹ | target | met? |
|---|---|---|---|---|---|
$(row "push ${BLOB_MIB} MiB blob, MiB/s (median of $RUNS)" "$REF_PUSH" "$BERTH_PUSH" 1 2.0)
$(row "pull ${BLOB_MIB} MiB blob, MiB/s (median of $RUNS)" "$REF_PULL" "$BERTH_PULL" 1 1.5)
$(row "server CPU² per GiB pushed, s" "$(cpu_per_gib "$REF_PUSH_CPU")" "$(cpu_per_gib "$BERTH_PUSH_CPU")" 0)
$(row "server CPU² per GiB pulled, s" "$(cpu_per_gib "$REF_PULL_CPU")" "$(cpu_per_gib "$BERTH_PULL_CPU")" 0 2.0)
$(row "moto CPU³ per GiB pushed, s" "$(cpu_per_gib "$REF_PUSH_XCPU")" "$(cpu_per_gib "$BERTH_PUSH_XCPU")" 0)
$(row "moto CPU³ per GiB pulled, s" "$(cpu_per_gib "$REF_PULL_XCPU")" "$(cpu_per_gib "$BERTH_PULL_XCPU")" 0)
$(row "S3 requests⁴ per push" "$(per_run "$REF_PUSH_REQ")" "$(per_run "$BERTH_PUSH_REQ")" 0)
$(row "S3 requests⁴ per pull" "$(per_run "$REF_PULL_REQ")" "$(per_run "$BERTH_PULL_REQ")" 0)
$(row "RSS after the workload (VmRSS), MiB" "$(mib "$REF_RSS")" "$(mib "$BERTH_RSS")" 0)
$(row "peak RSS (VmHWM), MiB" "$(mib "$REF_HWM")" "$(mib "$BERTH_HWM")" 0)

Every run, MiB/s: push docker-registry $REF_PUSH_RUNS; berth $BERTH_PUSH_RUNS.
Pull docker-registry $REF_PULL_RUNS; berth $BERTH_PULL_RUNS.
A native client (boto3, $CHUNK-byte parts) straight to the same moto, medians:
push $NATIVE_PUSH MiB/s ($NATIVE_PUSH_RUNS), pull $NATIVE_PULL MiB/s ($NATIVE_PULL_RUNS);
berth reaches $(awk -v b="$BERTH_PUSH" -v n="$NATIVE_PUSH" 'BEGIN { printf "%.2f", b / n }') of it pushing and $(awk -v b="$BERTH_PULL" -v n="$NATIVE_PULL" 'BEGIN { printf "%.2f", b / n }') pulling.
¹ ratio = berth / docker-registry for throughput, docker-registry / berth for
CPU, requests and memory: above 1 always means berth is better.
² user + system time of the registry process over all runs (clock ticks of
1/$HZ s), informational; less disturbed by other load than the rates.
³ the same for the moto process during that registry's runs: the S3 work each
registry's requests cause (moto is single-process Python and often the
bottleneck, so this bounds both rates).
⁴ requests moto logged for that registry's bucket, averaged over the runs.
$(load_note)
EOF

# ---- optional: pull with redirects on -------------------------------------
if [[ ${BENCH_S3_REDIRECT:-} == 1 ]]; then
    stop_servers
    start_servers false
    BENCH_PULL_FOLLOW=1
    transfer pull "$MOTO_PID"
    cat <<EOF

With redirects on (storage.redirect.disable: false): GET blob answers 307 to a
presigned moto URL and curl follows it (-L), so the data comes from moto, not
through the registry. Pushes never redirect: the table above holds for them.

| metric | docker-registry | berth | ratio¹ | target | met? |
|---|---|---|---|---|---|
$(row "pull ${BLOB_MIB} MiB blob via redirect, MiB/s (median of $RUNS)" "$REF_PULL" "$BERTH_PULL" 1 1.0)
$(row "server CPU² per GiB pulled, s" "$(cpu_per_gib "$REF_PULL_CPU")" "$(cpu_per_gib "$BERTH_PULL_CPU")" 0)

Every run, MiB/s: docker-registry $REF_PULL_RUNS; berth $BERTH_PULL_RUNS.
EOF
fi
