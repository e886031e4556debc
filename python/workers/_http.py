"""Request and Response, following the web Fetch API as Cloudflare's Python Workers expose it."""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

from ._body import BodyInit, HasBody
from ._headers import Headers, HeadersInit

TEXT_PLAIN = "text/plain;charset=UTF-8"
APPLICATION_JSON = "application/json"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NULL_BODY_STATUSES = frozenset({101, 204, 205, 304})


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Request(HasBody):
    """An HTTP request: the one a handler receives, or one to send with ``fetch``.

    Read the body once with ``await text()``, ``await json()``, ``await bytes()``,
    or chunk by chunk with ``async for chunk in request.body``.
    """

    def __init__(
        self,
        input: str | Request,
        method: str | None = None,
        headers: HeadersInit = None,
        body: BodyInit = None,
    ) -> None:
        if isinstance(input, Request):
            self.url: str = input.url
            self.method: str = (method or input.method).upper()
            self.headers: Headers = Headers(headers if headers is not None else input.headers)
            if body is None:
                self._data, self._source = input._data, input._source
                self._stream_taken = input._stream_taken
                input._source, input._stream_taken = None, True
            else:
                self._set_body(body)
        elif isinstance(input, str):
            self.url = input
            self.method = (method or "GET").upper()
            self.headers = Headers(headers)
            self._set_body(body)
            if isinstance(body, str) and "content-type" not in self.headers:
                self.headers.set("content-type", TEXT_PLAIN)
        else:
            raise TypeError(f"Request() takes a URL or a Request, not {type(input).__name__}")
        if self.method in ("GET", "HEAD") and body is not None:
            raise TypeError(f"a {self.method} request cannot have a body")

    @classmethod
    def _incoming(cls, method: str, url: str, headers: Headers, body: BodyInit) -> Request:
        """A request as received from the host (no validation of what the host parsed)."""
        request = cls.__new__(cls)
        request.method, request.url, request.headers = method, url, headers
        request._set_body(body)
        return request

    @property
    def body(self) -> AsyncIterator[bytes]:
        """The body as an async iterator of bytes chunks (consumes a streamed body)."""
        return self._take_stream()

    @property
    def js_object(self) -> Request:
        """This request. Cloudflare code passes ``request.js_object`` to ``asgi.fetch``."""
        return self

    async def json(self) -> Any:
        """The body parsed as JSON."""
        return await self._read_json()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class _JsonMethod:
    """``Response.json(data)`` builds a JSON response; ``await response.json()`` parses one."""

    def __get__(self, instance: Response | None, owner: type[Response]) -> Callable[..., Any]:
        if instance is None:
            return owner.from_json
        return instance._read_json


class Response(HasBody):
    """An HTTP response.

    ``body`` may be str (sent as UTF-8, ``content-type`` text/plain unless set),
    bytes-like, None, or an async (or plain) iterable of bytes/str chunks,
    which is streamed as it is produced.
    """

    def __init__(
        self,
        body: BodyInit = None,
        status: int = 200,
        headers: HeadersInit = None,
        status_text: str | None = None,
        *,
        statusText: str | None = None,
    ) -> None:
        # Cloudflare's positional order is (body, status, status_text, headers).
        if isinstance(headers, str) and (status_text is None or not isinstance(status_text, str)):
            headers, status_text = status_text, headers
        status = int(status) if status is not None else 200
        if not 200 <= status <= 599:
            raise ValueError(f"response status must be in 200..599, got {status}")
        if status in NULL_BODY_STATUSES and isinstance(body, (str, bytes, bytearray, memoryview)) \
                and len(body) > 0:
            raise ValueError(f"a response with status {status} cannot have a body")
        self.status: int = status
        text = status_text if status_text is not None else statusText
        self.status_text: str = text if text is not None else _status_phrase(status)
        self.headers: Headers = Headers(headers)
        self.url: str = ""
        self._set_body(body)
        if isinstance(body, str) and "content-type" not in self.headers:
            self.headers.set("content-type", TEXT_PLAIN)

    @classmethod
    def _received(
        cls, status: int, status_text: str, headers: Headers, body: BodyInit, url: str = ""
    ) -> Response:
        """A response as received from a server: any status, no defaults added."""
        response = cls.__new__(cls)
        response.status, response.status_text, response.headers = status, status_text, headers
        response.url = url
        response._set_body(body)
        return response

    json = _JsonMethod()

    @classmethod
    def from_json(
        cls,
        data: Any,
        status: int = 200,
        headers: HeadersInit = None,
        status_text: str | None = None,
    ) -> Response:
        """A response whose body is ``data`` as JSON (``content-type: application/json``)."""
        body = _json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        response = cls(body.encode("utf-8"), status=status, headers=headers,
                       status_text=status_text)
        if "content-type" not in response.headers:
            response.headers.set("content-type", APPLICATION_JSON)
        return response

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
    def body(self) -> bytes | AsyncIterator[bytes] | None:
        """The body: bytes when known in full, an async iterator when streamed, or None."""
        if self._data is not None:
            return self._data
        return self._source

    def __repr__(self) -> str:
        content_type = self.headers.get("content-type")
        extra = f" {content_type}" if content_type else ""
        return f"<Response {self.status}{extra}>"
