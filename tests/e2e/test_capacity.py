"""The host's room for instances (capacity.c, docs/limits.md "The host's memory and its fair
share"), end to end against `thaw serve` with several workers:

  * --max-instances: a cold start past it evicts the idle instance used least lately, whatever
    its worker; the evicted process is gone and the log says which limit;
  * with nothing idle, a cold start waits --queue-timeout and is answered 503 with Retry-After;
    one that waits while room comes (an instance going idle) is served;
  * --max-instances-per-worker: a worker's second instance is not started while the first one
    is busy, and another worker still gets one;
  * --max-memory: instances that grow past it make the host evict idle ones (least recently
    used first) while the busy ones serve on.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from thawtest import Background, Gate, ThawServe, snapshots_supported, wait_until, write_project

ENTRY = """
import asyncio
import json
import urllib.parse

from workers import Response, WorkerEntrypoint

import _thaw_runtime

HELD = []


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urllib.parse.urlsplit(request.url)
        q = dict(urllib.parse.parse_qsl(url.query))
        if "gate" in q:
            # Busy until the test says go (a socket of the test's).
            reader, writer = await asyncio.open_connection("127.0.0.1", int(q["gate"]))
            await reader.read(1)
            writer.close()
        if "mb" in q:
            block = bytearray(int(q["mb"]) << 20)
            block[::4096] = b"\\x01" * len(range(0, len(block), 4096))
            HELD.append(block)
        return Response(json.dumps({"pid": _thaw_runtime.host_pid(),
                                    "held_mb": sum(len(b) for b in HELD) >> 20}))
"""


def worker(tmp_path, name):
    return write_project(tmp_path / name, ENTRY, name=name)


def deploy(host, root):
    r = host.client("deploy", root, "--no-install")
    assert r.returncode == 0, r.stdout + r.stderr


def pid_of(host, name, path="/"):
    r = host.worker_get(name, path)
    assert r.status == 200, (r, host.output())
    return r.json()["pid"]


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] in "ZX"
    except FileNotFoundError:
        return True


def serve(tmp_path, *args):
    return ThawServe(tmp_path / "host" / "data", ["-v", "--idle-timeout", "600", *args]).wait_ready()


def test_a_cold_start_past_max_instances_evicts_the_least_recently_used_idle_instance(tmp_path):
    host = serve(tmp_path, "--max-instances", "2")
    try:
        for name in ("w1", "w2", "w3"):
            deploy(host, worker(tmp_path, name))  # the third deploy's restore evicts one
        p2 = pid_of(host, "w2")
        p3 = pid_of(host, "w3")
        mark = host.mark()
        p1 = pid_of(host, "w1")  # w2 was used least lately: it goes
        wait_until(lambda: gone(p2), what="w2's evicted instance to exit")
        out = host.output_since(mark)
        assert "w2" in out and "evicted" in out and "--max-instances" in out, out
        assert pid_of(host, "w3") == p3, "w3's instance was used after w2's: it stays"
        assert pid_of(host, "w1") == p1
        p2b = pid_of(host, "w2")  # now w3's is the oldest
        assert p2b != p2
        wait_until(lambda: gone(p3), what="w3's evicted instance to exit")
        assert not gone(p1) and not gone(p2b)
    finally:
        host.stop()


def full_host(tmp_path, queue_timeout):
    """A host of one instance at most, held busy by worker "busy" until gate.go(); worker
    "other" deployed beside it. Returns (host, gate, the busy request)."""
    host = serve(tmp_path, "--max-instances", "1", "--queue-timeout", str(queue_timeout))
    try:
        for name in ("busy", "other"):
            deploy(host, worker(tmp_path, name))
        gate = Gate()
        held = Background(host, f"/?gate={gate.port}", headers={"Host": "busy.localhost"})
        assert gate.wait_started(30), host.output()
    except BaseException:
        host.stop(check=False)
        raise
    return host, gate, held


def test_with_nothing_idle_a_cold_start_waits_then_gets_503_with_retry_after(tmp_path):
    host, gate, held = full_host(tmp_path, 1)
    try:
        t0 = time.monotonic()
        r = host.worker_get("other")
        waited = time.monotonic() - t0
        assert r.status == 503, r
        assert r.headers.get("Retry-After") == "1", r.headers
        assert "at capacity" in r.text, r.text
        assert waited >= 0.9, f"answered after {waited:.2f} s, before --queue-timeout"
        host.wait_for(r"refused \(503\): no room on the host")  # (read from its pipe)
        gate.go()
        assert held.join().status == 200
        # Room again (the busy one is idle, so it can be evicted): served.
        assert host.worker_get("other").status == 200
    finally:
        host.stop()


def test_a_deploy_to_a_full_host_is_validated_all_the_same(tmp_path):
    host, gate, held = full_host(tmp_path, 1)
    try:
        # Its build and its check are the operator's: they go past the host's room.
        deploy(host, worker(tmp_path, "new"))
        gate.go()
        assert held.join().status == 200
        assert host.worker_get("new").status == 200
    finally:
        host.stop()


def test_a_cold_start_that_waits_while_room_comes_is_served(tmp_path):
    host, gate, held = full_host(tmp_path, 60)
    try:
        mark = host.mark()
        waiting = Background(host, "/", headers={"Host": "other.localhost"})
        host.wait_for(r"other\S* waits for room on the host", start=mark)
        gate.go()
        assert held.join().status == 200
        r = waiting.join()
        assert r.status == 200, r
    finally:
        host.stop()


def test_one_worker_holds_at_most_its_share_and_others_still_start(tmp_path):
    host = serve(tmp_path, "--max-instances-per-worker", "1", "--concurrency", "1")
    try:
        for name in ("hog", "calm"):
            deploy(host, worker(tmp_path, name))
        gate = Gate()
        first = Background(host, f"/?gate={gate.port}", headers={"Host": "hog.localhost"})
        assert gate.wait_started(30), host.output()
        second = Background(host, "/", headers={"Host": "hog.localhost"})
        # Another worker starts and answers while hog's second request waits for hog's one.
        assert host.worker_get("calm").status == 200
        assert second.thread.is_alive(), "hog's second request was served by a second instance"
        gate.go()
        a, b = first.join(), second.join()
        assert a.status == b.status == 200
        assert a.json()["pid"] == b.json()["pid"], "hog got more than its one instance"
    finally:
        host.stop()


def test_instances_growing_past_max_memory_make_the_host_evict_idle_ones(tmp_path):
    if not snapshots_supported():
        pytest.skip("sanitizer build: ASan's shadow memory makes an instance several times "
                    "larger, and the figures below are for the release build")
    if not os.path.isdir("/sys/fs/cgroup/memory") and not os.path.exists(
            "/sys/fs/cgroup/memory.max"):
        pytest.skip("no memory cgroup on this machine")
    host = serve(tmp_path, "--max-memory", "300")
    try:
        for name in ("w1", "w2", "w3"):
            deploy(host, worker(tmp_path, name))
        p1 = pid_of(host, "w1", "/?mb=100")
        p2 = pid_of(host, "w2", "/?mb=100")
        mark = host.mark()
        # A third 100 MiB puts the three over 300 MiB: the least recently used idle one goes.
        p3 = pid_of(host, "w3", "/?mb=100")
        wait_until(lambda: gone(p1), what="w1's instance to be evicted")
        out = host.output_since(mark)
        assert "w1" in out and "evicted" in out and "--max-memory" in out, out
        assert not gone(p2) and not gone(p3)
        assert host.worker_get("w2").json() == {"pid": p2, "held_mb": 100}
    finally:
        host.stop()


def cpu_weight(pid):
    """The CPU weight of process pid's group, on cgroup v2's scale, or None without one."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, ctrls, path in lines:
        if "cpu" in ctrls.split(","):
            with open(f"/sys/fs/cgroup/{ctrls}{path}/cpu.shares") as g:
                return int(g.read()) * 100 // 1024
    for _, ctrls, path in lines:
        if ctrls == "" and os.path.exists(f"/sys/fs/cgroup{path}/cpu.weight"):
            with open(f"/sys/fs/cgroup{path}/cpu.weight") as g:
                return int(g.read())
    return None


