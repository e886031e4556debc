"""The client side of deployments: `thaw deploy`, `thaw versions list`, `thaw rollout`,
`thaw rollback` and `thaw tail` against a control server (docs/control-api.md).

The server here is a small fake written with http.server on 127.0.0.1: it checks the bearer
token like the real host does, records every request, and answers what each test scripts. What
is tested is the client's real behaviour over real HTTP: what it uploads (a tar+zstd bundle of
the project), what it sends, and how it reads and prints the answers, hostile ones included.
The flow against a real `thaw serve` host lives in the deployment tests.
"""

import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from thawtest import THAW_BIN, free_port, require_binary, thaw_env, write_project

TOKEN = "tok-3f9c2a61d0e84b7c95aa"
V1 = "0a1b2c3d-0000-4000-8000-000000000001"
V2 = "2f2e2d2c-0000-4000-8000-000000000002"
V3 = "1f2e4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# --------------------------------------------------------------------------- the fake host


class Req:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = (
            method, path, query, headers, body)

    def json(self):
        return json.loads(self.body)


class Stream:
    """An answer sent line by line as the client reads it, then the connection closed."""

    def __init__(self, lines, status=200, delay=0.05):
        self.lines, self.status, self.delay = lines, status, delay


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        fake = self.server.fake
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urlsplit(self.path)
        req = Req(self.command, u.path, parse_qs(u.query), dict(self.headers), body)
        with fake.lock:
            fake.requests.append(req)
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            return self.send_json(401, {"error": "missing or wrong token"})
        answer = fake.routes.get((self.command, u.path))
        if answer is None:
            return self.send_json(404, {"error": f"no route {self.command} {u.path}"})
        if callable(answer):
            answer = answer(req)
        if isinstance(answer, Stream):
            return self.send_stream(answer)
        status, payload = answer
        if isinstance(payload, (dict, list)):
            return self.send_json(status, payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, s):
        self.send_response(s.status)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for line in s.lines:
            if isinstance(line, (dict, list)):
                line = json.dumps(line) + "\n"
            self.wfile.write(line.encode() if isinstance(line, str) else line)
            self.wfile.flush()
            time.sleep(s.delay)


class FakeHost:
    def __init__(self, token=TOKEN):
        self.token = token
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, method, path, answer):
        self.routes[(method, path)] = answer

    def made(self, method, path):
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host():
    h = FakeHost()
    yield h
    h.close()


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "token"
    p.write_text(f"  {TOKEN}\n\n")
    return p


