"""Many requests in flight in one instance; new instances only when no slot is free."""

import asyncio
import time

import httpx

SLEEPER = """
import asyncio
import os
from urllib.parse import urlparse, parse_qs
from workers import WorkerEntrypoint, Response

IN_FLIGHT = 0
PEAK = 0


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        global IN_FLIGHT, PEAK
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        IN_FLIGHT += 1
        PEAK = max(PEAK, IN_FLIGHT)
        try:
            await asyncio.sleep(float(q.get("sleep", "0.1")))
        finally:
            IN_FLIGHT -= 1
        return Response.json({"id": q.get("id"), "pid": __import__("_thaw_runtime").host_pid(), "peak": PEAK})
"""


# What the 50 concurrent handlers each sleep. Run together they take ~HANDLER_S; one at a time
# 50 * HANDLER_S. The bound is a quarter of the latter, so a machine that is slow by seconds
# still passes, and only requests run (mostly) one after another fail.
HANDLER_S = 1.0


async def fire(base, n, sleep, timeout=30):
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as c:
        return await asyncio.gather(
            *(c.get(f"{base}/?id={i}&sleep={sleep}") for i in range(n))
        )


def test_fifty_concurrent_requests_share_one_instance(project, dev):
    d = dev(project(SLEEPER), "--max-instances", "1")
    warm = d.get("/?id=warm&sleep=0")
    assert warm.status == 200, f"{warm}\n{d.output()}"
    t0 = time.monotonic()
    responses = asyncio.run(fire(d.base, 50, HANDLER_S))
    elapsed = time.monotonic() - t0
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    data = [r.json() for r in responses]
    assert sorted(int(x["id"]) for x in data) == list(range(50)), "a request was lost or mixed up"
    assert all(r.json()["id"] == str(i) for i, r in enumerate(responses)), "answers mixed up"
    assert len({x["pid"] for x in data}) == 1, "more than one instance despite --max-instances 1"
    assert max(x["peak"] for x in data) > 1, "the instance ran the requests one at a time"
    serial = 50 * HANDLER_S
    assert elapsed < serial / 4, (
        f"50 x {HANDLER_S} s handlers took {elapsed:.2f}s (one at a time: {serial:.0f}s): "
        "not concurrent")


def test_sequential_requests_reuse_the_warm_instance(project, dev):
    d = dev(project(SLEEPER), "--max-instances", "4")
    pids = {d.get("/?sleep=0").json()["pid"] for _ in range(5)}
    assert len(pids) == 1, f"sequential requests were spread over instances {pids}"


def test_new_instance_only_when_no_free_slot(project, dev):
    d = dev(project(SLEEPER), "--max-instances", "3", "--concurrency", "1")
    responses = asyncio.run(fire(d.base, 3, 1.0))
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) == 3, (
        f"3 concurrent requests with --concurrency 1 ran on instances {pids}, expected 3")
    assert all(r.json()["peak"] == 1 for r in responses), "an instance exceeded --concurrency 1"


def test_requests_wait_for_a_slot_when_instances_are_at_the_limit(project, dev):
    d = dev(project(SLEEPER), "--max-instances", "1", "--concurrency", "1")
    d.get("/?sleep=0")
    t0 = time.monotonic()
    responses = asyncio.run(fire(d.base, 3, 0.3))
    elapsed = time.monotonic() - t0
    assert [r.status_code for r in responses] == [200] * 3, [r.text for r in responses]
    assert len({r.json()["pid"] for r in responses}) == 1
    assert all(r.json()["peak"] == 1 for r in responses), "an instance exceeded --concurrency 1"
    assert elapsed >= 0.85, f"3 x 0.3 s one at a time took only {elapsed:.2f}s"
