"""Serve an ASGI 3 application (FastAPI, Starlette, ...) from a worker.

::

    import asgi

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await asgi.fetch(app, request.js_object, self.env)

The app's ``scope["env"]`` is the worker's env. The response is returned as
soon as the app starts it; its body streams as the app sends it. The app's
lifespan startup runs once, before its first request.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from typing import Any, Awaitable, Callable, MutableMapping

from workers import Headers, Request, Response, WorkerEntrypoint
from workers._log import log_exception

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

# Apps still running after their response was sent (e.g. Starlette background tasks).
_finishing: set[asyncio.Future[Any]] = set()


class _Lifespan:
    """One app's lifespan protocol, started once per event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.state: dict[str, Any] = {}
        self.started: asyncio.Future[None] = self.loop.create_future()
        self.task = asyncio.ensure_future(self._run())

    def _resolve(self, error: BaseException | None = None) -> None:
        if self.started.done():
            return
        if error is None:
            self.started.set_result(None)
        else:
            self.started.set_exception(error)

    async def _run(self) -> None:
        asked = False

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "lifespan.startup"}
            await asyncio.Future()  # shutdown is never sent; cancelled with the loop
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                self._resolve()
            elif kind == "lifespan.startup.failed":
                self._resolve(RuntimeError(
                    f"ASGI lifespan startup failed: {message.get('message') or 'no message'}"))

        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception:
            pass  # apps without lifespan support raise on the unknown scope type
        finally:
            self._resolve()


_lifespans: dict[int, _Lifespan] = {}


async def _start_lifespan(app: ASGIApp) -> dict[str, Any]:
    """Run the app's lifespan startup if not yet done on this loop; return its state."""
    lifespan = _lifespans.get(id(app))
    loop = asyncio.get_running_loop()
    if lifespan is None or lifespan.app is not app or lifespan.loop is not loop:
        lifespan = _lifespans[id(app)] = _Lifespan(app)
    await asyncio.shield(lifespan.started)
    return lifespan.state


def _client(request: Request) -> tuple[str, int]:
    # The host sets cf-connecting-ip to the peer's address (as Cloudflare does).
    address = request.headers.get("cf-connecting-ip")
    return (address.strip(), 0) if address else ("127.0.0.1", 0)


def http_scope(request: Request, env: Any, state: dict[str, Any] | None = None) -> Scope:
    """The ASGI HTTP scope for ``request``."""
    parts = urllib.parse.urlsplit(request.url)
    scheme = parts.scheme or "http"
    raw_path = (parts.path or "/").encode("utf-8", "surrogateescape")
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": "1.1",
        "method": request.method,
        "scheme": scheme,
        "path": urllib.parse.unquote_to_bytes(raw_path).decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": parts.query.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request.headers.items()],
        "server": (parts.hostname or "localhost", parts.port or (443 if scheme == "https" else 80)),
        "client": _client(request),
        "extensions": {},
        "state": dict(state or {}),
        "env": env,
    }


class _Exchange:
    """One request through the app: feeds ``receive``, collects ``send``."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.request_chunks: Any = None
        self.request_complete = False
        self.response_done = asyncio.Event()  # then receive() answers http.disconnect
        self.start: Message | None = None
        self.progress = asyncio.Event()  # start or body arrived, or the app finished
        self.pending: collections.deque[tuple[bytes, bool]] = collections.deque()
        self.drained = asyncio.Event()
        self.abandoned = False
        self.body_complete = False
        self.task: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        if not self.request_complete:
            buffered = self.request._buffered()
            if buffered is not None and self.request_chunks is None:
                self.request_complete = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            if self.request_chunks is None:
                self.request_chunks = self.request.body
            try:
                chunk = await self.request_chunks.__anext__()
            except StopAsyncIteration:
                self.request_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.response_done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("ASGI app sent http.response.start twice")
            self.start = message
            self.progress.set()
        elif kind == "http.response.body":
            if self.start is None:
                raise RuntimeError("ASGI app sent http.response.body before http.response.start")
            if self.abandoned or self.body_complete:
                return  # the client is gone, or the body was already complete
            more = bool(message.get("more_body", False))
            self.body_complete = not more
            self.pending.append((bytes(message.get("body", b"")), more))
            self.progress.set()
            # Hand over one message at a time: the app runs no further ahead than the client.
            while self.pending and not self.abandoned:
                self.drained.clear()
                await self.drained.wait()
        else:
            raise RuntimeError(f"ASGI app sent an unexpected message type {kind!r}")

    def _app_finished(self, task: asyncio.Future[None]) -> None:
        self.progress.set()
        _finishing.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        # Before the response is done, body() or run() raise the error instead.
        if error is not None and self.response_done.is_set():
            log_exception("error in the ASGI app after its response was sent", error)

    async def body(self) -> Any:
        """The response body, as the app sends it."""
        assert self.task is not None
        finished = False
        try:
            while True:
                while not self.pending:
                    if self.task.done():
                        error = self.task.exception()
                        if error is not None:
                            raise error
                        raise RuntimeError("ASGI app returned without finishing its response body")
                    self.progress.clear()
                    await self.progress.wait()
                chunk, more = self.pending.popleft()
                if not self.pending:
                    self.drained.set()
                if not more:
                    finished = True
                    self.response_done.set()
                if chunk:
                    yield chunk
                if not more:
                    return
        finally:
            self.abandoned = True
            self.drained.set()
            self.response_done.set()
            if not finished and not self.task.done():
                self.task.cancel()

    async def run(self, app: ASGIApp, scope: Scope) -> Response:
        self.task = task = asyncio.ensure_future(app(scope, self.receive, self.send))
        _finishing.add(task)
        task.add_done_callback(self._app_finished)
        try:
            while self.start is None and not task.done():
                self.progress.clear()
                await self.progress.wait()
        except BaseException:
            task.cancel()
            raise
        if self.start is None:
            self.response_done.set()
            error = task.exception()
            if error is not None:
                raise error
            raise RuntimeError("ASGI app returned without sending a response")
        try:
            headers = Headers()
            for name, value in self.start.get("headers", ()):
                headers.append(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            return Response(self.body(), status=int(self.start["status"]), headers=headers)
        except BaseException:
            self.abandoned = True
            self.drained.set()
            self.response_done.set()
            task.cancel()
            raise


async def fetch(app: ASGIApp, request: Request, env: Any, ctx: Any = None) -> Response:
    """Run ``request`` through the ASGI ``app`` and return its response."""
    state = await _start_lifespan(app)
    scope = http_scope(request, env, state)
    if ctx is not None:
        scope["ctx"] = ctx
    return await _Exchange(request).run(app, scope)


def entrypoint(app: ASGIApp) -> type[WorkerEntrypoint]:
    """A ``Default`` entrypoint class serving ``app``: ``Default = asgi.entrypoint(app)``."""
    serve = fetch

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Request) -> Response:
            return await serve(app, request, self.env, self.ctx)

    return Default
