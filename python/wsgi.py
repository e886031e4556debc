"""Serve a WSGI (PEP 3333) application (Flask, Django, ...) from a worker.

::

    import wsgi

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await wsgi.fetch(app, request, self.env)

The app runs on a thread of the event loop's executor, so a slow view does
not stop other requests; ``environ["workers.env"]`` (as on Cloudflare; also
``environ["thaw.env"]``) is the worker's env. The
response body is collected in full before it is sent.
"""

from __future__ import annotations

import asyncio
import io
import sys
import urllib.parse
from typing import Any, Callable, Iterable

from workers import Headers, Request, Response, WorkerEntrypoint, _sync
from workers._http import NULL_BODY_STATUSES

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_environ(request: Request, body: bytes, env: Any) -> dict[str, Any]:
    """The PEP 3333 environ for ``request`` with its whole ``body``."""
    parts = urllib.parse.urlsplit(request.url)
    scheme = parts.scheme or "http"
    raw_path = (parts.path or "/").encode("utf-8", "surrogateescape")
    address = request.headers.get("cf-connecting-ip")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        # PEP 3333: the decoded path's bytes, carried in a latin-1 str.
        "PATH_INFO": urllib.parse.unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": parts.query,
        "SERVER_NAME": parts.hostname or "localhost",
        "SERVER_PORT": str(parts.port or (443 if scheme == "https" else 80)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": address.strip() if address else "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "workers.env": env,
        "thaw.env": env,
    }
    for name in dict.fromkeys(request.headers.keys()):
        value = request.headers.get(name)
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
        elif name == "content-length":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    if body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _run(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if started and exc_info is None:
            raise RuntimeError("start_response() called twice without exc_info")
        started[:] = [status, headers]
        return written.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                written.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("WSGI app returned without calling start_response()")
    status, headers = started
    return status, headers, b"".join(written)


async def fetch(app: WSGIApp, request: Request, env: Any, ctx: Any = None) -> Response:
    """Run ``request`` through the WSGI ``app`` and return its response."""
    environ = make_environ(request, await request.bytes(), env)
    if ctx is not None:
        environ["thaw.ctx"] = ctx
    loop = asyncio.get_running_loop()
    # call_for_loop: a pyodide.ffi.run_sync in the app runs its coroutine on this loop.
    result: tuple[str, list[tuple[str, str]], bytes] = await loop.run_in_executor(
        None, _sync.call_for_loop, loop, _run, app, environ)
    status, headers, body = result
    code, _, reason = status.partition(" ")
    if int(code) in NULL_BODY_STATUSES:
        body = b""
    return Response(body, status=int(code), headers=Headers(headers), status_text=reason or None)


def entrypoint(app: WSGIApp) -> type[WorkerEntrypoint]:
    """A ``Default`` entrypoint class serving ``app``: ``Default = wsgi.entrypoint(app)``."""
    serve = fetch

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Request) -> Response:
            return await serve(app, request, self.env, self.ctx)

    return Default
