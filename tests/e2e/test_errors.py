"""The errors users meet: 500, 502, 504, a worker without handler, a busy port, limits."""

import http.client
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from thawtest import THAW_BIN, ThawDev, proc_alive, thaw_env

FAILING = """
import asyncio
import ctypes
import os
import signal
import time
from urllib.parse import urlparse
from workers import WorkerEntrypoint, Response


def deep_helper_raising():
    raise ValueError("boom-marker-1234")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/raise":
            deep_helper_raising()
        if path == "/exit":
            os._exit(1)
        if path == "/kill":
            ctypes.string_at(0)  # a crash (PID 1 of its namespace cannot signal itself to death)
        if path == "/sleep":
            print("sleep-marker: the slow request is in the instance", flush=True)
            await asyncio.sleep(10)
            return Response("slept")
        if path == "/hang":
            print("hang-marker: the request is in the instance", flush=True)
            await asyncio.sleep(120)
        if path == "/spin":
            time.sleep(120)  # blocks the event loop: only killing the instance ends it
        if path == "/none":
            return None
        if path == "/body":
            return Response(str(len(await request.bytes())))
        return Response(f"ok {__import__('_thaw_runtime').host_pid()}")
"""


def pid_of(resp):
    assert resp.status == 200, resp
    assert resp.text.startswith("ok "), resp
    return int(resp.text.split()[1])


def test_exception_gives_500_with_traceback_and_instance_survives(project, dev):
    d = dev(project(FAILING))
    pid = pid_of(d.get("/"))
    mark = d.mark()
    r = d.get("/raise")
    assert r.status == 500, r
    assert "boom-marker-1234" in r.text, f"the dev 500 page lacks the error: {r.text[:2000]}"
    assert "Traceback" in r.text and "deep_helper_raising" in r.text, r.text[:2000]
    d.wait_for(r"Traceback", start=mark, timeout=5)
    d.wait_for(r"ValueError: boom-marker-1234", start=mark, timeout=5)
    # Server-Timing on error responses too; the instance that raised was the warm one.
    assert r.timing()[0] == "warm", r.headers.get("Server-Timing")
    assert pid_of(d.get("/")) == pid, "an exception in a handler must not replace the instance"


def test_handler_returning_non_response_gives_500(project, dev):
    d = dev(project(FAILING))
    r = d.get("/none")
    assert r.status == 500, r
    assert "Response" in r.text, r.text[:2000]
    assert d.get("/").status == 200


def test_sigint_with_request_in_flight_exits_promptly(project):
    d = ThawDev(project(FAILING), ()).wait_ready()
    try:
        pid_of(d.get("/"))
        kids = d.children()
        held = {}

        def slow():
            try:
                held["resp"] = d.get("/hang", timeout=30)
            except Exception as e:  # the connection may just be closed
                held["resp"] = e

        t = threading.Thread(target=slow, daemon=True)
        mark = d.mark()
        t.start()
        d.wait_for(r"hang-marker", start=mark)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        rc = d.proc.wait(10)
        assert rc == 0, d.output()
        assert time.monotonic() - t0 < 10
        t.join(10)
        assert not t.is_alive(), "the in-flight request was left hanging after thaw exited"
        # thaw dev reaps its instances before it exits: none may be left, not even briefly.
        assert not [p for p, st in kids if proc_alive(p, st)], "an instance outlived thaw dev"
    finally:
        d.kill()


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_crash_gives_502_and_next_request_gets_new_instance(project, dev, how, start_mode):
    d = start_mode.settle(dev(project(FAILING), *start_mode.flags))
    pid = pid_of(d.get("/"))
    r = d.get(f"/{how}")
    assert r.status == 502, r
    r = d.get("/")
    new_pid = pid_of(r)
    assert new_pid != pid
    assert r.timing()[0] == start_mode.cold
    assert d.alive()


def test_crash_fails_every_request_the_instance_held(project, dev):
    d = dev(project(FAILING), "--max-instances", "1")
    pid_of(d.get("/"))
    held = {}

    def slow():
        held["resp"] = d.get("/sleep")

    t = threading.Thread(target=slow)
    mark = d.mark()
    t.start()
    d.wait_for(r"sleep-marker", start=mark)  # the slow request is now in the instance
    t0 = time.monotonic()
    r = d.get("/kill")
    assert r.status == 502, r
    t.join(20)
    assert held["resp"].status == 502, f"the request held by the dead instance got {held['resp']}"
    # Its handler would answer 10 s after the marker; the crash ends it at once.
    assert time.monotonic() - t0 < 2.5, "the held request waited for its handler, not the crash"
    assert pid_of(d.get("/"))


