#!/usr/bin/env python3
"""Write BENCHMARKS.md from the raw results of benches/run.sh.

Every measure was repeated; the table shows medians and ratios of medians, all from the same
run. A section headed "## Analysis" in an existing report is kept (it is written by hand).
"""

import argparse
import datetime
import json
import statistics

MIB = 1024 * 1024
MB = 1000 * 1000


def load_results(path):
    results = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            key, _, raw = line.rstrip("\n").partition("\t")
            try:
                results.setdefault(key, []).append(json.loads(raw))
            except json.JSONDecodeError:
                results.setdefault(key, []).append({"error": "unparsable: " + raw[:200]})
    return results


def values(results, key, field):
    return [r[field] for r in results.get(key, []) if field in r]


def med(results, key, field):
    v = values(results, key, field)
    return statistics.median(v) if v else None


def med_per(results, key, field, unit):
    """Median over the runs of the server's CPU seconds per `unit` of `field` (per GB served,
    per 10k requests)."""
    v = [x["server_cpu_s"] / (x[field] / unit) for x in results.get(key, [])
         if "server_cpu_s" in x and x.get(field)]
    return statistics.median(v) if v else None


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%%.%df" % digits) % v
    return str(v)


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def verdict(ok):
    if ok is None:
        return "no data"
    return "met" if ok else "**missed**"


