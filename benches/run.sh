#!/usr/bin/env bash
# Side-by-side benchmarks of ociregistry, run by hand; results go to BENCHMARKS.md.
#
# Everything listens on 127.0.0.1 only:
#   upstream  Debian's docker-registry (CNCF distribution 2.8), filesystem storage, access log
#             on (upstream GETs and bytes are counted from it)
#   wan       nginx proxying to the upstream with limit_rate (a slow WAN link)
#   peer      a second docker-registry in proxy mode (proxy.remoteurl = the upstream)
#   static    nginx serving the same blob file with sendfile, and a 1 KB file
#   ours      target/release/ociregistry, upstream.test mapped to the upstream
#
# Usage: benches/run.sh [--quick] [--NAME VALUE ...]
#   Every setting below is an environment variable; `--blob-mb 10` is the same as BLOB_MB=10.
#   --quick picks small sizes for a run of a minute or two while developing.
#
#   REPS=3              repetitions of every measure (the table shows medians)
#   WRK_DURATION=5s     duration of one wrk run
#   BLOB_MB=100         cached blob for the throughput measure
#   BLOB_CONNS="4 32"   wrk connection counts for the blob measure
#   TAG_CONNS=64        wrk connections for the manifest-by-tag and 1 KB blob measures
#   SF_MB=64            cold blob for the single-flight measure
#   SF_CLIENTS="16 64"  client counts for the single-flight measure
#   IMAGE_MB=200        cold image for the concurrent-pull measure (one platform)
#   IMAGE_LAYERS=4      layers of that image
#   PULL_CLIENTS=32     clients pulling it at once
#   BIG_MB=1024         cold layer for the time-to-first-byte and peak-RSS measures
#   TTFB_RATE_MB=50     link speed (MB/s) between the server and the upstream for TTFB
#   RSS_CLIENTS=16      clients pulling the big blob for the peak-RSS measure
#   MANIFESTS=10000     cached manifests for the start-up measure
#   SKOPEO_LAYERS=8M,16M,24M  layer sizes of the 3-layer image copied with skopeo --all
#   UPSTREAM_RATE_MB=0  when > 0, ours and the peer reach the upstream through a link of
#                       this speed (MB/s) in every measure
#   BASE_PORT=15100     first of six consecutive ports
#   WORK_DIR=/var/tmp/ociregistry-bench   scratch space (emptied at start)
#   OUT=BENCHMARKS.md   report, relative to the repository root
#   NOTE=               a sentence recorded in the report (e.g. what else ran meanwhile)
#   SKIP_BUILD=0        1: use the existing release binary
#   SKIP_INSTALL=0      1: never call apt-get
#   KEEP_WORK=0         1: keep WORK_DIR afterwards
#
# Needs root to install missing packages (nginx wrk hyperfine docker-registry skopeo curl
# python3); runs as any user once they are present. Every process it starts is stopped on
# exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INTERNAL=
if [ "${1:-}" = --internal-restart-cold ]; then INTERNAL=1; shift; fi
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

# ---------------------------------------------------------------- settings

