"""`js` and `pyodide.ffi` end to end: a worker written the way Cloudflare's Python docs show it
(`from js import Response, ...`, `from pyodide.ffi import to_js, run_sync`), served by `thaw dev`
and deployed to `thaw serve`, restored from a snapshot.

It returns `js.Response.new(...)` from its handler; builds JSON with `to_js(...,
dict_converter=Object.fromEntries)` and `JSON.stringify`; reads `URL`, `Headers`, `Date`;
logs with `console`; calls `run_sync` from plain sync code on the event loop's thread (one
request waits at a gate that only a second request opens: the loop must keep serving while
the first waits) and from a Flask view (a WSGI thread) that fetches an upstream with
`js.fetch`. Its top level keeps a `Date` made at import, so two restored instances answering
the same value show the js objects came through the snapshot.
"""

from __future__ import annotations

import http.server
import json
import re
import threading

import pytest

from thawtest import ThawServe, snapshots_supported, write_project

WORKER = """
    import asyncio

    from flask import Flask, jsonify, request as flask_request
    from js import Date, Headers, JSON, Object, Response, URL, console, fetch
    from pyodide.ffi import run_sync, to_js
    from workers import WorkerEntrypoint, wsgi

    LOADED_AT = Date.new()  # made at import: a restored instance has the builder's
    GATE = asyncio.Event()
    WAITING = []
    SERVING_LOOP = [None]

    app = Flask(__name__)


    @app.get("/flask/upstream")
    def upstream():
        base = flask_request.environ["workers.env"].UPSTREAM
        response = run_sync(fetch(base + "/from-flask", method="POST", body="hi"))
        data = run_sync(response.json())
        # The coroutine ran on the loop serving this request (not on a private one).
        same_loop = run_sync(running_loop()) == SERVING_LOOP[0]
        return jsonify(status=response.status, upstream=data.to_py(), same_loop=same_loop)


    async def running_loop():
        return id(asyncio.get_running_loop())


    def wait_at_the_gate():
        # Plain synchronous code, called from the async handler on the loop's thread.
        WAITING.append(1)
        console.log("waiting at the gate")
        run_sync(GATE.wait())
        return "passed"


    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            SERVING_LOOP[0] = id(asyncio.get_running_loop())
            url = URL.new(request.url)
            if url.pathname.startswith("/flask/"):
                return await wsgi.fetch(app, request, self.env)
            if url.pathname == "/json":
                data = to_js({"path": url.pathname, "q": url.searchParams.get("q"),
                              "loaded": LOADED_AT.toISOString()},
                             dict_converter=Object.fromEntries)
                headers = to_js({"content-type": "application/json", "x-js": "yes"},
                                dict_converter=Object.fromEntries)
                return Response.new(JSON.stringify(data), headers=headers)
            if url.pathname == "/echo":
                text = run_sync(request.text())
                console.error(f"echoing {len(text)} characters")
                return Response.new(text, status=201,
                                    headers=Headers.new({"x-length": str(len(text))}))
            if url.pathname == "/wait":
                return Response.json({"gate": wait_at_the_gate()})
            if url.pathname == "/waiting":
                return Response.new(str(len(WAITING)))
            if url.pathname == "/open":
                GATE.set()
                return Response.new("opened")
            if url.pathname == "/thread":
                in_thread = await asyncio.to_thread(lambda: run_sync(running_loop()))
                return Response.json({"same_loop": in_thread == SERVING_LOOP[0]})
            if url.pathname == "/missing":
                from js import WebSocketPair  # noqa: F401
            return Response.new("not found", status=404)
"""


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        reply = json.dumps({"path": self.path, "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def project(root, upstream_url):
    return write_project(root, WORKER, vars={"UPSTREAM": upstream_url}, name="jsffi")


def check_worker(get, post, label):
    """The behaviour every server of the worker must show; `get(path)`/`post(path, body)`
    answer Resp objects."""
    r = get("/json?q=hello%20there")
    assert r.status == 200, f"{label}: {r}"
    assert r.headers["content-type"] == "application/json" and r.headers["x-js"] == "yes"
    data = r.json()
    assert data["path"] == "/json" and data["q"] == "hello there"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["loaded"])

    body = "x" * 200_000  # more than one window of flow-control credit
    r = post("/echo", body)
    assert (r.status, r.text, r.headers["x-length"]) == (201, body, "200000"), label

    r = get("/flask/upstream")
    assert r.status == 200, f"{label}: {r}"
    assert r.json() == {"status": 200, "upstream": {"path": "/from-flask", "body": "hi"},
                        "same_loop": True}
    r = get("/thread")
    assert (r.status, r.json()) == (200, {"same_loop": True}), f"{label}: {r}"

    # One request waits in run_sync at a gate that only a later request can open: the
    # event loop must keep serving while sync code on its thread waits.
    result = {}
    waiter = threading.Thread(target=lambda: result.update(r=get("/wait")))
    waiter.start()
    try:
        polled, ok = None, False
        for _ in range(100):
            polled = get("/waiting")
            if polled.status == 200 and polled.text == "1":
                ok = True
                break
            waiter.join(0.05)  # a bounded poll for the waiting request to arrive
        assert ok, f"{label}: the request never reached the gate: {polled}"
        assert get("/open").text == "opened"
    finally:
        waiter.join(30)
    assert not waiter.is_alive(), f"{label}: the waiting request never finished"
    assert result["r"].status == 200 and result["r"].json() == {"gate": "passed"}, result

    r = get("/missing")
    assert r.status == 500, f"{label}: {r}"
    return data["loaded"]


def test_cloudflare_style_js_worker_under_dev(tmp_path, dev, upstream):
    p = project(tmp_path / "app", upstream)
    d = dev(p, "--system-site-packages", "--max-instances", "1")

    def get(path):
        return d.get(path)

    def post(path, body):
        return d.request("POST", path, body=body.encode())

    check_worker(get, post, "dev")
    d.wait_for(r"waiting at the gate", stream="stdout")
    d.wait_for(r"echoing 200000 characters", stream="stderr")
    d.wait_for(r"js\.WebSocketPair is not available in thaw")


def test_js_objects_made_at_import_survive_the_snapshot(tmp_path, dev, upstream, snapshots):
    p = project(tmp_path / "app", upstream)
    d = dev(p, "--system-site-packages", "--idle-timeout", "0")
    d.wait_snapshot()
    first = d.get("/json")
    second = d.get("/json")
    assert first.status == second.status == 200, (first, second)
    assert first.timing()[0] == second.timing()[0] == "snapshot"
    # Both instances were restored from one image: the top level ran once, at build time.
    assert first.json()["loaded"] == second.json()["loaded"]
    r = d.request("POST", "/echo", body=b"after restore")
    assert (r.status, r.text) == (201, "after restore")


def test_cloudflare_style_js_worker_under_serve(tmp_path, upstream):
    host = ThawServe(tmp_path / "host" / "data", args=("--system-site-packages", "--idle-timeout", "0"))
    try:
        host.wait_ready()
        p = project(tmp_path / "app", upstream)
        r = host.client("deploy", p)
        assert r.returncode == 0, r.stdout + r.stderr
        headers = {"Host": "jsffi.localhost"}

        def get(path):
            return host.request("GET", path, headers=headers)

        def post(path, body):
            return host.request("POST", path, body=body.encode(), headers=headers)

        if snapshots_supported():
            assert "snapshot" in r.stdout + r.stderr, r.stdout + r.stderr
            # --idle-timeout 0: each of these is a new instance, restored from the one image.
            loaded = {get("/json").json()["loaded"] for _ in range(2)}
            assert len(loaded) == 1, loaded
        check_worker(get, post, "serve")
    finally:
        host.stop()
