"""Scheduled handlers and cron triggers, with workers written as Cloudflare's Python docs show
them: `thaw dev --test-scheduled` fires one by hand at /__scheduled (and
/cdn-cgi/handler/scheduled), `thaw dev` and `thaw serve` run triggers.crons on their minute,
a run cold-starts from the snapshot, records and tail lines say how it went, and a host that
was down over a minute boundary logs the runs it missed instead of replaying them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from thawtest import THAW_BIN, ThawServe, require_snapshots, run_thaw, start_dev, write_project

CF_WORKER = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("fetch ok")

        async def scheduled(self, controller, env, ctx):
            print(f"scheduled cron={controller.cron} at={controller.scheduledTime} "
                  f"same={controller.scheduled_time == controller.scheduledTime} "
                  f"type={controller.type} var={env.GREETING}")
            if controller.cron == "fail":
                controller.no_retry()
                raise RuntimeError("the nightly job failed")
"""


def wrangler_project(root: Path, entry: str, crons, name="cron-worker") -> Path:
    write_project(root, entry, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "$schema": "node_modules/wrangler/config-schema.json",
        "name": name,
        "main": "src/entry.py",
        "compatibility_date": "2025-11-01",
        "compatibility_flags": ["python_workers"],
        "vars": {"GREETING": "hello"},
        "triggers": {"crons": crons},
    }, indent=2) + "\n")
    return root


def test_test_scheduled_runs_the_handler_by_hand(tmp_path):
    project = wrangler_project(tmp_path / "p", CF_WORKER, ["0 3 * * *"])
    dev = start_dev(project, "--test-scheduled")
    try:
        r = dev.get("/__scheduled?cron=*+*+*+*+*")
        assert r.status == 200 and r.text == "Ran scheduled event\n"
        dev.wait_for(r"scheduled cron=\* \* \* \* \* at=\d{13} same=True type=scheduled var=hello")
        r = dev.get("/cdn-cgi/handler/scheduled?cron=fail&time=1700000000000")
        assert r.status == 500 and "RuntimeError: the nightly job failed" in r.text
        dev.wait_for(r"scheduled cron=fail at=1700000000000")
        dev.wait_for(r"raise RuntimeError\(\"the nightly job failed\"\)")
        # The fetch handler is untouched, and without the flag /__scheduled is a request.
        assert dev.get("/").text == "fetch ok"
    finally:
        dev.stop()
    dev = start_dev(project)
    try:
        assert dev.get("/__scheduled?cron=x").text == "fetch ok"
    finally:
        dev.stop()


def test_scheduled_forms_fewer_parameters_and_module_level(tmp_path):
    """`scheduled(self)` gets nothing it did not ask for; the older module-level on_scheduled
    works; a worker with only a scheduled handler says so to a request."""
    one = write_project(tmp_path / "one", """
        from workers import WorkerEntrypoint
        class Default(WorkerEntrypoint):
            async def scheduled(self, controller):
                print("only-controller", controller.cron)
    """)
    dev = start_dev(one, "--test-scheduled")
    try:
        assert dev.get("/__scheduled?cron=5+4+*+*+*").status == 200
        dev.wait_for(r"only-controller 5 4 \* \* \*")
        r = dev.get("/")
        assert r.status == 500 and "has no fetch handler" in r.text
    finally:
        dev.stop()
    old = write_project(tmp_path / "old", """
        def on_scheduled(controller, env, ctx):
            print("module-level", controller.cron, env.MODE)
    """, vars={"MODE": "legacy"})
    dev = start_dev(old, "--test-scheduled")
    try:
        assert dev.get("/__scheduled?cron=1+1+*+*+*").status == 200
        dev.wait_for(r"module-level 1 1 \* \* \* legacy")
    finally:
        dev.stop()


def test_bad_cron_is_refused_naming_the_field(tmp_path):
    project = wrangler_project(tmp_path / "p", CF_WORKER, ["*/5 * * * *", "0 18 * * 8"])
    r = run_thaw("dev", project, "--port", "0", timeout=30)
    assert r.returncode != 0
    assert ("wrangler.jsonc: triggers.crons[1] '0 18 * * 8': day of week: 8 is out of range 1-7 "
            "(1 = Sunday)") in r.stderr
    token = tmp_path / "token"
    token.write_text("t\n")
    r = run_thaw("deploy", project, "--host", "http://127.0.0.1:9", "--token-file", token,
                 timeout=30)
    assert r.returncode != 0 and "triggers.crons[1] '0 18 * * 8': day of week" in r.stderr


