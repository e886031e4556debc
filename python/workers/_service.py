"""Service bindings: ``env.OTHER.fetch(request)`` and ``await env.OTHER.method(*args)``.

Both are calls of the binding over the host connection (workers._bindings.call); the host
runs the other worker as it would run a request (src/host/service.c) and streams its answer
back. ``fetch`` sends the request (its body read whole, at most BODY_MAX bytes) to the other
worker's ``fetch`` handler, of the entrypoint the binding names, and returns its Response, whose
body streams (read as it comes; dropped unread, the call is given up). An RPC result is read
whole, at most BODY_MAX bytes: past that the call is given up.
Any other public attribute is an RPC method of that entrypoint: its arguments and result
travel in the encoding of workers._rpc. The call names the request it is made for
(``current_stream``, set by the runtime); the host does not trust that name alone: it counts the
hops from its own records (the deepest request of that request's chain the instance serves or
served lately).
"""

from __future__ import annotations

import contextvars
from typing import Any

from . import _bindings, _rpc
from ._http import Request, Response, _status_phrase

BODY_MAX = _rpc.MESSAGE_MAX

# The request (stream id) the running task handles; 0 outside requests. The runtime sets it.
current_stream: contextvars.ContextVar[int] = contextvars.ContextVar("thaw_stream", default=0)


def _stream_arg() -> tuple[bytes, bytes]:
    return (b":stream", str(current_stream.get()).encode())


async def _body_bytes(body: Any, limit: int) -> bytes:
    """A call's streamed result read whole, at most limit bytes: past it (or on any error) the
    call is given up rather than read on."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise _bindings.BindingError(f"the answer is larger than {limit} bytes")
            parts.append(chunk)
    except BaseException:
        abandon = getattr(body, "_abandon", None)
        if abandon is not None:
            abandon()
        raise
    return b"".join(parts)


async def fetch_via(binding: str, extra: list[tuple[bytes, bytes]], request: Any, init: Any,
                    options: dict[str, Any]) -> Response:
    """``fetch`` through binding (a service, or a Durable Object stub with its ``:id`` in
    ``extra``): the request goes whole, the response streams back."""
    opts: dict[str, Any] = dict(init) if isinstance(init, dict) else {}
    opts.update(options)
    if not isinstance(request, (Request, str)):
        url = getattr(request, "url", None)
        if url is None:
            raise TypeError(f"fetch() takes a Request or a URL, not {type(request).__name__}")
        request = str(url)
    if isinstance(request, str) and request.startswith("/"):
        request = f"http://{binding.lower()}.internal{request}"
    outgoing = Request(request, method=opts.get("method"), headers=opts.get("headers"),
                       body=opts.get("body"))
    data = await outgoing.bytes()
    if len(data) > BODY_MAX:
        raise _bindings.BindingError(f"a request body through a service binding is limited "
                                     f"to {BODY_MAX} bytes")
    args = [_stream_arg()] + extra + [(b":method", outgoing.method.encode("latin-1")),
                                      (b":url", outgoing.url.encode("utf-8", "surrogateescape"))]
    for name, value in outgoing.headers.items():
        args.append((name.encode("latin-1"), value.encode("latin-1")))
    # The response streams: its credit goes back to the host as it is read, so a large one
    # is never held here whole; dropped unread, the call is given up.
    status, headers, body = await _bindings.call(binding, "fetch", args, data or None,
                                                 stream_result=True)
    if headers.get("thaw-rpc") == "error":
        raise _rpc.error_from(await _body_bytes(body, BODY_MAX))
    return Response._received(status, _status_phrase(status), headers, body, url=outgoing.url)


class ServiceBinding:
    """A service binding (Cloudflare's ``Fetcher`` with RPC): ``await env.AUTH.fetch(request)``
    and ``await env.AUTH.verify(token)``. Names starting with ``_`` are not RPC methods."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<ServiceBinding {self._name}>"

    async def fetch(self, request: Any, init: Any = None, **options: Any) -> Response:
        return await fetch_via(self._name, [], request, init, options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RpcMethod(self._name, name)


class _RpcMethod:
    """``env.AUTH.verify``: calling it calls the method in the other worker."""

    __slots__ = ("_binding", "_method", "_extra")

    def __init__(self, binding: str, method: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self._binding = binding
        self._method = method
        self._extra = extra or []  # a Durable Object stub's :id

    def __repr__(self) -> str:
        return f"<RPC method {self._binding}.{self._method}>"

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        message = _rpc.encode_call(args, kwargs)
        status, headers, body = await _bindings.call(
            self._binding, "rpc",
            [_stream_arg()] + self._extra + [(b":rpc-method", self._method.encode("utf-8"))],
            message, stream_result=True)
        data = await _body_bytes(body, BODY_MAX)
        outcome = headers.get("thaw-rpc")
        if status == 200 and outcome == "result":
            return _rpc.decode(data)
        if outcome == "error":
            raise _rpc.error_from(data)
        text = data.decode("utf-8", "replace").strip()
        raise _bindings.BindingError(f"{self._binding}.{self._method}() failed: the other worker "
                                     f"answered {status}" + (f": {text}" if text else ""))


_bindings.KINDS["service"] = ServiceBinding
