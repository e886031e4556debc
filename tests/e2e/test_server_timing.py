"""Every dev response says how its instance was obtained (Server-Timing)."""

import time

import pytest

WORKER = """
import asyncio
import os
from urllib.parse import urlparse, parse_qs
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = parse_qs(urlparse(request.url).query)
        await asyncio.sleep(float(q.get("sleep", ["0"])[0]))
        return Response(str(__import__("_thaw_runtime").host_pid()), status=int(q.get("status", ["200"])[0]))
"""


def test_first_request_is_cold_then_warm(project, dev, start_mode):
    d = start_mode.settle(dev(project(WORKER), *start_mode.flags))
    first = d.get("/")
    assert first.status == 200
    first_desc, first_start_ms, _ = first.timing()
    assert first_desc in start_mode.first_descs(), first.headers.get("Server-Timing")
    for _ in range(3):
        r = d.get("/")
        desc, start_ms, _ = r.timing()
        assert desc == "warm", r.headers.get("Server-Timing")
        assert r.text == first.text
        if first_desc != "warm":
            # A warm request finds its instance at once; the first one waited for a boot or a
            # restore (tens of ms and ~1 ms at the least, against microseconds).
            assert start_ms < first_start_ms, (first.headers.get("Server-Timing"),
                                               r.headers.get("Server-Timing"))


def test_requests_boot_while_the_snapshot_builds(project, dev, snapshots):
    # A slow top level: the snapshot build takes >= 1.5 s, so a request sent right after
    # `Ready` cannot wait for it and boots an instance of its own.
    slow = WORKER.replace("from workers import",
                          "import time\ntime.sleep(1.5)\nfrom workers import")
    d = dev(project(slow), "--idle-timeout", "0")
    r = d.get("/")
    assert r.status == 200, r
    desc, start_ms, _ = r.timing()
    assert desc == "boot", r.headers.get("Server-Timing")
    assert start_ms >= 1400, f"a boot running a 1.5 s top level took {start_ms} ms"
    d.wait_snapshot()
    r = d.get("/")
    assert r.status == 200, r
    desc, restore_ms, _ = r.timing()
    assert desc == "snapshot", r.headers.get("Server-Timing")
    assert restore_ms < 1000, f"a restore re-ran the 1.5 s top level? ({restore_ms} ms)"


def test_handler_duration_is_measured(project, dev):
    d = dev(project(WORKER))
    d.get("/")
    desc, start_ms, handler_ms = d.get("/?sleep=0.3").timing()
    assert desc == "warm"
    assert 290 <= handler_ms < 5000, handler_ms
    assert start_ms < 290, start_ms
    desc, _, handler_ms = d.get("/").timing()
    assert desc == "warm"
    assert handler_ms < 290, handler_ms


def test_timing_on_non_200_responses(project, dev, start_mode):
    d = start_mode.settle(dev(project(WORKER), *start_mode.flags))
    r = d.get("/?status=404")
    assert r.status == 404
    assert r.timing()[0] in start_mode.first_descs(), r.headers.get("Server-Timing")
    again = d.get("/?status=404")
    assert again.status == 404
    assert again.timing()[0] == "warm", again.headers.get("Server-Timing")
    assert again.text == r.text, "a 404 is no reason to replace the instance"


def test_idle_timeout_zero_starts_an_instance_for_every_request(project, dev, start_mode):
    d = start_mode.settle(dev(project(WORKER), "--idle-timeout", "0", *start_mode.flags))
    descs, pids = [], set()
    for _ in range(3):
        r = d.get("/")
        assert r.status == 200
        descs.append(r.timing()[0])
        pids.add(r.text)
    assert descs == [start_mode.cold] * 3
    assert len(pids) == 3, f"--idle-timeout 0 reused an instance: {pids}"


@pytest.mark.slow
def test_idle_instance_evicted_after_timeout(project, dev, start_mode):
    # -v: the host logs "instance N: pid P ..." and "instance N: closed (idle)".
    d = start_mode.settle(dev(project(WORKER), "-v", "--idle-timeout", "1", *start_mode.flags))
    assert d.get("/").timing()[0] in start_mode.first_descs()
    r = d.get("/")
    last_answer = time.monotonic()
    assert r.timing()[0] == "warm"
    instance = d.wait_for(rf"instance (\d+): pid {r.text} ").group(1)
    d.wait_for(rf"instance {instance}: closed \(idle\)", timeout=10)
    idle = time.monotonic() - last_answer
    # Evicted by 2.5 s, as the request sent 2.5 s after the last one checked before; and not
    # long before the timeout (the lower bound leaves room for the answer's trip to us).
    assert 0.5 <= idle < 2.5, f"evicted {idle:.2f}s after its last request (--idle-timeout 1)"
    assert d.get("/").timing()[0] == start_mode.cold


def test_no_snapshot_boots(project, dev):
    d = dev(project(WORKER), "--no-snapshot")
    assert d.get("/").timing()[0] == "boot"
    assert d.get("/").timing()[0] == "warm"
