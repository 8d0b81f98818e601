#!/usr/bin/env bash
# User-space instructions per cached manifest hit and per small blob hit, ours against nginx
# serving a 1 KB file, as counted by callgrind: the same count on every run for the same binary
# and requests, whatever else the machine is doing, where requests per second on a shared 2-CPU machine vary by a
# third from one run to the next. Kernel work (the syscalls, TCP on loopback) is not counted.
#
# Each server runs under callgrind twice, once for FEW and once for MANY requests over one
# keep-alive connection from a Python client; the difference divided by MANY - FEW is the
# cost of one request, start-up and shutdown cancelled out. Ours serves the embedded
# hello-world (`serve --hello-world`) by tag, with the four manifest types in Accept, as the
# full bench asks, and its 286-byte config blob; nginx runs as one process. Every thread of
# the server is counted, the blocking pool's too.
#
# Usage: benches/hit-instructions.sh [BINARY...] (default: target/release/ociregistry, after
# `cargo build --release`); several binaries are measured one after another, to compare
# builds. Needs valgrind, nginx and python3. FEW=500 MANY=4500 BASE_PORT=26100 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
FEW=${FEW:-500}
MANY=${MANY:-4500}
BASE_PORT=${BASE_PORT:-26100}
[ $# -gt 0 ] || set -- target/release/ociregistry
for tool in valgrind nginx python3 curl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "needs $tool" >&2
    exit 1
  }
done
W=$(mktemp -d /var/tmp/ociregistry-hit-instructions.XXXXXX)
trap 'pkill -f "callgrind-out-file=$W/" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/www" "$W/nginx"
head -c 1024 /dev/urandom >"$W/www/1K.bin"

cat >"$W/client.py" <<'PY'
import http.client, sys
port, path, n, accept = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Accept": accept} if accept else {}
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
PY
TYPES="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

# Instructions callgrind counted in a server (started by "$@" on PORT) for N requests of PATH.
count() { # PORT PATH N ACCEPT STOP_SIGNAL COMMAND...
  local port=$1 path=$2 n=$3 accept=$4 sig=$5 out="$W/cg.$RANDOM"
  shift 5
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$W/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do
    curl -sf -o /dev/null ${accept:+-H "Accept: $accept"} "http://127.0.0.1:$port$path" && break
    sleep 0.2
  done
  python3 "$W/client.py" "$port" "$path" "$n" "$accept"
  kill "-$sig" "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"*
  rm -f "$out"*
}

per_hit() { # PORT PATH ACCEPT STOP_SIGNAL COMMAND...
  local few many
  few=$(count "$1" "$2" "$FEW" "$3" "$4" "${@:5}")
  many=$(count "$1" "$2" "$MANY" "$3" "$4" "${@:5}")
  echo $(((many - few) / (MANY - FEW)))
}

cat >"$W/nginx/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1;
$([ "$(id -u)" = 0 ] && echo "user root;")
pid $W/nginx/pid; error_log $W/nginx/error.log;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $W/nginx/b; proxy_temp_path $W/nginx/p; fastcgi_temp_path $W/nginx/f;
  uwsgi_temp_path $W/nginx/u; scgi_temp_path $W/nginx/s;
  server { listen 127.0.0.1:$BASE_PORT; root $W/www; }
}
NGINX
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
nginx=$(per_hit "$BASE_PORT" /1K.bin "" QUIT "$nginx_bin" -c "$W/nginx/nginx.conf")
echo "nginx 1 KB file: $nginx instructions per hit"
# The embedded image's amd64 config, a 286-byte blob: the cost of a blob hit itself.
config=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' \
  src/hello_world/manifest-amd64.json)
port=$BASE_PORT
for bin in "$@"; do
  port=$((port + 1))
  ours=$(per_hit "$port" /v2/docker.io/library/hello-world/manifests/latest "$TYPES" INT \
    "$bin" serve --hello-world --host 127.0.0.1 --port "$port")
  echo "$bin manifest by tag: $ours instructions per hit, $(python3 -c "print(f'{$ours / $nginx:.2f}')")x nginx"
  port=$((port + 1))
  ours=$(per_hit "$port" "/v2/docker.io/library/hello-world/blobs/$config" "" INT \
    "$bin" serve --hello-world --host 127.0.0.1 --port "$port")
  echo "$bin 286-byte blob: $ours instructions per hit, $(python3 -c "print(f'{$ours / $nginx:.2f}')")x nginx"
done
