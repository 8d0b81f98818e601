#!/usr/bin/env bash
# Soak test, run by hand: 200 connections of mixed manifest and blob cache hits against the
# release binary for 10 minutes, on 127.0.0.1 only. Records the errors (must be 0) and the
# server's RSS over time (must stay flat) in the "Soak" section of BENCHMARKS.md.
#
# Usage: benches/soak.sh        settings as environment variables:
#   DURATION=10m   CONNS=200   THREADS=2   SAMPLE_S=10   PORT=15200
#   WORK_DIR=/var/tmp/ociregistry-soak   SKIP_BUILD=0
# Needs docker-registry, skopeo, wrk, curl and python3 (benches/run.sh installs them).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${DURATION:-10m} CONNS=${CONNS:-200} THREADS=${THREADS:-2} SAMPLE_S=${SAMPLE_S:-10}
PORT=${PORT:-15200} W=${WORK_DIR:-/var/tmp/ociregistry-soak} SKIP_BUILD=${SKIP_BUILD:-0}
UP_PORT=$((PORT + 1))
BIN=$REPO_DIR/target/release/ociregistry
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W"

[ "$SKIP_BUILD" = 1 ] || (cd "$REPO_DIR" && cargo build --release --quiet --bin ociregistry)

cat > "$W/upstream.yml" <<EOT
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/upstream}}
http: {addr: 127.0.0.1:$UP_PORT, secret: soak}
EOT
docker-registry serve "$W/upstream.yml" > "$W/upstream.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$UP_PORT/v2/" && break; sleep 0.1; done

# Two images: small layers (manifest-heavy traffic) and one of a few MiB (blob traffic).
desc=$W/images.json; : > "$desc"
for spec in "small:64K,256K" "large:4M"; do
  name=${spec%%:*} layers=${spec#*:}
  python3 "$REPO_DIR/tests/support/gen_image.py" --out "$W/img-$name" --tag v1 \
    --layers "$layers" --platforms linux/amd64,linux/arm64 --seed 11 > "$W/$name.json"
  skopeo copy --quiet --all --dest-tls-verify=false "oci:$W/img-$name:v1" \
    "docker://127.0.0.1:$UP_PORT/soak/$name:v1"
done

cat > "$W/config.yaml" <<EOT
logLevel: error
registries:
  - name: upstream.test
    scheme: http
    endpoint: http://127.0.0.1:$UP_PORT
EOT
"$BIN" --image-path "$W/cache" --config-file "$W/config.yaml" serve --host 127.0.0.1 \
  --port "$PORT" > "$W/server.log" 2>&1 & SERVER=$!; PIDS+=($SERVER)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done

# Every path once, so that the soak measures cache hits; the list mixes the kinds.
python3 - "$W" > "$W/paths" <<'PY'
import json, sys
w = sys.argv[1]
for name in ("small", "large"):
    d = json.load(open(f"{w}/{name}.json"))
    base = f"/v2/upstream.test/soak/{name}"
    print(f"{base}/manifests/v1")
    print(f"{base}/manifests/{d['index']['digest']}")
    for p in d["platforms"]:
        print(f"{base}/manifests/{p['manifest']}")
        print(f"{base}/blobs/{p['config']}")
        for layer in p["layers"]:
            print(f"{base}/blobs/{layer['digest']}")
PY
while read -r path; do
  curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$PORT$path" || { echo "warm-up failed: $path" >&2; exit 1; }
done < "$W/paths"

ulimit -n 65536 2>/dev/null || true
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
start_rss=$(rss)
( while kill -0 "$SERVER" 2>/dev/null; do echo "$(date +%s) $(rss)"; sleep "$SAMPLE_S"; done ) \
  > "$W/rss.log" & PIDS+=($!)
summary=$(PATHS=$W/paths wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s \
  -s "$BENCH_DIR/soak-paths.lua" "http://127.0.0.1:$PORT" | tail -n 1)
end_rss=$(rss)
kill -0 "$SERVER" || { echo "the server died during the soak" >&2; exit 1; }

report=$(python3 - "$W/rss.log" "$summary" "$start_rss" "$end_rss" <<'PY'
import json, sys
samples = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
s = json.loads(sys.argv[2])
t0 = samples[0][0] if samples else 0
kib = [r for _, r in samples]
rows = "\n".join(f"| {t - t0} | {r / 1024:.1f} |" for t, r in samples[:: max(1, len(samples) // 12)])
print(f"""| measure | value |
| --- | --- |
| requests | {s['requests']} in {s['seconds']} s ({s['rps']:.0f}/s) |
| latency p50 / p99 | {s['p50_ms']} ms / {s['p99_ms']} ms |
| socket errors | {s['socket_errors']} |
| non-2xx answers | {s['non_2xx']} |
| RSS at start / end of the soak | {int(sys.argv[3]) / 1024:.1f} MiB / {int(sys.argv[4]) / 1024:.1f} MiB |
| RSS min / max over the soak | {min(kib) / 1024:.1f} MiB / {max(kib) / 1024:.1f} MiB |

RSS over time (seconds since the start, MiB):

| s | RSS |
| --- | --- |
{rows}""")
PY
)
out=$REPO_DIR/BENCHMARKS.md
python3 - "$out" "$report" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DURATION" "$CONNS" <<'PY'
import sys, re, pathlib
path, report, when, duration, conns = sys.argv[1:]
p = pathlib.Path(path)
text = p.read_text() if p.exists() else "# Benchmarks\n"
section = (f"## Soak\n\n`benches/soak.sh` ({when}): {conns} connections of mixed manifest and "
           f"blob cache hits for {duration} (wrk), 2 images, 2 platforms each.\n\n{report}\n")
text = re.sub(r"## Soak\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
p.write_text(text)
PY
echo "$report"
