#!/usr/bin/env bash
# The fleet benchmark, run by hand: replicas of the release binary on one bucket of a local
# Ceph radosgw (one monitor, one memstore OSD, radosgw; all on 127.0.0.1), the upstream
# (docker-registry) behind an nginx link limited to RATE_MB MB/s. Measures, in one run:
#   - upstream GETs and bytes when CLIENTS clients spread over the 3 replicas pull one cold
#     blob, against the blob's size;
#   - time to first byte of one cold blob on a replica that follows the holder, against the
#     holder's own client;
#   - cached blob throughput read from the bucket, against the filesystem store (one replica
#     on a directory), REPS sequential GETs each;
# and writes them in the "Fleet" section of BENCHMARKS.md.
#
# Usage: benches/fleet.sh        settings as environment variables:
#   BLOB_MB=64   CLIENTS=12   RATE_MB=20   REPS=5   PORT=15300
#   WORK_DIR=/var/tmp/ociregistry-fleet   SKIP_BUILD=0
# Needs radosgw ceph-mon ceph-osd nginx docker-registry skopeo curl python3 (tests/run-all.sh
# and benches/run.sh install them).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BLOB_MB=${BLOB_MB:-64} CLIENTS=${CLIENTS:-12} RATE_MB=${RATE_MB:-20} REPS=${REPS:-5}
PORT=${PORT:-15300} W=${WORK_DIR:-/var/tmp/ociregistry-fleet} SKIP_BUILD=${SKIP_BUILD:-0}
P_UP=$((PORT + 1)) P_WAN=$((PORT + 2)) P_MON=$((PORT + 3)) P_RGW=$((PORT + 4))
P_FS=$((PORT + 5)) P_R=($((PORT + 6)) $((PORT + 7)) $((PORT + 8)))
BIN=$REPO_DIR/target/release/ociregistry
KEY=fleetbench SECRET=fleetbenchsecret BUCKET=fleetbench
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/nginx/nginx.pid" ] && kill "$(cat "$W/nginx/nginx.pid")" 2>/dev/null || true
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W"/{ceph/run,ceph/log,ceph/mon.a,ceph/osd.0,ceph/rgw,nginx/tmp}

[ "$SKIP_BUILD" = 1 ] || (cd "$REPO_DIR" && cargo build --release --quiet --bin ociregistry)

wait_http() { # URL
  for _ in $(seq 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; exit 1
}

# --- Ceph: the recipe of tests/support/ceph.rs ---------------------------------------------
C=$W/ceph FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$C/ceph.conf" <<EOT
[global]
ms mon client mode = crc secure
ms client mode = crc secure
client mount timeout = 15
rados mon op timeout = 15
fsid = $FSID
mon host = v2:127.0.0.1:$P_MON
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon_max_pg_per_osd = 1000
mon data avail warn = 1
osd crush chooseleaf type = 0
run dir = $C/run
admin socket = $C/run/\$name.asok
log file = $C/log/\$name.log
pid file = $C/run/\$name.pid
keyring = $C/keyring
mon data = $C/mon.\$id
osd data = $C/osd.\$id
osd objectstore = memstore
memstore device bytes = 3221225472
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$P_RGW
rgw data = $C/rgw
rgw dns name = localhost
EOT
(
  cd "$C"
  ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' > /dev/null
  ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mgr 'allow *' > /dev/null
  ceph-authtool keyring --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' \
    > /dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$P_MON]" --fsid "$FSID" monmap > /dev/null
  ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring
)
ceph-mon -c "$C/ceph.conf" -i a -f > "$C/log/mon.out" 2>&1 & PIDS+=($!)
[ "$(ceph -c "$C/ceph.conf" osd create)" = 0 ]
ceph-osd -c "$C/ceph.conf" -i 0 --mkfs > "$C/log/osd-mkfs.out" 2>&1
ceph-osd -c "$C/ceph.conf" -i 0 -f > "$C/log/osd.out" 2>&1 & PIDS+=($!)
radosgw -c "$C/ceph.conf" -n client.rgw.a --keyring "$C/keyring" -f > "$C/log/rgw.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$P_RGW/"
radosgw-admin -c "$C/ceph.conf" -n client.admin user create --uid=bench --display-name=bench \
  --access-key=$KEY --secret=$SECRET > /dev/null
s3() { # METHOD PATH
  curl -s -o /dev/null -w '%{http_code}' -X "$1" --aws-sigv4 aws:amz:us-east-1:s3 \
    -u "$KEY:$SECRET" -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
    "http://127.0.0.1:$P_RGW$2"
}
[ "$(s3 PUT "/$BUCKET")" = 200 ]

# --- the upstream, its slow link, and one image with one large layer ------------------------
cat > "$W/upstream.yml" <<EOT
version: 0.1
log: {level: info, formatter: text, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $W/upstream}}
http: {addr: 127.0.0.1:$P_UP, secret: fleet}
EOT
docker-registry serve "$W/upstream.yml" > "$W/upstream.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$P_UP/v2/"
user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
cat > "$W/nginx/nginx.conf" <<EOT
$user_line
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  proxy_temp_path $W/nginx/tmp/proxy;
  client_body_temp_path $W/nginx/tmp/body;
  fastcgi_temp_path $W/nginx/tmp/fastcgi;
  uwsgi_temp_path $W/nginx/tmp/uwsgi;
  scgi_temp_path $W/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$P_WAN;
    location / {
      proxy_pass http://127.0.0.1:$P_UP; proxy_http_version 1.1;
      proxy_set_header Host \$http_host; proxy_max_temp_file_size 0;
      limit_rate $((RATE_MB * 1000000));
    }
  }
}
EOT
nginx -c "$W/nginx/nginx.conf"
# Three images of one large layer each: one per measure, each cold when measured.
for n in 1 2 3; do
  python3 "$REPO_DIR/tests/support/gen_image.py" --out "$W/img$n" --tag v1 \
    --layers "${BLOB_MB}M" --platforms linux/amd64 --seed "$n" > "$W/img$n.json"
  skopeo copy --quiet --all --dest-tls-verify=false "oci:$W/img$n:v1" \
    "docker://127.0.0.1:$P_UP/bench/img$n:v1"
