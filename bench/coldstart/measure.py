"""Client side of bench/coldstart: latency of requests that each need a new
instance, and PSS of a server's idle instances."""
import http.client
import json
import os
import re
import statistics
import sys
import time
import concurrent.futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import worker_children  # noqa: E402  (bench/procs.py)


def latency(port: int, n: int, gap: float) -> list[float]:
    out = []
    body = json.dumps({"name": "widget", "price": 10.0, "tags": ["a"]})
    for i in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        t0 = time.perf_counter()
        c.request("POST", "/items", body=body, headers={"content-type": "application/json"})
        r = c.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200 or b"widget" not in data:
            raise SystemExit(f"bad answer {r.status}: {data[:200]!r}")
        timing = r.getheader("server-timing") or ""
        if "desc=\"warm\"" in timing:
            raise SystemExit(f"request {i} hit a warm instance: {timing}")
        c.close()
        out.append(dt * 1000)
        time.sleep(gap)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def children_pss(pid: int) -> list[int]:
    """PSS (kB) of each instance of the host (blank pre-spawned spares are not instances)."""
    return [c["pss_kb"] for c in worker_children(pid) if not c["spare"]]


def fill(port: int, n: int) -> None:
    def one(_):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/sleep?ms=1500")
        r = c.getresponse()
        r.read()
        return r.status
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        codes = list(ex.map(one, range(n)))
    if any(c != 200 for c in codes):
        raise SystemExit(f"fill failed: {codes}")


STEPS = re.compile(
    r"restored in (?P<total>[0-9.]+) ms: INIT in transit (?P<init>[0-9.]+), setup (?P<setup>[0-9.]+), "
    r"checks (?P<checks>[0-9.]+), mapping (?P<mapping>[0-9.]+) \((?P<maps>\d+) mappings, "
    r"(?P<copied>\d+) pages read in\), populating (?P<populating>[0-9.]+) \((?P<pages>\d+) pages\), "
    r"Python (?P<python>[0-9.]+), READY in transit (?P<ready>[0-9.]+)")


def steps(log: str) -> None:
    """Medians of the restore steps `thaw dev -v` logged (restores after the first, which has
    no working set yet)."""
    rows = [m.groupdict() for m in map(STEPS.search, open(log, errors="replace")) if m][1:]
    if not rows:
        print("  (no restore steps in the log)")
        return
    med = {k: statistics.median(float(r[k]) for r in rows) for k in rows[0]}
    print(f"  steps, median of {len(rows)} restores (ms): INIT in transit {med['init']:.2f}, "
          f"setup {med['setup']:.2f}, checks {med['checks']:.2f}, mapping {med['mapping']:.2f} "
          f"({med['maps']:.0f} mappings, {med['copied']:.0f} pages read in), populating "
          f"{med['populating']:.2f} ({med['pages']:.0f} pages), Python {med['python']:.2f}, "
          f"READY in transit {med['ready']:.2f}; INIT to READY {med['total']:.2f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "latency":
        xs = latency(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        print(json.dumps({"n": len(xs), "p50": pct(xs, 50), "p95": pct(xs, 95),
                          "p99": pct(xs, 99), "mean": statistics.mean(xs)}))
    elif cmd == "steps":
        steps(sys.argv[2])
    elif cmd == "pss":
        port, pid, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        fill(port, n)
        time.sleep(1.0)
        kids = children_pss(pid)
        print(json.dumps({"instances": len(kids), "pss_kb": sum(kids)}))
