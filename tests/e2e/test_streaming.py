"""Bodies stream through the host with flow control: big bodies intact, host memory flat."""

import hashlib
import http.client
import socket
import threading
import time

import pytest

from thawtest import proc_status_kb

MiB = 1024 * 1024

ECHO = """
import asyncio
import hashlib
from urllib.parse import urlparse, parse_qs
from workers import WorkerEntrypoint, Response

BLOCK = bytes(range(256)) * 4096  # 1 MiB


async def blocks(n):
    for i in range(n):
        yield i.to_bytes(8, "big") + BLOCK[8:]


STATE = {"forever": "idle"}


async def forever():
    STATE["forever"] = "running"
    try:
        while True:
            yield BLOCK[:65536]
            await asyncio.sleep(0.01)
    except BaseException as e:  # GeneratorExit or CancelledError when the client goes away
        STATE["forever"] = "stopped:" + type(e).__name__
        raise


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        if "blocks" in q:
            return Response(blocks(int(q["blocks"])),
                            headers={"content-type": "application/octet-stream"})
        if "stream" in q:  # echo without holding the body: request.body is an async iterator
            return Response(request.body, headers={"content-type": "application/octet-stream"})
        if "forever" in q:
            return Response(forever(), headers={"content-type": "application/octet-stream"})
        if "state" in q:
            return Response(STATE["forever"])
        if "ignore" in q:
            return Response("ignored")
        if "digest" in q:
            body = await request.bytes()
            return Response(hashlib.sha256(body).hexdigest())
        body = await request.bytes()
        return Response(body, headers={"content-type": "application/octet-stream"})
"""


def mib_chunks(n_mib, seed=b"thaw"):
    base = hashlib.shake_256(seed).digest(MiB)
    for i in range(n_mib):
        yield i.to_bytes(8, "big") + base[8:]


