"""Request and Response, following the web Fetch API as Cloudflare's Python Workers expose it."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

from ._body import BodyInit, BodyUsedError, HasBody
from ._headers import Headers, HeadersInit

TEXT_PLAIN = "text/plain;charset=UTF-8"
APPLICATION_JSON = "application/json"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})


_PHRASES = {s.value: s.phrase for s in HTTPStatus}


def _status_phrase(status: int) -> str:
    return _PHRASES.get(status, "")


REDIRECT_MODES = ("follow", "manual", "error")


class Cf(dict):
    """``request.cf``: what the host knows about an incoming request.

    A dict whose keys also read as attributes (``request.cf.httpProtocol``),
    as the JavaScript object Cloudflare hands out does; a key that is absent
    raises AttributeError as an attribute and gives None through ``get()``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"request.cf has no {name!r}") from None


def _check_redirect(redirect: str | None) -> str:
    if redirect is None:
        return "follow"
    if redirect not in REDIRECT_MODES:
        raise TypeError(f"redirect must be 'follow', 'manual' or 'error', not {redirect!r}")
    return redirect


class Request(HasBody):
    """An HTTP request: the one a handler receives, or one to send with ``fetch``.

    ``Request(input, method=, headers=, body=, redirect=, cf=)``: ``input`` is
    a URL or another Request (whose method, headers, body, redirect and cf
    are the defaults; its body moves to the new request). Read the body once
    with ``await text()``, ``await json()``, ``await bytes()``, or chunk by
    chunk with ``async for chunk in request.body``.
    """

    def __init__(
        self,
        input: str | Request,
        method: str | None = None,
        headers: HeadersInit = None,
        body: BodyInit = None,
        redirect: str | None = None,
        cf: Any = None,
    ) -> None:
        if isinstance(input, Request):
            self.url: str = input.url
            self.method: str = str(method or input.method).upper()
            self.headers: Headers = Headers(headers if headers is not None else input.headers)
            self.redirect: str = _check_redirect(redirect or input.redirect)
            self.cf: Any = cf if cf is not None else input.cf
            if body is None:
                if input._used:
                    raise BodyUsedError(self._used_message)
                self._data, self._source = input._data, input._source
                self._stream_taken, self._has_body = input._stream_taken, input._has_body
                self._used = False
                input._source, input._stream_taken = None, True
                input._used = input._has_body
            else:
                self._set_body(body)
        elif isinstance(input, str):
            self.url = input
            self.method = str(method or "GET").upper()
            self.headers = Headers(headers)
            self.redirect = _check_redirect(redirect)
            self.cf = cf
            self._set_body(body)
            if isinstance(body, str) and "content-type" not in self.headers:
                self.headers.set("content-type", TEXT_PLAIN)
        else:
            raise TypeError(f"Request() takes a URL or a Request, not {type(input).__name__}")
        if self.method in ("GET", "HEAD") and body is not None:
            raise TypeError(f"a {self.method} request cannot have a body")

    @classmethod
    def _incoming(cls, method: str, url: str, headers: Headers, body: BodyInit,
                  cf: dict[str, Any] | None = None) -> Request:
        """A request as received from the host (no validation of what the host parsed)."""
        request = cls.__new__(cls)
        request.method, request.url, request.headers = method, url, headers
        request.redirect = "manual"
        request.cf = Cf(cf or {})
        request._set_body(body)
        return request

    @property
    def body(self) -> AsyncIterator[bytes]:
        """The body as an async iterator of bytes chunks (this reads the body)."""
        self._use()
        return self._take_stream()

    @property
    def js_object(self) -> Request:
        """This request. Cloudflare code passes ``request.js_object`` to ``asgi.fetch``."""
        return self

    async def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON."""
        return await self._read_json(**kwargs)

    def clone(self) -> Request:
        """A copy whose body can be read separately (raises if the body was read)."""
        copy = Request.__new__(type(self))
        copy.url, copy.method, copy.headers = self.url, self.method, Headers(self.headers)
        copy.redirect, copy.cf = self.redirect, self.cf
        self._copy_body_to(copy)
        return copy

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class _JsonMethod:
    """``Response.json(data)`` builds a JSON response; ``await response.json()`` parses one."""

    def __get__(self, instance: Response | None, owner: type[Response]) -> Callable[..., Any]:
        if instance is None:
            return owner.from_json
        return instance._read_json


class HttpStatusError(OSError):
    """Raised by ``Response.raise_for_status()`` for a 4xx or 5xx status."""

    def __init__(self, status: int, status_text: str, url: str) -> None:
        self.status, self.status_text, self.url = status, status_text, url
        kind = "Client" if 400 <= status < 500 else "Server"
        super().__init__(f"{status} {kind} Error: {status_text} for url: {url}")


class Response(HasBody):
    """An HTTP response: ``Response(body, status, status_text, headers, web_socket)``.

    The positional order is Cloudflare's. ``body`` may be str (sent as
    UTF-8, ``content-type`` text/plain unless set), bytes-like, None, or (more
    than Cloudflare accepts) an async or plain iterable of bytes/str chunks,
    streamed as it is produced. ``status`` defaults to 200 and ``status_text``
    to the standard reason phrase.
    """

    _used_message = "Response body is already used"

    def __init__(
        self,
        body: BodyInit = None,
        status: int | None = None,
        status_text: str | None = "",
        headers: HeadersInit = None,
        web_socket: Any = None,
        *,
        statusText: str | None = None,
    ) -> None:
        if status is None:
            status = 200
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(
                f"status must be an int, not {type(status).__name__} "
                "(Response's arguments are body, status, status_text, headers)"
            )
        if status_text is not None and not isinstance(status_text, str):
            raise TypeError(
                f"status_text must be a str, not {type(status_text).__name__}; Response's "
                "arguments are (body, status, status_text, headers): pass headers=..."
            )
        if web_socket is not None:
            raise NotImplementedError("WebSocket responses (web_socket=) are not supported by thaw")
        status = int(status)
        if not 200 <= status <= 599:
            raise ValueError(f"response status must be in 200..599, got {status}")
        if status in NULL_BODY_STATUSES and isinstance(body, (str, bytes, bytearray, memoryview)) \
                and len(body) > 0:
            raise ValueError(f"a response with status {status} cannot have a body")
        self.status: int = status
        text = status_text or statusText
        self.status_text: str = text if text else _status_phrase(status)
        self.headers: Headers = Headers(headers)
        self.url: str = ""
        self.redirected: bool = False
        self._set_body(body)
        if isinstance(body, str):
            if headers is None:  # (the common case, without the checks a name needs)
                self.headers._entries.append(("content-type", TEXT_PLAIN))
            elif "content-type" not in self.headers:
                self.headers.set("content-type", TEXT_PLAIN)

    @classmethod
    def _received(
        cls, status: int, status_text: str, headers: Headers, body: BodyInit, url: str = "",
        redirected: bool = False,
    ) -> Response:
        """A response as received from a server: any status, no defaults added."""
        response = cls.__new__(cls)
        response.status, response.status_text, response.headers = status, status_text, headers
        response.url, response.redirected = url, redirected
        response._set_body(body)
        return response

    json = _JsonMethod()

    @classmethod
    def from_json(
        cls,
        data: Any,
        status: int | None = 200,
        status_text: str | None = "",
        headers: HeadersInit = None,
    ) -> Response:
        """A response whose body is ``json.dumps(data)`` (``content-type: application/json``)."""
        init = Headers(headers)
        if "content-type" not in init:
            init.set("content-type", APPLICATION_JSON)
        return cls(_json.dumps(data), status, status_text, init)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """A redirect to ``url`` (status 301, 302, 303, 307 or 308)."""
        if int(status) not in REDIRECT_STATUSES:
            raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308; got {status}")
        return cls(None, status=status, headers={"location": url})

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @property
    def type(self) -> str:
        return "default"

    def raise_for_status(self) -> None:
        """Raise :class:`HttpStatusError` (an OSError) for a 4xx or 5xx status."""
        if 400 <= self.status < 600:
            raise HttpStatusError(self.status, self.status_text, self.url)

    def clone(self) -> Response:
        """A copy whose body can be read separately (raises if the body was read)."""
        copy = Response.__new__(type(self))
        copy.status, copy.status_text = self.status, self.status_text
        copy.headers, copy.url, copy.redirected = Headers(self.headers), self.url, self.redirected
        self._copy_body_to(copy)
        return copy

    @property
    def body(self) -> bytes | AsyncIterator[bytes] | None:
        """The body: bytes when known in full, an async iterator when streamed, or None."""
        if self._data is not None:
            return self._data
        return self._source

    def __repr__(self) -> str:
        content_type = self.headers.get("content-type")
        extra = f" {content_type}" if content_type else ""
        return f"<Response {self.status}{extra}>"

