#!/usr/bin/env bash
# `berth gc` against `docker-registry garbage-collect` (CNCF distribution
# 2.8) on the same generated registry, side by side in one run: wall time
# and peak memory, as ratios. On the filesystem, and with BENCH_GC_S3=1 also
# on moto (a bucket each, the same objects). Then berth serving that registry
# with online runs back to back: push and pull throughput during the runs
# against outside them. See bench/README.md.
#
# The registry: BENCH_GC_REPOS repositories (2000), each with a tagged image
# (config, a layer of its own, a base layer every image shares) and an image
# whose manifest was deleted (config, its own layer, the manifest's data):
# half the blobs are unreferenced. Written straight in distribution's layout
# (what a push through either registry leaves), so generating takes seconds.
#
# Knobs: BENCH_GC_REPOS (2000), BENCH_GC_ROUNDS (3, on the filesystem),
# BENCH_GC_S3=1, BENCH_GC_ONLINE_SECS (90), BENCH_GC_LAYER_MIB (8),
# BENCH_BERTH=path, BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail

REPOS=${BENCH_GC_REPOS:-2000}
REGION=us-east-1
ACCESS_KEY=berth-bench-access-key
SECRET_KEY=berth-bench-secret-key

. "$(dirname "$0")/lib.sh"
need_tools "apt-get install -y docker-registry" docker-registry python3
bench_init berth-bench-gc
build_berth

# ---- the registry ----------------------------------------------------------
log "bench: writing $REPOS repositories into $TMP/generated"
python3 - "$TMP/generated" "$REPOS" <<'EOF'
import hashlib, json, os, sys
root, repos = sys.argv[1], int(sys.argv[2])
v2 = os.path.join(root, "docker/registry/v2")
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    write(f"{v2}/blobs/sha256/{digest[:2]}/{digest}/data", data)
    return digest
def link(repo, kind, digest):
    write(f"{v2}/repositories/{repo}/{kind}/sha256/{digest}/link", f"sha256:{digest}".encode())
def descriptor(media_type, digest, size):
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}
base = b"the base layer every image shares".ljust(4096, b".")
base_digest = blob(base)
for n in range(repos):
    repo = f"team{n % 50}/app{n}"
    for which in ("kept", "deleted"):
        config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo, "image": which}).encode()
        own = f"{repo} {which} layer".encode().ljust(1024, b".")
        config_digest, own_digest = blob(config), blob(own)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config_digest, len(config)),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", d, s)
                       for d, s in ((base_digest, len(base)), (own_digest, len(own)))],
        }).encode()
        manifest_digest = blob(manifest)
        for digest in (config_digest, own_digest, base_digest):
            link(repo, "_layers", digest)
        if which == "kept":
            link(repo, "_manifests/revisions", manifest_digest)
            tags = f"{v2}/repositories/{repo}/_manifests/tags/latest"
            write(f"{tags}/current/link", f"sha256:{manifest_digest}".encode())
            write(f"{tags}/index/sha256/{manifest_digest}/link", f"sha256:{manifest_digest}".encode())
EOF
BLOBS=$(find "$TMP/generated/docker/registry/v2/blobs" -name data | wc -l)
log "bench: $BLOBS blobs, $((REPOS * 3)) of them unreferenced"

# measure name command... -> "seconds peak_rss_kib" of the command (its
# children included), from getrusage; the command's output goes to $TMP/name.out.
measure() {
    local name=$1
    shift
    python3 - "$TMP/$name.out" "$@" <<'EOF'
import resource, subprocess, sys, time
out, command = sys.argv[1], sys.argv[2:]
start = time.monotonic()
with open(out, "w") as f:
    done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT)
took = time.monotonic() - start
if done.returncode != 0:
    sys.exit(f"{command[0]} exited with {done.returncode}; see {out}")
print(f"{took:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
EOF
}

# online_row metric outside during: a row of the online table; the target is
# throughput during runs at least 0.8 of throughput outside them.
online_row() {
    awk -v m="$1" -v o="$2" -v d="$3" 'BEGIN { r = d / o; printf "| %s | %s | %s | %.2f | >= 0.80 | %s |\n", m, o, d, r, (r >= 0.8 ? "yes" : "no") }'
}