while [ $# -gt 0 ]; do
  case "$1" in
    --quick)
      : "${REPS:=2}" "${WRK_DURATION:=2s}" "${BLOB_MB:=20}" "${SF_MB:=8}" "${IMAGE_MB:=20}"
      : "${PULL_CLIENTS:=8}" "${BIG_MB:=64}" "${MANIFESTS:=1000}" "${SKOPEO_LAYERS:=1M,2M,3M}"
      shift ;;
    --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*=*) key=${1%%=*}; key=${key#--}; key=$(echo "${key//-/_}" | tr a-z A-Z)
      printf -v "$key" '%s' "${1#*=}"; export "${key?}"; shift ;;
    --*) [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 2; }
      key=${1#--}; key=$(echo "${key//-/_}" | tr a-z A-Z)
      printf -v "$key" '%s' "$2"; export "${key?}"; shift 2 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

: "${REPS:=3}" "${WRK_DURATION:=5s}" "${BLOB_MB:=100}" "${BLOB_CONNS:=4 32}" "${TAG_CONNS:=64}"
: "${SF_MB:=64}" "${SF_CLIENTS:=16 64}" "${IMAGE_MB:=200}" "${IMAGE_LAYERS:=4}"
: "${PULL_CLIENTS:=32}" "${BIG_MB:=1024}" "${TTFB_RATE_MB:=50}" "${RSS_CLIENTS:=16}"
: "${MANIFESTS:=10000}" "${SKOPEO_LAYERS:=8M,16M,24M}" "${UPSTREAM_RATE_MB:=0}"
: "${BASE_PORT:=15100}" "${WORK_DIR:=/var/tmp/ociregistry-bench}" "${OUT:=BENCHMARKS.md}"
: "${NOTE:=}" "${SKIP_BUILD:=0}" "${SKIP_INSTALL:=0}" "${KEEP_WORK:=0}"
: "${CARGO_TARGET_DIR:=$REPO_DIR/target}"

P_UPSTREAM=$BASE_PORT
P_WAN=$((BASE_PORT + 1))
P_TTFB=$((BASE_PORT + 2))
P_PEER=$((BASE_PORT + 3))
P_STATIC=$((BASE_PORT + 4))
P_OURS=$((BASE_PORT + 5))
UP=http://127.0.0.1:$P_UPSTREAM
OURS=http://127.0.0.1:$P_OURS
PEER=http://127.0.0.1:$P_PEER
STATIC=http://127.0.0.1:$P_STATIC
BIN=$CARGO_TARGET_DIR/release/ociregistry
W=$WORK_DIR
PIDS=$W/pids
LOGS=$W/logs
RESULTS=$W/results.tsv
COMMANDS=$W/commands.md
UP_LOG=$LOGS/upstream.log
MANIFEST_TYPES="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

say() { printf '\n== %s\n' "$*" >&2; }
load() { python3 "$BENCH_DIR/load.py" "$@"; }
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval("v"+sys.argv[2]))' "$1" "$2"; }

# record KEY JSON: one raw result (report.py computes medians and ratios)
record() { printf '%s\t%s\n' "$1" "$2" >> "$RESULTS"; }

# command TITLE CMD: the command line of a measure, quoted in the report once
command_note() {
  grep -qxF "### $1" "$COMMANDS" 2>/dev/null && return 0
  printf '### %s\n\n```\n%s\n```\n\n' "$1" "$2" >> "$COMMANDS"
}

# ---------------------------------------------------------------- processes

# start NAME CMD...: runs CMD in its own session, output to $LOGS/NAME.log, pid in $PIDS
start() {
  local name=$1; shift
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}

