"""Outbound HTTP: ``await fetch(url)``, run by urllib on the event loop's thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ._body import BodyInit
from ._headers import Headers, HeadersInit
from ._http import REDIRECT_STATUSES, Request, Response

# The Fetch standard's limit.
MAX_REDIRECTS = 20

# Cloudflare's words when a request has made all the subrequests it may.
TOO_MANY_SUBREQUESTS = "Too many subrequests."


class _Budget:
    """The subrequests a request has left: fetch() calls and the redirects they follow, as
    Cloudflare counts them (``limits.subrequests``). Shared by the request's tasks (they copy
    the context, not the budget) and by the threads that run its fetches."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.lock = threading.Lock()

    def take(self) -> None:
        with self.lock:
            if self.left <= 0:
                raise RuntimeError(TOO_MANY_SUBREQUESTS)
            self.left -= 1


# The budget of the request the running task serves; None outside requests (a worker's top
# level, an after_restore hook) and without a limit: nothing is counted.
_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("thaw_subrequests",
                                                                        default=None)


# [tool.thaw] outbound = false: the sandbox refuses this instance every IP socket (EACCES);
# fetch() says why before it tries. The runtime sets it from INIT, at load and after a restore.
_outbound = True

OUTBOUND_DENIED = ("outbound connections are off for this worker ([tool.thaw] outbound = false "
                   "in pyproject.toml): fetch() can reach no network; service bindings and "
                   "the other bindings in env still work")


def set_outbound(allowed: bool) -> None:
    """The runtime says whether this worker may open connections (``[tool.thaw] outbound``)."""
    global _outbound
    _outbound = allowed


def begin_request(limit: int | None) -> None:
    """The runtime starts a request with ``limit`` subrequests (None: unlimited)."""
    _budget.set(_Budget(limit) if limit is not None else None)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects the way ``fetch`` takes them, by mode.

    "follow": 303 (and 301/302 after a POST) become a GET without a body,
    307/308 repeat the method and body; credentials are not sent to another
    origin. "manual": the 3xx comes back as the response. "error": a
    redirect is an OSError.
    """

    # urllib's own loop detection (4 visits of one URL, or max_redirections)
    # ends with an HTTPError carrying the 3xx, which _send would hand back as
    # the answer: the count below is the only limit, and it raises.
    max_redirections = MAX_REDIRECTS + 1
    max_repeats = MAX_REDIRECTS + 1

    def __init__(self, mode: str, budget: _Budget | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.followed = 0
        self.budget = budget

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if self.mode == "manual":
            return None  # urllib then hands the 3xx back as an HTTPError: our answer
        if self.mode == "error":
            raise OSError(f"fetch: {req.full_url} redirected ({code}) to {newurl} "
                          "and redirect is 'error'")
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise OSError(f"fetch: {req.full_url} redirected ({code}) to {newurl}, "
                          "which is not an http(s) URL")
        if self.followed >= MAX_REDIRECTS:
            raise OSError(f"fetch: {req.full_url} redirected ({code}) more than "
                          f"{MAX_REDIRECTS} times")
        if self.budget is not None:
            self.budget.take()  # each request of a redirect chain is a subrequest
        method, data = req.get_method(), req.data
        if (code == 303 and method != "HEAD") or (code in (301, 302) and method == "POST"):
            method, data = "GET", None
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        same_origin = (old.scheme, old.netloc) == (new.scheme, new.netloc)
        dropped = {"host"}
        if data is None:
            dropped |= {"content-length", "content-type", "transfer-encoding"}
        if not same_origin:
            dropped |= {"authorization", "cookie", "proxy-authorization"}
        kept = {k: v for k, v in req.header_items() if k.lower() not in dropped}
        self.followed += 1
        return urllib.request.Request(newurl, data=data, headers=kept, method=method,
                                      origin_req_host=req.origin_req_host, unverifiable=True)


def _send(url: str, method: str, headers: Headers, body: bytes | None, redirect: str,
          timeout: float | None, budget: _Budget | None = None) -> Response:
    request = urllib.request.Request(url, data=body, method=method)
    for name, value in headers.items():
        if request.has_header(name.capitalize()):
            # urllib keeps one value per name; repeat values the way HTTP allows.
            value = f"{request.get_header(name.capitalize())}, {value}"
        request.add_header(name, value)
    redirects = _Redirects(redirect, budget)
    opener = urllib.request.build_opener(redirects)
    try:
        with opener.open(request, timeout=timeout) as reply:
            received = reply.read()
            return Response._received(reply.status, reply.reason or "",
                                      Headers(reply.headers.items()), received, reply.geturl(),
                                      redirects.followed > 0)
    except urllib.error.HTTPError as error:
        # A 4xx/5xx (or, with redirect="manual", a 3xx) is an answer, not a failure.
        location = error.headers.get("location") if error.headers else None
        if redirect != "manual" and error.code in REDIRECT_STATUSES and location:
            # urllib refused to follow it (a scheme it will not redirect to):
            # for fetch, a redirect it cannot follow is a network error.
            error.close()
            raise OSError(f"fetch: {url} redirected ({error.code}) to {location}, "
                          "which cannot be followed") from None
        with error:
            received = error.read()
        return Response._received(error.code, str(error.reason or ""),
                                  Headers(error.headers.items() if error.headers else None),
                                  received, error.geturl(), redirects.followed > 0)


async def fetch(
    resource: str | Request,
    method: str | None = None,
    headers: HeadersInit = None,
    body: BodyInit = None,
    redirect: str | None = None,
    cf: Any = None,
    *,
    timeout: float | None = None,
) -> Response:
    """Send an HTTP request and return the whole response.

    ``fetch(url_or_request, method=, headers=, body=, redirect=)`` as on
    Cloudflare: ``redirect`` is "follow" (the default), "manual" (a 3xx is
    returned as it is) or "error". HTTP error statuses come back as
    Responses (``raise_for_status()`` raises for them); network errors raise
    ``urllib.error.URLError`` / ``OSError``. ``cf`` is accepted and ignored.
    Past the request's ``limits.subrequests`` (each redirect counts too), it
    raises ``RuntimeError("Too many subrequests.")``, as Cloudflare does.
    A worker with ``[tool.thaw] outbound = false`` gets a ``PermissionError``
    that says so (errno EACCES, as the sandbox answers its sockets).
    """
    if isinstance(resource, Request):
        request = Request(resource, method=method, headers=headers, body=body,
                          redirect=redirect, cf=cf)
    else:
        request = Request(str(resource), method=method, headers=headers, body=body,
                          redirect=redirect, cf=cf)
    scheme = urllib.parse.urlsplit(request.url).scheme.lower()
    if scheme not in ("http", "https"):
        # urllib would also open file:, ftp: and data: URLs; fetch is HTTP only.
        raise TypeError(f"fetch() takes http: and https: URLs, not {request.url!r}")
    if not _outbound:
        raise PermissionError(errno.EACCES, f"fetch({request.url}) refused: {OUTBOUND_DENIED}")
    budget = _budget.get()
    if budget is not None:
        budget.take()
    data = await request.bytes()
    # Methods that carry a body get an explicit empty one (Content-Length: 0).
    payload = data if data or request.method in ("POST", "PUT", "PATCH") else None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, _send, request.url, request.method, request.headers, payload, request.redirect,
        timeout, budget,
    )
