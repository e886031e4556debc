"""KV and D1 bindings, used the way Cloudflare's docs show them, under `thaw dev` and under
`thaw serve` after `thaw deploy`: the data is the worker's (kept across a host restart, a
redeploy and a rollback), errors are Cloudflare's, D1's batch is atomic and its SQL cannot
reach a file, and `thaw kv` / `thaw d1` work on the same state `thaw dev` serves."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from thawtest import THAW_BIN, ThawServe, start_dev, thaw_env, write_project

WORKER = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("/", 3)[3].split("?")[0]
            kv, db = self.env.CACHE, self.env.DB
            if path == "kv/put":
                await kv.put("greeting", "hello", metadata={"lang": "en"})
                await kv.put("bytes", b"\\x00\\x01\\xff")
                await kv.put("doc", '{"n": 3}', expirationTtl=3600)
                return Response("ok")
            if path == "kv/get":
                text = await kv.get("greeting")
                doc = await kv.get("doc", type="json")
                raw = await kv.get("bytes", "arrayBuffer")
                meta = await kv.get_with_metadata("greeting")
                page = await kv.list(prefix="g")
                return Response.json({
                    "text": text, "n": doc["n"], "raw": list(raw), "missing": await kv.get("x"),
                    "lang": meta.metadata["lang"] if meta.metadata else None,
                    "names": [k.name for k in page.keys],
                    "complete": page.list_complete, "version": self.env.VERSION})
            if path == "kv/bad":
                errors = []
                for call in (lambda: kv.put("", "x"), lambda: kv.put("k", "v", expiration_ttl=5)):
                    try:
                        await call()
                    except Exception as error:
                        errors.append(f"{type(error).__name__}: {error}")
                return Response.json(errors)
            if path == "d1/setup":
                await db.exec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, "
                              "body TEXT NOT NULL, data BLOB)")
                await db.prepare("INSERT INTO notes (body, data) VALUES (?, ?)").bind(
                    "first", b"\\x00\\x02").run()
                return Response("ok")
            if path == "d1/read":
                rows = await db.prepare("SELECT * FROM notes WHERE body = ?").bind("first").all()
                count = await db.prepare("SELECT count(*) AS n FROM notes").first("n")
                raw = await db.prepare("SELECT id, body FROM notes").raw(column_names=True)
                return Response.json({"body": rows.results[0].body,
                                      "data": list(rows.results[0].data), "count": count,
                                      "columns": list(raw[0]), "changed": rows.meta.changed_db,
                                      "version": self.env.VERSION})
            if path == "d1/batch":
                try:
                    await db.batch([
                        db.prepare("INSERT INTO notes (body) VALUES (?)").bind("in batch"),
                        db.prepare("INSERT INTO notes (body) VALUES (?)").bind(None),  # NOT NULL
                    ])
                    outcome = "committed"
                except Exception as error:
                    outcome = f"{type(error).__name__}: {error}"
                left = await db.prepare("SELECT count(*) AS n FROM notes WHERE body = ?").bind(
                    "in batch").first("n")
                return Response.json({"outcome": outcome, "left": left})
            if path == "d1/attach":
                out = []
                for sql in ("ATTACH DATABASE '/etc/passwd' AS x",
                            "SELECT load_extension('libc.so.6')"):
                    try:
                        await db.prepare(sql).all()
                        out.append("allowed")
                    except Exception as error:
                        out.append(str(error))
                return Response.json(out)
            return Response("?", status=404)
"""


def project(root: Path, version: str = "1") -> Path:
    write_project(root, WORKER, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "notes", "main": "src/entry.py", "compatibility_date": "2025-11-01",
        "vars": {"VERSION": version},
        "kv_namespaces": [{"binding": "CACHE", "id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}],
        "d1_databases": [{"binding": "DB", "database_name": "notes-db",
                          "database_id": "00000000-0000-0000-0000-000000000001"}],
    }, indent=2))
    return root


