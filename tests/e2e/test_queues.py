"""Queues as Cloudflare's docs show them: a producer's send/send_batch, a consumer's
`async def queue(self, batch, env, ctx)` with explicit ack, a raise that retries what is not
acked, retries up to max_retries then the dead-letter queue, and a host killed mid-delivery
delivering the rest after its restart. The consumer records every delivery in D1."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from thawtest import ThawServe, start_dev, write_project

CONSUMER = """
import asyncio
from urllib.parse import urlparse, parse_qs
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = parse_qs(url.query)
        if url.path == "/setup":
            await self.env.DB.exec("CREATE TABLE IF NOT EXISTS deliveries "
                                   "(n INTEGER, attempts INTEGER, id TEXT, ok INTEGER)")
            return Response("ok")
        if url.path == "/send":
            a, b = int(q["from"][0]), int(q["to"][0])
            for start in range(a, b, 100):
                await self.env.JOBS.send_batch(
                    [{"body": {"n": i}} for i in range(start, min(b, start + 100))])
            return Response("sent")
        if url.path == "/send-one":
            await self.env.JOBS.send("hello", content_type="text")
            await self.env.JOBS.send(b"\\x00\\xff", content_type="bytes")
            return Response("sent")
        if url.path == "/bad":
            out = []
            for call in (lambda: self.env.JOBS.send("x" * 128001, content_type="text"),
                         lambda: self.env.JOBS.send({"a": 1}, delay_seconds=43201),
                         lambda: self.env.JOBS.send_batch([{"body": i} for i in range(101)])):
                try:
                    await call()
                    out.append("sent")
                except Exception as error:
                    out.append(f"{type(error).__name__}: {error}")
            return Response.json(out)
        if url.path == "/rows":
            rows = await self.env.DB.prepare(
                "SELECT n, attempts, id, ok FROM deliveries ORDER BY n, attempts").raw()
            return Response.json([{"n": r[0], "attempts": r[1], "id": r[2], "ok": r[3]}
                                  for r in rows])
        return Response("?", status=404)

    async def queue(self, batch, env, ctx):
        await asyncio.sleep(0.05)
        failed = False
        statements = []
        for m in batch.messages:
            body = m.body
            if not isinstance(body, dict):  # the text and bytes messages
                statements.append(env.DB.prepare("INSERT INTO deliveries VALUES (?, ?, ?, ?)")
                                  .bind(-1, m.attempts, repr(body), 1))
                m.ack()
                continue
            n = body["n"]
            fail = (n % 10 == 3 and m.attempts == 1) or n % 250 == 7
            assert m.timestamp.year >= 2024
            statements.append(env.DB.prepare("INSERT INTO deliveries VALUES (?, ?, ?, ?)")
                              .bind(n, m.attempts, m.id, 0 if fail else 1))
            if fail:
                failed = True
            else:
                m.ack()
        await env.DB.batch(statements)
        if failed:
            raise RuntimeError("some messages failed on their first attempt")
"""


def project(root: Path) -> Path:
    write_project(root, CONSUMER, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "jobs-worker", "main": "src/entry.py", "compatibility_date": "2025-11-01",
        "d1_databases": [{"binding": "DB", "database_name": "jobs-db"}],
        "queues": {
            "producers": [{"binding": "JOBS", "queue": "jobs"}],
            "consumers": [{"queue": "jobs", "max_batch_size": 10, "max_batch_timeout": 1,
                           "max_retries": 2, "dead_letter_queue": "jobs-dlq"}],
        },
    }, indent=2))
    return root


def wait_rows(get, predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline:
        rows = get("/rows").json()
        if predicate(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout}s: {len(rows)} rows")


def queue_rows(path: Path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT body, content_type, attempts FROM messages").fetchall()
    finally:
        db.close()


ALWAYS_FAILING = {n for n in range(1000) if n % 250 == 7}


def test_dev_delivers_1000_messages_with_retries_and_a_dead_letter_queue(tmp_path):
    root = project(tmp_path / "jobs")
    dev = start_dev(root)
    try:
        assert dev.get("/setup").text == "ok"
        bad = dev.get("/bad").json()
        assert bad[0].startswith("BindingError: Queue send failed: message too large"), bad
        assert "delaySeconds must be between 0 and 43200" in bad[1], bad
        assert bad[2].startswith("BindingError: Queue sendBatch failed: a batch holds 1 to 100"), bad
        assert dev.get("/send?from=0&to=1000").text == "sent"
        assert dev.get("/send-one").text == "sent"

        def done(rows):
            ok = [r for r in rows if r["ok"] == 1 and r["n"] >= 0]
            dead = [r for r in rows if r["n"] in ALWAYS_FAILING]
            return len(ok) >= 1000 - len(ALWAYS_FAILING) and len(dead) >= 3 * len(ALWAYS_FAILING)

        rows = wait_rows(dev.get, done)
        # Every message acked exactly once, with its retries counted by attempts.
        by_n: dict[int, list[dict]] = {}
        for r in rows:
            by_n.setdefault(r["n"], []).append(r)
        assert sorted(x["id"] for x in by_n[-1]) == sorted(["'hello'", "b'\\x00\\xff'"])
        for n in range(1000):
            got = by_n.get(n, [])
            if n in ALWAYS_FAILING:
                assert [(r["attempts"], r["ok"]) for r in got] == [(1, 0), (2, 0), (3, 0)], got
            elif n % 10 == 3:
                assert [(r["attempts"], r["ok"]) for r in got] == [(1, 0), (2, 1)], got
                assert got[0]["id"] == got[1]["id"]
            else:
                # Messages of a batch that raised are retried unless acked: never twice ok.
                assert [r["ok"] for r in got].count(1) == 1, (n, got)
        state = root / ".thaw" / "state" / "queues"
        deadline = time.monotonic() + 30
        while queue_rows(state / "jobs.sqlite") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue_rows(state / "jobs.sqlite") == []
        dlq = sorted(json.loads(b)["n"] for b, ct, _ in queue_rows(state / "jobs-dlq.sqlite"))
        assert dlq == sorted(ALWAYS_FAILING)
        assert "queue \"jobs\" batch of" in dev.output()
    finally:
        dev.stop()


def test_dev_killed_mid_delivery_delivers_the_rest_after_restart(tmp_path):
    root = project(tmp_path / "jobs")
    dev = start_dev(root)
    try:
        assert dev.get("/setup").text == "ok"
        assert dev.get("/send?from=10000&to=10400").text == "sent"
        wait_rows(dev.get, lambda rows: len(rows) >= 20)
    finally:
        dev.kill()  # SIGKILL: batches in flight are left leased in the file
    left = queue_rows(root / ".thaw" / "state" / "queues" / "jobs.sqlite")
    assert left, "every message was delivered before the kill"
    dev = start_dev(root)
    try:
        want = {n for n in range(10000, 10400) if n % 250 != 7}
        rows = wait_rows(dev.get, lambda rows: {r["n"] for r in rows if r["ok"]} >= want)
        assert any(r["attempts"] >= 2 and r["n"] % 10 != 3 for r in rows), \
            "no message in flight at the kill was delivered again"
    finally:
        dev.stop()


PRODUCER = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        n = int(request.url.rsplit("=", 1)[1]) if "=" in request.url else 0
        for start in range(0, n, 100):
            await self.env.OUTBOX.send_batch(
                [{"body": {"n": i}} for i in range(start, min(n, start + 100))])
        return Response(f"sent {n}")
"""

