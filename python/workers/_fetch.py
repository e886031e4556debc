"""Outbound HTTP: ``await fetch(url)``, run by urllib on the event loop's thread pool."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from ._body import BodyInit
from ._headers import Headers, HeadersInit
from ._http import Response, Request


def _send(url: str, method: str, headers: Headers, body: bytes | None,
          timeout: float | None) -> Response:
    request = urllib.request.Request(url, data=body, method=method)
    for name, value in headers.items():
        if request.has_header(name.capitalize()):
            # urllib keeps one value per name; repeat values the way HTTP allows.
            value = f"{request.get_header(name.capitalize())}, {value}"
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            received = reply.read()
            return Response._received(reply.status, reply.reason or "",
                                      Headers(reply.headers.items()), received, reply.geturl())
    except urllib.error.HTTPError as error:
        # A 4xx/5xx is an answer, not a failure: hand it back as a Response.
        with error:
            received = error.read()
        return Response._received(error.code, str(error.reason or ""),
                                  Headers(error.headers.items() if error.headers else None),
                                  received, error.geturl())


async def fetch(
    resource: str | Request,
    method: str | None = None,
    headers: HeadersInit = None,
    body: BodyInit = None,
    *,
    timeout: float | None = None,
    **_options: Any,
) -> Response:
    """Send an HTTP request and return the whole response.

    HTTP error statuses come back as Responses; network errors raise
    ``urllib.error.URLError`` / ``OSError``. Redirects are followed.
    """
    if isinstance(resource, Request):
        request = Request(resource, method=method, headers=headers, body=body)
    else:
        request = Request(str(resource), method=method, headers=headers, body=body)
    data = await request.bytes()
    # Methods that carry a body get an explicit empty one (Content-Length: 0).
    payload = data if data or request.method in ("POST", "PUT", "PATCH") else None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, _send, request.url, request.method, request.headers, payload, timeout
    )