def thaw(*args, cwd=None, env=None, timeout=60):
    require_binary()
    e = thaw_env({"TZ": "UTC"})
    e.pop("THAW_TOKEN", None)
    e.pop("THAW_HOST", None)
    e.update(env or {})
    return subprocess.run([THAW_BIN, *map(str, args)], cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def out(r):
    return r.stdout + r.stderr


def version(id_, number, state="ready", message="", error=None, created=1714566896000):
    return {"id": id_, "number": number, "created": created, "message": message, "state": state,
            "error": error, "snapshot_bytes": 31_200_000, "bundle": "ab" * 32}


def deployment(*shares, id_="d0d0d0d0-0000-4000-8000-00000000000d"):
    return {"id": id_, "created": 1714566896000, "message": "",
            "versions": [{"id": i, "percentage": p} for i, p in shares]}


VERSIONS = [version(V1, 1), version(V2, 2, message="second"), version(V3, 3, message="third")]


def tar_names(bundle):
    """The entry names of a tar+zstd bundle, read with the zstd CLI and tarfile."""
    assert shutil.which("zstd"), "the zstd CLI is missing (scripts/install-deps.sh installs it)"
    tar = subprocess.run(["zstd", "-d", "-c", "-q"], input=bundle, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        return {m.name.rstrip("/").removeprefix("./") for m in t.getmembers()}


def deploy_project(root, files=None):
    files = {".gitignore": "secret.txt\nbuild/\n*.log\n", "secret.txt": "do not ship\n",
             "build/out.py": "x = 1\n", "debug.log": "noise\n", "data/keep.txt": "shipped\n",
             **(files or {})}
    return write_project(root, "from workers import Response\n\n"
                               "async def on_fetch(request):\n    return Response('v')\n",
                         name="shop", files=files)


STAGES_OK = [
    {"stage": "stored", "version": V3, "number": 3, "bytes": 1234, "sha256": "ab" * 32,
     "files": 5},
    {"stage": "building"},
    {"stage": "built", "snapshot_bytes": 31_200_000, "ms": 850.2},
    {"stage": "validated", "restore_ms": 1.3, "status": 200},
    {"stage": "live", "deployment": deployment((V3, 10), (V2, 90))},
]


# --------------------------------------------------------------------------- help


def test_help_lists_the_deployment_commands_and_their_options():
    r = thaw("--help")
    assert r.returncode == 0, out(r)
    for word in ("deploy", "versions list", "rollout", "rollback", "tail"):
        assert word in r.stdout, r.stdout
    wants = {
        "deploy": ("--percentage", "--message", "--name", "--no-install", "--index-url",
                   "--extra-index-url", "--find-links", "--no-index", "--host", "--token-file"),
        "versions": ("list", "--json", "--name", "--host", "--token-file"),
        "rollout": ("--percentage", "--host", "--token-file"),
        "rollback": ("--name", "--host", "--token-file"),
        "tail": ("--json", "--host", "--token-file"),
    }
    for cmd, flags in wants.items():
        r = thaw(cmd, "--help")
        assert r.returncode == 0, out(r)
        for f in flags:
            assert f in r.stdout, f"`thaw {cmd} --help` does not mention {f}:\n{r.stdout}"


# --------------------------------------------------------------------------- deploy


def test_deploy_uploads_a_zstd_bundle_of_the_project_and_prints_each_stage(
        host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("POST", "/v1/workers/shop/versions", Stream(STAGES_OK))
    host.on("GET", "/v1/workers/shop/versions",
            (200, {"versions": VERSIONS, "deployment": deployment((V3, 10), (V2, 90))}))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file, "--percentage", "10",
             "--message", "fix: a & b = 100%")
    assert r.returncode == 0, out(r)

    [up] = host.made("POST", "/v1/workers/shop/versions")
    assert up.headers["Authorization"] == f"Bearer {TOKEN}"
    assert up.query == {"message": ["fix: a & b = 100%"], "percentage": ["10"]}
    assert up.body[:4] == ZSTD_MAGIC, up.body[:16]
    assert int(up.headers["Content-Length"]) == len(up.body)
    names = tar_names(up.body)
    for f in ("pyproject.toml", "src/entry.py", "data/keep.txt", ".gitignore"):
        assert f in names, names
    for f in ("secret.txt", "build/out.py", "build", "debug.log"):
        assert f not in names, f"{f} is in .gitignore but was packed: {names}"

    text = out(r)
    assert "Packed" in text and "files" in text, text
    assert "stored version 3 (1f2e4a5b" in r.stdout, text
    assert "building snapshot" in r.stdout, text
    assert "snapshot built: 31.2 MB in 850 ms" in r.stdout, text
    assert "validated: restored in 1.3 ms, health check 200" in r.stdout, text
    assert "live: 3 at 10%, 2 at 90%" in r.stdout, text
    assert f"version: {V3}" in r.stdout.splitlines(), text
    assert TOKEN not in text


def test_deploy_without_percentage_or_message_sends_no_query_and_uses_name_and_env(
        host, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("POST", "/v1/workers/other-name/versions", Stream(STAGES_OK))
    r = thaw("deploy", "--name", "other-name", "--no-install", cwd=p,
             env={"THAW_HOST": host.url + "/", "THAW_TOKEN": TOKEN})
    assert r.returncode == 0, out(r)
    [up] = host.made("POST", "/v1/workers/other-name/versions")
    assert up.query == {}
    # Without a versions list from the host, the version just stored shows by its number
    # and the other by its id's first 8 characters.
    assert "live: 3 at 10%, 2f2e2d2c at 90%" in r.stdout, out(r)


def test_deploy_a_big_bundle_shows_upload_progress(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p", files={})
    (p / "data" / "blob.bin").write_bytes(os.urandom(3 << 20))  # incompressible
    host.on("POST", "/v1/workers/shop/versions", Stream(STAGES_OK))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 0, out(r)
    [up] = host.made("POST", "/v1/workers/shop/versions")
    assert len(up.body) > 3 << 20
    assert "data/blob.bin" in tar_names(up.body)
    assert "Uploaded 3." in r.stderr, out(r)


def test_deploy_failed_stage_prints_the_whole_error_and_exits_1(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    error = ("snapshot build failed: the worker consumed entropy at import\n"
             "Traceback (most recent call last):\n"
             '  File "src/entry.py", line 3, in <module>\n'
             "RuntimeError: entropy at import")
    host.on("POST", "/v1/workers/shop/versions", Stream([
        STAGES_OK[0], {"stage": "building"}, {"stage": "failed", "error": error}]))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    for line in error.splitlines():
        assert line in r.stderr, out(r)
    assert "version 3 failed" in r.stderr
    assert "version:" not in r.stdout, out(r)
    assert "live" not in r.stdout


def test_deploy_stream_that_ends_early_is_an_error(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("POST", "/v1/workers/shop/versions", Stream(STAGES_OK[:2]))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "the host closed the connection before the deployment finished" in r.stderr, out(r)
    assert "version:" not in r.stdout


def test_deploy_refused_bundle_prints_the_hosts_reason(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("POST", "/v1/workers/shop/versions",
            (422, {"error": "bundle refused: ../x: path escapes the bundle"}))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "bundle refused: ../x: path escapes the bundle" in r.stderr, out(r)
    assert "422" in r.stderr


def test_deploy_hostile_progress_is_refused(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("POST", "/v1/workers/shop/versions",
            Stream([STAGES_OK[0], "this is not json\n"]))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "unreadable progress" in r.stderr, out(r)

    # One endless line: cut off at the line limit, not buffered forever.
    host.on("POST", "/v1/workers/shop/versions",
            Stream([b'{"stage": "building", "x": "' + b"a" * (1 << 16)] * 40, delay=0))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "longer than" in r.stderr, out(r)

    # An id that would inject into the "version: ID" line scripts read.
    bad = dict(STAGES_OK[0], version="abc\nversion: evil")
    host.on("POST", "/v1/workers/shop/versions", Stream([bad] + STAGES_OK[1:]))
    r = thaw("deploy", p, "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "evil" not in r.stdout


# --------------------------------------------------------------------------- tokens and hosts


def test_wrong_token_gets_the_hosts_error_and_never_shows_the_token(host, tmp_path):
    p = deploy_project(tmp_path / "p")
    secret = "wrong-8c1d77e0b2a94f0e"
    tf = tmp_path / "bad-token"
    tf.write_text(secret + "\n")
    for args in (("deploy", p), ("versions", "list", "shop"), ("rollback", "--name", "shop"),
                 ("tail", "shop")):
        r = thaw(*args, "--host", host.url, "--token-file", tf, "-v")
        assert r.returncode == 1, out(r)
        assert "missing or wrong token" in r.stderr, out(r)
        assert "401" in r.stderr
        assert secret not in out(r), f"`thaw {args[0]}` printed the token:\n{out(r)}"
        assert "Authorization: Bearer (hidden)" in r.stderr, out(r)
    assert all(q.headers["Authorization"] == f"Bearer {secret}" for q in host.requests)


def test_token_from_env_and_missing_token(host, tmp_path):
    host.on("GET", "/v1/workers/shop/versions", (200, {"versions": [], "deployment": None}))
    r = thaw("versions", "list", "shop", "--host", host.url, env={"THAW_TOKEN": f" {TOKEN}\n"})
    assert r.returncode == 0, out(r)
    assert host.made("GET", "/v1/workers/shop/versions")

    n = len(host.requests)
    r = thaw("versions", "list", "shop", "--host", host.url)
    assert r.returncode == 1
    assert "no control token" in r.stderr and "--token-file" in r.stderr, out(r)
    r = thaw("versions", "list", "shop", "--host", host.url, "--token-file", tmp_path / "none")
    assert r.returncode == 1
    assert "cannot read the token file" in r.stderr, out(r)
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    r = thaw("versions", "list", "shop", "--host", host.url, "--token-file", empty)
    assert r.returncode == 1 and "empty" in r.stderr, out(r)
    assert len(host.requests) == n, "a request went out without a token"


def test_unreachable_host_is_a_clear_error(token_file, tmp_path):
    port = free_port()
    p = deploy_project(tmp_path / "p")
    for args in (("versions", "list", "shop"), ("deploy", p), ("tail", "shop")):
        r = thaw(*args, "--host", f"http://127.0.0.1:{port}", "--token-file", token_file)
        assert r.returncode == 1, out(r)
        assert f"cannot reach the thaw host at http://127.0.0.1:{port}" in r.stderr, out(r)
    r = thaw("versions", "list", "shop", "--host", "ftp://example", "--token-file", token_file)
    assert r.returncode == 1 and "not a host URL" in r.stderr, out(r)


# --------------------------------------------------------------------------- versions


def test_versions_list_prints_a_table_of_versions_and_shares(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    failed = version("3c3c3c3c-0000-4000-8000-000000000004", 4, state="failed",
                     message="broken", error="snapshot build failed: entropy at import\n"
                                             "Traceback (most recent call last):")
    hostile = version("5d5d5d5d-0000-4000-8000-000000000005", 5,
                      message="\x1b]0;pwned\x07\x1b[31mred\u009b2J")
    answer = {"versions": VERSIONS + [failed, hostile],
              "deployment": deployment((V3, 10), (V2, 90))}
    host.on("GET", "/v1/workers/shop/versions", (200, answer))
    r = thaw("versions", "list", "--host", host.url, "--token-file", token_file, cwd=p)
    assert r.returncode == 0, out(r)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["#", "ID", "CREATED", "STATE", "TRAFFIC", "IMAGE", "BASE", "WS",
                                "MESSAGE"], r.stdout
    when = datetime.fromtimestamp(1714566896, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    row = {l.split()[0]: l for l in lines[1:] if l.split()[0].isdigit()}
    # (an answer without disk figures, as an older host gives: "-" for each)
    assert row["3"].split() == ["3", "1f2e4a5b", *when.split(), "ready", "10%", "-", "-", "-",
                                "third"], r.stdout
    assert row["2"].split() == ["2", "2f2e2d2c", *when.split(), "ready", "90%", "-", "-", "-",
                                "second"]
    assert row["1"].split() == ["1", "0a1b2c3d", *when.split(), "ready", "-", "-", "-", "-"]
    assert "failed" in row["4"] and "broken" in row["4"]
    assert "error: snapshot build failed: entropy at import" in r.stdout
    assert "Traceback" not in r.stdout, "more than the error's first line"
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u009b" not in r.stdout
    assert "\\x1b" in row["5"], row["5"]

    r = thaw("versions", "list", "shop", "--json", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 0, out(r)
    assert json.loads(r.stdout) == answer

    host.on("GET", "/v1/workers/shop/versions", (200, b"[1, 2"))
    r = thaw("versions", "list", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1 and "not valid JSON" in r.stderr, out(r)

    r = thaw("versions", "list", "Bad/Name", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1 and "not a worker name" in r.stderr, out(r)


def test_an_answer_over_16_MiB_is_refused(host, token_file):
    huge = b'{"versions": [' + b" " * (17 << 20) + b"]}"
    host.on("GET", "/v1/workers/shop/versions", (200, huge))
    r = thaw("versions", "list", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "larger than 16 MiB" in r.stderr, out(r)


# --------------------------------------------------------------------------- rollout, rollback


def test_rollout_and_rollback_send_the_contracts_json(host, token_file, tmp_path):
    p = deploy_project(tmp_path / "p")
    host.on("GET", "/v1/workers/shop/versions",
            (200, {"versions": VERSIONS, "deployment": None}))
    host.on("POST", "/v1/workers/shop/rollout",
            (200, {"deployment": deployment((V3, 50), (V2, 50))}))
    host.on("POST", "/v1/workers/shop/rollback", (200, {"deployment": deployment((V2, 100))}))

    r = thaw("rollout", "3", "--percentage", "50", "--host", host.url, "--token-file",
             token_file, cwd=p)
    assert r.returncode == 0, out(r)
    [req] = host.made("POST", "/v1/workers/shop/rollout")
    assert req.json() == {"version": "3", "percentage": 50}
    assert req.headers["Content-Type"] == "application/json"
    assert "rolled out: 3 at 50%, 2 at 50%" in r.stdout, out(r)

    r = thaw("rollback", "--name", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 0, out(r)
    r = thaw("rollback", "#2", "--name", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 0, out(r)
    reqs = host.made("POST", "/v1/workers/shop/rollback")
    assert [q.json() for q in reqs] == [{}, {"version": "#2"}]
    assert "rolled back: 2 at 100%" in r.stdout, out(r)

    n = len(host.requests)
    r = thaw("rollout", "3", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 2 and "--percentage" in r.stderr, out(r)
    r = thaw("rollout", "3", "--percentage", "0", "shop", "--host", host.url, "--token-file",
             token_file)
    assert r.returncode == 2, out(r)
    assert len(host.requests) == n

    host.on("POST", "/v1/workers/shop/rollout", (404, {"error": "no version 9 of shop"}))
    r = thaw("rollout", "9", "--percentage", "100", "shop", "--host", host.url, "--token-file",
             token_file)
    assert r.returncode == 1 and "no version 9 of shop" in r.stderr, out(r)


# --------------------------------------------------------------------------- tail


def test_tail_prints_log_lines_until_the_host_closes(host, token_file):
    ts = 1714566896789
    lines = [
        {"ts": ts, "worker": "shop", "version": V3, "request_id": "req-1", "stream": "stdout",
         "message": "hello from the worker"},
        {"ts": ts + 1000, "worker": "shop", "version": V2, "request_id": None,
         "stream": "stderr", "message": "warn \x1b[2Jcleared"},
    ]
    host.on("GET", "/v1/workers/shop/tail", Stream(lines))
    r = thaw("tail", "shop", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert "closed" in r.stderr, out(r)
    got = r.stdout.splitlines()
    assert got[0] == "12:34:56.789 1f2e4a5b req-1 stdout: hello from the worker", r.stdout
    assert got[1] == "12:34:57.789 2f2e2d2c - stderr: warn \\x1b[2Jcleared", r.stdout

    r = thaw("tail", "--name", "shop", "--json", "--host", host.url, "--token-file", token_file)
    assert r.returncode == 1, out(r)
    assert [json.loads(l) for l in r.stdout.splitlines()] == lines


def test_tail_stops_cleanly_on_ctrl_c(host, token_file):
    line = {"ts": 1714566896789, "worker": "shop", "version": V3, "request_id": "r",
            "stream": "stdout", "message": "tick"}
    host.on("GET", "/v1/workers/shop/tail", Stream([line] * 200, delay=0.05))
    require_binary()
    e = thaw_env({"TZ": "UTC"})
    e.pop("THAW_TOKEN", None)
    proc = subprocess.Popen([THAW_BIN, "tail", "shop", "--host", host.url, "--token-file",
                             str(token_file)], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "tick" in proc.stdout.readline()
        proc.send_signal(2)
        rc = proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, proc.stderr.read()
