"""The host loop never blocks on work proportional to an image: while `thaw serve` takes in a
large snapshot, another worker's warm requests keep being answered.

Worker B's top level builds 768 MiB of touched, non-zero memory, so its snapshot image is that
big. When B's builder reports the image written, the host checks it, hashes it into the store and
fsyncs it (adopting the snapshot). Meanwhile a thread sends worker A (warm, tiny) one request
after another on a keep-alive connection, on a fixed schedule, and times each one, from the
moment B's bundle is sent until B's "live" stage line arrives (the image is adopted before
"built" today; "live" holds wherever the adoption ends up in the pipeline). If that work ran on
the loop, A would wait for all of it.

What fails a test is the loop's own account of itself: the host times every iteration of its
loop (thaw_loop_iteration_seconds on /metrics), and the tests read how many iterations of the
deploy's window went over a bound. A's latencies are printed, and bound only loosely: they also
hold whatever else the machine does to A's instance. On the CI's VM that once was a single
request of ~120 ms while the loop never spent over 30 ms in an iteration (perf sched: A's
instance itself ran ~80 ms of CPU for that one request; what it ran is not known).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
import time

import pytest

from thawtest import ThawServe, require_snapshots, run_thaw, write_project

HELLO = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("alpha")
"""

# Every 4 KiB page holds its own number (8 bytes, repeated): no page is zero and no two pages
# are alike, so every one is saved, checked and hashed. Filled in place (one page at a time) so
# that the builder holds the image once; no entropy at import (the build would refuse it).
PAGES = 3 << 16  # 768 MiB
BIG = f"""
    from workers import WorkerEntrypoint, Response

    BIG = bytearray({PAGES} * 4096)
    for i in range({PAGES}):
        BIG[i * 4096:(i + 1) * 4096] = i.to_bytes(8, "little") * 512

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(str(len(BIG)))
"""

# The bound, from measurement on the 2-core VM this was written on, a slot every 5 ms:
#   adoption on the loop (the code before issue 8), 1.6 GB image: p99 1,122-1,446 ms, max
#   1,212-1,541 ms over four runs: one stall of ~1.4 s as "built" comes; with this 820 MB image
#   p99 608 ms, max 623 ms;
#   adoption in a child (thaw adopt-snapshot), same 820 MB image, same run: p99 3.2 ms, max 7.1 ms
#   (the builder writing the image still competes for both cores).
# 250 ms sits far above the second and well below the first: a loop that verifies, hashes and
# fsyncs the image itself fails unless it does all of it at over ~3 GB/s; one that leaves it to a
# child passes unless the machine stalls A for 250 ms over 1 % of a few seconds.
P99_BOUND_MS = 250.0
# The loop itself: verifying, hashing and fsyncing 820 MB takes one iteration well over a second
# on this VM; no iteration of the loop that leaves it to a child has been seen over 35 ms.
LOOP_BOUND_S = 0.25


def pack(project, dest):
    r = run_thaw("pack", project, dest)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest.read_bytes()


def deploy_stream(host, name, bundle, on_line, timeout=300):
    """POST the bundle to the control API and call on_line(obj) for each progress line as it
    arrives; returns the list of lines."""
    conn = http.client.HTTPConnection("127.0.0.1", host.control_port, timeout=timeout)
    lines = []
    try:
        conn.request("POST", f"/v1/workers/{name}/versions", body=bundle,
                     headers={"Authorization": f"Bearer {host.token}"})
        r = conn.getresponse()
        assert r.status == 200, (r.status, r.read())
        while True:
            raw = r.readline()
            if not raw:
                break
            if raw.strip():
                obj = json.loads(raw)
                lines.append(obj)
                on_line(obj)
    finally:
        conn.close()
    return lines


