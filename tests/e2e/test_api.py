"""The workers API as a worker sees it: requests, responses, env, ctx, streaming, config files."""

import hashlib
import http.client
import json
import socket
import threading
import time
import http.server
import urllib.parse

import httpx
import pytest

from thawtest import write_project

API_WORKER = r'''
import asyncio
import hashlib
import json
import os
from urllib.parse import urlparse, parse_qs

from workers import WorkerEntrypoint, Response, Request, Headers, fetch

DONE = {}


async def later(key, delay):
    await asyncio.sleep(delay)
    DONE[key] = "done"


async def chunks(n, delay):
    for i in range(n):
        yield f"chunk{i}\n".encode()
        await asyncio.sleep(delay)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/method":
            return Response(request.method)
        if path == "/url":
            return Response(request.url)
        if path == "/headers":
            seen = {k.lower(): v for k, v in request.headers.items()}
            return Response.json(
                {"seen": seen, "get": request.headers.get("X-Probe")},
                headers={"x-echo": request.headers.get("x-probe") or "", "x-static": "yes"},
            )
        if path == "/head-entries":
            return Response.json(
                {"items": request.headers.items(), "cf": dict(request.cf),
                 "method": request.method, "url": request.url,
                 "types": sorted({type(n).__name__ + type(v).__name__
                                  for n, v in request.headers.items()})},
                headers=[("x-latin", "caf\xe9"), ("X-Upper", "kept"),
                         ("set-cookie", "a=1"), ("set-cookie", "b=2")])
        if path == "/headers-obj":
            h = Headers({"x-one": "1"})
            h.append("x-two", "2")
            h.append("set-cookie", "a=1")
            h.append("set-cookie", "b=2")
            return Response("ok", headers=h)
        if path == "/json":
            data = await request.json()
            return Response.json({"got": data, "type": type(data).__name__}, status=201)
        if path == "/text":
            text = await request.text()
            return Response(f"{len(text)}:{text[::-1]}")
        if path == "/bytes":
            body = await request.bytes()
            return Response(hashlib.sha256(body).hexdigest() + f" {len(body)}")
        if path == "/status":
            return Response("status " + q["code"], status=int(q["code"]))
        if path == "/bodiless":
            return Response(None, status=int(q["code"]), headers={"etag": '"v1"'})
        if path == "/redirect":
            if "code" in q:
                return Response.redirect("https://example.com/there", int(q["code"]))
            return Response.redirect("https://example.com/there")
        if path == "/env":
            return Response.json({"GREETING": self.env.GREETING, "OTHER": self.env.OTHER})
        if path == "/html":
            return Response("<p>hi</p>", headers={"content-type": "text/html; charset=utf-8"})
        if path == "/wait_until":
            self.ctx.wait_until(later(q["key"], float(q["delay"])))
            return Response("scheduled")
        if path == "/wait_state":
            return Response(DONE.get(q["key"], "pending"))
        if path == "/stream":
            return Response(chunks(int(q["n"]), float(q["delay"])))
        if path == "/print":
            print("worker-print-marker", q["m"], flush=True)
            return Response("printed")
        if path == "/js_object":
            js = request.js_object
            return Response(f"{js.method} {js.url}")
        if path == "/outbound":
            r = await fetch(q["u"])
            return Response(f"{r.status}:" + await r.text())
        if path == "/pid":
            return Response(str(__import__("_thaw_runtime").host_pid()))
        return Response("not found", status=404)
'''


@pytest.fixture(scope="module")
def api(tmp_path_factory, module_dev):
    root = write_project(
        tmp_path_factory.mktemp("api"),
        API_WORKER,
        vars={"GREETING": "hello from pyproject", "OTHER": "ünïcode ✓"},
    )
    return module_dev(root, "--max-instances", "1")



