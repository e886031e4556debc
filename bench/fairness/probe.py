"""Client side of bench/fairness: the latency of a light worker's requests,
sent one at a time at a steady pace (not at saturation: the point is what
another worker's flood does to them). Prints one JSON line."""
import http.client
import json
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def main():
    port, host, n, gap = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    lat, bad = [], 0
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", "/", headers={"Host": host})
        r = c.getresponse()
        r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        bad += r.status != 200
        time.sleep(gap)
    print(json.dumps({"n": n, "bad": bad, "p50": round(pct(lat, 50), 2),
                      "p99": round(pct(lat, 99), 2), "max": round(max(lat), 2)}))


main()