def test_each_worker_weighs_the_same_for_cpu_whatever_its_instances(tmp_path):
    host = serve(tmp_path, "--max-instances-per-worker", "2", "--concurrency", "1")
    try:
        for name in ("hog", "calm"):
            deploy(host, worker(tmp_path, name))
        calm = pid_of(host, "calm")
        if cpu_weight(calm) is None:
            pytest.skip("no cpu cgroup controller on this machine")
        gates = [Gate(), Gate()]
        held = [Background(host, f"/?gate={g.port}", headers={"Host": "hog.localhost"})
                for g in gates]
        for g in gates:
            assert g.wait_started(30), host.output()
        # hog has two instances: each weighs half of calm's one.
        assert cpu_weight(calm) == 100
        for g in gates:
            g.go()
        pids = {b.join().json()["pid"] for b in held}
        assert len(pids) == 2, pids
        assert [cpu_weight(p) for p in sorted(pids)] == [50, 50]
    finally:
        host.stop()


SLOW_START = """
import json
import socket

from workers import Response, WorkerEntrypoint, register_after_restore

import _thaw_runtime


@register_after_restore
def wait_for_the_test():
    # Held while the test says so: this instance stays STARTING.
    s = socket.create_connection(("127.0.0.1", PORT))
    s.recv(1)
    s.close()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(json.dumps({"pid": _thaw_runtime.host_pid()}))
"""

STREAMING = """
import asyncio
import json
import urllib.parse

from workers import Response, WorkerEntrypoint


async def held(port):
    yield b"head sent; "
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.read(1)
    writer.close()
    yield b"done"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        if "gate" in q:
            return Response(held(int(q["gate"])))
        return Response("ok")
"""