def check_fresh_state(get):
    assert get("kv/put").text == "ok"
    got = get("kv/get").json()
    assert got["text"] == "hello" and got["n"] == 3 and got["raw"] == [0, 1, 255]
    assert got["missing"] is None and got["lang"] == "en" and got["names"] == ["greeting"]
    assert got["complete"] is True
    bad = get("kv/bad").json()
    assert bad == ["TypeError: Key name cannot be empty.",
                   "BindingError: KV PUT failed: 400 Invalid expiration_ttl of 5. "
                   "Expiration TTL must be at least 60."], bad
    assert get("d1/setup").text == "ok"
    read = get("d1/read").json()
    assert read["body"] == "first" and read["data"] == [0, 2] and read["count"] == 1
    assert read["columns"] == ["id", "body"] and read["changed"] is False
    batch = get("d1/batch").json()
    assert batch["left"] == 0 and "NOT NULL constraint failed" in batch["outcome"], batch
    attach = get("d1/attach").json()
    assert all(x != "allowed" and x.startswith("D1_") for x in attach), attach


def test_kv_and_d1_under_dev_with_the_cli_on_the_same_state(tmp_path):
    root = project(tmp_path / "notes")
    dev = start_dev(root)
    try:
        check_fresh_state(dev.get)
    finally:
        dev.stop()
    # The CLI sees what the worker wrote, and the worker what the CLI writes.
    run = lambda *a: subprocess.run([THAW_BIN, *a], cwd=root, env=thaw_env(),  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    r = run("kv", "key", "get", "greeting", "--binding", "CACHE")
    assert r.returncode == 0 and r.stdout == "hello", r.stdout + r.stderr
    r = run("kv", "key", "put", "greeting", "from the cli", "--binding", "CACHE")
    assert r.returncode == 0, r.stderr
    r = run("d1", "execute", "notes-db", "--command", "SELECT body FROM notes", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["results"] == [{"body": "first"}]
    dev = start_dev(root)
    try:
        assert dev.get("kv/get").json()["text"] == "from the cli"
        assert dev.get("d1/read").json()["count"] == 1  # kept across restarts
    finally:
        dev.stop()


def test_kv_and_d1_on_a_host_survive_restart_redeploy_and_rollback(tmp_path):
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    try:
        r = host.client("deploy", project(tmp_path / "v1", "1"))
        assert r.returncode == 0, r.stdout + r.stderr
        check_fresh_state(lambda path: host.worker_get("notes", path="/" + path))
    finally:
        host.stop()
    host = ThawServe(data).wait_ready()  # restarted
    try:
        got = host.worker_get("notes", path="/kv/get").json()
        assert got["text"] == "hello" and got["version"] == "1"
        r = host.client("deploy", project(tmp_path / "v2", "2"))
        assert r.returncode == 0, r.stdout + r.stderr
        read = host.worker_get("notes", path="/d1/read").json()
        assert read["version"] == "2" and read["count"] == 1  # the new version, the same data
        r = host.client("rollback", "--name", "notes")
        assert r.returncode == 0, r.stdout + r.stderr
        got = host.worker_get("notes", path="/kv/get").json()
        assert got["version"] == "1" and got["text"] == "hello"
    finally:
        host.stop()
    assert (data / "state" / "notes" / "kv" / "a1b2c3d4e5f60718293a4b5c6d7e8f90.sqlite").exists()
    assert (data / "state" / "notes" / "d1" / "notes-db.sqlite").exists()


def test_dev_persist_to_inside_the_project_is_not_watched(tmp_path):
    # The state's files change with every write: a watched state directory reloaded the
    # worker on each KV put (and again when the reload closed the namespace's file).
    root = project(tmp_path / "notes")
    dev = start_dev(root, "--persist-to", str(root / "state"))
    try:
        mark = dev.mark()
        for _ in range(3):
            assert dev.get("kv/put").text == "ok"
            assert dev.get("d1/setup").text == "ok"
        time.sleep(1.0)  # a reload settles 60 ms after the event
        assert "reloading" not in dev.output_since(mark), dev.output_since(mark)
    finally:
        dev.stop()
    assert (root / "state" / "kv" / "a1b2c3d4e5f60718293a4b5c6d7e8f90.sqlite").exists()


def test_d1_cli_with_options_only_prints_its_usage(tmp_path):
    root = project(tmp_path / "notes")
    for args in (["--local"], ["--persist-to", str(tmp_path / "s")]):
        r = subprocess.run([THAW_BIN, "d1", *args], cwd=root, env=thaw_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "usage: thaw d1" in r.stderr, (args, r.returncode, r.stderr)
