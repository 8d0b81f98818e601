#!/usr/bin/env python3
"""Load and timing helpers for benches/run.sh (Python 3 standard library only).

Every subcommand prints one JSON object on stdout.

  get      --url U --clients N [--accept A]
           N clients start together (barrier) and each GETs U to the end. Reports the wall
           time from the common start to the last byte, bytes per client and status codes.
  pull     --base http://HOST:PORT --name NAME --tag TAG --clients N [--arch amd64]
           [--server-pid P ...]
           N clients pull one image at once, the way a registry client does: the manifest by
           tag (OCI index or image manifest), the platform manifest, then the config and every
           layer in order, each read to the end and discarded. Reports the wall time, and the
           CPU time the clients and the server processes P used meanwhile.
  mirror   --base http://HOST:PORT --name NAME --tag TAG --out DIR
           Fetches an image the way `pull` does and writes every response under DIR at its
           URL path (DIR/v2/NAME/manifests/TAG, .../blobs/sha256:HEX), so that a static file
           server rooted at DIR answers the same pull.
  ttfb     --url U
           One GET; the time from sending the request to the first body byte, then hangs up.
  startup  --ready-url U [--accept A] -- COMMAND...
           Starts COMMAND, polls U until it answers 200 and reports the time that took and the
           process's VmRSS/VmHWM at that moment. Leaves the process running; its pid is in the
           output.
  rss      --pid P
           VmRSS and VmHWM of a running process, in KiB.
  log      --file F --from-line N --digest sha256:HEX
           GETs and HEADs of that blob in a docker-registry access log (combined log format)
           after line N, with the bytes the GETs sent.
  lines    --file F
           Number of lines in F (a mark for `log --from-line`).
  median   V [V...]
           The median of the numbers given.
"""

import argparse
import http.client
import json
import os
import resource
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
CHUNK = 1 << 20


def connect(url):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=600)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return conn, path


def drain(resp, buf):
    """Reads a response body to the end into a reused buffer; returns the byte count."""
    view = memoryview(buf)
    total = 0
    while True:
        n = resp.readinto(view)
        if not n:
            return total
        total += n


def get_once(conn, path, headers, buf):
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, drain(resp, buf)


def get_json(conn, path, headers):
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError("GET %s: %d %s" % (path, resp.status, body[:200]))
    return json.loads(body)


def run_together(n, work):
    """Runs work(i) in n threads released together; returns (wall seconds, results)."""
    barrier = threading.Barrier(n + 1)
    results = [None] * n
    finished = [0.0] * n

    def body(i):
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as e:  # reported, not raised: one failing client must not hang the rest
            results[i] = {"error": str(e)}
        finished[i] = time.monotonic()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    return max(finished) - start, results


def cmd_get(args):
    headers = {"Accept": args.accept} if args.accept else {}

    def work(_):
        conn, path = connect(args.url)
        buf = bytearray(CHUNK)
        status, size = get_once(conn, path, headers, buf)
        conn.close()
        return {"status": status, "bytes": size}

    wall, results = run_together(args.clients, work)
    errors = [r["error"] for r in results if "error" in r]
    return {
        "wall_s": wall,
        "clients": args.clients,
        "statuses": sorted({r.get("status") for r in results if "status" in r}),
        "bytes_per_client": sorted({r.get("bytes") for r in results if "bytes" in r}),
        "errors": errors[:3],
    }


def pull_image(base, name, tag, arch):
    conn, _ = connect(base)
    buf = bytearray(CHUNK)
    accept = {"Accept": MANIFEST_TYPES}
    top = get_json(conn, "/v2/%s/manifests/%s" % (name, tag), accept)
    manifest = top
    if "manifests" in top:
        chosen = next(
            (m for m in top["manifests"] if m.get("platform", {}).get("architecture") == arch),
            top["manifests"][0],
        )
        manifest = get_json(conn, "/v2/%s/manifests/%s" % (name, chosen["digest"]), accept)
    total = 0
    for blob in [manifest["config"]] + manifest["layers"]:
        status, size = get_once(conn, "/v2/%s/blobs/%s" % (name, blob["digest"]), {}, buf)
        if status != 200 or size != blob["size"]:
            raise RuntimeError("blob %s: status %d, %d of %d bytes" % (blob["digest"], status, size, blob["size"]))
        total += size
    conn.close()
    return {"bytes": total}