@pytest.mark.parametrize("path", ["/hang", "/spin"])
def test_timeout_gives_504_and_instance_is_replaced(project, dev, path, start_mode):
    d = start_mode.settle(dev(project(FAILING), "--timeout", "1", *start_mode.flags))
    pid = pid_of(d.get("/"))
    t0 = time.monotonic()
    r = d.get(path, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.status == 504, r
    assert 0.9 <= elapsed < 10, f"504 after {elapsed:.2f}s with --timeout 1"
    r = d.get("/")
    assert pid_of(r) != pid, "the timed-out instance was kept"
    assert r.timing()[0] == start_mode.cold


def test_missing_handler_is_reported_at_start_with_file_name(project, dev):
    p = project(
        """
        from workers import Response

        def not_a_handler():
            return Response("never")
        """
    )
    d = dev(p)
    # Reported at start, before any request arrives: one line naming the file and what is
    # missing.
    d.wait_for(r"(?=.*src/entry\.py)(?=.*(Default|on_fetch|handler))", timeout=10)
    r = d.get("/")
    assert r.status == 500, r
    assert "src/entry.py" in r.text, r.text
    # Server-Timing on every dev response, this one too: it waited for a start that failed.
    desc, _, _ = r.timing()
    assert desc == "boot", r.headers.get("Server-Timing")


def test_port_in_use_is_reported(project):
    p = project(FAILING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run(
            [THAW_BIN, "dev", str(p), "--ip", "127.0.0.1", "--port", str(port)],
            env=thaw_env(), capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert r.returncode != 0, r.stdout + r.stderr
    assert "in use" in r.stderr, r.stderr
    assert str(port) in r.stderr, r.stderr
    assert "Ready on" not in r.stdout


def test_header_over_limit_gives_431(project, dev):
    d = dev(project(FAILING), "--max-header-bytes", "4096")
    assert d.get("/", headers={"X-Small": "a" * 1000}).status == 200
    r = d.get("/", headers={"X-Big": "a" * 6000})
    assert r.status == 431, r
    r = d.get("/", headers={f"X-Many-{i}": "b" * 100 for i in range(60)})
    assert r.status == 431, r
    assert d.get("/").status == 200


def raw_request(port, data, read_timeout=10):
    """Send raw bytes (ignoring a reset once the server has answered) and return the parsed
    status code of the first response."""
    import http.client

    sock = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        try:
            body = resp.read()
        except (ConnectionResetError, http.client.IncompleteRead):
            body = b""
        return resp.status, body
    finally:
        sock.close()


def test_body_over_limit_by_content_length_gives_413(project, dev):
    d = dev(project(FAILING), "--max-body-bytes", "1000")
    r = d.request("POST", "/body", body=b"x" * 1000)
    assert r.status == 200 and r.text == "1000", r
    status, _ = raw_request(
        d.port,
        b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000,
    )
    assert status == 413
    assert d.request("POST", "/body", body=b"y" * 10).text == "10"


def test_body_over_limit_by_chunked_upload_gives_413(project, dev):
    d = dev(project(FAILING), "--max-body-bytes", "1000")
    ok = b"".join(b"64\r\n" + b"a" * 100 + b"\r\n" for _ in range(9)) + b"0\r\n\r\n"
    status, body = raw_request(
        d.port, b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + ok)
    assert status == 200 and body == b"900"
    big = b"".join(b"64\r\n" + b"a" * 100 + b"\r\n" for _ in range(50)) + b"0\r\n\r\n"
    status, _ = raw_request(
        d.port, b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + big)
    assert status == 413
    assert d.get("/").status == 200


HEAD_THEN_END = """
import os
from urllib.parse import urlparse
from workers import WorkerEntrypoint, Response


async def exits():
    os._exit(1)
    yield b"never"


async def raises():
    raise ValueError("raised-after-the-head")
    yield b"never"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        # The body is not read: the response head goes out while the upload goes on.
        path = urlparse(request.url).path
        if path == "/exit":
            return Response(exits())
        if path == "/raise":
            return Response(raises())
        return Response("ok")
"""


@pytest.mark.parametrize("path,status,logged", [
    ("/exit", 502, r"instance \d+ \(pid \d+\) (exited|closed|connection)"),
    ("/raise", 500, r"raised-after-the-head"),
])
def test_response_broken_during_the_upload_is_answered_at_once(project, dev, path, status, logged):
    """The instance sent its response head and then died (or its streamed body raised) while the
    client was still uploading: nothing of the response had gone to the client (it is given to
    HTTP only once the upload ends), so the client gets a 502 (a 500) when its upload ends. It
    used to get nothing: the response was marked broken, the rest of the upload waited for an
    instance that was gone, and the connection hung until libmicrohttpd's 120 s timeout (found
    by bench/soak)."""
    d = dev(project(HEAD_THEN_END))
    assert d.get("/").text == "ok"
    mark = d.mark()
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b"a" * 10)
        d.wait_for(logged, start=mark)  # the head came, then the end
        # The instance's frames come in order: once it answered this, the host has handled
        # the end of the first (a RESP_ERROR comes after the traceback's lines).
        assert d.get("/").text == "ok"
        sock.sendall(b"a" * 99990)
        resp = http.client.HTTPResponse(sock)
        try:
            resp.begin()
        except (TimeoutError, socket.timeout):
            pytest.fail("no answer 10 s after the upload ended: the connection was left hanging")
        body = resp.read()
        assert resp.status == status, (resp.status, body)
        if status == 502:
            assert body == b"The worker instance serving this request exited before it answered.\n"
            # The host's line counts what the instance's end did to the requests it held.
            assert re.search(r"\(pid \d+\) [^\n]*; requests it held: 1 answered 502, 0 cut short",
                             d.output_since(mark)), d.output_since(mark)
    finally:
        sock.close()
    assert d.get("/").text == "ok"
