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
        return Response(str(os.getpid()), status=int(q.get("status", ["200"])[0]))
"""


def test_first_request_boots_then_warm(project, dev):
    d = dev(project(WORKER))
    first = d.get("/")
    assert first.status == 200
    assert first.timing()[0] == "boot"
    for _ in range(3):
        r = d.get("/")
        assert r.timing()[0] == "warm", r.headers.get("Server-Timing")
        assert r.text == first.text


def test_handler_duration_is_measured(project, dev):
    d = dev(project(WORKER))
    d.get("/")
    desc, start_ms, handler_ms = d.get("/?sleep=0.3").timing()
    assert desc == "warm"
    assert 290 <= handler_ms < 5000, handler_ms
    assert start_ms < 290, start_ms
    desc, _, handler_ms = d.get("/").timing()
    assert handler_ms < 290, handler_ms


def test_timing_on_non_200_responses(project, dev):
    d = dev(project(WORKER))
    r = d.get("/?status=404")
    assert r.status == 404
    assert r.timing()[0] in ("boot", "warm")


def test_idle_timeout_zero_boots_every_request(project, dev):
    d = dev(project(WORKER), "--idle-timeout", "0")
    descs = []
    for _ in range(3):
        r = d.get("/")
        assert r.status == 200
        descs.append(r.timing()[0])
    assert descs == ["boot", "boot", "boot"]


@pytest.mark.slow
def test_idle_instance_evicted_after_timeout(project, dev):
    d = dev(project(WORKER), "--idle-timeout", "1")
    assert d.get("/").timing()[0] == "boot"
    assert d.get("/").timing()[0] == "warm"
    time.sleep(2.5)
    assert d.get("/").timing()[0] == "boot"


def test_no_snapshot_boots(project, dev):
    d = dev(project(WORKER), "--no-snapshot")
    assert d.get("/").timing()[0] == "boot"
    assert d.get("/").timing()[0] == "warm"
