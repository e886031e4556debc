"""serve() over a socketpair, playing the host's side of the frame protocol."""

import gc
import json
import socket
import struct
import textwrap
import threading

import pytest

_thaw = pytest.importorskip("_thaw")
import _thaw_runtime  # noqa: E402

WORKER = '''
import asyncio
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("8787", 1)[1]
        if path == "/hello":
            return Response("hi " + request.headers.get("x-name", "?"))
        if path == "/count":
            total = 0
            async for chunk in request.body:
                total += len(chunk)
            return Response(str(total))
        if path == "/big":
            return Response(b"x" * (1024 * 1024))
        if path == "/stream":
            async def parts():
                yield "a"
                await asyncio.sleep(0)
                yield b"b"
            return Response(parts())
        if path == "/slow":
            await asyncio.sleep(30)
        if path == "/cf":
            return Response.json({"cf": dict(request.cf), "protocol": request.cf.httpProtocol,
                                  "accept": request.headers.get("accept"),
                                  "cookies": request.headers.get_all("cookie")})
        if path == "/boom":
            raise ValueError("kaboom")
        return Response("not found", status=404)
'''


class Host:
    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(10)
        self.decoder = _thaw.Decoder()
        self.backlog = []

    def send(self, frame_type, stream, payload=b""):
        self.sock.sendall(_thaw.encode(frame_type, stream, payload))

    def request(self, stream, method, path, headers=(), body=b"", end=True):
        pairs = [(b":method", method.encode()), (b":url", b"http://127.0.0.1:8787" + path.encode())]
        pairs += [(k.encode(), v.encode()) for k, v in headers]
        self.send(_thaw.REQ_HEAD, stream, _thaw.encode_kv(pairs))
        if body:
            self.send(_thaw.REQ_BODY, stream, body)
        if end:
            self.send(_thaw.REQ_END, stream)

    def frame(self):
        while not self.backlog:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            self.backlog += self.decoder.feed(data)
        return self.backlog.pop(0)

    def response(self, stream, grant_credit=True):
        """(status, headers, body, error) of ``stream``, returning credit as body arrives."""
        status, headers, body, error = None, None, b"", None
        while True:
            frame_type, frame_stream, payload = self.frame()
            if frame_stream != stream:
                continue
            if frame_type == _thaw.RESP_HEAD:
                status = struct.unpack_from("<H", payload)[0]
                headers = _thaw.decode_kv(payload[2:])
            elif frame_type == _thaw.RESP_BODY:
                body += payload
                if grant_credit:
                    self.send(_thaw.WINDOW, stream, struct.pack("<I", len(payload)))
            elif frame_type == _thaw.RESP_END:
                return status, headers, body, error
            elif frame_type == _thaw.RESP_ERROR:
                return status, headers, body, payload.decode()


@pytest.fixture(params=["boot", "restored"])
def host(request, tmp_path, isolated_imports):
    """The host's end of a socket served by an instance that booted, or was "restored"."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "entry.py").write_text(textwrap.dedent(WORKER))
    init = {"name": "serve-test", "project_dir": str(tmp_path), "main": "src/entry.py",
            "vars": {}}
    if request.param == "boot":
        _thaw_runtime.load(json.dumps(init))
    else:
        _thaw_runtime.load(json.dumps({**init, "snapshot_build": True}))
        _thaw_runtime.after_restore(json.dumps(init))
        request.addfinalizer(gc.unfreeze)
    ours, theirs = socket.socketpair()
    result = {}

    def target():
        try:
            _thaw_runtime.serve(theirs.detach())
        except BaseException as error:  # reported to the test below
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    yield Host(ours)
    ours.close()
    thread.join(10)
    assert not thread.is_alive(), "serve() did not return after the host closed the socket"
    assert "error" not in result


def test_simple_request(host):
    host.request(1, "GET", "/hello", headers=[("X-Name", "ada")])
    status, headers, body, error = host.response(1)
    assert (status, body, error) == (200, b"hi ada", None)
    assert (b"content-type", b"text/plain;charset=UTF-8") in headers


def test_host_facts_become_request_cf_and_repeated_headers_are_folded(host):
    host.request(1, "GET", "/cf", headers=[(":cf-httpProtocol", "HTTP/1.0"),
                                           ("Accept", "text/html"), ("accept", "*/*"),
                                           ("Accept-Encoding", "gzip")])
    status, headers, body, error = host.response(1)
    assert (status, error) == (200, None)
    assert json.loads(body) == {
        "cf": {"httpProtocol": "HTTP/1.0", "clientAcceptEncoding": "gzip"},
        "protocol": "HTTP/1.0",
        "accept": "text/html, */*",
        "cookies": None,
    }


def test_concurrent_streams_are_independent(host):
    host.request(1, "GET", "/slow")
    host.request(3, "GET", "/hello")
    assert host.response(3)[2] == b"hi ?"
    host.send(_thaw.CANCEL, 1)


def test_request_body_credit_is_returned_as_the_handler_reads(host):
    host.request(5, "POST", "/count", end=False)
    credit, sent, total = _thaw.STREAM_WINDOW, 0, 3 * _thaw.STREAM_WINDOW
    while sent < total:
        while credit == 0:
            frame_type, stream, payload = host.frame()
            if frame_type == _thaw.WINDOW and stream == 5:
                credit += struct.unpack("<I", payload)[0]
        size = min(65536, credit, total - sent)
        host.send(_thaw.REQ_BODY, 5, b"y" * size)
        sent, credit = sent + size, credit - size
    host.send(_thaw.REQ_END, 5)
    assert host.response(5)[2] == str(total).encode()


def test_response_waits_for_credit(host):
    host.request(7, "GET", "/big")
    received = 0
    while received < _thaw.STREAM_WINDOW:
        frame_type, stream, payload = host.frame()
        if frame_type == _thaw.RESP_BODY:
            assert len(payload) <= 64 * 1024
            received += len(payload)
    assert received == _thaw.STREAM_WINDOW
    # Out of credit: nothing more arrives until the host sends WINDOW.
    host.sock.settimeout(0.2)
    with pytest.raises(socket.timeout):
        host.frame()
    host.sock.settimeout(10)
    host.send(_thaw.WINDOW, 7, struct.pack("<I", received))
    status, _, rest, error = host.response(7)
    assert error is None
    assert received + len(rest) == 1024 * 1024


def test_streamed_response_body(host):
    host.request(9, "GET", "/stream")
    assert host.response(9)[2] == b"ab"


def test_handler_exception_becomes_resp_error_with_traceback(host):
    host.request(11, "GET", "/boom")
    status, _, _, error = host.response(11)
    assert status is None
    assert "ValueError: kaboom" in error
    assert "entry.py" in error


def test_cancel_stops_the_handler_and_sends_nothing_more(host):
    host.request(13, "GET", "/slow")
    host.send(_thaw.CANCEL, 13)
    host.request(15, "GET", "/hello")
    seen = []
    while True:
        frame_type, stream, payload = host.frame()
        seen.append(stream)
        if stream == 15 and frame_type == _thaw.RESP_END:
            break
    assert 13 not in seen
