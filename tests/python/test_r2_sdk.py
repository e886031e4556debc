"""The R2 SDK's handling of what a client sends (python/workers/_bindings.py), and the runtime's
streaming of a call's body (python/_thaw_runtime.py call_binding)."""

import asyncio
import json

import pytest

from workers import Headers
from workers import _bindings


def only_if(headers):
    return json.loads(_bindings._only_if_json(Headers(headers)))


def test_a_clients_invalid_conditional_dates_are_ignored_not_raised():
    # RFC 9110 13.1.3/13.1.4: a recipient ignores an invalid HTTP-date in these headers.
    assert only_if({"if-modified-since": "yesterday"}) == {"secondsGranularity": True}
    assert only_if({"if-unmodified-since": "Mon, 99 Foo 2024 99:99:99 GMT",
                    "if-match": '"abc"'}) == {"secondsGranularity": True, "etagMatches": '"abc"'}
    assert only_if({"if-modified-since": ""}) == {"secondsGranularity": True}


def test_valid_conditional_dates_are_read_as_utc_milliseconds():
    got = only_if({"if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT",
                   "if-unmodified-since": "Sun, 06 Nov 1994 08:49:37 -0000"})
    assert got["uploadedAfter"] == 784111777000 and got["uploadedBefore"] == 784111777000


def test_an_invalid_expires_keeps_no_cache_expiry():
    meta = json.loads(_bindings._http_metadata_json(Headers({"expires": "0",
                                                             "content-type": "text/plain"})))
    assert "cacheExpiry" not in meta and meta["contentType"] == "text/plain"
    meta = json.loads(_bindings._http_metadata_json(
        Headers({"expires": "Sun, 06 Nov 1994 08:49:37 GMT"})))
    assert meta["cacheExpiry"] == 784111777000


import types  # noqa: E402

import _thaw_runtime  # noqa: E402

# The frame constants and codecs call_binding uses, standing in for the embedded _thaw module
# (only the worker process has it); frames are recorded as tuples.
FAKE_THAW = types.SimpleNamespace(
    CALL=1, CALL_BODY=2, CALL_END=3, CALL_HEAD=4, CALL_ERROR=5, CANCEL=6, WINDOW=7,
    STREAM_WORKER_BASE=1 << 31, STREAM_WINDOW=1 << 16, CALLS_MAX=32, MAX_PAYLOAD=1 << 20,
    Decoder=lambda: None, encode_kv=lambda pairs: repr(pairs).encode(),
    encode=lambda frame_type, stream_id, payload: (frame_type, stream_id, bytes(payload)))


class Transport:
    def __init__(self):
        self.frames = []

    def write(self, frame):
        self.frames.append(frame)

    def is_closing(self):
        return False


def test_a_streamed_body_refused_while_waiting_to_write_raises_the_calls_own_error():
    async def main():
        conn = _thaw_runtime._Connection(FAKE_THAW, None)
        conn.connection_made(Transport())
        first_sent = asyncio.Event()

        async def body():
            yield b"a"
            first_sent.set()
            conn.pause_writing()  # the socket is full when the next chunk is ready
            yield b"b"

        task = asyncio.ensure_future(conn.call_binding("FILES", "put", [(b"key", b"k")], body()))
        await first_sent.wait()
        await asyncio.sleep(0)
        (stream_id,) = conn.calls
        refusal = b"R2Error: put: We encountered an internal error. Please try again. (10001)"
        conn._call_frame(FAKE_THAW.CALL_ERROR, stream_id, refusal)
        conn.resume_writing()
        with pytest.raises(_bindings.R2Error) as error:
            await task
        assert "internal error" in str(error.value)

    asyncio.run(main())