# gc_config file storage-lines
gc_config() {
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n%s\n' "$2" >"$1"
}

# ---- the filesystem ----------------------------------------------------------
# BENCH_GC_ROUNDS rounds, each collector on a fresh copy of the registry,
# taking turns to go first; the table gives the medians, the note the spread.
ROUNDS=${BENCH_GC_ROUNDS:-3}
gc_config "$TMP/fs-ref.yml" "  filesystem:
    rootdirectory: $TMP/fs-ref"
gc_config "$TMP/fs-berth.yml" "  filesystem:
    rootdirectory: $TMP/fs-berth"
left() { find "$1/docker/registry/v2/blobs" -name data | sed 's|.*/\([0-9a-f]*\)/data|\1|' | sort; }
FS_REF_RUNS="" FS_BERTH_RUNS="" FS_REF_KIB=0 FS_BERTH_KIB=0
for ((round = 1; round <= ROUNDS; round++)); do
    order="ref berth"
    [[ $((round % 2)) == 0 ]] && order="berth ref"
    for who in $order; do
        rm -rf "$TMP/fs-$who"
        cp -a "$TMP/generated" "$TMP/fs-$who"
        sync
        if [[ $who == ref ]]; then
            read -r s kib <<<"$(measure fs-ref env -u AWS_CA_BUNDLE docker-registry garbage-collect "$TMP/fs-ref.yml")"
            FS_REF_RUNS="${FS_REF_RUNS:+$FS_REF_RUNS }$s" FS_REF_KIB=$((kib > FS_REF_KIB ? kib : FS_REF_KIB))
        else
            read -r s kib <<<"$(measure fs-berth "$BERTH" gc --quiet --config "$TMP/fs-berth.yml")"
            FS_BERTH_RUNS="${FS_BERTH_RUNS:+$FS_BERTH_RUNS }$s" FS_BERTH_KIB=$((kib > FS_BERTH_KIB ? kib : FS_BERTH_KIB))
        fi
        log "bench: filesystem round $round: $(printf '%-15s' "$([[ $who == ref ]] && echo docker-registry || echo berth)") ${s}s ${kib} KiB"
    done
    cmp -s <(left "$TMP/fs-ref") <(left "$TMP/fs-berth") || die "berth and docker-registry kept different blobs on the filesystem"
done
FS_REF_S=$(median "$FS_REF_RUNS" 2) FS_BERTH_S=$(median "$FS_BERTH_RUNS" 2)
FS_LEFT=$(left "$TMP/fs-berth" | wc -l)
[[ $FS_LEFT == $((BLOBS - REPOS * 3)) ]] || die "$FS_LEFT blobs left, not $((BLOBS - REPOS * 3))"
log "bench: filesystem: docker-registry ${FS_REF_S}s (${FS_REF_RUNS}), berth ${FS_BERTH_S}s (${FS_BERTH_RUNS}); both left $FS_LEFT blobs"

# ---- moto ----------------------------------------------------------------
S3_ROWS=""
if [[ ${BENCH_GC_S3:-} == 1 ]]; then
    python3 -c 'import moto.server, boto3' 2>/dev/null || die "moto not importable (pip install 'moto[server]')"
    start_moto
    log "bench: uploading the registry into two buckets on moto"
    python3 - "$S3" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$TMP/generated" <<'EOF'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
endpoint, region, key, secret, root = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key, aws_secret_access_key=secret)
files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
for bucket in ("gc-ref", "gc-berth"):
    s3.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda path: s3.upload_file(path, bucket, os.path.relpath(path, root)), files))
