import asyncio
import http.server
import json
import threading
from http import HTTPStatus

import pytest
from conftest import run

from workers import BodyStream, Headers, Request, Response, fetch


def test_str_body_defaults_to_utf8_text_plain():
    response = Response("héllo")
    assert response.status == 200
    assert response.status_text == "OK"
    assert response.headers["content-type"] == "text/plain;charset=UTF-8"
    assert response.body == "héllo".encode()


def test_explicit_content_type_is_kept():
    response = Response("<b>hi</b>", headers={"Content-Type": "text/html"})
    assert response.headers.get_all("content-type") == ["text/html"]


def test_bytes_and_empty_bodies_get_no_content_type():
    assert "content-type" not in Response(b"\x00\x01").headers
    assert "content-type" not in Response().headers
    assert Response().body is None
    assert Response(memoryview(b"ab")).body == b"ab"


def test_status_and_status_text():
    assert Response("x", status=HTTPStatus.CREATED).status == 201
    assert Response("x", 404).status_text == "Not Found"
    assert Response("x", 200, status_text="Fine").status_text == "Fine"
    # Cloudflare's positional order: (body, status, status_text, headers).
    response = Response("x", 202, "Later", {"x-a": "1"})
    assert (response.status_text, response.headers["x-a"]) == ("Later", "1")


@pytest.mark.parametrize("status", [0, 99, 199, 600])
def test_out_of_range_status_is_rejected(status):
    with pytest.raises(ValueError):
        Response("x", status=status)


def test_null_body_status_refuses_a_body():
    with pytest.raises(ValueError):
        Response("content", status=204)
    assert Response(status=204).status == 204


def test_response_json_builds_application_json():
    response = Response.json({"a": [1, 2], "ü": None}, status=201, headers={"x-k": "v"})
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-k"] == "v"
    assert json.loads(response.body) == {"a": [1, 2], "ü": None}
    assert Response.from_json([1]).body == b"[1]"


def test_response_json_keeps_a_given_content_type():
    response = Response.json({}, headers={"content-type": "application/problem+json"})
    assert response.headers.get_all("content-type") == ["application/problem+json"]


def test_instance_json_text_bytes_read_the_body():
    assert run(Response.json({"n": 1}).json()) == {"n": 1}
    assert run(Response.json({"n": 1}).text()) == '{"n": 1}'
    assert run(Response.json({"n": 1}).bytes()) == b'{"n": 1}'


def test_redirect():
    response = Response.redirect("https://example.com/next", 301)
    assert response.status == 301
    assert response.headers["location"] == "https://example.com/next"
    assert Response.redirect("/x").status == 302
    with pytest.raises(ValueError):
        Response.redirect("/x", 200)


def test_streamed_response_body_can_be_read_in_full():
    async def chunks():
        yield "a"
        yield b"b"
        yield bytearray(b"c")

    response = Response(chunks())
    assert "content-type" not in response.headers

    assert run(response.text()) == "abc"
    assert response.body == b"abc"


def test_unsupported_body_type_is_a_type_error():
    with pytest.raises(TypeError, match="Response.json"):
        Response({"a": 1})
    with pytest.raises(TypeError):
        Response(42)


def test_request_basics_and_js_object():
    request = Request("http://h/x?y=1", method="post", headers={"X-A": "1"}, body="hi")
    assert request.method == "POST"
    assert request.url == "http://h/x?y=1"
    assert isinstance(request.headers, Headers)
    assert request.headers["x-a"] == "1"
    assert request.headers["content-type"] == "text/plain;charset=UTF-8"
    assert request.js_object is request
    assert run(request.text()) == "hi"


def test_get_request_cannot_have_a_body():
    with pytest.raises(TypeError):
        Request("http://h/", body=b"x")


def test_request_body_text_json_bytes_read_it():
    body = b'{"k": [1, "\xc3\xa9"]}'
    assert run(Request("http://h/", method="POST", body=body).json()) == {"k": [1, "é"]}
    assert run(Request("http://h/", method="POST", body=body).text()) == '{"k": [1, "é"]}'
    assert run(Request("http://h/", method="POST", body=body).bytes()) == body


def test_request_body_iterates_chunks_once():
    async def main():
        stream = BodyStream()
        request = Request._incoming("POST", "http://h/", Headers(), stream)
        stream.push(b"one")
        stream.push(b"two")
        stream.end()
        chunks = [chunk async for chunk in request.body]
        with pytest.raises(OSError, match="Body already used"):
            await request.bytes()
        return chunks

    assert run(main()) == [b"one", b"two"]


def test_body_stream_reports_consumed_bytes_as_chunks_are_taken():
    consumed = []

    async def main():
        stream = BodyStream(on_consume=consumed.append)
        request = Request._incoming("POST", "http://h/", Headers(), stream)
        reader = asyncio.ensure_future(request.bytes())
        await asyncio.sleep(0)
        stream.push(b"abc")
        await asyncio.sleep(0)
        stream.push(b"de")
        stream.end()
        return await reader

    assert run(main()) == b"abcde"
    assert consumed == [3, 2]


def test_body_stream_failure_reaches_the_reader():
    async def main():
        stream = BodyStream()
        stream.push(b"partial")
        stream.fail(ConnectionResetError("gone"))
        request = Request._incoming("POST", "http://h/", Headers(), stream)
        await request.bytes()

    with pytest.raises(ConnectionResetError):
        run(main())


def test_request_without_body_reads_empty():
    request = Request("http://h/")
    assert run(request.bytes()) == b""
    assert run(request.text()) == ""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/hop":  # one redirect, to /echo
            self.send_response(307)
            self.send_header("location", "/echo")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status = 404 if self.path == "/missing" else 200
        reply = json.dumps({"path": self.path, "body": body.decode(),
                            "x": self.headers.get("x-test")}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "a=1")
        self.send_header("set-cookie", "b=2")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

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


def test_fetch_sends_the_request_and_returns_a_response(server):
    response = run(fetch(server + "/echo", method="POST", headers={"X-Test": "yes"}, body="ping"))
    assert response.status == 200
    assert response.ok
    assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert run(response.json()) == {"path": "/echo", "body": "ping", "x": "yes"}


def test_fetch_returns_http_errors_as_responses(server):
    response = run(fetch(Request(server + "/missing", method="POST", body=b"q")))
    assert response.status == 404
    assert not response.ok
    assert run(response.json())["body"] == "q"


def test_fetch_counts_a_requests_subrequests_and_refuses_past_the_limit(server):
    from workers import _fetch

    async def main():
        _fetch.begin_request(3)
        for _ in range(3):
            assert (await fetch(server + "/echo", method="POST", body="x")).status == 200
        with pytest.raises(RuntimeError, match=r"^Too many subrequests\.$"):
            await fetch(server + "/echo", method="POST", body="x")

    run(main())


def test_a_redirect_is_a_subrequest_and_tasks_share_their_requests_budget(server):
    from workers import _fetch

    async def redirected():
        _fetch.begin_request(1)
        await fetch(server + "/hop", method="POST", body="x")

    with pytest.raises(RuntimeError, match="Too many subrequests"):
        run(redirected())

    async def two_tasks():
        _fetch.begin_request(1)
        tasks = [asyncio.create_task(fetch(server + "/echo", method="POST", body="x"))
                 for _ in range(2)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(two_tasks())
    assert sorted(type(r).__name__ for r in results) == ["Response", "RuntimeError"]


def test_no_budget_counts_nothing(server):
    from workers import _fetch

    async def main():
        _fetch.begin_request(None)
        for _ in range(5):
            await fetch(server + "/hop", method="POST", body="x")

    run(main())