CONSUMER_ONLY = """
from workers import WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def queue(self, batch, env, ctx):
        for m in batch.messages:
            await env.SEEN.put(f"n{m.body['n']}", str(m.attempts))
            m.ack()
"""


def test_serve_delivers_from_a_producer_worker_to_a_consumer_only_worker(tmp_path):
    """Two workers deployed apart share a queue on one host (its file is the host's, not a
    worker's); the consumer has no fetch handler (it deploys all the same) and records each
    message in its KV namespace."""
    producer = write_project(tmp_path / "producer", PRODUCER, pyproject=False)
    (producer / "wrangler.jsonc").write_text(json.dumps({
        "name": "producer", "main": "src/entry.py",
        "queues": {"producers": [{"binding": "OUTBOX", "queue": "orders"}]}}))
    consumer = write_project(tmp_path / "consumer", CONSUMER_ONLY, pyproject=False)
    (consumer / "wrangler.jsonc").write_text(json.dumps({
        "name": "consumer", "main": "src/entry.py",
        "kv_namespaces": [{"binding": "SEEN", "id": "seen"}],
        "queues": {"consumers": [{"queue": "orders", "max_batch_size": 50,
                                  "max_batch_timeout": 1}]}}))
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    try:
        for p in (consumer, producer):
            r = host.client("deploy", p)
            assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("producer", path="/?n=300").text == "sent 300"
        kv = data / "state" / "consumer" / "kv" / "seen.sqlite"
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline:
            if kv.exists():
                db = sqlite3.connect(f"file:{kv}?mode=ro", uri=True)
                try:
                    seen = db.execute("SELECT count(*) FROM kv").fetchone()[0]
                except sqlite3.OperationalError as e:
                    # The file is made before its table: not there yet.
                    if "no such table" not in str(e):
                        raise
                finally:
                    db.close()
                if seen == 300:
                    break
            time.sleep(0.2)
        assert seen == 300
    finally:
        host.stop()
    assert (data / "state" / "_queues" / "orders.sqlite").exists()


def test_serve_killed_mid_delivery_delivers_the_rest_after_restart(tmp_path):
    """The consumer worker on a host that is SIGKILLed while batches are leased: after the
    restart every message is delivered and acked, with retries as in dev."""
    root = project(tmp_path / "jobs")
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    get = lambda path: host.worker_get("jobs-worker", path=path)  # noqa: E731
    try:
        r = host.client("deploy", root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert get("/setup").text == "ok"
        assert get("/send?from=20000&to=20400").text == "sent"
        wait_rows(get, lambda rows: len(rows) >= 20)
    finally:
        host.kill()
    left = queue_rows(data / "state" / "_queues" / "jobs.sqlite")
    assert left, "every message was delivered before the kill"
    host = ThawServe(data).wait_ready()
    try:
        want = {n for n in range(20000, 20400) if n % 250 != 7}
        rows = wait_rows(get, lambda rows: {r["n"] for r in rows if r["ok"]} >= want)
        acked = [r["n"] for r in rows if r["ok"]]
        assert sorted(set(acked)) == sorted(want)
    finally:
        host.stop()
