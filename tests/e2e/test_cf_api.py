"""The API details of Cloudflare's Python Workers, with workers written the way its docs show
them, against `thaw dev` (and `thaw serve` for --trust-proxy): Response's positional order
and reason phrase, Response.json's bytes, Headers lookups, a body read twice, fetch's
redirect modes and its response, request.cf, and who the client is."""

import http.client
import http.server
import json
import re
import threading

import pytest

from thawtest import ThawServe, run_thaw, write_project

WORKER = r'''
from urllib.parse import urlparse, parse_qs

from workers import Response, WorkerEntrypoint, fetch


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/positional":
            return Response("made", 201, "Made Here", {"x-kind": "positional"}, None)
        if url.path == "/status-text":
            made, teapot = Response("made", 201, "Made Here"), Response("tea", 418)
            taken = Response.json({}, 202, "Taken", {"x-kind": "json"})
            return Response.json([made.status_text, teapot.status_text, taken.status_text,
                                  taken.headers["x-kind"]])
        if url.path == "/json":
            return Response.json({"name": "thaw", "list": [1, 2.5, None], "é": True})
        if url.path == "/headers":
            headers = request.headers
            return Response.json({
                "accept": headers.get("accept"),
                "accept_all": headers.get_all("accept"),
                "missing_item": headers["x-missing"],
                "missing_get": headers.get("x-missing"),
                "missing_all": headers.get_all("x-missing"),
            })
        if url.path == "/twice":
            first = await request.text()
            try:
                await request.text()
            except OSError as error:
                return Response.json({"first": first, "error": type(error).__name__,
                                      "message": str(error), "used": request.body_used})
            return Response("read twice", 500)
        if url.path == "/who":
            return Response.json({
                "url": request.url,
                "ip": request.headers.get("cf-connecting-ip"),
                "proto": request.headers.get("x-forwarded-proto"),
                "cf": dict(request.cf),
                "protocol": request.cf.httpProtocol,
                "country": request.cf.get("country"),
            })
        if url.path == "/fetch":
            target = query["target"]
            followed = await fetch(target + "/redirect")
            manual = await fetch(target + "/redirect", redirect="manual")
            missing = await fetch(target + "/missing")
            try:
                missing.raise_for_status()
                raised = None
            except OSError as error:
                raised = str(error)
            copy = followed.clone()
            return Response.json({
                "followed": [followed.status, followed.redirected, followed.url,
                             await followed.text(), await copy.text()],
                "manual": [manual.status, manual.redirected, manual.headers.get("location")],
                "missing": [missing.status, missing.ok, raised],
            })
        return Response("not found", 404)
'''


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "cfapi", WORKER, name="cfapi")


@pytest.fixture
def dev(project):
    from thawtest import start_dev

    d = start_dev(project, "--port", "0", "--trust-proxy", "10.0.0.0/8")
    yield d
    d.stop()


def test_response_positional_order_and_reason_phrase(dev):
    r = dev.get("/positional")
    assert (r.status, r.body, r.headers["x-kind"]) == (201, b"made", "positional")
    # status_text as given, else the standard reason phrase (the wire carries the standard
    # phrase in both cases: see docs/cloudflare-compat.md).
    r = dev.get("/status-text")
    assert r.json() == ["Made Here", "I'm a Teapot", "Taken", "json"]


def test_response_json_bytes_are_json_dumps(dev):
    r = dev.get("/json")
    expected = json.dumps({"name": "thaw", "list": [1, 2.5, None], "é": True}).encode()
    assert r.status == 200
    assert r.body == expected
    assert r.headers["content-type"] == "application/json"


def test_headers_fold_repeats_and_missing_names_read_as_none(dev):
    conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=30)
    try:
        conn.putrequest("GET", "/headers")
        conn.putheader("Accept", "text/html")
        conn.putheader("Accept", "application/json")
        conn.endheaders()
        r = conn.getresponse()
        body = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 200, body
    assert body == {
        "accept": "text/html, application/json",
        "accept_all": ["text/html, application/json"],
        "missing_item": None,
        "missing_get": None,
        "missing_all": None,
    }


def test_reading_a_body_twice_raises_as_on_cloudflare(dev):
    r = dev.request("POST", "/twice", body=b"payload")
    assert r.status == 200, r.text
    assert r.json() == {"first": "payload", "error": "BodyUsedError", "message": "Body already used",
                        "used": True}


class _Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/landing")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status, body = (200, b"landed") if self.path == "/landing" else (404, b"no")
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_redirect_modes_and_response_helpers(dev, target):
    r = dev.get(f"/fetch?target={target}")
    assert r.status == 200, r.text
    assert r.json() == {
        "followed": [200, True, f"{target}/landing", "landed", "landed"],
        "manual": [302, False, "/landing"],
        "missing": [404, False, f"404 Client Error: Not Found for url: {target}/missing"],
    }


def test_client_headers_cannot_claim_another_address_or_https(dev):
    # 127.0.0.1 is not inside the trusted 10.0.0.0/8: nothing it forwards is believed.
    r = dev.get("/who", headers={"cf-connecting-ip": "6.6.6.6", "X-Forwarded-For": "6.6.6.6",
                                 "X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"})
    assert r.status == 200, r.text
    body = r.json()
    assert body["url"] == f"http://127.0.0.1:{dev.port}/who"
    assert body["ip"] == "127.0.0.1"
    assert body["proto"] == "http"
    assert body["cf"] == {"httpProtocol": "HTTP/1.1", "clientAcceptEncoding": "gzip"}
    assert body["protocol"] == "HTTP/1.1"
    assert body["country"] is None


@pytest.mark.parametrize("value", ["10.0.0.0/33", "localhost", "1.2.3.4/x", ""])
def test_a_bad_trust_proxy_value_is_refused(project, value):
    r = run_thaw("dev", project, "--port", "0", "--trust-proxy", value, timeout=30)
    assert r.returncode != 0
    assert re.search(r"--trust-proxy: .*" + re.escape(value), r.stderr), r.stderr


def test_serve_believes_a_trusted_proxy(tmp_path, project):
    host = ThawServe(tmp_path / "host" / "data", args=("--trust-proxy", "127.0.0.1",
                                                       "--trust-proxy", "10.0.0.0/8"))
    try:
        host.wait_ready()
        deployed = host.client("deploy", project, "--no-install")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        # The client forged the leftmost entry; the proxy (10.1.2.3, then us) appended the
        # real one: the rightmost address that is not a trusted proxy is the client.
        r = host.worker_get("cfapi", "/who", headers={
            "X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.2.3", "X-Forwarded-Proto": "https"})
        assert r.status == 200, r.text
        body = r.json()
        assert body["url"] == "https://cfapi.localhost/who"
        assert body["ip"] == "203.0.113.7"
        assert body["proto"] == "https"
        # Without forwarded headers the proxy itself is the client, over http.
        r = host.worker_get("cfapi", "/who")
        assert (r.json()["url"], r.json()["ip"]) == ("http://cfapi.localhost/who", "127.0.0.1")
    finally:
        if host.alive():
            host.stop()
