"""The API details that follow Cloudflare's Python Workers SDK (issue 10, item 8):
Response's positional order and defaults, Response.json's bytes, reading a
body twice, clone(), Request's constructor, fetch's redirect modes and its
response, request.cf."""

import http.server
import json
import threading

import pytest
from conftest import run

from workers import BodyStream, BodyUsedError, Headers, HttpStatusError, Request, Response, fetch
from workers._http import Cf


# Response(body, status, status_text, headers, web_socket)
def test_response_positional_order_is_body_status_status_text_headers():
    response = Response("x", 201, "Made", {"x-a": "1"})
    assert (response.status, response.status_text, response.headers["x-a"]) == (201, "Made", "1")
    response = Response("x", 404, "", [("x-b", "2")])
    assert (response.status_text, response.headers["x-b"]) == ("Not Found", "2")


def test_response_does_not_guess_headers_from_their_type():
    # thaw used to take a dict in third place as the headers; Cloudflare's
    # third argument is status_text.
    with pytest.raises(TypeError, match="status_text must be a str.*headers="):
        Response("x", 200, {"x-a": "1"})
    with pytest.raises(TypeError, match="status must be an int"):
        Response("x", {"x-a": "1"})


def test_response_defaults_are_status_200_and_the_reason_phrase():
    assert (Response().status, Response().status_text) == (200, "OK")
    assert Response("x", None).status == 200
    assert Response("x", 418).status_text == "I'm a Teapot"
    assert Response("x", 299).status_text == ""  # no standard phrase
    assert Response(status=503).status_text == "Service Unavailable"


def test_response_web_socket_is_refused_clearly():
    with pytest.raises(NotImplementedError, match="WebSocket"):
        Response(None, 101, "", None, object())


@pytest.mark.parametrize("data", [{"a": [1, 2.5, None], "b": "é"}, [1, "two"], "text", 3, None])
def test_response_json_body_is_json_dumps_with_default_separators(data):
    response = Response.json(data)
    assert response.body == json.dumps(data).encode()
    assert response.headers["content-type"] == "application/json"


