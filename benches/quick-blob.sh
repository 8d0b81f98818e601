#!/usr/bin/env bash
# A quick check of cached-blob throughput, ours against nginx (sendfile) serving the same file,
# alternating, without the full bench: a 100 MB random blob put into a fresh cache directory,
# the release binary serving it air-gapped, `wrk -t2 -c4 -d5s` REPS times on each.
# Usage: benches/quick-blob.sh (after `cargo build --release`); needs nginx and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
BASE_PORT=${BASE_PORT:-25900}
W=${WORK_DIR:-/var/tmp/ociregistry-quick-blob}
rm -rf "$W"
mkdir -p "$W/cache/blobs" "$W/nginx"
head -c 100000000 /dev/urandom >"$W/blob.bin"
hex=$(sha256sum "$W/blob.bin" | cut -d' ' -f1)
cp "$W/blob.bin" "$W/cache/blobs/$hex"
cat >"$W/nginx/nginx.conf" <<NGINX
daemon off; pid $W/nginx/pid; error_log $W/nginx/error.log; worker_processes 2;
events { worker_connections 256; }
http {
  access_log off; sendfile on;
  client_body_temp_path $W/nginx/b; proxy_temp_path $W/nginx/p; fastcgi_temp_path $W/nginx/f;
  uwsgi_temp_path $W/nginx/u; scgi_temp_path $W/nginx/s;
  server { listen 127.0.0.1:$((BASE_PORT + 1)); root $W; }
}
NGINX
nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" &
nginx_pid=$!
target/release/ociregistry --image-path "$W/cache" serve --host 127.0.0.1 \
  --port $((BASE_PORT + 2)) --air-gapped >"$W/ours.log" 2>&1 &
ours_pid=$!
trap 'kill $nginx_pid $ours_pid 2>/dev/null || true; rm -rf "$W"' EXIT
sleep 2
ours="http://127.0.0.1:$((BASE_PORT + 2))/v2/upstream.test/x/blobs/sha256:$hex?ns=upstream.test"
static="http://127.0.0.1:$((BASE_PORT + 1))/blob.bin"
# The first request checks the blob found in the cache; the measure starts after it.
curl -sf -o /dev/null "$ours"
for _ in $(seq "$REPS"); do
  for who in nginx ours; do
    url=$static
    [ "$who" = ours ] && url=$ours
    echo "$who $(wrk -t2 -c4 -d5s --timeout 60s "$url" | awk '/Transfer\/sec/ {print $2}')"
  done
done