class Switch:
    """A socket the test's after_restore hook connects to: answered at once while open,
    held while closed (until opened again)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.holding = False
        self.held = []
        self.nheld = threading.Semaphore(0)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                if self.holding:
                    self.held.append(conn)
                    self.nheld.release()
                    continue
            conn.sendall(b"g")
            conn.close()

    def hold(self):
        with self.lock:
            self.holding = True

    def release(self):
        with self.lock:
            self.holding = False
            held, self.held = self.held, []
        for c in held:
            c.sendall(b"g")
            c.close()


@pytest.mark.skipif(not snapshots_supported(), reason="after_restore hooks need snapshots")
def test_a_waiting_app_that_no_longer_needs_room_does_not_block_the_apps_behind_it(tmp_path):
    # slow waits first in line for a second instance while its first one is still starting;
    # then its pending requests drop to what that one will take (one timed out): it needs no
    # room any more. Room comes (busy's instance goes idle): other, behind it, gets it.
    switch = Switch()
    host = serve(tmp_path, "--max-instances", "2", "--concurrency", "1", "--timeout", "4",
                 "--queue-timeout", "2")
    try:
        deploy(host, write_project(tmp_path / "slow", SLOW_START.replace("PORT", str(switch.port)),
                                   name="slow"))
        deploy(host, write_project(tmp_path / "busy", STREAMING, name="busy"))
        deploy(host, worker(tmp_path, "other"))  # evicts slow's instance: the LRU idle one
        gate = Gate()
        streaming = Background(host, f"/?gate={gate.port}", headers={"Host": "busy.localhost"})
        assert gate.wait_started(30), host.output()
        switch.hold()
        first = Background(host, "/", headers={"Host": "slow.localhost"})  # evicts other's
        assert switch.nheld.acquire(timeout=30), host.output()  # slow's instance is starting
        time.sleep(2)
        mark = host.mark()
        second = Background(host, "/", headers={"Host": "slow.localhost"})
        host.wait_for(r"slow\S* waits for room on the host", start=mark)
        assert first.join().status == 504  # now slow's starting instance can take what waits
        mark = host.mark()
        waiting = Background(host, "/", headers={"Host": "other.localhost"})
        host.wait_for(r"other\S* waits for room on the host", start=mark)
        gate.go()  # busy's instance is idle: room for other
        assert streaming.join().status == 200
        r = waiting.join()
        assert r.status == 200, (r, host.output_since(mark))
        second.join()
    finally:
        switch.release()
        host.stop()


BIG = """
import asyncio
import json
import urllib.parse

from workers import Response, WorkerEntrypoint

import _thaw_runtime


async def gate(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.read(1)
    writer.close()


async def held(mb, first, second):
    block = bytearray(mb << 20)
    block[::4096] = b"\\x01" * len(range(0, len(block), 4096))
    yield b"holding; "
    await gate(first)
    del block
    yield b"freed; "
    await gate(second)
    yield b"done"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        if "mb" in q:
            return Response(held(int(q["mb"]), int(q["g1"]), int(q["g2"])))
        return Response(json.dumps({"pid": _thaw_runtime.host_pid()}))
"""


def test_memory_freed_by_a_busy_instance_is_room_for_a_waiting_cold_start(tmp_path):
    # No instance goes idle or away: the memory a busy one gives back is room all the same.
    if not snapshots_supported():
        pytest.skip("sanitizer build: ASan's shadow memory makes an instance several times "
                    "larger, and the figures below are for the release build")
    if not os.path.isdir("/sys/fs/cgroup/memory") and not os.path.exists(
            "/sys/fs/cgroup/memory.max"):
        pytest.skip("no memory cgroup on this machine")
    host = serve(tmp_path, "--max-memory", "300", "--queue-timeout", "5", "--max-limit",
                 "memory_mb=512")
    try:
        deploy(host, worker(tmp_path, "other"))
        big = write_project(tmp_path / "big", BIG, name="big")
        with open(big / "pyproject.toml", "a") as f:
            f.write("\n[tool.thaw.limits]\nmemory_mb = 400\n")
        deploy(host, big)
        p_other = pid_of(host, "other")
        g1, g2 = Gate(), Gate()
        streaming = Background(host, f"/?mb=290&g1={g1.port}&g2={g2.port}",
                               headers={"Host": "big.localhost"})
        assert g1.wait_started(30), host.output()
        wait_until(lambda: gone(p_other), what="other's idle instance to be evicted")
        mark = host.mark()
        waiting = Background(host, "/", headers={"Host": "other.localhost"})
        host.wait_for(r"other\S* waits for room on the host", start=mark)
        g1.go()  # big gives its 290 MiB back, and stays busy
        r = waiting.join()
        assert r.status == 200, (r, host.output_since(mark))
        assert g2.wait_started(30)
        g2.go()
        assert streaming.join().status == 200
    finally:
        host.stop()