stop() {
  local f=$PIDS/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f"); rm -f "$f"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

cleanup() {
  local f
  for f in "$PIDS"/*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)"; done
  if [ "$KEEP_WORK" != 1 ] && [ -d "$W" ]; then rm -rf "$W"; fi
}

# wait_http URL: until URL answers 200 (10 s at most)
wait_http() {
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2; return 1
}

pid_of() { cat "$PIDS/$1.pid"; }

# ---------------------------------------------------------------- setup

install_missing() {
  local need=() tool pkg
  for pair in nginx:/usr/sbin/nginx wrk:wrk hyperfine:hyperfine docker-registry:docker-registry \
              skopeo:skopeo curl:curl python3:python3; do
    pkg=${pair%%:*}; tool=${pair#*:}
    command -v "$tool" > /dev/null 2>&1 || need+=("$pkg")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$SKIP_INSTALL" = 1 ] || [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]} (run as root to install them with apt-get)" >&2; exit 1
  fi
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
}

write_registry_config() { # FILE PORT STORAGE [REMOTE]
  {
    echo "version: 0.1"
    if [ -n "${4:-}" ]; then
      echo "log: {level: error, formatter: text, accesslog: {disabled: true}}"
    else
      echo "log: {level: info, formatter: text, accesslog: {disabled: false}}"
    fi
    echo "storage:"
    echo "  filesystem: {rootdirectory: $3}"
    echo "  cache: {blobdescriptor: inmemory}"
    echo "  delete: {enabled: true}"
    echo "http: {addr: 127.0.0.1:$2, secret: bench-secret}"
    [ -n "${4:-}" ] && echo "proxy: {remoteurl: $4}"
    true
  } > "$1"
}

write_nginx_config() {
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  mkdir -p "$W/nginx/tmp" "$W/www"
  cat > "$W/nginx/nginx.conf" <<EOF
$user_line
worker_processes auto;
pid $W/nginx/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $W/nginx/tmp/body;
  proxy_temp_path $W/nginx/tmp/proxy;
  fastcgi_temp_path $W/nginx/tmp/fastcgi;
  uwsgi_temp_path $W/nginx/tmp/uwsgi;
  scgi_temp_path $W/nginx/tmp/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$P_STATIC; root $W/www; }
  upstream registry { server 127.0.0.1:$P_UPSTREAM; keepalive 64; }
  server {
    listen 127.0.0.1:$P_WAN;
    client_max_body_size 0;
    location / {
      proxy_pass http://registry; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$http_host; proxy_max_temp_file_size 0;
      limit_rate $((UPSTREAM_RATE_MB * 1000000));  # 0: no limit
    }
  }
  server {
    listen 127.0.0.1:$P_TTFB;
    location / {
      proxy_pass http://registry; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$http_host; proxy_max_temp_file_size 0;
      limit_rate $((TTFB_RATE_MB * 1000000));
    }
  }
}
EOF
}

write_ours_config() { # FILE UPSTREAM_URL
  cat > "$1" <<EOF
logLevel: error
registries:
  - name: upstream.test
    scheme: http
    endpoint: $2
EOF
}

# The address ours and the peer fetch from (through the WAN link when UPSTREAM_RATE_MB > 0).
if [ "$UPSTREAM_RATE_MB" -gt 0 ]; then FETCH_FROM=http://127.0.0.1:$P_WAN; else FETCH_FROM=$UP; fi

start_ours() { # CACHE_DIR CONFIG [--fresh]
  stop ours
  if [ "${3:-}" = --fresh ]; then rm -rf "$1"; fi
  mkdir -p "$1"
  start ours "$BIN" --image-path "$1" --config-file "$2" serve --host 127.0.0.1 --port "$P_OURS"
  wait_http "$OURS/v2/"
}

start_peer() { # [--fresh]
  stop peer
  if [ "${1:-}" = --fresh ]; then rm -rf "$W/peer-storage"; fi
  mkdir -p "$W/peer-storage"
  start peer docker-registry serve "$W/conf/peer.yml"
  wait_http "$PEER/v2/"
}

# push_blob REPO FILE: monolithic upload to the upstream; prints the digest
push_blob() {
  local digest loc
  digest=sha256:$(sha256sum "$2" | cut -d' ' -f1)
  loc=$(curl -sf -X POST -D - -o /dev/null "$UP/v2/$1/blobs/uploads/" \
        | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  case "$loc" in http*) ;; *) loc=$UP$loc ;; esac
  curl -sf -T "$2" -H 'Content-Type: application/octet-stream' "$loc&digest=$digest" -o /dev/null
  echo "$digest"
}

# push_image REPO LAYERS PLATFORMS: generates an image with tests/support/gen_image.py and
# pushes it with skopeo; prints the generator's description
push_image() {
  local dir=$W/images/${1//\//-} desc
  desc=$(python3 "$REPO_DIR/tests/support/gen_image.py" --out "$dir" --tag latest \
         --layers "$2" --platforms "$3" --seed 7)
  skopeo copy --quiet --all --dest-tls-verify=false "oci:$dir:latest" "docker://127.0.0.1:$P_UPSTREAM/$1:latest" >&2
  rm -rf "$dir"
  echo "$desc"
}

random_file() { head -c "$(($2 * 1024 * 1024))" /dev/urandom > "$1"; }

# ---------------------------------------------------------------- measures

# wrk_run URL CONNS ACCEPT [PID...] -> JSON summary line; with PIDs, also the CPU time
# (user + system, from /proc/PID/stat) those server processes used during the run
wrk_run() {
  local url=$1 conns=$2 accept=$3 p out before after
  shift 3
  local pids=()
  for p in "$@"; do pids+=(--pid "$p"); done
  [ ${#pids[@]} -gt 0 ] && before=$(load cpu "${pids[@]}")
  out=$(ACCEPT=$accept wrk -t2 -c"$conns" -d"$WRK_DURATION" --timeout 60s -s "$BENCH_DIR/wrk-report.lua" "$url" \
    2>&1 | tee -a "$LOGS/wrk.log" | grep '^{' | tail -1)
  if [ ${#pids[@]} -gt 0 ] && [ -n "$out" ]; then
    after=$(load cpu "${pids[@]}")
    out=$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o["server_cpu_s"]=round(json.loads(sys.argv[3])["cpu_s"]-json.loads(sys.argv[2])["cpu_s"], 3); print(json.dumps(o))' "$out" "$before" "$after")
  fi
  echo "$out"
}

# the nginx master and its workers
nginx_pids() { local m; m=$(pid_of nginx); echo "$m" $(pgrep -P "$m"); }

measure_blob_throughput() {
  say "cached ${BLOB_MB} MB blob throughput (wrk, $BLOB_CONNS connections)"
  local conns
  local ours_url="$OURS/v2/upstream.test/bench/raw/blobs/$BLOB_DIGEST"
  local peer_url="$PEER/v2/bench/raw/blobs/$BLOB_DIGEST"
  curl -sf -o /dev/null "$ours_url"; curl -sf -o /dev/null "$peer_url"
  local hex=${BLOB_DIGEST#sha256:}
  for _ in $(seq 50); do [ -f "$W/ours-warm/blobs/$hex" ] && break; sleep 0.1; done
  # nginx serves our cached file itself (same inode, same page cache)
  ln -f "$W/ours-warm/blobs/$hex" "$W/www/blob.bin"
  sleep 1; curl -sf -o /dev/null "$peer_url"
  command_note "cached blob throughput" \
    "wrk -t2 -cN -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $STATIC/blob.bin
wrk -t2 -cN -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $peer_url
wrk -t2 -cN -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $ours_url
(N: each of $BLOB_CONNS)"
  for conns in $BLOB_CONNS; do
    for _ in $(seq "$REPS"); do
      # shellcheck disable=SC2046
      record "blob$conns.nginx" "$(wrk_run "$STATIC/blob.bin" "$conns" "" $(nginx_pids))"
      record "blob$conns.peer" "$(wrk_run "$peer_url" "$conns" "" "$(pid_of peer)")"
      record "blob$conns.ours" "$(wrk_run "$ours_url" "$conns" "" "$(pid_of ours)")"
    done
  done
}

measure_manifest_rps() {
  say "cached manifest GET by tag (wrk, $TAG_CONNS connections)"
  local ours_url="$OURS/v2/upstream.test/bench/three/manifests/latest"
  local peer_url="$PEER/v2/bench/three/manifests/latest"
  curl -sf -o /dev/null -H "Accept: $MANIFEST_TYPES" "$ours_url"
  curl -sf -o /dev/null -H "Accept: $MANIFEST_TYPES" "$peer_url"
  head -c 1024 /dev/urandom > "$W/www/1K.bin"
  command_note "cached manifest GET by tag" \
    "wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $STATIC/1K.bin
ACCEPT='<the four manifest media types>' wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $peer_url
ACCEPT='<the four manifest media types>' wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $ours_url"
  for _ in $(seq "$REPS"); do
    # shellcheck disable=SC2046
    record tag.nginx "$(wrk_run "$STATIC/1K.bin" "$TAG_CONNS" "" $(nginx_pids))"
    record tag.peer "$(wrk_run "$peer_url" "$TAG_CONNS" "$MANIFEST_TYPES" "$(pid_of peer)")"
    record tag.ours "$(wrk_run "$ours_url" "$TAG_CONNS" "$MANIFEST_TYPES" "$(pid_of ours)")"
  done
}

# A 1 KB blob (a config, a small layer: every image has some) against nginx's 1 KB file: the
# cost of a blob hit itself, not of its bytes.
measure_small_blob_rps() {
  say "cached 1 KB blob GET (wrk, $TAG_CONNS connections)"
  local ours_url="$OURS/v2/upstream.test/bench/raw/blobs/$SMALL_DIGEST"
  local peer_url="$PEER/v2/bench/raw/blobs/$SMALL_DIGEST"
  curl -sf -o /dev/null "$ours_url"; curl -sf -o /dev/null "$peer_url"
  local hex=${SMALL_DIGEST#sha256:}
  for _ in $(seq 50); do [ -f "$W/ours-warm/blobs/$hex" ] && break; sleep 0.1; done
  curl -sf -o /dev/null "$ours_url"
  command_note "cached 1 KB blob GET" \
    "wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $STATIC/1K.bin
wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $peer_url
wrk -t2 -c$TAG_CONNS -d$WRK_DURATION --timeout 60s -s benches/wrk-report.lua $ours_url"
  for _ in $(seq "$REPS"); do
    # shellcheck disable=SC2046
    record small.nginx "$(wrk_run "$STATIC/1K.bin" "$TAG_CONNS" "" $(nginx_pids))"
    record small.peer "$(wrk_run "$peer_url" "$TAG_CONNS" "" "$(pid_of peer)")"
    record small.ours "$(wrk_run "$ours_url" "$TAG_CONNS" "" "$(pid_of ours)")"
  done
}

measure_single_flight() {
  local n target url mark out count
  for n in $SF_CLIENTS; do
    say "$n clients on one cold ${SF_MB} MB blob"
    command_note "$n clients on one cold blob" \
      "python3 benches/load.py get --clients $n --url $OURS/v2/upstream.test/bench/raw/blobs/$SF_DIGEST
python3 benches/load.py get --clients $n --url $PEER/v2/bench/raw/blobs/$SF_DIGEST
python3 benches/load.py log --file <upstream access log> --from-line <mark> --digest $SF_DIGEST"
    for _ in $(seq "$REPS"); do
      for target in ours peer; do
        if [ $target = ours ]; then
          start_ours "$W/ours-cold" "$W/conf/ours.yml" --fresh
          url=$OURS/v2/upstream.test/bench/raw/blobs/$SF_DIGEST
        else
          start_peer --fresh
          url=$PEER/v2/bench/raw/blobs/$SF_DIGEST
        fi
        mark=$(jget "$(load lines --file "$UP_LOG")" '["lines"]')
        out=$(load get --clients "$n" --url "$url")
        sleep 1  # the upstream logs a request when it has sent the response
        count=$(load log --file "$UP_LOG" --from-line "$mark" --digest "$SF_DIGEST")
        record "sf$n.$target" "$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$out" "$count")"
      done
    done
  done
  stop peer
}

measure_concurrent_pull() {
  say "$PULL_CLIENTS clients pulling one cold ${IMAGE_MB} MB image"
  local args=(--base "$OURS" --name upstream.test/bench/pull --tag latest)
  command_note "concurrent pull of a cold image" \
    "python3 benches/load.py pull --clients 1 --base $OURS --name upstream.test/bench/pull --tag latest
python3 benches/load.py pull --clients $PULL_CLIENTS --base $OURS --name upstream.test/bench/pull --tag latest
(each on a server started with an empty cache; then once more from the warm cache)
python3 benches/load.py pull --clients $PULL_CLIENTS --base $STATIC --name upstream.test/bench/pull --tag latest
(nginx serving the same manifests and blobs as files at the same paths)"
  local nginx_pids=() p
  for p in $(pgrep -P "$(pid_of nginx)"); do nginx_pids+=(--server-pid "$p"); done
  for _ in $(seq "$REPS"); do
    start_ours "$W/ours-cold" "$W/conf/ours.yml" --fresh
    record pull.one "$(load pull --clients 1 "${args[@]}" --server-pid "$(pid_of ours)")"
    start_ours "$W/ours-cold" "$W/conf/ours.yml" --fresh
    record pull.many "$(load pull --clients "$PULL_CLIENTS" "${args[@]}" --server-pid "$(pid_of ours)")"
    record pull.many_warm "$(load pull --clients "$PULL_CLIENTS" "${args[@]}" --server-pid "$(pid_of ours)")"
    # the physical anchor: nginx serving the same files at the same paths
    [ -d "$W/www/v2" ] || load mirror "${args[@]}" --out "$W/www" > /dev/null
    record pull.many_nginx "$(load pull --clients "$PULL_CLIENTS" --base "$STATIC" \
      --name upstream.test/bench/pull --tag latest "${nginx_pids[@]}")"
  done
}

measure_ttfb() {
  say "time to first byte of a cold ${BIG_MB} MB layer behind a ${TTFB_RATE_MB} MB/s link"
  local direct=http://127.0.0.1:$P_TTFB/v2/bench/raw/blobs/$BIG_DIGEST
  local ours_url=$OURS/v2/upstream.test/bench/raw/blobs/$BIG_DIGEST
  command_note "time to first byte behind a slow link" \
    "python3 benches/load.py ttfb --url $direct
python3 benches/load.py ttfb --url $ours_url   (server started with an empty cache, upstream = the ${TTFB_RATE_MB} MB/s link)"
  # cheap and noisy (milliseconds): three times the repetitions
  for _ in $(seq $((REPS * 3))); do
    record ttfb.direct "$(load ttfb --url "$direct")"
    start_ours "$W/ours-cold" "$W/conf/ours-ttfb.yml" --fresh
    record ttfb.ours "$(load ttfb --url "$ours_url")"
  done
  stop ours
}

measure_peak_rss() {
  say "peak RSS while $RSS_CLIENTS clients pull a cold ${BIG_MB} MB blob"
  local url=$OURS/v2/upstream.test/bench/raw/blobs/$BIG_DIGEST out rss
  command_note "peak RSS during a cold pull" \
    "python3 benches/load.py get --clients $RSS_CLIENTS --url $url   (server started with an empty cache)
grep VmHWM /proc/<server pid>/status"
  for _ in $(seq "$REPS"); do
    start_ours "$W/ours-cold" "$W/conf/ours.yml" --fresh
    out=$(load get --clients "$RSS_CLIENTS" --url "$url")
    rss=$(load rss --pid "$(pid_of ours)")
    record rss.ours "$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' "$out" "$rss")"
  done
  stop ours
}

measure_startup() {
  say "start-up with $MANIFESTS cached manifests"
  local cache=$W/ours-startup gen last out
  gen=$(python3 "$BENCH_DIR/gen_manifests.py" --cache "$cache" --count "$MANIFESTS")
  last=$(jget "$gen" '["last_tag"]')
  local ready=$OURS/v2/upstream.test/bench/many/manifests/$last
  command_note "start-up with cached manifests" \
    "python3 benches/gen_manifests.py --cache CACHE --count $MANIFESTS
python3 benches/load.py startup --ready-url $ready -- \\
    target/release/ociregistry --image-path CACHE --config-file ours.yml serve --air-gapped --host 127.0.0.1 --port $P_OURS
(ready = the last generated tag answers 200; RSS read at that moment)"
  stop ours
  for _ in $(seq "$REPS"); do
    sync; sleep 0.5
    out=$(load startup --ready-url "$ready" --accept "$MANIFEST_TYPES" --log "$LOGS/ours-startup.log" -- \
          "$BIN" --image-path "$cache" --config-file "$W/conf/ours.yml" serve --air-gapped \
          --host 127.0.0.1 --port "$P_OURS")
    echo "$(jget "$out" '["pid"]')" > "$PIDS/ours.pid"
    stop ours
    record startup.ours "$out"
    rm -rf "$W/ours-empty"; mkdir -p "$W/ours-empty"
    out=$(load startup --ready-url "$OURS/v2/" --log "$LOGS/ours-startup.log" -- \
          "$BIN" --image-path "$W/ours-empty" --config-file "$W/conf/ours.yml" serve --air-gapped \
          --host 127.0.0.1 --port "$P_OURS")
    echo "$(jget "$out" '["pid"]')" > "$PIDS/ours.pid"
    stop ours
    record startup.empty "$out"
  done
}

measure_skopeo() {
  say "cold skopeo copy --all of a 3-layer image"
  local src_ours="docker://127.0.0.1:$P_OURS/upstream.test/bench/three:latest"
  local src_up="docker://127.0.0.1:$P_UPSTREAM/bench/three:latest"
  local copy="skopeo copy --quiet --all --src-tls-verify=false"
  export BENCH_INTERNAL_ENV=$W/internal.env
  declare -p W BIN P_OURS OURS PIDS LOGS > "$BENCH_INTERNAL_ENV"
  command_note "cold skopeo copy --all" \
    "hyperfine --runs $REPS --prepare 'rm -rf OUT' '$copy $src_up dir:OUT'
hyperfine --runs $REPS --prepare 'rm -rf OUT; <restart the server with an empty cache>' '$copy $src_ours dir:OUT'"
  stop ours
  hyperfine --runs "$REPS" --style basic --export-json "$W/skopeo-direct.json" \
    --prepare "rm -rf $W/copy-out" "$copy $src_up dir:$W/copy-out" >&2
  hyperfine --runs "$REPS" --style basic --export-json "$W/skopeo-ours.json" \
    --prepare "rm -rf $W/copy-out; $BENCH_DIR/run.sh --internal-restart-cold" \
    "$copy $src_ours dir:$W/copy-out" >&2
  record skopeo.direct "$(python3 -c 'import json,sys; print(json.dumps({"times": json.load(open(sys.argv[1]))["results"][0]["times"]}))' "$W/skopeo-direct.json")"
  record skopeo.ours "$(python3 -c 'import json,sys; print(json.dumps({"times": json.load(open(sys.argv[1]))["results"][0]["times"]}))' "$W/skopeo-ours.json")"
  stop ours
}

# ---------------------------------------------------------------- main

if [ -n "$INTERNAL" ]; then
  # hyperfine --prepare: restart the server with an empty cache (state from the main run)
  # shellcheck disable=SC1090
  . "$BENCH_INTERNAL_ENV"
  start_ours "$W/ours-cold" "$W/conf/ours.yml" --fresh
  exit 0
fi

describe_machine() {
  python3 - "$W/machine.json" <<'PY'
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:
        return "unknown (%s)" % e
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "unknown")
json.dump({
    "nproc": os.cpu_count(),
    "cpu": cpu,
    "memory": mem,
    "kernel": platform.release(),
    "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "busiest_start": sh("ps -eo pcpu,comm --sort=-pcpu --no-headers | grep -v ' ps$' | head -5"),
}, open(sys.argv[1], "w"))
PY
}

describe_versions() {
  {
    echo "ociregistry	$("$BIN" version 2>&1 | head -1) (commit $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "rustc	$(rustc --version 2>/dev/null || echo unknown)"
    echo "docker-registry	$(docker-registry --version 2>&1 | head -1)"
    echo "nginx	$(/usr/sbin/nginx -v 2>&1 | head -1)"
    echo "wrk	$(wrk -v 2>&1 | head -1)"
    echo "hyperfine	$(hyperfine --version 2>&1 | head -1)"
    echo "skopeo	$(skopeo --version 2>&1 | head -1)"
    echo "curl	$(curl --version 2>&1 | head -1)"
    echo "python3	$(python3 --version 2>&1)"
  } > "$W/versions.tsv"
}

install_missing
[ -d "$W" ] && rm -rf "$W"
mkdir -p "$PIDS" "$LOGS" "$W/conf" "$W/images" "$W/files"
: > "$RESULTS"; : > "$COMMANDS"
trap cleanup EXIT
trap 'exit 130' INT TERM
STARTED=$(date +%s)

if [ "$SKIP_BUILD" != 1 ]; then
  say "building the release binary"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --bin ociregistry)
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
describe_machine
describe_versions

say "starting the upstream, nginx and the peer on 127.0.0.1:$P_UPSTREAM-$P_OURS"
write_registry_config "$W/conf/upstream.yml" "$P_UPSTREAM" "$W/upstream-storage"
write_registry_config "$W/conf/peer.yml" "$P_PEER" "$W/peer-storage" "$FETCH_FROM"
write_nginx_config
write_ours_config "$W/conf/ours.yml" "$FETCH_FROM"
write_ours_config "$W/conf/ours-ttfb.yml" "http://127.0.0.1:$P_TTFB"
start upstream docker-registry serve "$W/conf/upstream.yml"
wait_http "$UP/v2/"
start nginx /usr/sbin/nginx -c "$W/nginx/nginx.conf" -g 'daemon off;'
wait_http "http://127.0.0.1:$P_WAN/v2/"
start_peer --fresh

say "generating test data (blobs ${BLOB_MB}/${SF_MB}/${BIG_MB} MB, images)"
random_file "$W/files/blob" "$BLOB_MB";  BLOB_DIGEST=$(push_blob bench/raw "$W/files/blob")
random_file "$W/files/sf" "$SF_MB";      SF_DIGEST=$(push_blob bench/raw "$W/files/sf")
random_file "$W/files/big" "$BIG_MB";    BIG_DIGEST=$(push_blob bench/raw "$W/files/big")
head -c 1024 /dev/urandom > "$W/files/small"; SMALL_DIGEST=$(push_blob bench/raw "$W/files/small")
rm -rf "$W/files"
layer_mb=$(python3 -c "print(max(1, $IMAGE_MB // $IMAGE_LAYERS))")
layers=$(python3 -c "print(','.join(['${layer_mb}M'] * $IMAGE_LAYERS))")
push_image bench/pull "$layers" linux/amd64 > "$W/images/pull.json"
push_image bench/three "$SKOPEO_LAYERS" linux/amd64,linux/arm64 > "$W/images/three.json"

record settings "$(python3 -c 'import json,sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' \
  "blob_mb=$BLOB_MB" "blob_conns=$BLOB_CONNS" "tag_conns=$TAG_CONNS" "sf_mb=$SF_MB" \
  "image_mb=$IMAGE_MB" "image_layers=$IMAGE_LAYERS" "pull_clients=$PULL_CLIENTS" "big_mb=$BIG_MB" \
  "ttfb_rate_mb=$TTFB_RATE_MB" "rss_clients=$RSS_CLIENTS" "manifests=$MANIFESTS" \
  "skopeo_layers=$SKOPEO_LAYERS" "upstream_rate_mb=$UPSTREAM_RATE_MB")"

start_ours "$W/ours-warm" "$W/conf/ours.yml" --fresh
measure_blob_throughput
measure_manifest_rps
measure_small_blob_rps
stop peer
measure_single_flight
measure_concurrent_pull
measure_ttfb
measure_peak_rss
measure_startup
measure_skopeo

ELAPSED=$(( $(date +%s) - STARTED ))
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m["loadavg_end"]=open("/proc/loadavg").read().split()[:3]; json.dump(m, open(sys.argv[1], "w"))' "$W/machine.json"
case "$OUT" in /*) OUT_PATH=$OUT ;; *) OUT_PATH=$REPO_DIR/$OUT ;; esac
say "writing $OUT_PATH"
python3 "$BENCH_DIR/report.py" --results "$RESULTS" --commands "$COMMANDS" \
  --machine "$W/machine.json" --versions "$W/versions.tsv" --out "$OUT_PATH" \
  --elapsed "$ELAPSED" --note "$NOTE" \
  --settings "REPS=$REPS WRK_DURATION=$WRK_DURATION BLOB_MB=$BLOB_MB BLOB_CONNS='$BLOB_CONNS' TAG_CONNS=$TAG_CONNS SF_MB=$SF_MB SF_CLIENTS='$SF_CLIENTS' IMAGE_MB=$IMAGE_MB IMAGE_LAYERS=$IMAGE_LAYERS PULL_CLIENTS=$PULL_CLIENTS BIG_MB=$BIG_MB TTFB_RATE_MB=$TTFB_RATE_MB RSS_CLIENTS=$RSS_CLIENTS MANIFESTS=$MANIFESTS SKOPEO_LAYERS=$SKOPEO_LAYERS UPSTREAM_RATE_MB=$UPSTREAM_RATE_MB"
say "done in ${ELAPSED}s"
