"""Bodies of requests and responses: byte chunks, read once, in order."""

from __future__ import annotations

import asyncio
import builtins
import collections
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Union

BodyInit = Union[
    str, bytes, bytearray, memoryview, AsyncIterable[Any], Iterable[Any], None
]


def chunk_to_bytes(chunk: object) -> bytes:
    """A body chunk as bytes: str is encoded as UTF-8, bytes-like objects are copied."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"body chunks must be bytes or str, not {type(chunk).__name__}")


class BodyStream:
    """A body whose chunks arrive while it is being read.

    A producer calls :meth:`push`, then :meth:`end` (or :meth:`fail`); one
    consumer iterates it. ``on_consume(n)`` is called as each chunk of ``n``
    bytes is taken, which is when flow-control credit goes back to the sender.
    """

    def __init__(self, on_consume: Callable[[int], None] | None = None) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self._on_consume = on_consume

    @property
    def buffered(self) -> int:
        """Bytes pushed but not yet taken."""
        return sum(len(c) for c in self._chunks)

    @property
    def ended(self) -> bool:
        """True once end() or fail() was called (chunks may still be buffered)."""
        return self._ended

    def push(self, chunk: bytes) -> None:
        if self._ended:
            raise RuntimeError("push() after end()")
        if chunk:
            self._chunks.append(bytes(chunk))
            self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        """End the body with an error that the reader will raise."""
        self._error = error
        self._ended = True
        self._ready.set()

    async def read(self) -> bytes | None:
        """The next chunk, or None at the end of the body."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        if self._on_consume is not None:
            self._on_consume(len(chunk))
        return chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


async def _byte_chunks(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[bytes]:
    """Iterate an async or sync iterable of bytes/str as non-empty bytes chunks."""
    if isinstance(source, BodyStream):
        async for chunk in source:
            yield chunk
        return
    if hasattr(source, "__aiter__"):
        iterator = source.__aiter__()
        try:
            async for chunk in iterator:
                data = chunk_to_bytes(chunk)
                if data:
                    yield data
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    for chunk in source:  # a plain iterable, such as a list or a generator
        data = chunk_to_bytes(chunk)
        if data:
            yield data


class BodyUsedError(OSError):
    """A body read a second time (after ``text()``, ``bytes()``, ``json()`` or
    taking its stream): an ``OSError``, as on Cloudflare. ``clone()`` first to
    read one twice."""


def tee(source: AsyncIterator[bytes]) -> tuple[AsyncIterator[bytes], AsyncIterator[bytes]]:
    """Two iterators that each yield every chunk of ``source``, pulled once.

    Chunks one branch has seen and the other has not are kept in memory, so a
    branch that is never read holds the whole body (as the web's ``tee()``).
    An error from ``source`` reaches both branches.
    """
    queues: tuple[collections.deque[bytes], collections.deque[bytes]] = (
        collections.deque(), collections.deque())
    state: dict[str, Any] = {"done": False, "error": None}
    lock = asyncio.Lock()

    async def branch(index: int) -> AsyncIterator[bytes]:
        queue = queues[index]
        while True:
            if queue:
                yield queue.popleft()
                continue
            if state["error"] is not None:
                raise state["error"]
            if state["done"]:
                return
            async with lock:
                if queue or state["done"] or state["error"] is not None:
                    continue
                try:
                    chunk = await source.__anext__()
                except StopAsyncIteration:
                    state["done"] = True
                    continue
                except BaseException as error:
                    state["error"] = error
                    raise
                for q in queues:
                    q.append(chunk)

    return branch(0), branch(1)


class HasBody:
    """The body-reading half of Request and Response.

    A body is either known in full (``_data``) or still to be read from a
    stream of chunks (``_source``). As on Cloudflare (and the web), a body can
    be read once: ``text()``, ``bytes()``, ``json()`` or its stream. Reading
    it again raises :class:`BodyUsedError`; ``clone()`` first to read it
    twice. A request or response without a body reads as empty, any number
    of times. The bytes read are kept, so a response whose body the handler
    read can still be returned.
    """

    _data: bytes | None
    _source: AsyncIterator[bytes] | None
    _stream_taken: bool
    _has_body: bool
    _used: bool
    _used_message = "Body already used"

    def _set_body(self, body: BodyInit) -> None:
        self._stream_taken = False
        self._used = False
        self._has_body = body is not None
        self._source = None
        if body is None:
            self._data = None
        elif isinstance(body, (str, bytes, bytearray, memoryview)):
            self._data = chunk_to_bytes(body)
        elif isinstance(body, HasBody):
            raise TypeError(
                f"cannot use a {type(body).__name__} as a body; pass its .body or await .bytes()"
            )
        elif hasattr(body, "__aiter__") or hasattr(body, "__iter__"):
            if isinstance(body, (dict, set)):
                raise TypeError(
                    f"unsupported body type {type(body).__name__}; "
                    "for JSON use Response.json(data)"
                )
            self._data = None
            self._source = _byte_chunks(body)
        else:
            raise TypeError(
                f"unsupported body type {type(body).__name__}: expected str, bytes, "
                "an (async) iterable of bytes/str, or None"
            )

    @property
    def body_used(self) -> bool:
        """True once the body has been read (or its stream taken)."""
        return self._used

    def _use(self) -> None:
        """Mark the body read; raise if it was read before."""
        if self._used:
            raise BodyUsedError(self._used_message)
        if self._has_body:
            self._used = True

    def _copy_body_to(self, other: HasBody) -> None:
        """Give ``other`` this body too (``clone()``): a streamed one is teed."""
        if self._used:
            raise BodyUsedError(self._used_message)
        other._used = False
        other._has_body = self._has_body
        other._stream_taken = self._stream_taken
        other._data = self._data
        other._source = None
        if self._data is None and self._source is not None:
            self._source, other._source = tee(self._source)

    def _buffered(self) -> bytes | None:
        """The whole body if it is in memory already (b"" when there is none), else None."""
        if self._data is not None:
            return self._data
        if self._source is None and not self._stream_taken:
            return b""
        return None

    def _take_stream(self) -> AsyncIterator[bytes]:
        """Hand the body out as chunks; a streamed body can be taken once."""
        if self._data is not None:
            return _once(self._data)
        if self._stream_taken:
            raise BodyUsedError(self._used_message)
        if self._source is None:
            return _once(b"")
        self._stream_taken = True
        return self._source

    async def _read_all(self) -> bytes:
        buffered = self._buffered()
        if buffered is None:
            parts = [chunk async for chunk in self._take_stream()]
            self._data = buffered = b"".join(parts)
            self._source = None
        return buffered

    async def bytes(self) -> bytes:
        """The whole body as bytes."""
        self._use()
        return await self._read_all()

    async def text(self) -> str:
        """The whole body decoded as UTF-8 (invalid bytes become U+FFFD, as on the web)."""
        return (await self.bytes()).decode("utf-8", errors="replace")

    async def _read_json(self, **kwargs: Any) -> Any:
        return json.loads(await self.bytes(), **kwargs)

    # Cloudflare (Pyodide) name for bytes().
    async def buffer(self) -> builtins.bytes:
        return await self.bytes()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
