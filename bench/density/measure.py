"""Client side of bench/density (issue 13): requests to every worker, the
memory of a host's instances, the disk of its data directory, and the table.
Runs with Debian's /usr/bin/python3 beside the host, never as thaw.

  measure.py requests PORT NAMES OUT KIND...   one request of each KIND per
        worker, worker by worker (KIND: first, warm, cold); JSON lines to OUT
  measure.py pss HOSTPID                       the host's children: JSON
  measure.py disk DATADIR                      bytes by kind: JSON
  measure.py pagecache DATADIR                 page cache held by blobs: JSON
  measure.py vmstat | meminfo                  /proc/vmstat, /proc/meminfo: JSON
  measure.py report DIR                        the results table (stdout)
"""
import http.client
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import worker_children  # noqa: E402  (bench/procs.py)

MB = 1000 * 1000
MiB = 1024 * 1024


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def server_timing(v):
    """'start;desc="snapshot";dur=3.10, handler;dur=0.4' -> ("snapshot", 3.1)"""
    desc, dur = "?", None
    for part in (v or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if fields[0] != "start":
            continue
        for f in fields[1:]:
            if f.startswith("desc="):
                desc = f[5:].strip('"')
            elif f.startswith("dur="):
                dur = float(f[4:])
    return desc, dur


def requests(port, names_file, out, kinds):
    names = [line.strip() for line in open(names_file) if line.strip()]
    n = len(names)
    t_start = time.perf_counter()
    with open(out, "w") as f:
        for i, name in enumerate(names, 1):
            for kind in kinds:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                t0 = time.perf_counter()
                c.request("GET", f"/{name}/")
                r = c.getresponse()
                body = r.read()
                dt = (time.perf_counter() - t0) * 1000
                c.close()
                want = f"Hello from {name}!".encode()
                if r.status != 200 or body != want:
                    raise SystemExit(f"{name} ({kind}): {r.status} {body[:200]!r}")
                desc, start = server_timing(r.getheader("server-timing"))
                f.write(json.dumps({"name": name, "kind": kind, "ms": dt,
                                    "start": desc, "start_ms": start}) + "\n")
            if i % max(1, n // 10) == 0 or i == n:
                print(f"  {'/'.join(kinds)}: {i}/{n} workers "
                      f"({time.perf_counter() - t_start:.1f} s)", file=sys.stderr, flush=True)


def pss(host_pid):
    kids = worker_children(host_pid)
    with open(f"/proc/{host_pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{host_pid}/fd"))
    print(json.dumps({"host_rss_kb": rss, "host_fds": fds, "children": kids}))


def disk(data):
    """Allocated bytes (st_blocks) of the data directory, by kind; a file with
    several links is counted once (the sandbox links an image's .ws)."""
    db = sqlite3.connect(f"file:{data}/thaw.db?mode=ro", uri=True)
    rows = db.execute("SELECT id, worker, bundle, snapshot FROM versions "
                      "WHERE state = 'ready'").fetchall()
    seen = set()

    def size(path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return 0, 0
        if (st.st_dev, st.st_ino) in seen:
            return 0, 0
        seen.add((st.st_dev, st.st_ino))
        return st.st_size, st.st_blocks * 512

    def tree(path):
        a = b = 0
        for root, dirs, files in os.walk(path):
            for x in dirs + files:
                s = size(os.path.join(root, x))
                a, b = a + s[0], b + s[1]
        return a, b

    kinds = {"bundle": [], "image": [], "working set": [], "unpacked version": []}
    for vid, worker, bundle, snap in rows:
        kinds["bundle"].append(size(f"{data}/blobs/{bundle}"))
        kinds["image"].append(size(f"{data}/blobs/{snap}") if snap else (0, 0))
        kinds["working set"].append(size(f"{data}/blobs/{snap}.ws") if snap else (0, 0))
        kinds["unpacked version"].append(tree(f"{data}/versions/{vid}"))
    # the whole directory, each file once: thaw.db, the sandbox's links, ...
    seen.clear()
    total = tree(data)
    print(json.dumps({"versions": len(rows),
                      "workers": len({r[1] for r in rows}),
                      "kinds": {k: {"apparent": [x[0] for x in v], "allocated": [x[1] for x in v]}
                                for k, v in kinds.items()},
                      "total_apparent": total[0], "total_allocated": total[1]}))


def pagecache(data):
    """Bytes of the page cache holding each kind of blob (fincore)."""
    import subprocess
    blobs = [os.path.join(data, "blobs", b) for b in os.listdir(os.path.join(data, "blobs"))]
    out = {"image": 0, "working set": 0, "bundle": 0}
    for i in range(0, len(blobs), 200):
        r = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,SIZE,FILE"]
                           + blobs[i:i + 200], capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            res, size, name = line.split(" ", 2)
            kind = "working set" if name.endswith(".ws") else "image" if int(size) > 65536 else "bundle"
            out[kind] += int(res)
    print(json.dumps(out))


def vmstat():
    with open("/proc/vmstat") as f:
        return {k: int(v) for k, v in (l.split() for l in f)}


def load_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def report(d):
    meta = json.load(open(f"{d}/meta.json"))
    n = meta["n"]
    dep = load_lines(f"{d}/deploys.jsonl")
    dk = json.load(open(f"{d}/disk.json"))
    first = [r for r in load_lines(f"{d}/pass1.jsonl") if r["kind"] == "first"]
    warm = [r for r in load_lines(f"{d}/pass1.jsonl") if r["kind"] == "warm"]
    cold = load_lines(f"{d}/pass2.jsonl")
    mem = json.load(open(f"{d}/alive.json"))
    insts = [c for c in mem["children"] if not c["spare"]]
    spares = [c for c in mem["children"] if c["spare"]]
    rows = []

    def ok(cond):
        return "met" if cond else "NOT met"

    def ms3(xs):
        return f"{pct(xs, 50):7.1f} {pct(xs, 90):7.1f} {pct(xs, 99):7.1f}"

    def row(label, fig, target="", verdict=""):
        rows.append((label, fig, target, verdict))

    # -- deploys
    solo = [r["ms"] for r in dep if r["solo"]]
    par = [r["ms"] for r in dep if not r["solo"]]
    alld = [r["ms"] for r in dep]
    build = [r["build_ms"] for r in dep if r.get("build_ms") is not None]
    restore = [r["restore_ms"] for r in dep if r.get("restore_ms") is not None]
    row("deploy, end to end (p50 p90 p99 ms)", "", "", "")
    if solo:
        row(f"  one at a time ({len(solo)} workers)", ms3(solo), "p50 <= 150 ms",
            ok(pct(solo, 50) <= 150))
    if par:
        row(f"  {meta['jobs']} at a time ({len(par)} workers)", ms3(par), "p50 <= 150 ms",
            ok(pct(par, 50) <= 150))
    row(f"  all {len(alld)}", ms3(alld))
    if build:
        row("  of which snapshot build (host's figure)", ms3(build))
    if restore:
        row("  of which validation restore (host's)", ms3(restore))
    row("  wall time, all deploys", f"{meta['deploy_wall_s']:.1f} s "
        f"({meta['deploy_wall_s'] / n * 1000:.0f} ms per worker)")
    # -- disk
    kinds = dk["kinds"]
    per = {k: sum(v["allocated"]) / max(1, n) for k, v in kinds.items()}
    tot = dk["total_allocated"] / max(1, n)
    row("disk per worker (allocated, MB = 10^6 B)", "")
    for k, v in per.items():
        app = sum(kinds[k]["apparent"]) / max(1, n)
        row(f"  {k}", f"{v / MB:9.3f} MB  (apparent {app / MB:.3f} MB)")
    row("  blobs (bundle + image + working set)",
        f"{(per['bundle'] + per['image'] + per['working set']) / MB:9.3f} MB",
        "<= 2 MB", ok(per['bundle'] + per['image'] + per['working set'] <= 2 * MB))
    row("  whole data directory / N", f"{tot / MB:9.3f} MB  "
        f"({dk['total_allocated'] / 1e9:.2f} GB in all)", "<= 2 MB", ok(tot <= 2 * MB))
    # -- requests
    fp50, cp50 = pct([r["ms"] for r in first], 50), pct([r["ms"] for r in cold], 50)
    row("after a host restart, page cache dropped (p50 p90 p99 ms)", "")
    row(f"  first request ({len(first)} workers)", ms3([r["ms"] for r in first]))
    row("    of which starting the instance (host's)",
        ms3([r["start_ms"] for r in first if r["start_ms"] is not None]))
    row(f"  warm request right after", ms3([r["ms"] for r in warm]))
    v0, v1 = meta["vmstat_before"], meta["vmstat_after"]
    row("  reclaim during the first requests (pages)",
        "scanned %d, stolen %d, file refaults %d" % tuple(
            v1.get(k, 0) - v0.get(k, 0) for k in ("pgscan_file", "pgsteal_file",
                                                  "workingset_refault_file")))
    tenths = [pct([r["ms"] for r in first[i * len(first) // 10:(i + 1) * len(first) // 10]], 50)
              for i in range(10)] if len(first) >= 10 else []
    if tenths:
        row("  first request p50 by tenth of the pass", " ".join(f"{x:.0f}" for x in tenths))
    row("with every instance killed, one more request each", "")
    row(f"  steady-state cold start ({len(cold)})", ms3([r["ms"] for r in cold]))
    row("    of which starting the instance (host's)",
        ms3([r["start_ms"] for r in cold if r["start_ms"] is not None]))
    row("  first-use p50 / steady-state cold p50", f"{fp50 / cp50:7.2f}x",
        "<= 1.5x", ok(fp50 / cp50 <= 1.5))
    # -- memory
    pk = [c["pss_kb"] * 1024 for c in insts]
    row(f"memory, {len(insts)} instances alive and idle", "")
    row("  PSS per instance (p50 p90 p99 MB)",
        f"{pct(pk, 50) / MB:7.2f} {pct(pk, 90) / MB:7.2f} {pct(pk, 99) / MB:7.2f}",
        "<= 3 MB", ok(pct(pk, 50) <= 3 * MB))
    pa = sum(c["pss_anon_kb"] for c in insts) * 1024 / max(1, len(insts))
    pf = sum(c["pss_file_kb"] for c in insts) * 1024 / max(1, len(insts))
    row("    mean: anonymous + file", f"{pa / MB:7.2f} + {pf / MB:.2f} MB")
    scale = f" (4 GB x {n}/1000)" if n != 1000 else ""
    limit = 4e9 * n / 1000
    row("  PSS total", f"{sum(pk) / 1e9:7.2f} GB", f"<= {limit / 1e9:.2f} GB{scale}",
        ok(sum(pk) <= limit))
    drop = (meta["memavail_before_kb"] - meta["memavail_alive_kb"]) * 1024
    row("  MemAvailable drop vs before the requests", f"{drop / 1e9:7.2f} GB "
        f"({drop / max(1, len(insts)) / MB:.2f} MB per instance)",
        f"<= {limit / 1e9:.2f} GB{scale}", ok(drop <= limit))
    row("  host RSS (before the requests -> all alive)",
        f"{meta['host_rss_before_kb'] / 1024:.1f} -> {mem['host_rss_kb'] / 1024:.1f} MiB")
    row("  host's open files (all alive)", f"{mem['host_fds']}")
    pc = json.load(open(f"{d}/pagecache.json"))
    row("  page cache holding the images (all alive)", f"{pc['image'] / 1e9:7.2f} GB "
        f"({pc['image'] / max(1, n) / MB:.2f} MB per worker)")
    mi = meta["meminfo_alive_kb"]
    row("  MemFree / Cached / MemAvailable (all alive)",
        f"{mi['MemFree'] / 1e6:.2f} / {mi['Cached'] / 1e6:.2f} / {mi['MemAvailable'] / 1e6:.2f} GB")
    row("  blank spares beside them", f"{len(spares)} "
        f"({sum(c['pss_kb'] for c in spares) / 1024:.1f} MiB PSS)")

    w = max(len(r[0]) for r in rows)
    fw = max(len(r[1]) for r in rows)
    print(f"{'':{w}}  {'figure':{fw}}  {'target (issue 13)':30}  verdict")
    for label, fig, target, verdict in rows:
        print(f"{label:{w}}  {fig:{fw}}  {target:30}  {verdict}".rstrip())

    def starts(rs):
        c = {}
        for r in rs:
            c[r["start"]] = c.get(r["start"], 0) + 1
        return ", ".join(f"{v} {k}" for k, v in sorted(c.items()))
    print()
    print(f"how the instances started (Server-Timing): first {starts(first)}; "
          f"warm {starts(warm)}; after the kills {starts(cold)}")
    if len(insts) != n:
        print(f"NOTE: {len(insts)} instances found alive, not {n}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "requests":
        requests(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
    elif cmd == "pss":
        pss(int(sys.argv[2]))
    elif cmd == "pagecache":
        pagecache(sys.argv[2])
    elif cmd == "vmstat":
        print(json.dumps(vmstat()))
    elif cmd == "meminfo":
        with open("/proc/meminfo") as f:
            print(json.dumps({l.split(":")[0]: int(l.split()[1]) for l in f}))
    elif cmd == "disk":
        disk(sys.argv[2])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        raise SystemExit(__doc__)
