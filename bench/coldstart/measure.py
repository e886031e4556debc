"""Client side of bench/coldstart: latency of requests that each need a new
instance, and PSS of a server's idle instances."""
import http.client
import json
import os
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


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "latency":
        xs = latency(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        print(json.dumps({"n": len(xs), "p50": pct(xs, 50), "p95": pct(xs, 95),
                          "p99": pct(xs, 99), "mean": statistics.mean(xs)}))
    elif cmd == "pss":
        port, pid, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        fill(port, n)
        time.sleep(1.0)
        kids = children_pss(pid)
        print(json.dumps({"instances": len(kids), "pss_kb": sum(kids)}))