def test_response_json_positional_order_is_data_status_status_text_headers():
    response = Response.json({"k": 1}, 201, "Made", {"x-a": "1"})
    assert (response.status, response.status_text) == (201, "Made")
    assert response.headers["x-a"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert Response.from_json([], 202).status == 202


def test_response_redirect():
    response = Response.redirect("https://example.com/", 308)
    assert (response.status, response.headers["location"]) == (308, "https://example.com/")


# Reading a body twice
def test_reading_a_request_body_twice_raises_oserror_body_already_used():
    request = Request("http://h/", method="POST", body="data")
    assert not request.body_used
    assert run(request.text()) == "data"
    assert request.body_used
    with pytest.raises(OSError, match="^Body already used$"):
        run(request.text())
    with pytest.raises(BodyUsedError):
        run(request.json())


def test_reading_a_response_body_twice_raises_response_body_is_already_used():
    response = Response(b"abc")
    assert run(response.bytes()) == b"abc"
    assert response.body_used
    with pytest.raises(OSError, match="^Response body is already used$"):
        run(response.text())


def test_a_missing_body_reads_empty_and_is_never_used():
    request = Request("http://h/")
    assert run(request.text()) == ""
    assert run(request.bytes()) == b""
    assert not request.body_used


def test_taking_the_body_stream_uses_the_body():
    request = Request("http://h/", method="PUT", body=b"x")
    chunks = request.body
    assert request.body_used
    with pytest.raises(BodyUsedError):
        run(request.bytes())
    assert run(_collect(chunks)) == [b"x"]


async def _collect(chunks):
    return [chunk async for chunk in chunks]


def test_clone_reads_a_streamed_body_twice():
    async def main():
        stream = BodyStream()
        request = Request._incoming("POST", "http://h/", Headers(), stream)
        copy = request.clone()
        stream.push(b"one")
        stream.push(b"two")
        stream.end()
        return await request.text(), await copy.text()

    assert run(main()) == ("onetwo", "onetwo")


def test_clone_of_a_response_and_after_use():
    response = Response("body", 202, "Hm", {"x": "1"})
    copy = response.clone()
    assert (copy.status, copy.status_text, copy.headers["x"]) == (202, "Hm", "1")
    assert run(response.text()) == run(copy.text()) == "body"
    with pytest.raises(BodyUsedError):
        response.clone()


def test_clone_passes_a_stream_error_to_both_branches():
    async def main():
        stream = BodyStream()
        request = Request._incoming("POST", "http://h/", Headers(), stream)
        copy = request.clone()
        stream.push(b"x")
        stream.fail(ConnectionResetError("gone"))
        results = []
        for r in (request, copy):
            try:
                await r.bytes()
            except ConnectionResetError:
                results.append("reset")
        return results

    assert run(main()) == ["reset", "reset"]


# Request(input, method=, headers=, body=, redirect=, cf=)
def test_request_constructor_keywords():
    request = Request("http://h/p", method="put", headers={"x": "1"}, body=b"b",
                      redirect="manual", cf={"cacheTtl": 5})
    assert (request.method, request.url, request.redirect) == ("PUT", "http://h/p", "manual")
    assert request.cf == {"cacheTtl": 5}
    assert Request("http://h/").redirect == "follow"
    assert Request("http://h/").cf is None
    with pytest.raises(TypeError, match="redirect"):
        Request("http://h/", redirect="sometimes")


def test_request_from_a_request_takes_its_fields_and_moves_its_body():
    original = Request("http://h/p", method="POST", headers={"x": "1"}, body=b"payload",
                       redirect="error", cf={"a": 1})
    derived = Request(original, headers={"y": "2"})
    assert (derived.url, derived.method, derived.redirect, derived.cf) == (
        "http://h/p", "POST", "error", {"a": 1})
    assert "x" not in derived.headers and derived.headers["y"] == "2"
    assert run(derived.bytes()) == b"payload"
    assert original.body_used
    with pytest.raises(BodyUsedError):
        Request(original)


def test_request_cf_reads_as_attributes_and_keys():
    request = Request._incoming("GET", "http://h/", Headers(), None, {"httpProtocol": "HTTP/1.1"})
    assert isinstance(request.cf, Cf)
    assert request.cf.httpProtocol == request.cf["httpProtocol"] == "HTTP/1.1"
    assert request.cf.get("country") is None
    with pytest.raises(AttributeError, match="country"):
        request.cf.country


# fetch
class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.path.startswith("/chain/"):
            # /chain/N redirects to /chain/N-1 ... /chain/0 is the answer.
            left = int(self.path.rsplit("/", 1)[1])
            if left > 0:
                self.send_response(302)
                self.send_header("location", f"/chain/{left - 1}")
                self.send_header("content-length", "0")
                self.end_headers()
                return
        if self.path in ("/loop", "/to-ftp", "/to-file"):
            target = {"/loop": "/loop", "/to-ftp": "ftp://127.0.0.1:1/x",
                      "/to-file": "file:///etc/hostname"}[self.path]
            self.send_response(302)
            self.send_header("location", target)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.path.startswith("/redirect/"):
            code = int(self.path.rsplit("/", 1)[1])
            self.send_response(code)
            self.send_header("location", "/echo")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status = 500 if self.path == "/fail" else 200
        reply = json.dumps({"method": self.command, "path": self.path,
                            "body": body.decode()}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_follows_redirects_by_default_and_says_so(server):
    response = run(fetch(server + "/redirect/302"))
    assert (response.status, response.redirected, response.url) == (200, True, server + "/echo")
    assert run(response.json())["path"] == "/echo"
    direct = run(fetch(server + "/echo"))
    assert (direct.redirected, direct.url) == (False, server + "/echo")


def test_fetch_redirect_manual_returns_the_3xx_as_it_is(server):
    response = run(fetch(server + "/redirect/301", redirect="manual"))
    assert (response.status, response.redirected, response.ok) == (301, False, False)
    assert response.headers["location"] == "/echo"
    request = Request(server + "/redirect/307", redirect="manual")
    assert run(fetch(request)).status == 307


def test_fetch_redirect_error_raises(server):
    with pytest.raises(OSError, match="redirect"):
        run(fetch(server + "/redirect/302", redirect="error"))


def test_fetch_follows_twenty_redirects_and_fails_on_the_twenty_first(server):
    response = run(fetch(server + "/chain/20"))
    assert (response.status, response.redirected, response.url) == (200, True,
                                                                     server + "/chain/0")
    # The Fetch standard: more than 20 is a network error, never the 3xx as an answer.
    with pytest.raises(OSError, match="redirect"):
        run(fetch(server + "/chain/21"))


def test_fetch_redirect_loop_is_an_error_not_a_response(server):
    with pytest.raises(OSError, match="redirect"):
        run(fetch(server + "/loop"))


def test_fetch_follows_only_http_and_https(server):
    for path in ("/to-ftp", "/to-file"):
        with pytest.raises(OSError, match="redirect"):
            run(fetch(server + path))
    with pytest.raises(TypeError, match="http"):
        run(fetch("file:///etc/hostname"))


def test_fetch_redirects_keep_or_drop_the_method_as_fetch_does(server):
    after_303 = run(run_json(fetch(server + "/redirect/303", method="POST", body="b")))
    assert (after_303["method"], after_303["body"]) == ("GET", "")
    after_307 = run(run_json(fetch(server + "/redirect/307", method="PUT", body="b")))
    assert (after_307["method"], after_307["body"]) == ("PUT", "b")


async def run_json(pending):
    return await (await pending).json()


def test_fetch_response_raise_for_status_and_clone(server):
    response = run(fetch(server + "/fail"))
    with pytest.raises(HttpStatusError) as caught:
        response.raise_for_status()
    assert isinstance(caught.value, OSError)
    assert str(caught.value) == f"500 Server Error: Internal Server Error for url: {server}/fail"
    assert caught.value.status == 500
    copy = response.clone()
    assert run(response.json()) == run(copy.json())
    run(fetch(server + "/echo")).raise_for_status()  # no error for a 200