EOF
    s3_lines() {
        printf '  s3:\n    region: %s\n    bucket: %s\n    regionendpoint: %s\n    accesskey: %s\n    secretkey: %s\n    secure: false\n    v4auth: true' \
            "$REGION" "$1" "$S3" "$ACCESS_KEY" "$SECRET_KEY"
    }
    gc_config "$TMP/s3-ref.yml" "$(s3_lines gc-ref)"
    gc_config "$TMP/s3-berth.yml" "$(s3_lines gc-berth)"
    log "bench: docker-registry garbage-collect on moto"
    read -r S3_REF_S S3_REF_KIB <<<"$(measure s3-ref env -u AWS_CA_BUNDLE docker-registry garbage-collect "$TMP/s3-ref.yml")"
    log "bench: berth gc on moto"
    read -r S3_BERTH_S S3_BERTH_KIB <<<"$(measure s3-berth env -u AWS_CA_BUNDLE "$BERTH" gc --quiet --config "$TMP/s3-berth.yml")"
    S3_LEFT=$(python3 - "$S3" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" <<'EOF'
import sys, boto3
endpoint, region, key, secret = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id=key, aws_secret_access_key=secret)
def left(bucket):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="docker/registry/v2/blobs/")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("/data"))
kept = left("gc-ref")
if kept != left("gc-berth"):
    sys.exit("berth and docker-registry kept different blobs on moto")
print(len(kept))
EOF
)
    [[ $S3_LEFT == "$FS_LEFT" ]] || die "$S3_LEFT blobs left on moto, not $FS_LEFT"
    log "bench: moto: docker-registry ${S3_REF_S}s, berth ${S3_BERTH_S}s; both left $S3_LEFT blobs"
    S3_ROWS=$(printf '%s\n%s' \
        "$(row "moto: wall time, s" "$S3_REF_S" "$S3_BERTH_S" 0 2)" \
        "$(row "moto: peak RSS, MiB" "$(mib "$S3_REF_KIB")" "$(mib "$S3_BERTH_KIB")" 0)")
fi

# ---- while serving: an online run's effect on pushes and pulls --------------
# One berth serve on another copy, storage.gc on with runs back to back
# (interval 1s, delay 1s; requesttimeout 5s makes the grace before marking
# 11 s). A client pushes images (a BENCH_GC_LAYER_MIB layer, a config, a
# tagged manifest) and pulls the layer back, for BENCH_GC_ONLINE_SECS. The
# runs' windows come from berth's JSON log ("gc: run completed", with its
# seconds); throughput inside them is set against throughput outside them,
# on the same server and data.
ONLINE_SECS=${BENCH_GC_ONLINE_SECS:-90}
LAYER_MIB=${BENCH_GC_LAYER_MIB:-8}
cp -a "$TMP/generated" "$TMP/online"
free_port ONLINE_PORT
cat >"$TMP/online.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: json
http:
  addr: 127.0.0.1:$ONLINE_PORT
  requesttimeout: 5s
storage:
  filesystem:
    rootdirectory: $TMP/online
  gc:
    enabled: true
    interval: 1s
    delay: 1s