class Hammer:
    """Requests to one worker on one keep-alive connection, one at a time, on a schedule: one
    every INTERVAL_S. A request's latency counts from when it was due, not from when it could be
    sent, so a stall of S seconds shows as S / INTERVAL_S slow requests (not as one slow request
    among many fast ones, which a percentile would hide)."""

    INTERVAL_S = 0.005

    def __init__(self, host, name):
        self.conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
        self.headers = {"Host": f"{name}.localhost"}
        self.latencies = []  # ms, from when each request was due until its answer was read
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def get(self):
        self.conn.request("GET", "/", headers=self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def _run(self):
        due = time.perf_counter()
        try:
            while not self.stop.is_set():
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                status, body = self.get()
                done = time.perf_counter()
                if status != 200 or body != b"alpha":
                    self.errors.append((status, body[:200]))
                # Every slot that fell due while this request was out is answered now.
                while due <= done:
                    self.latencies.append((done - due) * 1000)
                    due += self.INTERVAL_S
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(120)
        self.conn.close()


def loop_histogram(host):
    """The host's loop iteration histogram from /metrics: {upper bound in s: cumulative count}."""
    r = host.api("GET", "/metrics")
    assert r.status == 200, (r.status, r.body[:300])
    counts = {}
    for line in r.body.decode().splitlines():
        if line.startswith("thaw_loop_iteration_seconds_bucket{le=\""):
            le = line.split('"')[1]
            counts[float("inf") if le == "+Inf" else float(le)] = int(line.split()[-1])
    assert counts and float("inf") in counts, r.body[:500]
    return counts


def iterations_over(before, after, seconds):
    """How many loop iterations between two histograms took longer than seconds (a bound of
    the histogram's)."""
    assert seconds in after, (seconds, sorted(after))
    inf = float("inf")
    return (after[inf] - after[seconds]) - (before[inf] - before[seconds])


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


@pytest.fixture
def host(tmp_path):
    require_snapshots()
    h = ThawServe(tmp_path / "host" / "data", ("--max-snapshot-mb", "1024"))
    h.wait_ready()
    yield h
    if h.alive():
        h.stop()
    shutil.rmtree(h.data, ignore_errors=True)  # 0.8 GB of snapshot
    os.sync()  # what is left to write back is this test's cost, not the next one's


@pytest.mark.slow
def test_warm_requests_keep_answering_while_a_large_snapshot_is_adopted(tmp_path, host):
    a = write_project(tmp_path / "alpha", HELLO, name="alpha")
    b = write_project(tmp_path / "bigone", BIG, name="bigone")
    # Its 768 MiB are far over the default memory limit (128 MiB, docs/limits.md).
    with open(b / "pyproject.toml", "a") as f:
        f.write("[tool.thaw.limits]\nmemory_mb = 3072\n")
    lines = deploy_stream(host, "alpha", pack(a, tmp_path / "a.tar.zst"), lambda _: None)
    assert lines[-1]["stage"] == "live", lines
    hammer = Hammer(host, "alpha")
    status, body = hammer.get()
    assert status == 200 and body == b"alpha", (status, body)

    bundle = pack(b, tmp_path / "b.tar.zst")
    stages = {}

    def on_line(obj):
        stages[obj["stage"]] = time.monotonic()
        if obj["stage"] in ("live", "failed"):
            hammer.finish()

    loop_before = loop_histogram(host)
    hammer.start()
    t0 = time.monotonic()
    lines = deploy_stream(host, "bigone", bundle, on_line)
    hammer.finish()
    loop_after = loop_histogram(host)
    assert lines and lines[-1]["stage"] == "live", f"{lines}\n{host.output()[-3000:]}"
    [built] = [line for line in lines if line["stage"] == "built"]
    assert built["snapshot_bytes"] >= PAGES * 4096, built
    assert not hammer.errors, hammer.errors[:5]
    lat = hammer.latencies
    assert len(lat) >= 20, f"only {len(lat)} requests to alpha while bigone was built"
    p99, worst = percentile(lat, 99), max(lat)
    report = (f"{len(lat)} requests due to alpha in {stages['live'] - t0:.1f} s (bigone's "
              f"snapshot: {built['snapshot_bytes'] / 1e6:.0f} MB): "
              f"p50 {percentile(lat, 50):.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
    print(report)
    slow = iterations_over(loop_before, loop_after, LOOP_BOUND_S)
    assert slow == 0, (f"{slow} iterations of the host's loop took over {LOOP_BOUND_S * 1000:.0f} "
                       f"ms while it adopted a snapshot: {report}\n{host.output()[-2000:]}")
    assert p99 < P99_BOUND_MS, f"warm requests stalled while a snapshot was adopted: {report}"
    assert host.worker_get("bigone").text == str(PAGES * 4096)


# A bundle's upload is the other big file the host takes in: it must become durable (fsync)
# before a version names it, and that too is a helper child's work (the unpacker), not the loop's.
# Measured as above, a 336 MB bundle of incompressible bytes, from its upload to "live", three
# runs of each in one session on this VM (its disk writes back ~3 GB/s, so the fsync is short):
#   fsync on the loop (blob_commit, the code before): p99 94, 114, 100 ms; max 114, 139, 120 ms;
#   fsync in the unpacking child: p99 4.2, 3.9, 16.1 ms; max 9.8, 7.6, 29.1 ms.
# The bound is on the loop's iterations, which the host times itself: with the fsync on the loop
# one iteration holds all of it (110-135 ms above); without it, the longest iteration seen in
# this test was 30 ms (its wall time includes waiting for a CPU while the unpacker, the client
# and writeback share two cores). A slower disk only makes the code before fail by more.
# A's latencies get the loose bound of the snapshot test (see the top of the file).
UPLOAD_MB = 320
BUNDLE_LOOP_BOUND_S = 0.075


@pytest.fixture
def bighost(tmp_path):
    h = ThawServe(tmp_path / "host" / "data", ("--max-bundle-mb", "512"))
    h.wait_ready()
    yield h
    if h.alive():
        h.stop()
    shutil.rmtree(h.data, ignore_errors=True)
    os.sync()


@pytest.mark.slow
def test_warm_requests_keep_answering_while_a_large_bundle_is_stored(tmp_path, bighost):
    host = bighost
    a = write_project(tmp_path / "alpha", HELLO, name="alpha")
    b = write_project(tmp_path / "heavy", HELLO, name="heavy")
    for part in range(2):  # incompressible: the bundle is as big as the files
        with open(b / f"data{part}.bin", "wb") as f:
            for _ in range(UPLOAD_MB // 2):
                f.write(os.urandom(1 << 20))
    lines = deploy_stream(host, "alpha", pack(a, tmp_path / "a.tar.zst"), lambda _: None)
    assert lines[-1]["stage"] == "live", lines
    bundle = pack(b, tmp_path / "b.tar.zst")
    assert len(bundle) >= UPLOAD_MB << 20
    hammer = Hammer(host, "alpha")
    status, body = hammer.get()
    assert status == 200 and body == b"alpha", (status, body)

    def on_line(obj):
        if obj["stage"] in ("live", "failed"):
            hammer.finish()

    loop_before = loop_histogram(host)
    hammer.start()
    t0 = time.monotonic()
    lines = deploy_stream(host, "heavy", bundle, on_line)
    hammer.finish()
    loop_after = loop_histogram(host)
    assert lines and lines[-1]["stage"] == "live", f"{lines}\n{host.output()[-3000:]}"
    assert not hammer.errors, hammer.errors[:5]
    lat = hammer.latencies
    assert len(lat) >= 20, f"only {len(lat)} requests to alpha while heavy was deployed"
    p99, worst = percentile(lat, 99), max(lat)
    report = (f"{len(lat)} requests due to alpha in {time.monotonic() - t0:.1f} s (heavy's "
              f"bundle: {len(bundle) / 1e6:.0f} MB): p50 {percentile(lat, 50):.1f} ms, "
              f"p99 {p99:.1f} ms, max {worst:.1f} ms")
    print(report)
    slow = iterations_over(loop_before, loop_after, BUNDLE_LOOP_BOUND_S)
    assert slow == 0, (f"{slow} iterations of the host's loop took over "
                       f"{BUNDLE_LOOP_BOUND_S * 1000:.0f} ms while it stored a bundle: {report}\n"
                       f"{host.output()[-2000:]}")
    assert p99 < P99_BOUND_MS, f"warm requests stalled while a bundle was stored: {report}"
