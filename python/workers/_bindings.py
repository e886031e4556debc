"""Bindings: objects in ``env`` whose methods the host serves (``env.ASSETS.fetch``).

A binding method is a call over the instance's connection to its host (the
CALL frames of src/proto/frame.h): the runtime installs the transport with
:func:`set_transport` while it serves. Outside a running instance (at import
time, in a snapshot build) there is no host to call, and a call raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._headers import Headers
from ._http import Request, Response, _status_phrase


class BindingError(RuntimeError):
    """A binding call the host refused or could not complete (its message says why)."""


# (binding name, method, argument pairs, request body) -> (status, headers, body); set by the
# runtime.
Transport = Callable[..., Awaitable[tuple[int, Headers, Any]]]
_transport: Transport | None = None


def set_transport(transport: Transport | None) -> None:
    global _transport
    _transport = transport


async def call(binding: str, method: str, args: list[tuple[bytes, bytes]],
               body: bytes | None = None) -> tuple[int, Headers, Any]:
    if _transport is None:
        raise BindingError(
            f"env.{binding}.{method}() can only be called while the worker serves requests "
            "(in a handler, not at import time)"
        )
    return await _transport(binding, method, args, body)


class Fetcher:
    """The assets binding (Cloudflare's ``Fetcher``): ``await env.ASSETS.fetch(request)``.

    ``request`` may be a :class:`Request`, a URL string (only its path and query
    matter) or an object with a ``url`` attribute; ``method=`` and ``headers=``
    override the request's. The answer is what the asset server would send for
    that request: the file, a 304 or 206, a redirect, the not-found page, or 404.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<Fetcher {self._name} (assets)>"

    async def fetch(self, request: Any, init: Any = None, *, method: str | None = None,
                    headers: Any = None) -> Response:
        if isinstance(init, dict):
            method = method or init.get("method")
            headers = headers if headers is not None else init.get("headers")
        if isinstance(request, Request):
            url = request.url
            method = method or request.method
            header_source = Headers(headers) if headers is not None else request.headers
        elif isinstance(request, str):
            url = request
            header_source = Headers(headers)
        elif hasattr(request, "url"):
            url = str(request.url)
            method = method or getattr(request, "method", None)
            header_source = Headers(headers if headers is not None
                                    else getattr(request, "headers", None))
        else:
            raise TypeError(f"fetch() takes a Request or a URL, not {type(request).__name__}")
        if url.startswith("/"):
            url = "http://assets.local" + url
        args = [(b":method", (method or "GET").upper().encode("latin-1")),
                (b":url", url.encode("utf-8", "surrogateescape"))]
        for name, value in header_source.items():
            args.append((name.encode("latin-1"), value.encode("latin-1")))
        status, response_headers, body = await call(self._name, "fetch", args)
        return Response._received(status, _status_phrase(status), response_headers, body, url=url)


KINDS: dict[str, Callable[[str], Any]] = {"assets": Fetcher}


def make(name: str, kind: str) -> Any:
    """The env object of a binding of type ``kind`` named ``name``."""
    factory = KINDS.get(kind)
    if factory is None:
        raise ValueError(f"binding {name}: this SDK does not know bindings of type {kind!r}")
    return factory(name)
