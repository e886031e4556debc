"""`thaw kv key ...` and `thaw d1 ...` against a host (--host URL): the CLI reads and writes
the same KV namespaces and D1 databases the deployed worker's bindings use, with the local
commands' output; bad input gets a clear error and the host keeps serving."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path

import pytest

from test_bindings_state import project
from thawtest import THAW_BIN, ThawServe, thaw_env


@pytest.fixture
def host(tmp_path):
    h = ThawServe(tmp_path / "data").wait_ready()
    root = project(tmp_path / "notes")
    r = h.client("deploy", root)
    assert r.returncode == 0, r.stdout + r.stderr
    h.root = root
    try:
        yield h
    finally:
        h.stop()


def kv(host, *args, cwd=None):
    return host.client("kv", "key", *args, "--binding", "CACHE", "--name", "notes", cwd=cwd)


def test_kv_put_by_the_cli_is_read_by_the_worker_and_the_other_way(host):
    assert host.worker_get("notes", "/kv/put").text == "ok"  # greeting, bytes, doc
    r = kv(host, "get", "greeting")
    assert r.returncode == 0 and r.stdout == "hello", r.stdout + r.stderr
    r = kv(host, "get", "greeting", "--json")
    assert json.loads(r.stdout) == {"key": "greeting", "value": "hello",
                                    "metadata": {"lang": "en"}, "expiration": None}
    r = kv(host, "get", "bytes", "--json")
    assert json.loads(r.stdout)["value_base64"] == "AAH/"
    raw = subprocess.run([THAW_BIN, "kv", "key", "get", "bytes", "--binding", "CACHE",
                          "--name", "notes", "--host", host.control, "--token-file",
                          str(host.token_file)], env=thaw_env(), capture_output=True, timeout=60)
    assert raw.returncode == 0 and raw.stdout == b"\x00\x01\xff"
    # Put with a TTL and metadata, a key with '/', '?', '%' and spaces; the namespace id works
    # as well as the binding.
    r = host.client("kv", "key", "put", "a/b c?d%e", "v1", "--ttl", "3600", "--metadata",
                    '{"x": [1, "é"]}', "--namespace-id", "a1b2c3d4e5f60718293a4b5c6d7e8f90",
                    "--name", "notes")
    assert r.returncode == 0, r.stderr
    r = kv(host, "get", "a/b c?d%e", "--json")
    j = json.loads(r.stdout)
    assert j["value"] == "v1" and j["metadata"] == {"x": [1, "é"]} and j["expiration"] > 0
    r = kv(host, "list")
    names = [json.loads(line)["name"] for line in r.stdout.splitlines()]
    assert names == ["a/b c?d%e", "bytes", "doc", "greeting"], r.stdout + r.stderr
    r = kv(host, "list", "--prefix", "g")
    assert [json.loads(line) for line in r.stdout.splitlines()] == [
        {"name": "greeting", "metadata": {"lang": "en"}}]
    r = kv(host, "list", "--limit", "2")
    assert len(r.stdout.splitlines()) == 2
    r = kv(host, "delete", "greeting")
    assert r.returncode == 0, r.stderr
    r = kv(host, "get", "greeting")
    assert r.returncode == 1 and "not found" in r.stderr
    assert host.worker_get("notes", "/kv/get").json()["text"] is None  # gone for the worker
    r = kv(host, "put", "greeting", "from the cli", "--metadata", '{"lang": "cli"}')
    assert r.returncode == 0, r.stderr
    got = host.worker_get("notes", "/kv/get").json()
    assert got["text"] == "from the cli" and got["lang"] == "cli"


def test_kv_pages_through_many_keys(host):
    for i in range(3):
        assert kv(host, "put", f"k{i}", str(i)).returncode == 0
    # limit 1 per page on the wire is the CLI's business; the API pages with its cursor.
    r = host.api("GET", "/v1/workers/notes/kv/CACHE/keys?limit=2")
    page = r.json()
    assert r.status == 200 and [k["name"] for k in page["keys"]] == ["k0", "k1"]
    assert page["list_complete"] is False and page["cursor"]
    r = host.api("GET", f"/v1/workers/notes/kv/CACHE/keys?limit=2&cursor={page['cursor']}")
    assert [k["name"] for k in r.json()["keys"]] == ["k2"] and r.json()["list_complete"]


def test_d1_execute_and_migrations_on_a_host(host, tmp_path):
    root = host.root
    d1 = lambda *a: host.client("d1", *a, cwd=root)  # noqa: E731
    r = d1("execute", "notes-db", "--command",
           "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, data BLOB);"
           "INSERT INTO notes (body, data) VALUES ('first', X'0002')")
    assert r.returncode == 0 and "Executing on remote database notes-db" in r.stdout, \
        r.stdout + r.stderr
    read = host.worker_get("notes", "/d1/read").json()
    assert read["body"] == "first" and read["count"] == 1
    sql = tmp_path / "more.sql"
    sql.write_text("INSERT INTO notes (body) VALUES ('second');\n"
                   "INSERT INTO notes (body) VALUES ('third');\n")
    r = d1("execute", "DB", "--file", sql)
    assert r.returncode == 0, r.stderr
    assert host.worker_get("notes", "/d1/read").json()["count"] == 3
    r = d1("execute", "notes-db", "--command", "SELECT body FROM notes ORDER BY id", "--json")
    assert json.loads(r.stdout)[0]["results"] == [
        {"body": "first"}, {"body": "second"}, {"body": "third"}]
    r = d1("execute", "notes-db", "--command", "SELECT body FROM notes WHERE id = 1")
    assert "│ first │" in r.stdout, r.stdout
    r = d1("execute", "notes-db", "--command", "SELECT * FROM nowhere")
    assert r.returncode == 1 and "no such table: nowhere" in r.stderr, r.stderr
    # Migrations: the local files, applied on the host's database and recorded there.
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_tags.sql").write_text("CREATE TABLE tags (name TEXT);")
    (root / "migrations" / "0002_seed.sql").write_text("INSERT INTO tags VALUES ('a');")
    r = d1("migrations", "list", "notes-db")
    assert r.returncode == 0 and "0001_tags.sql" in r.stdout and "0002_seed.sql" in r.stdout
    r = d1("migrations", "apply", "notes-db")
    assert r.returncode == 0 and r.stdout.count("✅") == 2, r.stdout + r.stderr
    r = d1("migrations", "list", "notes-db")
    assert "No migrations to apply" in r.stdout
    (root / "migrations" / "0003_bad.sql").write_text("INSERT INTO nowhere VALUES (1);")
    r = d1("migrations", "apply", "notes-db")
    assert r.returncode == 1 and "Migration 0003_bad.sql failed" in r.stderr, r.stderr
    r = d1("execute", "notes-db", "--command", "SELECT name FROM d1_migrations ORDER BY id",
           "--json")
    assert [x["name"] for x in json.loads(r.stdout)[0]["results"]] == [
        "0001_tags.sql", "0002_seed.sql"]
    # A local `thaw d1` is untouched by all this: the host's state is the host's.
    assert not (root / ".thaw" / "state" / "d1").exists()


def test_bad_input_gets_clear_errors_and_the_host_keeps_serving(host, tmp_path):
    r = host.client("kv", "key", "get", "k", "--binding", "NOPE", "--name", "notes")
    assert r.returncode == 1 and "notes has no KV namespace bound as" in r.stderr, r.stderr
    r = host.client("kv", "key", "get", "k", "--binding", "CACHE", "--name", "ghost")
    assert r.returncode == 1 and "no worker named 'ghost' is deployed here" in r.stderr
    r = host.client("d1", "execute", "nope", "--command", "SELECT 1", "--name", "notes")
    assert r.returncode == 1 and "notes has no D1 database 'nope'" in r.stderr, r.stderr
    big = tmp_path / "big"
    big.write_bytes(b"x" * (25 * 1024 * 1024 + 1))
    r = kv(host, "put", "big", "--path", big)
    assert r.returncode == 1 and "exceeds limit of 26214400" in r.stderr, r.stderr
    # Straight to the API, past the CLI's own check: refused from Content-Length.
    conn = http.client.HTTPConnection("127.0.0.1", host.control_port, timeout=30)
    conn.putrequest("PUT", "/v1/workers/notes/kv/CACHE/values/big")
    conn.putheader("Authorization", f"Bearer {host.token}")
    conn.putheader("Content-Length", str(25 * 1024 * 1024 + 1))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and b"exceeds limit of 26214400" in resp.read()
    conn.close()
    r = kv(host, "put", "k", "v", "--ttl", "5")
    assert r.returncode == 1 and "Invalid expiration_ttl of 5" in r.stderr, r.stderr
    r = kv(host, "put", "k", "v", "--metadata", "{not json")
    assert r.returncode == 1, r.stderr
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    r = subprocess.run([THAW_BIN, "kv", "key", "get", "k", "--binding", "CACHE", "--name",
                        "notes", "--host", host.control, "--token-file", str(wrong)],
                       env=thaw_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "wrong token" in r.stderr and "not-the-token" not in r.stderr
    for method, path in [("GET", "/v1/workers/notes/kv/../values/x"),
                         ("GET", "/v1/workers/notes/kv/CACHE/nothing"),
                         ("POST", "/v1/workers/notes/kv/CACHE/keys"),
                         ("GET", "/v1/workers/notes/d1/notes-db/execute"),
                         ("GET", "/v1/workers/notes/kv/CACHE/keys?limit=0"),
                         ("GET", "/v1/workers/notes/kv/CACHE/keys?limit=1x"),
                         ("PUT", "/v1/workers/notes/kv/CACHE/values/k?expiration_ttl=abc"),
                         ("POST", "/v1/workers/notes/d1/notes-db/execute")]:
        r = host.api(method, path, body=b"" if method != "GET" else None)
        assert r.status in (400, 404, 405) and r.json()["error"], (method, path, r.status)
    r = host.api("POST", "/v1/workers/notes/d1/notes-db/execute", body=b'{"sql": 5}')
    assert r.status == 400 and "{\"sql\": TEXT}" in r.json()["error"]
    r = host.api("POST", "/v1/workers/notes/d1/notes-db/migrations",
                 body=json.dumps({"migrations": [{"name": "../x.sql", "sql": "x"}],
                                  "apply": True}).encode())
    assert r.status == 200 and "a name is NAME.sql" in r.json()["error"]
    r = host.api("GET", "/v1/workers/notes/kv/CACHE/keys", token="wrong")
    assert r.status == 401
    assert host.worker_get("notes", "/kv/put").text == "ok"
    assert kv(host, "get", "greeting").stdout == "hello"