def cmd_mirror(args):
    conn, _ = connect(args.base)
    accept = {"Accept": MANIFEST_TYPES}
    root = os.path.join(args.out, "v2", args.name)

    def save(kind, ref, headers):
        conn.request("GET", "/v2/%s/%s/%s" % (args.name, kind, ref), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit("GET %s %s: %d" % (kind, ref, resp.status))
        os.makedirs(os.path.join(root, kind), exist_ok=True)
        with open(os.path.join(root, kind, ref), "wb") as out:
            out.write(body)
        return body

    top = json.loads(save("manifests", args.tag, accept))
    manifests = [top]
    for m in top.get("manifests", []):
        manifests.append(json.loads(save("manifests", m["digest"], accept)))
    blobs = 0
    for m in manifests:
        for blob in ([m["config"]] + m["layers"]) if "layers" in m else []:
            blobs += len(save("blobs", blob["digest"], {}))
    conn.close()
    return {"manifests": len(manifests), "blob_bytes": blobs}


def cpu_seconds(pid):
    """User plus system CPU time of a process (with its reaped children) so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cmd_pull(args):
    server_before = sum(cpu_seconds(p) for p in args.server_pid)
    clients_before = own_cpu_seconds()
    wall, results = run_together(args.clients, lambda _: pull_image(args.base, args.name, args.tag, args.arch))
    out = {
        "wall_s": wall,
        "clients": args.clients,
        "bytes_per_client": sorted({r.get("bytes") for r in results if "bytes" in r}),
        "errors": [r["error"] for r in results if "error" in r][:3],
        # Where the machine's CPU time went meanwhile: what the clients themselves needed
        # shows whether any server could have been faster on this machine.
        "clients_cpu_s": own_cpu_seconds() - clients_before,
        "cpus": os.cpu_count(),
    }
    if args.server_pid:
        out["server_cpu_s"] = sum(cpu_seconds(p) for p in args.server_pid) - server_before
    return out


def cmd_cpu(args):
    return {"cpu_s": sum(cpu_seconds(p) for p in args.pid)}


def cmd_ttfb(args):
    conn, path = connect(args.url)
    conn.connect()
    start = time.monotonic()
    conn.request("GET", path)
    resp = conn.getresponse()
    first = resp.read(1)
    ttfb = time.monotonic() - start
    conn.sock.close()
    return {"ttfb_s": ttfb, "status": resp.status, "got_byte": len(first) == 1}


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def cmd_rss(args):
    return proc_status(args.pid)


def cmd_startup(args):
    headers = {"Accept": args.accept} if args.accept else {}
    conn_target, path = connect(args.ready_url)
    host, port = conn_target.host, conn_target.port
    log = open(args.log, "ab") if args.log else subprocess.DEVNULL
    start = time.monotonic()
    proc = subprocess.Popen(args.command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = start + args.timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit("server exited with %d before it was ready" % proc.returncode)
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("not ready after %ss" % args.timeout)
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    out = {"ready_s": elapsed, "pid": proc.pid}
    out.update(proc_status(proc.pid))
    return out


LOG_LINE = re.compile(r'"(GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-)')


def cmd_log(args):
    gets = heads = sent = 0
    with open(args.file, errors="replace") as f:
        for number, line in enumerate(f):
            if number < args.from_line:
                continue
            m = LOG_LINE.search(line)
            if not m or not m.group(2).split("?")[0].endswith("/blobs/" + args.digest):
                continue
            if m.group(1) == "GET":
                gets += 1
                sent += int(m.group(4)) if m.group(4) != "-" else 0
            else:
                heads += 1
    return {"gets": gets, "heads": heads, "bytes": sent}


def cmd_lines(args):
    try:
        with open(args.file, "rb") as f:
            return {"lines": sum(1 for _ in f)}
    except FileNotFoundError:
        return {"lines": 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("get")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--accept")
    p = sub.add_parser("pull")
    p.add_argument("--base", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--arch", default="amd64")
    p.add_argument("--server-pid", type=int, action="append", default=[],
                   help="also report the CPU time of this process (repeatable)")
    p = sub.add_parser("mirror")
    p.add_argument("--base", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("ttfb")
    p.add_argument("--url", required=True)
    p = sub.add_parser("cpu", help="user plus system CPU seconds the processes used so far")
    p.add_argument("--pid", type=int, action="append", required=True)
    p = sub.add_parser("startup")
    p.add_argument("--ready-url", required=True)
    p.add_argument("--accept")
    p.add_argument("--log")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("rss")
    p.add_argument("--pid", type=int, required=True)
    p = sub.add_parser("log")
    p.add_argument("--file", required=True)
    p.add_argument("--from-line", type=int, default=0)
    p.add_argument("--digest", required=True)
    p = sub.add_parser("lines")
    p.add_argument("--file", required=True)
    p = sub.add_parser("median")
    p.add_argument("values", nargs="+", type=float)
    args = parser.parse_args()
    if args.cmd == "startup" and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if args.cmd == "median":
        print(statistics.median(args.values))
        return
    handler = {
        "get": cmd_get,
        "pull": cmd_pull,
        "mirror": cmd_mirror,
        "ttfb": cmd_ttfb,
        "cpu": cmd_cpu,
        "startup": cmd_startup,
        "rss": cmd_rss,
        "log": cmd_log,
        "lines": cmd_lines,
    }[args.cmd]
    json.dump(handler(args), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