def cpu_note(r):
    """Where the CPU time of the concurrent pulls went: clients, server, and what was there."""
    parts = []
    for key, who in (("pull.many", "cold through us"), ("pull.many_warm", "warm through us"),
                     ("pull.many_nginx", "from nginx")):
        wall, cl, sv = (med(r, key, f) for f in ("wall_s", "clients_cpu_s", "server_cpu_s"))
        cpus = max(values(r, key, "cpus"), default=None)
        if None in (wall, cl, sv, cpus):
            continue
        parts.append("%s the clients used %s CPU-seconds and the server %s of the %s the machine "
                     "had in that time (%s CPUs × %s s)"
                     % (who, fmt(cl), fmt(sv), fmt(cpus * wall), cpus, fmt(wall)))
    if not parts:
        return ""
    return " CPU time during the %s-client pulls (medians): %s." % (
        max(values(r, "pull.many", "clients"), default="?"), "; ".join(parts))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--commands", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--versions", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--elapsed", type=int, default=0)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    r = load_results(args.results)
    machine = json.load(open(args.machine))
    versions = [line.rstrip("\n").split("\t", 1) for line in open(args.versions) if "\t" in line]
    s = r.get("settings", [{}])[0]
    mem_kib = machine.get("memory", "").split()[0]
    rows = []  # measure, compared with, target, ours, theirs, ratio, verdict

    # cached blob throughput, per connection count (keys blob<N>.ours, ...)
    blob_conns = sorted({int(k[4:].split(".")[0]) for k in r
                         if k.startswith("blob") and k.endswith(".ours")})
    for n in blob_conns:
        key = "blob%d." % n
        ours, nginx, peer = (med(r, key + k, "bytes_per_s") for k in ("ours", "nginx", "peer"))
        rn, rp = ratio(ours, nginx), ratio(ours, peer)
        rows.append([
            "cached %s MB blob throughput (wrk, %d connections), MB/s" % (s.get("blob_mb"), n), "nginx / peer", "≥ 1.0× nginx, ≥ 1× peer",
            fmt(ours and ours / MB, 0), "%s / %s" % (fmt(nginx and nginx / MB, 0), fmt(peer and peer / MB, 0)),
            "%s× / %s×" % (fmt(rn), fmt(rp)),
            verdict(None if rn is None or rp is None else rn >= 1.0 and rp >= 1.0),
        ])
    for n in blob_conns:
        ours, nginx = (med_per(r, "blob%d.%s" % (n, k), "bytes", 1e9) for k in ("ours", "nginx"))
        rn = ratio(ours, nginx)
        rows.append([
            "server CPU-seconds per GB served (the cached blob measure, %d connections)" % n, "nginx (sendfile)",
            "≤ 1.3× nginx", fmt(ours, 3), fmt(nginx, 3), "%s×" % fmt(rn),
            verdict(None if rn is None else rn <= 1.3),
        ])

    # manifest by tag
    ours, nginx, peer = (med(r, "tag." + k, "rps") for k in ("ours", "nginx", "peer"))
    rn, rp = ratio(ours, nginx), ratio(ours, peer)
    rows.append([
        "cached manifest GET by tag (wrk, %s connections), requests/s" % s.get("tag_conns"), "nginx 1 KB file / peer",
        "≥ 1.0× nginx, ≥ 30× peer", fmt(ours, 0), "%s / %s" % (fmt(nginx, 0), fmt(peer, 0)),
        "%s× / %s×" % (fmt(rn), fmt(rp)),
        verdict(None if rn is None or rp is None else rn >= 1.0 and rp >= 30),
    ])
    ours, nginx = (med_per(r, "tag." + k, "requests", 1e4) for k in ("ours", "nginx"))
    rn = ratio(ours, nginx)
    rows.append([
        "server CPU-seconds per 10k manifest hits by tag (the manifest measure)", "nginx 1 KB file",
        "—", fmt(ours, 3), fmt(nginx, 3), "%s×" % fmt(rn), "—",
    ])

    # a small blob: the cost of a blob hit itself
    ours, nginx, peer = (med(r, "small." + k, "rps") for k in ("ours", "nginx", "peer"))
    if ours is not None:
        rn, rp = ratio(ours, nginx), ratio(ours, peer)
        rows.append([
            "cached 1 KB blob GET (wrk, %s connections), requests/s" % s.get("tag_conns"), "nginx 1 KB file / peer",
            "—", fmt(ours, 0), "%s / %s" % (fmt(nginx, 0), fmt(peer, 0)),
            "%s× / %s×" % (fmt(rn), fmt(rp)), "—",
        ])
        ours, nginx = (med_per(r, "small." + k, "requests", 1e4) for k in ("ours", "nginx"))
        rows.append([
            "server CPU-seconds per 10k 1 KB blob hits (the small blob measure)", "nginx 1 KB file",
            "—", fmt(ours, 3), fmt(nginx, 3), "%s×" % fmt(ratio(ours, nginx)), "—",
        ])

    # single flight
    for key in sorted((k for k in r if k.startswith("sf") and k.endswith(".ours")), key=lambda k: int(k[2:-5])):
        n = key[2:-5]
        blob = max((b for x in r[key] for b in x.get("bytes_per_client", [])), default=None)
        og, ob = values(r, key, "gets"), values(r, key, "bytes")
        pg, pb = values(r, "sf%s.peer" % n, "gets"), values(r, "sf%s.peer" % n, "bytes")

        def show(g, b):
            if not g:
                return "n/a"
            return "%s GET, %s× bytes" % (
                "/".join(str(x) for x in g),
                "/".join(fmt(x / blob) for x in b) if blob else "?",
            )

        ok = None
        if og and blob:
            ok = all(g == 1 for g in og) and all(b == blob for b in ob)
        errors = [e for x in r[key] for e in x.get("errors", [])]
        rows.append([
            "%s clients on one cold %s MB blob: upstream GETs and bytes (every run)" % (n, s.get("sf_mb")), "peer",
            "exactly 1 GET, 1× bytes", show(og, ob), show(pg, pb),
            "%s× GETs" % fmt(ratio(statistics.median(og), statistics.median(pg)) if og and pg else None),
            verdict(ok) + (" (client errors: %s)" % errors[0] if errors else ""),
        ])

    # concurrent pull
    one, many, warm, static = (med(r, "pull." + k, "wall_s") for k in ("one", "many", "many_warm", "many_nginx"))
    clients = max(values(r, "pull.many", "clients"), default="?")
    rt = ratio(many, one)
    errors = [e for k in ("pull.one", "pull.many") for x in r.get(k, []) for e in x.get("errors", [])]
    rows.append([
        "%s clients pulling one cold %s MB image (%s layers) at once: wall time, s"
        % (clients, s.get("image_mb"), s.get("image_layers")), "one client alone",
        "≤ 1.3×", fmt(many), fmt(one), "%s×" % fmt(rt),
        verdict(None if rt is None else rt <= 1.3) + (" (client errors: %s)" % errors[0] if errors else ""),
    ])

    # ttfb
    ours, direct = med(r, "ttfb.ours", "ttfb_s"), med(r, "ttfb.direct", "ttfb_s")
    rt = ratio(ours, direct)
    rows.append([
        "time to first byte of a cold %s MB layer behind a %s MB/s upstream, ms"
        % (s.get("big_mb"), s.get("ttfb_rate_mb")), "the upstream directly",
        "≤ 1.5×", fmt(ours and ours * 1000, 1), fmt(direct and direct * 1000, 1), "%s×" % fmt(rt),
        verdict(None if rt is None else rt <= 1.5),
    ])

    # peak rss
    hwm = med(r, "rss.ours", "VmHWM")
    hwm_all = values(r, "rss.ours", "VmHWM")
    rows.append([
        "peak RSS (VmHWM) while %s clients pull a cold %s MB blob, MiB" % (s.get("rss_clients"), s.get("big_mb")), "—", "≤ 64 MiB",
        "%s (runs: %s)" % (fmt(hwm and hwm / 1024, 1), ", ".join(fmt(x / 1024, 1) for x in hwm_all)),
        "—", "—", verdict(None if hwm is None else hwm / 1024 <= 64),
    ])

    # start-up
    t, rss, peak = (med(r, "startup.ours", k) for k in ("ready_s", "VmRSS", "VmHWM"))
    t0, rss0 = med(r, "startup.empty", "ready_s"), med(r, "startup.empty", "VmRSS")
    rows.append([
        "start-up with %s cached manifests: time until the last tag is served, s; RSS / peak, MiB"
        % s.get("manifests"), "—",
        "≤ 1 s, ≤ 100 MiB",
        "%s s; %s / %s MiB" % (fmt(t, 3), fmt(rss and rss / 1024, 1), fmt(peak and peak / 1024, 1)),
        "empty cache: %s s; %s MiB" % (fmt(t0, 3), fmt(rss0 and rss0 / 1024, 1)), "—",
        verdict(None if t is None or peak is None else t <= 1.0 and peak / 1024 <= 100),
    ])

    # skopeo
    ours = statistics.median(r["skopeo.ours"][0]["times"]) if r.get("skopeo.ours") else None
    direct = statistics.median(r["skopeo.direct"][0]["times"]) if r.get("skopeo.direct") else None
    rt = ratio(ours, direct)
    rows.append([
        "cold `skopeo copy --all` of a 3-layer image (%s, 2 platforms), s" % s.get("skopeo_layers"), "direct from the upstream", "≤ 1.15×",
        fmt(ours, 3), fmt(direct, 3), "%s×" % fmt(rt), verdict(None if rt is None else rt <= 1.15),
    ])

    now = datetime.datetime.now().astimezone()
    load_start = " ".join(machine.get("loadavg_start", []))
    load_end = " ".join(machine.get("loadavg_end", []))
    # Only the load before the run tells of other work: the averages at the end are mostly the
    # run's own servers and load generators.
    start_load = float(machine.get("loadavg_start", ["0"])[0])
    busy = machine.get("nproc") and start_load > 0.5 * machine["nproc"]
    out = []
    out.append("# Benchmarks\n")
    out.append(
        "Written by `benches/run.sh` (see the README's *Benchmarks* section). Every server runs on "
        "this one machine on 127.0.0.1, and so do the load generators, which share its CPUs: "
        "absolute numbers say little, **ratios are only meaningful within one run**, and all "
        "figures below come from the same run. Each measure was repeated; the table shows "
        "medians and ratios of medians.\n"
    )
    out.append("- date: %s" % now.strftime("%Y-%m-%d %H:%M %Z"))
    out.append("- duration of the run: %d s" % args.elapsed)
    out.append("- settings: `%s`" % args.settings)
    if busy:
        out.append(
            "- **the machine was busy** (load average %s at the start, %s at the end, on %s "
            "CPUs): other work competed for the CPUs, which skews every number"
            % (load_start, load_end, machine["nproc"])
        )
    if args.note:
        out.append("- note: %s" % args.note)
    out.append("")
    out.append("## Machine\n")
    out.append("| | |\n| --- | --- |")
    out.append("| CPUs (nproc) | %s |" % machine.get("nproc"))
    out.append("| CPU model | %s |" % machine.get("cpu"))
    out.append("| memory | %s |" % ("%.1f GiB" % (int(mem_kib) / MIB) if mem_kib.isdigit() else machine.get("memory")))
    out.append("| OS, kernel | %s, %s |" % (machine.get("os"), machine.get("kernel")))
    out.append("| load average (1, 5, 15 min) at start / at end | %s / %s |" % (load_start, load_end))
    busiest = machine.get("busiest_start", "").replace("\n", "; ")
    out.append("| busiest processes at start (%%CPU) | %s |" % busiest)
    out.append("")
    out.append("## Versions\n")
    out.append("| | |\n| --- | --- |")
    for name, v in versions:
        out.append("| %s | %s |" % (name, v.replace("|", "/")))
    out.append("")
    out.append("## Results\n")
    out.append("| measure | compared with | target | ociregistry | compared | ratio | verdict |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(
        "The peer is Debian's `docker-registry` in proxy mode; nginx serves the very same blob "
        "file (a hard link to our cached copy) with `sendfile`, the physical anchor. Upstream "
        "GETs and bytes are counted in the upstream's access log. For the concurrent pull, the "
        "same %s clients pulling the image again from the warm cache took %s s, and from nginx "
        "serving the same files at the same paths %s s (medians): what serving alone costs on "
        "this machine.%s\n" % (clients, fmt(warm), fmt(static), cpu_note(r))
    )
    out.append("## Every run\n")
    out.append("Raw figures per repetition (`wrk`: bytes/s or requests/s, and the CPU time the server used "
               "during the run; times in seconds; RSS in KiB).\n")
    out.append("| result | runs |")
    out.append("| --- | --- |")
    pick = {
        "blob": "bytes_per_s", "tag": "rps", "small": "rps", "pull": "wall_s", "ttfb": "ttfb_s",
        "rss": "VmHWM", "startup": "ready_s",
    }
    for key in sorted(k for k in r if k != "settings"):
        prefix = key.split(".")[0]
        if prefix.startswith("blob"):  # blob<connections>
            prefix = "blob"
        if prefix.startswith("sf"):
            cells = ["%s GET, %s B, %.2f s" % (x.get("gets"), x.get("bytes"), x.get("wall_s", 0)) for x in r[key]]
        elif prefix == "skopeo":
            cells = [fmt(t, 3) for t in r[key][0].get("times", [])]
        elif prefix == "startup":
            cells = ["%.3f s, RSS %s KiB, peak %s KiB" % (x.get("ready_s", 0), x.get("VmRSS"), x.get("VmHWM")) for x in r[key]]
        else:
            field = pick.get(prefix)
            cells = [fmt(x.get(field), 3) if field in x else json.dumps(x)[:120] for x in r[key]]
            if prefix in ("blob", "tag", "small"):
                cells = ["%s, server CPU %s s" % (c, fmt(x["server_cpu_s"], 2)) if "server_cpu_s" in x else c
                         for c, x in zip(cells, r[key])]
        out.append("| %s | %s |" % (key, "; ".join(cells)))
    out.append("")
    out.append("## Commands\n")
    out.append(open(args.commands).read().rstrip() + "\n")

    kept = ""
    try:
        previous = open(args.out).read()
        at = previous.find("\n## Analysis")
        if at >= 0:
            kept = previous[at + 1:]
    except FileNotFoundError:
        pass
    text = "\n".join(out)
    if kept:
        text += "\n" + kept
    with open(args.out, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


if __name__ == "__main__":
    main()
