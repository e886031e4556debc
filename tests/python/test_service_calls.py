"""A service binding's answer in the calling worker (python/workers/_service.py over
python/_thaw_runtime.py call_binding): a fetch's response streams, its credit going back to the
host only as it is read, so a large response is never held whole; a response dropped unread
gives its call up; an RPC result past the message limit gives its call up instead of reading on."""

import asyncio
import gc
import struct
import types

import pytest

import _thaw_runtime
from workers import _bindings, _service

FAKE_THAW = types.SimpleNamespace(
    CALL=1, CALL_BODY=2, CALL_END=3, CALL_HEAD=4, CALL_ERROR=5, CANCEL=6, WINDOW=7,
    STREAM_WORKER_BASE=1 << 31, STREAM_WINDOW=1 << 16, CALLS_MAX=512, MAX_PAYLOAD=1 << 20,
    Decoder=lambda: None, encode_kv=lambda pairs: repr(pairs).encode(),
    decode_kv=lambda data: [], ProtocolError=ValueError,
    encode=lambda frame_type, stream_id, payload: (frame_type, stream_id, bytes(payload)))

CHUNK = 1 << 16


class Transport:
    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame)

    def is_closing(self):
        return False


def frames_of(transport, frame_type, stream_id):
    return [f for f in transport.frames if f[0] == frame_type and f[1] == stream_id]


async def connected():
    conn = _thaw_runtime._Connection(FAKE_THAW, None)
    transport = Transport()
    conn.connection_made(transport)
    _bindings.set_transport(conn.call_binding)
    return conn, transport


def answer_head(conn, stream_id, status=200):
    conn._call_frame(FAKE_THAW.CALL_HEAD, stream_id, struct.pack("<H", status))


def window_total(transport, stream_id):
    return sum(struct.unpack("<I", f[2])[0] for f in frames_of(transport, FAKE_THAW.WINDOW,
                                                                stream_id))


def test_a_fetch_response_returns_credit_only_as_it_is_read_and_streams_whole():
    async def main():
        conn, transport = await connected()
        try:
            task = asyncio.ensure_future(_service.ServiceBinding("B").fetch("https://b/"))
            await asyncio.sleep(0)
            (stream_id,) = conn.calls
            answer_head(conn, stream_id)
            response = await task
            for _ in range(4):  # the host sends within the window it was given
                conn._call_frame(FAKE_THAW.CALL_BODY, stream_id, b"x" * CHUNK)
            assert window_total(transport, stream_id) == 0  # nothing read, nothing credited
            reader = response.body.__aiter__()
            assert len(await reader.__anext__()) == CHUNK
            assert window_total(transport, stream_id) == CHUNK
            for _ in range(3):
                await reader.__anext__()
            conn._call_frame(FAKE_THAW.CALL_END, stream_id, b"")
            with pytest.raises(StopAsyncIteration):
                await reader.__anext__()
            assert window_total(transport, stream_id) == 4 * CHUNK
            assert not frames_of(transport, FAKE_THAW.CANCEL, stream_id)
        finally:
            _bindings.set_transport(None)

    asyncio.run(main())


def test_a_fetch_response_dropped_unread_gives_its_call_up():
    async def main():
        conn, transport = await connected()
        try:
            task = asyncio.ensure_future(_service.ServiceBinding("B").fetch("https://b/"))
            await asyncio.sleep(0)
            (stream_id,) = conn.calls
            answer_head(conn, stream_id)
            response = await task
            conn._call_frame(FAKE_THAW.CALL_BODY, stream_id, b"x" * CHUNK)
            del response, task
            for _ in range(3):  # the loop's handles of the finished task go first
                await asyncio.sleep(0)
                gc.collect()
            await asyncio.sleep(0)
            assert frames_of(transport, FAKE_THAW.CANCEL, stream_id)
            assert stream_id not in conn.calls
            conn._call_frame(FAKE_THAW.CALL_BODY, stream_id, b"late")  # ignored
            assert window_total(transport, stream_id) == 0
        finally:
            _bindings.set_transport(None)

    asyncio.run(main())


def test_an_rpc_result_past_the_limit_gives_its_call_up(monkeypatch):
    monkeypatch.setattr(_service, "BODY_MAX", 3 * CHUNK)

    async def main():
        conn, transport = await connected()
        try:
            task = asyncio.ensure_future(_service.ServiceBinding("B").huge())
            await asyncio.sleep(0)
            (stream_id,) = conn.calls
            answer_head(conn, stream_id)
            for _ in range(4):
                conn._call_frame(FAKE_THAW.CALL_BODY, stream_id, b"x" * CHUNK)
            with pytest.raises(_bindings.BindingError, match="larger than"):
                await task
            assert frames_of(transport, FAKE_THAW.CANCEL, stream_id)
            assert stream_id not in conn.calls
            # Credit went back only for what was read before the limit: the host sent no more.
            assert window_total(transport, stream_id) <= 4 * CHUNK
        finally:
            _bindings.set_transport(None)

    asyncio.run(main())