done
layer() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['platforms'][0]['layers'][0]['digest'])" "$W/img$1.json"; }

# --- our replicas ---------------------------------------------------------------------------
start_ours() { # NAME PORT [fleet]
  local cfg=$W/$1.yaml
  cat > "$cfg" <<EOT
logLevel: info
registries:
  - name: upstream.test
    scheme: http
    endpoint: http://127.0.0.1:$P_WAN
EOT
  if [ "${3:-}" = fleet ]; then
    cat >> "$cfg" <<EOT
storage:
  s3:
    endpoint: http://127.0.0.1:$P_RGW
    bucket: $BUCKET
    region: us-east-1
    accessKeyId: $KEY
    secretAccessKey: $SECRET
advertise: http://127.0.0.1:$2
fleetSecret: fleet-benchmark-secret
EOT
  fi
  "$BIN" --image-path "$W/$1" --config-file "$cfg" serve --host 127.0.0.1 --port "$2" \
    > "$W/$1.log" 2>&1 & PIDS+=($!)
  wait_http "http://127.0.0.1:$2/v2/"
}
start_ours fs "$P_FS"
for i in 0 1 2; do start_ours "r$i" "${P_R[$i]}" fleet; done
blob_url() { echo "http://127.0.0.1:$1/v2/upstream.test/bench/img$2/blobs/$(layer "$2")"; }
upstream_gets() { grep -c "\"GET /v2/bench/img$1/blobs/" "$W/upstream.log" || true; }

# 1. CLIENTS clients over the 3 replicas, one cold blob.
clients=()
for c in $(seq 0 $((CLIENTS - 1))); do
  curl -s -o /dev/null "$(blob_url "${P_R[$((c % 3))]}" 1)" & clients+=($!)
done
wait "${clients[@]}"
gets1=$(upstream_gets 1)
# nginx passes the upstream's bytes on: count them at the registry's side.
bytes1=$(grep "\"GET /v2/bench/img1/blobs/" "$W/upstream.log" | awk '{s += $10} END {print s + 0}')

# 2. Time to first byte: the holder's client, then (once the holder has its lease) a client of
#    another replica, which follows the holder.
curl -s -o /dev/null -w '%{time_starttransfer}\n' "$(blob_url "${P_R[0]}" 2)" > "$W/ttfb.holder" &
holder=$!
sleep 0.5
curl -s -o /dev/null -w '%{time_starttransfer}\n' "$(blob_url "${P_R[1]}" 2)" > "$W/ttfb.follower"
wait $holder

# 3. Cached blob throughput: bucket (a replica) against the filesystem store, after one warm-up.
curl -s -o /dev/null "$(blob_url "$P_FS" 3)"
curl -s -o /dev/null "$(blob_url "${P_R[2]}" 3)"
sleep 2
speeds() { # PORT
  for _ in $(seq "$REPS"); do
    curl -s -o /dev/null -w '%{speed_download}\n' "$(blob_url "$1" 3)"
  done
}
speeds "$P_FS" > "$W/speed.fs"
speeds "${P_R[2]}" > "$W/speed.bucket"

report=$(python3 - "$W" "$BLOB_MB" "$CLIENTS" "$gets1" "$bytes1" "$RATE_MB" "$REPS" <<'PY'
import statistics, sys
w, blob_mb, clients, gets, got, rate, reps = sys.argv[1:8]
size = int(blob_mb) * 1024 * 1024
med = lambda f: statistics.median(float(l) for l in open(f"{w}/{f}") if l.strip())
holder, follower = med("ttfb.holder"), med("ttfb.follower")
fs, bucket = med("speed.fs") / 1e6, med("speed.bucket") / 1e6
print(f"""| measure | value | ratio |
| --- | --- | --- |
| upstream GETs of one cold {blob_mb} MiB blob, {clients} clients over 3 replicas | {gets} | {int(gets)} per blob |
| upstream bytes for it | {int(got)} | {int(got) / size:.2f} x the blob |
| time to first byte, holder's client / a following replica's client (link {rate} MB/s) | {holder * 1000:.0f} ms / {follower * 1000:.0f} ms | {follower / holder:.2f} |
| cached blob throughput, filesystem store / bucket (median of {reps}) | {fs:.0f} MB/s / {bucket:.0f} MB/s | {bucket / fs:.2f} |""")
PY
)
out=$REPO_DIR/BENCHMARKS.md
python3 - "$out" "$report" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BLOB_MB" "$RATE_MB" <<'PY'
import sys, re, pathlib
path, report, when, blob_mb, rate = sys.argv[1:]
p = pathlib.Path(path)
text = p.read_text() if p.exists() else "# Benchmarks\n"
section = (f"## Fleet\n\n`benches/fleet.sh` ({when}): 3 replicas of the release binary on one "
           f"bucket of a local Ceph radosgw 16.2 (memstore OSD), the upstream behind a "
           f"{rate} MB/s link, blobs of {blob_mb} MiB; one run, ratios within it.\n\n"
           f"{report}\n")
text = re.sub(r"## Fleet\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
p.write_text(text)
PY
echo "$report"