class RssSampler:
    """Samples the host's VmRSS every 20 ms in a thread; records the maximum."""

    def __init__(self, pid):
        self.pid = pid
        self.base_rss = proc_status_kb(pid, "VmRSS")
        self.base_hwm = proc_status_kb(pid, "VmHWM")
        self.max_rss = self.base_rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            try:
                self.max_rss = max(self.max_rss, proc_status_kb(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return

    def stop(self):
        self._stop.set()
        self._t.join()
        hwm = proc_status_kb(self.pid, "VmHWM")
        return {
            "rss_growth_mib": (self.max_rss - self.base_rss) / 1024,
            "hwm_growth_mib": (hwm - self.base_hwm) / 1024,
        }


def echo_over_socket(port, n_mib, chunked=False, path="/"):
    """Send n_mib MiB (from a thread, while reading the answer); return (status, sha_sent,
    sha_received, bytes_received)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sent = hashlib.sha256()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n\r\n"
    else:
        head += f"Content-Length: {n_mib * MiB}\r\n\r\n"
    errors = []

    def send():
        try:
            sock.sendall(head.encode())
            for chunk in mib_chunks(n_mib):
                sent.update(chunk)
                if chunked:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    sock.sendall(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        got = hashlib.sha256()
        n = 0
        while True:
            data = resp.read(256 * 1024)
            if not data:
                break
            got.update(data)
            n += len(data)
        t.join(60)
        assert not errors, errors
        return resp.status, sent.hexdigest(), got.hexdigest(), n, resp
    finally:
        sock.close()


def test_chunked_upload_5mib_echoed_intact(project, dev):
    d = dev(project(ECHO))
    status, sent, got, n, _ = echo_over_socket(d.port, 5, chunked=True)
    assert status == 200, d.output()
    assert n == 5 * MiB
    assert got == sent


def test_upload_digest_matches(project, dev):
    d = dev(project(ECHO))
    body = b"".join(mib_chunks(3))
    r = d.request("POST", "/?digest=1", body=body)
    assert r.status == 200, r
    assert r.text == hashlib.sha256(body).hexdigest()


@pytest.mark.slow
def test_50mib_echo_intact_without_host_rss_growth(project, dev):
    d = dev(project(ECHO))
    assert d.get("/?digest=1").status == 200  # boot the instance before measuring
    sampler = RssSampler(d.pid)
    status, sent, got, n, resp = echo_over_socket(d.port, 50)
    growth = sampler.stop()
    assert status == 200, d.output()
    assert n == 50 * MiB, f"echoed {n} bytes"
    assert got == sent, "the echoed body differs from what was sent"
    assert growth["rss_growth_mib"] < 20, f"host RSS grew while echoing 50 MiB: {growth}"
    assert growth["hwm_growth_mib"] < 20, f"host peak RSS grew while echoing 50 MiB: {growth}"


@pytest.mark.slow
def test_slow_reader_does_not_make_host_buffer(project, dev):
    d = dev(project(ECHO))
    assert d.get("/?digest=1").status == 200
    sampler = RssSampler(d.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", d.port))
    try:
        sock.sendall(b"GET /?blocks=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 200
        first = resp.read(64 * 1024)
        assert len(first) == 64 * 1024
        # An absence check with no event to wait for: nothing marks "the host would have
        # buffered the rest by now", so the worker is given time. A reader that keeps up gets
        # all 50 MiB through the host in ~0.1 s (2-core VM), so in 2 s a host without flow
        # control would hold most of it; with flow control the worker is held back instead.
        time.sleep(2.0)
        stalled = sampler.max_rss
        rest = hashlib.sha256(first)
        n = len(first)
        while True:
            data = resp.read(256 * 1024)
            if not data:
                break
            rest.update(data)
            n += len(data)
    finally:
        sock.close()
    growth = sampler.stop()
    expected = hashlib.sha256()
    for i in range(50):
        expected.update(i.to_bytes(8, "big") + (bytes(range(256)) * 4096)[8:])
    assert n == 50 * MiB
    assert rest.hexdigest() == expected.hexdigest()
    assert (stalled - sampler.base_rss) / 1024 < 20, (
        f"host RSS grew by {(stalled - sampler.base_rss) / 1024:.1f} MiB while the client "
        "was not reading")
    assert growth["hwm_growth_mib"] < 20, growth


def test_streamed_echo_5mib_intact(project, dev):
    """`return Response(request.body)`: the answer streams while the upload still arrives."""
    d = dev(project(ECHO))
    status, sent, got, n, _ = echo_over_socket(d.port, 5, path="/?stream=1")
    assert status == 200, d.output()
    assert n == 5 * MiB
    assert got == sent


def test_unread_request_body_does_not_wedge_the_connection(project, dev):
    d = dev(project(ECHO))
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        body = b"z" * (5 * MiB)
        conn.request("POST", "/?ignore=1", body=body)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"ignored"
        conn.request("POST", "/?digest=1", body=b"abc")  # reconnects if the server closed
        r = conn.getresponse()
        assert r.read().decode() == hashlib.sha256(b"abc").hexdigest()
    finally:
        conn.close()
    assert d.get("/?digest=1").status == 200


def test_client_leaving_mid_stream_stops_the_generator(project, dev):
    d = dev(project(ECHO), "--max-instances", "1")
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    sock.sendall(b"GET /?forever=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < 1 * MiB:
        data = sock.recv(65536)
        assert data, "the stream ended early"
        got += len(data)
    sock.close()
    last, ok = d.get_until("/?state=1", lambda r: r.text.startswith("stopped"), timeout=5)
    assert ok, f"the response generator kept running after the client left: {last}"
    assert d.get("/?digest=1").status == 200


TICKS = """
import time
from workers import WorkerEntrypoint, Response


def ticks():
    # A sync generator: each chunk made by blocking work, nothing awaited between them.
    for i in range(4):
        yield f"tick {i}\\n"
        time.sleep(0.5)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(ticks())
"""


def test_streamed_chunks_go_out_as_made_even_without_an_await(tmp_path):
    # Each chunk of a streamed response (and its head) reaches the client as it is made, even
    # when the producer never yields to the event loop: the runtime must not hold them for the
    # end of the loop's turn (the host's --timeout before the head would answer 504).
    from thawtest import ThawDev, write_project
    d = ThawDev(write_project(tmp_path / "ticks", TICKS), ["--no-snapshot", "--timeout", "1"])
    d.wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, first = b"", None
            while chunk := s.recv(65536):
                data += chunk
                if first is None and b"tick 0" in data:
                    first = time.monotonic() - t0
        assert data.startswith(b"HTTP/1.1 200"), data[:80]
        assert first is not None and first < 0.4, (first, data[:200])
    finally:
        d.stop()


SIBLING = """
import time
from workers import WorkerEntrypoint, Response


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/slow"):
            time.sleep(1.0)  # synchronous work in a handler
            return Response("slow")
        return Response("fast")
"""


def test_a_finished_response_does_not_wait_for_a_siblings_blocking_work(tmp_path):
    # Two requests reach one instance in one write (the host's front turn); the first's
    # response is made at once, the second's handler then blocks the loop for a second.
    # The first response must not wait for the end of that loop turn.
    from thawtest import ThawDev, write_project
    d = ThawDev(write_project(tmp_path / "sib", SIBLING), ["--no-snapshot"]).wait_ready()
    try:
        d.get("/warm", timeout=30)
        worst = 0.0
        for _ in range(3):
            a = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            b = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            time.sleep(0.2)
            t0 = time.monotonic()
            a.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            b.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert a.recv(65536).startswith(b"HTTP/1.1 200")
            worst = max(worst, time.monotonic() - t0)
            b.recv(65536)
            a.close()
            b.close()
            time.sleep(1.2)
        assert worst < 0.5, worst
    finally:
        d.stop()