def test_head_responses_never_carry_body_bytes(project, dev, start_mode):
    # A HEAD response has no body, not even the empty last chunk of a chunked one: on a
    # kept-alive connection that would be read as the next response's status line. Repeated,
    # on new and warm instances, plain and streamed bodies, because it depends on timing.
    d = start_mode.settle(dev(project(API_WORKER), *start_mode.flags))
    bad = []
    for i in range(60):
        path = "/method" if i % 2 else "/stream?n=2&delay=0.01"
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        try:
            conn.request("HEAD", path)
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b""
            conn.request("GET", "/method")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b"GET"
        except http.client.HTTPException as e:
            bad.append((path, repr(e)))
        finally:
            conn.close()
    assert not bad, f"{len(bad)} of 60 HEAD responses were followed by body bytes: {bad[:3]}"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_method_reaches_handler(api, method):
    r = api.request(method, "/method", body=b"" if method in ("POST", "PUT", "PATCH") else None)
    assert r.status == 200, r
    assert r.text == method


def test_head_sends_no_body_and_keeps_connection_usable(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.request("HEAD", "/method")
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b""
        # Had the server sent a body after the HEAD response, it would be read as this
        # response's status line.
        conn.request("GET", "/method")
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b"GET"
    finally:
        conn.close()


def test_url_carries_path_and_query(api):
    r = api.get("/url?a=1&b=two%20words")
    assert r.status == 200, r
    assert r.text.startswith("http://"), r.text
    assert r.text.endswith("/url?a=1&b=two%20words"), r.text


def test_request_and_response_headers_round_trip(api):
    r = api.get("/headers", headers={"X-Probe": "probe-value-42", "X-Other": "o"})
    assert r.status == 200, r
    data = r.json()
    assert data["seen"]["x-probe"] == "probe-value-42"
    assert data["seen"]["x-other"] == "o"
    assert data["get"] == "probe-value-42"  # case-insensitive lookup
    assert r.headers["X-Echo"] == "probe-value-42"
    assert r.headers["X-Static"] == "yes"
    assert r.headers["Content-Type"].startswith("application/json")


def exchange(api, raw: bytes) -> bytes:
    """Send raw bytes to the worker's port; everything that comes back until it closes."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("method, path", [
    ("GET", "/bodiless?code=204"), ("GET", "/bodiless?code=304"), ("HEAD", "/bodiless?code=304"),
])
def test_a_bodiless_status_goes_out_without_body_framing(api, method, path):
    # 204 and 304 have no body (RFC 9110 6.4.1): no chunked framing, whether or not the
    # response was complete when its head went out, and nothing after the head. (A 304 gets
    # "Content-Length: 0" from libmicrohttpd 0.9.75, which has no way to leave it out;
    # clients end a 304 at its head whatever it says, RFC 9112 6.3.) The next response on the
    # connection must parse.
    raw = (f"{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n"
           f"GET /method HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").encode()
    data = exchange(api, raw)
    first, _, rest = data.partition(b"\r\n\r\n")
    lines = [line.lower() for line in first.split(b"\r\n")]
    code = path.rsplit("=", 1)[1].encode()
    assert lines[0].startswith(b"http/1.1 " + code), lines
    assert not any(line.startswith(b"transfer-encoding") for line in lines), lines
    assert not any(line.startswith(b"content-length") and line != b"content-length: 0"
                   for line in lines), lines
    if code == b"204":
        assert not any(line.startswith(b"content-length") for line in lines), lines
    assert b'etag: "v1"' in lines, lines
    # Nothing between that head and the next response's status line.
    assert rest.startswith(b"HTTP/1.1 200"), rest[:200]
    assert rest.endswith(b"GET"), rest[-200:]


def test_request_head_decoded_as_headers_append_would(api):
    # The instance builds request.headers in C from the host's frame: the same entries
    # Headers.append makes (names lowercased, values trimmed, a repeated name's values
    # joined by ", " in its first place, set-cookie kept apart, Latin-1 kept), the
    # host's facts in request.cf, and the response's headers encoded back as Latin-1.
    raw = (b"GET /head-entries?q=%C3%A9 HTTP/1.1\r\nHost: h.example\r\n"
           b"X-Rep: a\r\nX-Other: o\r\nx-rep: b\r\nX-Rep:\r\nX-Pad: \t padded \t\r\n"
           b"Set-Cookie: c=1\r\nSet-Cookie: d=2\r\nX-Latin: caf\xe9\r\n"
           b"Accept-Encoding: gzip\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n")
    data = exchange(api, raw)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 200"), lines[0]
    assert b"x-latin: caf\xe9" in [line.lower() for line in lines[1:]], lines
    assert b"X-Upper: kept" in lines or b"x-upper: kept" in lines, lines
    assert [line for line in lines if line.lower().startswith(b"set-cookie:")] == [
        b"set-cookie: a=1", b"set-cookie: b=2"], lines
    got = json.loads(body)
    items = [tuple(item) for item in got["items"]]
    names = [n for n, _ in items]
    assert got["types"] == ["strstr"]
    assert got["method"] == "GET"
    assert got["url"] == "http://h.example/head-entries?q=%C3%A9"
    assert ("x-rep", "a, b, ") in items and names.count("x-rep") == 1  # (as append joins "")
    assert names.index("x-rep") < names.index("x-other")  # where it first came
    assert ("x-pad", "padded") in items
    assert [v for n, v in items if n == "set-cookie"] == ["c=1", "d=2"]
    assert ("x-latin", "caf\xe9") in items
    assert ("accept-encoding", "gzip, br") in items
    assert got["cf"]["clientAcceptEncoding"] == "gzip, br"
    assert got["cf"]["httpProtocol"] == "HTTP/1.1"
    assert all(n == n.lower() for n in names)


def test_headers_object_in_response(api):
    r = api.get("/headers-obj")
    assert r.status == 200, r
    assert r.headers["x-one"] == "1"
    assert r.headers["x-two"] == "2"
    assert r.headers.get_all("set-cookie") == ["a=1", "b=2"], "repeated headers must stay apart"


def test_json_request_and_response(api):
    payload = {"a": [1, 2, 3], "b": {"c": None, "d": "é"}, "n": 1.5}
    r = api.request("POST", "/json", body=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"got": payload, "type": "dict"}


def test_text_body_is_decoded_utf8(api):
    text = "héllo wörld ✓"
    r = api.request("POST", "/text", body=text.encode())
    assert r.status == 200, r
    assert r.text == f"{len(text)}:{text[::-1]}"
    assert r.headers["Content-Type"] == "text/plain;charset=UTF-8"


def test_bytes_body_is_exact(api):
    body = bytes(range(256)) * 1000
    r = api.request("POST", "/bytes", body=body)
    assert r.status == 200, r
    assert r.text == f"{hashlib.sha256(body).hexdigest()} {len(body)}"


def test_empty_body_is_empty_bytes(api):
    r = api.request("POST", "/bytes", body=b"")
    assert r.text == f"{hashlib.sha256(b'').hexdigest()} 0"


@pytest.mark.parametrize("code", [200, 201, 202, 404, 418, 500, 503])
def test_status_codes(api, code):
    r = api.get(f"/status?code={code}")
    assert r.status == code, r
    assert r.text == f"status {code}"


def test_redirect_default_and_explicit_status(api):
    r = api.get("/redirect")
    assert r.status == 302, r
    assert r.headers["Location"] == "https://example.com/there"
    r = api.get("/redirect?code=301")
    assert r.status == 301, r
    assert r.headers["Location"] == "https://example.com/there"


def test_env_vars_from_pyproject(api):
    r = api.get("/env")
    assert r.status == 200, r
    assert r.json() == {"GREETING": "hello from pyproject", "OTHER": "ünïcode ✓"}


def test_custom_content_type_kept(api):
    r = api.get("/html")
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.body == b"<p>hi</p>"


def test_wait_until_runs_after_response(api):
    t0 = time.monotonic()
    r = api.get("/wait_until?key=k1&delay=1.0")
    elapsed = time.monotonic() - t0
    assert r.status == 200 and r.text == "scheduled", r
    assert elapsed < 0.9, f"the response waited for the wait_until task ({elapsed:.2f}s)"
    assert api.get("/wait_state?key=k1").text == "pending"
    last, ok = api.get_until("/wait_state?key=k1", lambda x: x.text == "done", timeout=5)
    assert ok, f"the wait_until task never completed: {last}"


def test_async_generator_response_is_streamed(api):
    n, delay = 4, 0.4
    arrivals = []
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as c:
        with c.stream("GET", f"{api.base}/stream?n={n}&delay={delay}") as r:
            assert r.status_code == 200
            body = b""
            for chunk in r.iter_raw():
                arrivals.append(time.monotonic() - t0)
                body += chunk
    assert body == b"".join(f"chunk{i}\n".encode() for i in range(n))
    total = arrivals[-1]
    assert total >= (n - 1) * delay * 0.9, arrivals
    assert arrivals[0] < total - delay, (
        f"first bytes arrived at {arrivals[0]:.2f}s, all at {total:.2f}s: the response was "
        "buffered, not streamed")


def test_keep_alive_serves_several_requests_on_one_connection(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        conn.connect()
        sock = conn.sock
        for i in range(5):
            body = f"req {i}".encode()
            conn.request("POST", "/text", body=body)
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200
            assert data == f"{len(body)}:{body.decode()[::-1]}".encode()
            assert not r.will_close, "the server closed a keep-alive connection"
            conn.request("GET", f"/url?i={i}")
            r = conn.getresponse()
            assert r.read().endswith(f"/url?i={i}".encode())
            assert conn.sock is sock, "http.client had to reconnect"
    finally:
        conn.close()


def test_expect_100_continue(api):
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    try:
        sock.sendall(b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(b"hello")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200
        assert resp.read() == b"5:olleh"
    finally:
        sock.close()


def test_worker_print_reaches_thaw_output(api):
    mark = api.mark()
    r = api.get("/print?m=abc123")
    assert r.text == "printed"
    api.wait_for(r"worker-print-marker abc123", start=mark, timeout=5)


def test_js_object_is_usable_as_request(api):
    r = api.get("/js_object?x=1")
    assert r.status == 200, r
    method, url = r.text.split(" ", 1)
    assert method == "GET"
    assert url.endswith("/js_object?x=1")


def test_outbound_fetch(api):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"upstream saw {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        u = f"http://127.0.0.1:{srv.server_address[1]}/up?z=9"
        r = api.get("/outbound?u=" + urllib.parse.quote(u, safe=""))
        assert r.status == 200, r
        assert r.text == "200:upstream saw /up?z=9"
    finally:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- other worker forms


def test_legacy_on_fetch_with_env(project, dev):
    p = project(
        """
        from workers import Response

        async def on_fetch(request, env):
            return Response(f"legacy {request.method} {env.GREETING}")
        """,
        vars={"GREETING": "hi"},
    )
    d = dev(p)
    r = d.get("/")
    assert r.status == 200, r
    assert r.text == "legacy GET hi"


def test_asgi_adapter_with_scope_env(project, dev):
    p = project(
        """
        import asgi
        from workers import WorkerEntrypoint

        async def app(scope, receive, send):
            assert scope["type"] == "http"
            body = b""
            while True:
                msg = await receive()
                body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            text = "|".join([scope["method"], scope["path"], scope["query_string"].decode(),
                             scope["env"].GREETING, body.decode()])
            await send({"type": "http.response.start", "status": 207,
                        "headers": [(b"content-type", b"text/plain"), (b"x-asgi", b"1")]})
            await send({"type": "http.response.body", "body": text.encode()})

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await asgi.fetch(app, request.js_object, self.env)
        """,
        vars={"GREETING": "asgi-env"},
    )
    d = dev(p)
    r = d.request("POST", "/some/path?q=1", body=b"payload")
    assert r.status == 207, f"{r}\n{d.output()}"
    assert r.headers["x-asgi"] == "1"
    assert r.text == "POST|/some/path|q=1|asgi-env|payload"


def test_wsgi_adapter(project, dev):
    p = project(
        """
        import wsgi
        from workers import WorkerEntrypoint

        def app(environ, start_response):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            text = "|".join([environ["REQUEST_METHOD"], environ["PATH_INFO"],
                             environ["QUERY_STRING"], body.decode()])
            start_response("202 Accepted", [("Content-Type", "text/plain"), ("X-Wsgi", "1")])
            return [text.encode()]

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await wsgi.fetch(app, request, self.env)
        """
    )
    d = dev(p)
    r = d.request("PUT", "/w/x?k=v", body=b"data")
    assert r.status == 202, f"{r}\n{d.output()}"
    assert r.headers["x-wsgi"] == "1"
    assert r.text == "PUT|/w/x|k=v|data"


ENV_WORKER = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json({k: getattr(self.env, k, None) for k in ("GREETING", "URL", "ONLY")})
"""


def test_wrangler_toml_name_main_vars(tmp_path, dev):
    root = write_project(tmp_path / "w", ENV_WORKER, main="src/worker.py", pyproject=False)
    (root / "wrangler.toml").write_text(
        'name = "from-wrangler"\n'
        'main = "src/worker.py"\n'
        'compatibility_date = "2024-01-01"\n'
        "frobnicate_level = 3\n"
        "\n[vars]\n"
        'GREETING = "hello from wrangler.toml"\n'
        'URL = "http://example.com/a#b"\n'
    )
    d = dev(root)
    r = d.get("/")
    assert r.status == 200, f"{r}\n{d.output()}"
    assert r.json() == {"GREETING": "hello from wrangler.toml", "URL": "http://example.com/a#b",
                        "ONLY": None}
    assert "frobnicate_level" in d.output(), "no note about the unknown wrangler key"


def test_wrangler_jsonc_with_comments_and_trailing_commas(tmp_path, dev):
    root = write_project(tmp_path / "w", ENV_WORKER, main="src/worker.py", pyproject=False)
    (root / "wrangler.jsonc").write_text(
        """// the project's wrangler config
{
  /* block comment,
     spanning lines */
  "name": "jsonc-worker", // trailing comment
  "main": "src/worker.py",
  "frobnicate_jsonc": {"x": 1,},
  "vars": {
    "GREETING": "hi // not a comment",
    "URL": "http://example.com/*not-a-comment*/",
    "ONLY": "a \\"quoted\\" /* value",
  },
}
"""
    )
    d = dev(root)
    r = d.get("/")
    assert r.status == 200, f"{r}\n{d.output()}"
    assert r.json() == {
        "GREETING": "hi // not a comment",
        "URL": "http://example.com/*not-a-comment*/",
        "ONLY": 'a "quoted" /* value',
    }
    assert "frobnicate_jsonc" in d.output(), "no note about the unknown wrangler key"


def test_pyproject_overrides_wrangler(tmp_path, dev):
    root = write_project(tmp_path / "w", ENV_WORKER, vars={"GREETING": "pyproject wins"})
    (root / "wrangler.toml").write_text(
        'name = "w"\nmain = "src/other.py"\n\n[vars]\nGREETING = "wrangler loses"\n'
    )
    d = dev(root)
    r = d.get("/")
    assert r.status == 200, f"{r}\n{d.output()}"
    assert r.json()["GREETING"] == "pyproject wins"


# --------------------------------------------------------------------------- the worker's sys.path

IMPORT_PROBE = """
import importlib
from urllib.parse import urlparse, parse_qs
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = parse_qs(urlparse(request.url).query)["m"][0]
        try:
            mod = importlib.import_module(name)
        except ImportError as e:
            return Response(f"ImportError {e}", status=404)
        return Response(f"imported {getattr(mod, 'VALUE', mod.__name__)}")
"""


def test_python_modules_and_src_are_importable(project, dev):
    p = project(IMPORT_PROBE, files={
        "python_modules/vendored_pkg/__init__.py": 'VALUE = "from python_modules"\n',
        "src/sibling.py": 'VALUE = "from src"\n',
    })
    d = dev(p)
    assert d.get("/?m=vendored_pkg").text == "imported from python_modules"
    assert d.get("/?m=sibling").text == "imported from src"


def test_system_site_packages_only_on_request(project, dev, tmp_path):
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "leaky_mod.py").write_text('VALUE = "leaked"\n')
    d = dev(project(IMPORT_PROBE), env={"PYTHONPATH": str(leak)})
    r = d.get("/?m=fastapi")
    assert r.status == 404 and r.text.startswith("ImportError"), (
        f"the system's fastapi is importable without --system-site-packages: {r}")
    r = d.get("/?m=leaky_mod")
    assert r.status == 404, f"PYTHONPATH leaked into the instance: {r}"
    d2 = dev(project(IMPORT_PROBE), "--system-site-packages")
    r = d2.get("/?m=fastapi")
    assert r.status == 200 and r.text == "imported fastapi", r