def _wait_minute_boundary_passed(start_minute: int, timeout: float = 75.0) -> None:
    deadline = time.monotonic() + timeout
    while int(time.time() // 60) <= start_minute:
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.slow
def test_dev_runs_every_minute_trigger(tmp_path):
    project = wrangler_project(tmp_path / "p", CF_WORKER, ["* * * * *"])
    dev = start_dev(project)
    try:
        dev.wait_for(r"1 cron trigger \(UTC\)", stream="stderr")
        m = dev.wait_for(r"scheduled cron=\* \* \* \* \* at=(\d{13})", timeout=65)
        assert int(m.group(1)) % 60000 == 0  # the minute it was due
        dev.wait_for(r'\[cron-worker\] scheduled "\* \* \* \* \*" ok', timeout=10)
    finally:
        dev.stop()


@pytest.mark.slow
def test_serve_runs_trigger_from_snapshot_records_and_tails_it_and_skips_downtime(tmp_path):
    require_snapshots()
    project = wrangler_project(tmp_path / "p", CF_WORKER, ["* * * * *"])
    data = tmp_path / "host" / "data"
    # No instance is kept idle: the run must start one, from the snapshot.
    host = ThawServe(data, args=["--idle-timeout", "0"]).wait_ready()
    tail = None
    try:
        r = host.client("deploy", project)
        assert r.returncode == 0, r.stdout + r.stderr
        tail = subprocess.Popen([THAW_BIN, "tail", "cron-worker", "--json", "--host", host.control,
                                 "--token-file", host.token_file], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        host.wait_for(r"tail of cron-worker opened", stream="stderr")
        deadline = time.monotonic() + 65
        printed = record = None
        while time.monotonic() < deadline and not (printed and record):
            text = tail.stdout.readline()
            if not text.strip():
                continue
            line = json.loads(text)
            if line.get("stream") == "stdout" and "scheduled cron=" in line["message"]:
                printed = line
            if line.get("stream") == "cron":
                record = line
        assert printed and record, "no scheduled run within 65 s"
        assert record["outcome"] == "ok" and record["cron"] == "* * * * *"
        assert record["start"] == "snapshot"  # cold-started from the image, like a request
        assert record["request_id"] == printed["request_id"]
        assert record["scheduled"] % 60000 == 0
        runs = host.api("GET", "/v1/workers/cron-worker/crons").json()
        assert runs["triggers"] == ["* * * * *"]
        assert runs["runs"][0]["outcome"] == "ok" and runs["runs"][0]["duration_ms"] >= 0
        first_minute = runs["runs"][0]["scheduled"]
    finally:
        if tail:
            tail.kill()
            tail.wait()
        host.stop()
    # Down over at least one minute boundary: nothing is replayed, the gap is logged.
    down_minute = int(time.time() // 60)
    _wait_minute_boundary_passed(down_minute)
    host = ThawServe(data).wait_ready()
    try:
        host.wait_for(r'cron-worker: cron "\* \* \* \* \*": \d+ runs? due from .* while the host '
                      r"was down: not replayed", stream="stderr")
        runs = host.api("GET", "/v1/workers/cron-worker/crons").json()["runs"]
        assert runs[0]["outcome"] == "missed"
        ran = [x["scheduled"] for x in runs if x["outcome"] == "ok"]
        assert ran == [first_minute] or all(m <= first_minute for m in ran), runs
    finally:
        host.stop()


@pytest.mark.slow
def test_serve_stopping_during_a_run_records_it_and_exits_cleanly(tmp_path):
    # The run is an internal request in progress when the host stops: its owner is told
    # (the run is recorded, as error), nothing is left behind, and the host exits 0.
    project = wrangler_project(tmp_path / "p", """
        import asyncio
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("fetch ok")

            async def scheduled(self, controller, env, ctx):
                print("long run started", flush=True)
                await asyncio.sleep(600)
    """, ["* * * * *"])
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    try:
        r = host.client("deploy", project)
        assert r.returncode == 0, r.stdout + r.stderr
        host.wait_for(r"long run started", timeout=70)
        running = host.api("GET", "/v1/workers/cron-worker/crons").json()["running"]
        assert [x["cron"] for x in running] == ["* * * * *"]
    finally:
        host.stop()  # asserts exit 0 and no child left
    out = host.output()
    assert "ERROR: AddressSanitizer" not in out and "LeakSanitizer" not in out, out[-4000:]
    host = ThawServe(data).wait_ready()
    try:
        runs = host.api("GET", "/v1/workers/cron-worker/crons").json()["runs"]
        assert any(x["outcome"] == "error" for x in runs), runs
    finally:
        host.stop()


def test_a_worker_of_cron_triggers_only_deploys_and_says_why_requests_fail(tmp_path):
    project = wrangler_project(tmp_path / "p", """
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def scheduled(self, controller, env, ctx):
                print("nightly job", controller.cron)
    """, ["0 3 * * *"])
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        r = host.client("deploy", project)
        assert r.returncode == 0, r.stdout + r.stderr
        resp = host.worker_get("cron-worker")
        assert resp.status == 500 and "has no fetch handler" in resp.text
        crons = host.api("GET", "/v1/workers/cron-worker/crons").json()
        assert crons["triggers"] == ["0 3 * * *"]
    finally:
        host.stop()