EOF
"$BERTH" serve --config "$TMP/online.yml" >"$TMP/berth-online.log" 2>&1 &
ONLINE_PID=$!
started "$ONLINE_PID"
wait_ready berth-online "http://127.0.0.1:$ONLINE_PORT/v2/" "$ONLINE_PID"
log "bench: pushing and pulling for ${ONLINE_SECS}s while berth collects"
python3 - "http://127.0.0.1:$ONLINE_PORT" "$ONLINE_SECS" "$LAYER_MIB" >"$TMP/online-cycles.jsonl" <<'EOF'
import hashlib, http.client, json, os, sys, time
from urllib.parse import urlsplit
base, seconds, layer_mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
url = urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
def call(method, path, body=None, headers={}):
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    return reply.status, reply.getheader("Location"), reply.read()
def push_blob(repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, location, _ = call("POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, f"POST upload: {status}"
    location = urlsplit(location)
    query = location.query + "&" if location.query else ""
    status, _, _ = call("PUT", f"{location.path}?{query}digest={digest}", data,
                        {"Content-Type": "application/octet-stream"})
    assert status == 201, f"PUT blob: {status}"
    return digest
layer = bytearray(os.urandom(layer_mib << 20))
end = time.monotonic() + seconds
cycle = 0
while time.monotonic() < end and cycle < 100000:
    cycle += 1
    repo = f"online/app{cycle % 20}"
    layer[:8] = cycle.to_bytes(8, "big")
    data = bytes(layer)
    started = time.time()
    layer_digest = push_blob(repo, data)
    config = json.dumps({"architecture": "amd64", "os": "linux", "cycle": cycle}).encode()
    config_digest = push_blob(repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(data)}],
    }).encode()
    status, _, _ = call("PUT", f"/v2/{repo}/manifests/c{cycle}", manifest,
                        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, f"PUT manifest: {status}"
    pushed = time.time()
    status, _, body = call("GET", f"/v2/{repo}/blobs/{layer_digest}")
    assert status == 200, f"GET blob: {status}"
    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer_digest, "GET blob: wrong content"
    print(json.dumps({"start": started, "pushed": pushed, "end": time.time(), "bytes": len(data)}), flush=True)
EOF
ONLINE=$(python3 - "$TMP/berth-online.log" "$TMP/online-cycles.jsonl" <<'EOF'
import json, sys
from datetime import datetime
windows = []
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    fields = entry.get("fields", {})
    if fields.get("message") == "gc: run stopped":
        sys.exit(f"an online run failed: {line.strip()}")
    if fields.get("message") == "gc: run completed":
        ended = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        windows.append((ended - float(fields["seconds"]), ended))
cycles = [json.loads(line) for line in open(sys.argv[2])]
during = [c for c in cycles if any(lo <= c["start"] and c["end"] <= hi for lo, hi in windows)]
idle = [c for c in cycles if all(c["end"] < lo or hi < c["start"] for lo, hi in windows)]
if not during or not idle:
    sys.exit(f"{len(windows)} runs, {len(during)} cycles inside them, {len(idle)} outside: too few to compare")
def rates(group):
    moved = sum(c["bytes"] for c in group) / 1048576
    push = moved / sum(c["pushed"] - c["start"] for c in group)
    pull = moved / sum(c["end"] - c["pushed"] for c in group)
    return f"{push:.1f} {pull:.1f}"
print(len(windows), len(during), len(idle), rates(during), rates(idle))
EOF
)
read -r ONLINE_RUNS ONLINE_IN_N ONLINE_OUT_N ONLINE_IN_PUSH ONLINE_IN_PULL ONLINE_OUT_PUSH ONLINE_OUT_PULL <<<"$ONLINE"
[[ -n $ONLINE_OUT_PULL ]] || die "the online runs could not be measured; see $TMP/berth-online.log"
log "bench: online: $ONLINE_RUNS runs; push $ONLINE_IN_PUSH MiB/s during, $ONLINE_OUT_PUSH outside; pull $ONLINE_IN_PULL during, $ONLINE_OUT_PULL outside"

cat <<EOF

berth gc vs docker-registry garbage-collect $(docker-registry --version | awk '{ print $3 }'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), berth $(berth_revision)
$REPOS repositories, $BLOBS blobs, $((REPOS * 3)) unreferenced; both left the same $FS_LEFT blobs.

| metric | docker-registry | berth | ratio¹ | target | met? |
|---|---|---|---|---|---|
$(row "filesystem: wall time, s (median of $ROUNDS)" "$FS_REF_S" "$FS_BERTH_S" 0 2)
$(row "filesystem: peak RSS, MiB" "$(mib "$FS_REF_KIB")" "$(mib "$FS_BERTH_KIB")" 0)
${S3_ROWS}

¹ docker-registry / berth: above 1 means berth is better.
Filesystem rounds, s: docker-registry $FS_REF_RUNS; berth $FS_BERTH_RUNS.

While serving (berth alone: distribution does not collect while it serves): $ONLINE_RUNS online runs
back to back during ${ONLINE_SECS}s of pushes (${LAYER_MIB} MiB layer, config, tagged manifest)
and pulls of the layer; $ONLINE_IN_N cycles fell inside a run, $ONLINE_OUT_N outside every run.

| metric | outside runs | during runs | during / outside | target | met? |
|---|---|---|---|---|---|
$(online_row "push, MiB/s" "$ONLINE_OUT_PUSH" "$ONLINE_IN_PUSH")
$(online_row "pull, MiB/s" "$ONLINE_OUT_PULL" "$ONLINE_IN_PULL")

$(load_note)
EOF
