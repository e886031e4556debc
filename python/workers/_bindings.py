"""Bindings: objects in ``env`` whose methods the host serves (``env.ASSETS.fetch``).

A binding method is a call over the instance's connection to its host (the
CALL frames of src/proto/frame.h): the runtime installs the transport with
:func:`set_transport` while it serves. Outside a running instance (at import
time, in a snapshot build) there is no host to call, and a call raises.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Union

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
               body: Any = None, stream_result: bool = False) -> tuple[int, Headers, Any]:
    """``body``: bytes, or an async iterable sent chunk by chunk (R2); ``stream_result``:
    the result's body is read as it comes, never held whole (R2's get)."""
    if _transport is None:
        raise BindingError(
            f"env.{binding}.{method}() can only be called while the worker serves requests "
            "(in a handler, not at import time)"
        )
    if stream_result:
        return await _transport(binding, method, args, body, stream_result=True)
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


def _js_value(data: Any) -> Any:
    """JSON data as Cloudflare's Python code sees JS values: objects read by attribute and by
    key (``result.keys``, ``result["keys"]``), arrays as lists."""
    # The SDK's own js and pyodide.ffi; imported late (they import workers).
    from js import Object
    from pyodide.ffi import to_js

    return to_js(data, dict_converter=Object.fromEntries)


KVKey = Union[str, bytes, bytearray, memoryview]


def _key_bytes(key: Any, what: str = "key") -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"a KV {what} is a str, not {type(key).__name__}")


def _option(options: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in options and options[name] is not None:
            return options[name]
    return None


class KVNamespace:
    """A Workers KV namespace (``env.MY_KV``), served by the host from SQLite.

    ``await get(key, type="text"|"json"|"arrayBuffer"|"bytes"|"stream")`` (the type may also
    be the second positional argument, as in JavaScript), ``get_with_metadata``
    (``getWithMetadata``), ``put(key, value, expiration=, expiration_ttl=, metadata=)`` (the
    camelCase ``expirationTtl`` too), ``delete(key)``, ``list(prefix=, limit=, cursor=)``.
    A missing key reads as None. Limits and errors are Cloudflare's (docs/bindings.md).
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<KVNamespace {self._name}>"

    @staticmethod
    def _type(type_: Any, options: dict[str, Any]) -> str:
        if isinstance(type_, dict):
            options = {**type_, **options}
            type_ = None
        kind = type_ or options.get("type") or "text"
        if kind not in ("text", "json", "arrayBuffer", "bytes", "stream"):
            raise TypeError(f'KV get type must be "text", "json", "arrayBuffer" or "stream", '
                            f"not {kind!r}")
        return str(kind)

    async def _get(self, key: Any, kind: str, with_metadata: bool) -> Any:
        status, headers, body = await call(self._name, "get", [(b"key", _key_bytes(key))])
        found = headers.get("found") == "1"
        value: Any = None
        if found:
            data = b"".join([chunk async for chunk in body])
            if kind == "text":
                value = data.decode("utf-8", "replace")
            elif kind == "json":
                import json

                value = _js_value(json.loads(data)) if data else None
            elif kind == "stream":
                from ._body import BodyStream

                stream = BodyStream()
                stream.push(data)
                stream.end()
                value = stream
            else:
                value = data
        if not with_metadata:
            return value
        raw = headers.get("metadata")
        import json

        metadata = _js_value(json.loads(raw)) if found and raw else None
        return _KVWithMetadata(value, metadata)

    async def get(self, key: KVKey, type: Any = None, **options: Any) -> Any:  # noqa: A002
        return await self._get(key, self._type(type, options), False)

    async def get_with_metadata(self, key: KVKey, type: Any = None,  # noqa: A002
                                **options: Any) -> Any:
        return await self._get(key, self._type(type, options), True)

    getWithMetadata = get_with_metadata

    async def put(self, key: KVKey, value: Any, options: Any = None, **kwargs: Any) -> None:
        opts = {**(options or {}), **kwargs} if isinstance(options, dict) or options is None \
            else kwargs
        if isinstance(value, str):
            data = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif hasattr(value, "__aiter__"):
            data = b"".join([bytes(chunk) async for chunk in value])
        else:
            raise TypeError("KV put() takes a str, bytes or a stream as its value, not "
                            f"{type(value).__name__}")
        args = [(b"key", _key_bytes(key))]
        expiration = _option(opts, "expiration")
        ttl = _option(opts, "expiration_ttl", "expirationTtl")
        metadata = _option(opts, "metadata")
        for name, number in ((b"expiration", expiration), (b"expiration_ttl", ttl)):
            if number is not None:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise TypeError(f"KV put() {name.decode()} must be a number of seconds")
                args.append((name, str(int(number)).encode()))
        if metadata is not None:
            import json

            from pyodide.ffi import to_py

            args.append((b"metadata", json.dumps(to_py(metadata), separators=(",", ":"))
                         .encode("utf-8")))
        await call(self._name, "put", args, data if data else None)

    async def delete(self, key: KVKey) -> None:
        await call(self._name, "delete", [(b"key", _key_bytes(key))])

    async def list(self, options: Any = None, **kwargs: Any) -> Any:
        opts = {**(options or {}), **kwargs}
        args: list[tuple[bytes, bytes]] = []
        prefix = _option(opts, "prefix")
        if prefix is not None:
            args.append((b"prefix", _key_bytes(prefix, "prefix")))
        limit = _option(opts, "limit")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError("KV list() limit must be an integer")
            args.append((b"limit", str(limit).encode()))
        cursor = _option(opts, "cursor")
        if cursor:
            args.append((b"cursor", str(cursor).encode("utf-8")))
        _, _, body = await call(self._name, "list", args)
        import json

        data = b"".join([chunk async for chunk in body])
        return _js_value(json.loads(data))


class _KVWithMetadata:
    """What get_with_metadata gives: ``.value`` and ``.metadata`` (also by key)."""

    __slots__ = ("value", "metadata")

    def __init__(self, value: Any, metadata: Any) -> None:
        self.value = value
        self.metadata = metadata

    def __getitem__(self, name: str) -> Any:
        if name in ("value", "metadata"):
            return getattr(self, name)
        raise KeyError(name)

    def __repr__(self) -> str:
        return f"<KV value={self.value!r} metadata={self.metadata!r}>"


def _d1_encode(value: Any) -> Any:
    """A parameter as the host takes it: JSON, bytes as {"$b": base64}, bool as 0/1."""
    import base64

    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"D1_TYPE_ERROR: Type '{type(value).__name__}' not supported for value "
                    f"'{value!r}'")


def _d1_decode(text: bytes) -> Any:
    import base64
    import json

    def hook(o: dict[str, Any]) -> Any:
        if len(o) == 1 and "$b" in o and isinstance(o["$b"], str):
            return base64.b64decode(o["$b"])
        return o

    return json.loads(text, object_hook=hook)


async def _body_bytes(body: Any) -> bytes:
    return b"".join([chunk async for chunk in body])


class D1PreparedStatement:
    """``db.prepare(sql)``: ``bind(*values)`` gives a bound copy; ``await all()``, ``first(
    column=None)``, ``run()``, ``raw(column_names=False)`` run it (D1's result shapes)."""

    __slots__ = ("_db", "_sql", "_params")

    def __init__(self, db: "D1Database", sql: str, params: tuple[Any, ...] = ()) -> None:
        self._db = db
        self._sql = sql
        self._params = params

    def bind(self, *values: Any) -> "D1PreparedStatement":
        for value in values:
            _d1_encode(value)  # a bad type is refused here, as D1 does
        return D1PreparedStatement(self._db, self._sql, values)

    def _statement(self) -> dict[str, Any]:
        return {"sql": self._sql, "params": [_d1_encode(v) for v in self._params]}

    async def _query(self, mode: str, column: str | None = None) -> Any:
        import json

        args = [(b"sql", self._sql.encode("utf-8")), (b"mode", mode.encode())]
        if column is not None:
            args.append((b"column", column.encode("utf-8")))
        params = json.dumps([_d1_encode(v) for v in self._params]).encode()
        _, _, body = await call(self._db._name, "query", args, params)
        return _d1_decode(await _body_bytes(body))

    async def all(self) -> Any:
        return _js_value(await self._query("all"))

    async def run(self) -> Any:
        return _js_value(await self._query("run"))

    async def first(self, column: str | None = None) -> Any:
        result = await self._query("first", column)
        return _js_value(result) if isinstance(result, (dict, list)) else result

    async def raw(self, column_names: bool = False, **options: Any) -> Any:
        names = bool(options.get("columnNames", column_names))
        return _js_value(await self._query("raw_names" if names else "raw"))

    def __repr__(self) -> str:
        return f"<D1PreparedStatement {self._sql!r}>"


class D1Database:
    """A D1 database (``env.DB``), served by the host from SQLite: ``prepare(sql)``,
    ``await batch([statements])`` (atomic), ``await exec(sql)``, ``await dump()``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<D1Database {self._name}>"

    def prepare(self, sql: str) -> D1PreparedStatement:
        if not isinstance(sql, str):
            raise TypeError("D1_ERROR: prepare() takes the SQL as a str")
        return D1PreparedStatement(self, sql)

    async def batch(self, statements: Any) -> Any:
        import json

        items = list(statements)
        for item in items:
            if not isinstance(item, D1PreparedStatement):
                raise TypeError("D1_ERROR: batch() takes a list of prepared statements")
        body = json.dumps([item._statement() for item in items]).encode()
        _, _, data = await call(self._name, "batch", [], body)
        return _js_value(_d1_decode(await _body_bytes(data)))

    async def exec(self, sql: str) -> Any:
        _, _, data = await call(self._name, "exec", [], sql.encode("utf-8"))
        return _js_value(_d1_decode(await _body_bytes(data)))

    async def dump(self) -> bytes:
        _, _, data = await call(self._name, "dump", [])
        return await _body_bytes(data)


# --- R2 -------------------------------------------------------------------------------------


class R2Error(BindingError):
    """An R2 operation Cloudflare's R2 refuses: ``str(error)`` is ``"ACTION: MESSAGE (CODE)"``
    as on Cloudflare; ``code`` is the v4 code (10020 for a bad key, 10039 for a bad range...),
    ``action`` the operation ("get", "put", "uploadPart", ...)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.action, _, rest = text.partition(": ")
        self.code = 0
        if rest.endswith(")") and " (" in rest:
            number = rest[rest.rindex(" (") + 2:-1]
            self.code = int(number) if number.isdigit() else 0


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _R2Record(dict):  # type: ignore[type-arg]
    """A JS-like record: by key (``m["contentType"]``) and by attribute, in camelCase or
    snake_case (``m.contentType``, ``m.content_type``); a missing field reads as None."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self:
            return self[name]
        return self.get(_camel(name))


_HTTP_FIELDS = (("contentType", "content-type"), ("contentLanguage", "content-language"),
                ("contentDisposition", "content-disposition"),
                ("contentEncoding", "content-encoding"), ("cacheControl", "cache-control"))


def _to_py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value


def _r2_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"an R2 key is a str, not {type(key).__name__}")
    return key.encode("utf-8", "surrogatepass")


def _ms(value: Any) -> int:
    """A date (datetime, or ms since the epoch) as ms."""
    import datetime

    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    get_time = getattr(value, "getTime", None)  # a JS Date
    if callable(get_time):
        return int(get_time())
    raise TypeError(f"expected a date, not {type(value).__name__}")


def _http_date_ms(text: str) -> int | None:
    """An HTTP date as ms since the epoch; None when it is not a valid date, which a recipient
    ignores (RFC 9110, sections 5.6.7, 13.1.3 and 13.1.4): a client's bad If-Modified-Since
    is no condition, not an error of the worker."""
    import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": UTC, not the host's local time
            when = when.replace(tzinfo=datetime.timezone.utc)
        return int(when.timestamp() * 1000)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _http_metadata_json(value: Any) -> bytes:
    if isinstance(value, Headers):
        out: dict[str, Any] = {}
        for field, header in _HTTP_FIELDS:
            if header in value:
                out[field] = value.get(header)
        expires = _http_date_ms(value.get("expires") or "") if "expires" in value else None
        if expires is not None:  # an invalid Expires means "already expired": none kept
            out["cacheExpiry"] = expires
        return json.dumps(out).encode()
    value = _to_py(value)
    if not isinstance(value, dict):
        raise TypeError("httpMetadata is a dict or Headers")
    out = {}
    for name, field in value.items():
        key = _camel(str(name))
        out[key] = _ms(field) if key == "cacheExpiry" and field is not None else field
    return json.dumps(out).encode()


def _only_if_json(value: Any) -> bytes:
    if isinstance(value, Headers):
        out: dict[str, Any] = {"secondsGranularity": True}
        if "if-match" in value:
            out["etagMatches"] = value.get("if-match")
        if "if-none-match" in value:
            out["etagDoesNotMatch"] = value.get("if-none-match")
        after = _http_date_ms(value.get("if-modified-since") or "")
        if after is not None:
            out["uploadedAfter"] = after
        before = _http_date_ms(value.get("if-unmodified-since") or "")
        if before is not None:
            out["uploadedBefore"] = before
        return json.dumps(out).encode()
    value = _to_py(value)
    if not isinstance(value, dict):
        raise TypeError("onlyIf is a dict or Headers")
    out = {}
    for name, field in value.items():
        key = _camel(str(name))
        if key in ("uploadedBefore", "uploadedAfter") and field is not None:
            field = _ms(field)
        out[key] = field
    return json.dumps(out).encode()


def _range_json(value: Any) -> bytes:
    if isinstance(value, Headers):
        return json.dumps({"header": value.get("range") or ""}).encode()
    value = _to_py(value)
    if not isinstance(value, dict):
        raise TypeError("range is a dict ({offset, length} or {suffix}) or Headers")
    return json.dumps({_camel(str(k)): v for k, v in value.items()}).encode()


class R2Object:
    """An object's metadata (``head``, ``put``, ``list``, and ``get`` when ``only_if``
    failed): ``key``, ``version``, ``size``, ``etag``, ``http_etag`` (``httpEtag``),
    ``uploaded`` (a UTC datetime), ``http_metadata``, ``custom_metadata``, ``checksums``,
    ``range``, ``storage_class``; ``write_http_metadata(headers)``."""

    def __init__(self, data: dict[str, Any]) -> None:
        import datetime

        self.key: str = data.get("key", "")
        self.version: str = data.get("version", "")
        self.size: int = int(data.get("size", 0))
        self.etag: str = data.get("etag", "")
        self.http_etag: str = data.get("httpEtag", "")
        self.uploaded = datetime.datetime.fromtimestamp(data.get("uploaded", 0) / 1000,
                                                        tz=datetime.timezone.utc)
        self.http_metadata: _R2Record | None = (
            _R2Record(data["httpMetadata"]) if "httpMetadata" in data else None)
        self.custom_metadata: _R2Record | None = (
            _R2Record(data["customMetadata"]) if "customMetadata" in data else None)
        self.checksums = _R2Record(data.get("checksums") or {})
        self.range: _R2Record | None = _R2Record(data["range"]) if "range" in data else None
        self.storage_class: str = data.get("storageClass", "Standard")

    httpEtag = property(lambda self: self.http_etag)
    httpMetadata = property(lambda self: self.http_metadata)
    customMetadata = property(lambda self: self.custom_metadata)
    storageClass = property(lambda self: self.storage_class)

    def write_http_metadata(self, headers: Headers) -> None:
        """Set the object's HTTP metadata as headers (Content-Type, Cache-Control, ...)."""
        import email.utils

        meta: dict[str, Any] = dict(self.http_metadata or {})
        for field, header in _HTTP_FIELDS:
            if meta.get(field):
                headers.set(header, meta[field])
        if meta.get("cacheExpiry") is not None:
            headers.set("expires", email.utils.formatdate(meta["cacheExpiry"] / 1000,
                                                          usegmt=True))

    writeHttpMetadata = write_http_metadata

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} {self.size} bytes etag {self.etag}>"


class R2ObjectBody(R2Object):
    """An object with its body (``get``): ``body`` (an async iterator of chunks, read as it
    arrives), ``body_used``, ``await text()``, ``bytes()``, ``json()``, ``array_buffer()``
    (``arrayBuffer``), ``blob()``. The body can be read once."""

    def __init__(self, data: dict[str, Any], body: Any) -> None:
        super().__init__(data)
        self._body = body
        self._used = False

    def __del__(self) -> None:
        # A body nobody read holds its call (and a file) on the host: give it up.
        # (A body taken, to stream into a Response, belongs to its reader.)
        body = self.__dict__.get("_body")
        if body is not None and not self.__dict__.get("_used", True) and not body.ended:
            abandon = getattr(body, "_abandon", None)
            if abandon is not None:
                abandon()

    def _take(self) -> Any:
        from ._body import BodyUsedError

        if self._used:
            raise BodyUsedError("Body already used")
        self._used = True
        return self._body

    @property
    def body(self) -> Any:
        return self._take()

    @property
    def body_used(self) -> bool:
        return self._used

    bodyUsed = body_used

    async def bytes(self) -> bytes:
        return b"".join([chunk async for chunk in self._take()])

    async def array_buffer(self) -> builtins.bytes:
        return await self.bytes()

    arrayBuffer = array_buffer
    blob = array_buffer

    async def text(self) -> str:
        return (await self.bytes()).decode("utf-8", "replace")

    async def json(self) -> Any:
        return json.loads(await self.bytes())


class R2Objects:
    """A page of ``list()``: ``objects``, ``truncated``, ``cursor`` (when truncated),
    ``delimited_prefixes`` (``delimitedPrefixes``); also by key (``page["objects"]``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.objects = [R2Object(o) for o in data.get("objects", [])]
        self.truncated: bool = bool(data.get("truncated"))
        self.cursor: str | None = data.get("cursor")
        self.delimited_prefixes: list[str] = list(data.get("delimitedPrefixes", []))

    delimitedPrefixes = property(lambda self: self.delimited_prefixes)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __repr__(self) -> str:
        return f"<R2Objects {len(self.objects)} objects truncated={self.truncated}>"


class R2UploadedPart(_R2Record):
    """``upload_part``'s answer: ``part_number`` (``partNumber``) and ``etag``; pass a list
    of them to ``complete``."""


class R2MultipartUpload:
    """A multipart upload: ``key``, ``upload_id`` (``uploadId``), ``await upload_part(n,
    value)`` (``uploadPart``), ``complete(parts)``, ``abort()``."""

    def __init__(self, bucket: "R2Bucket", key: str, upload_id: str) -> None:
        self.key = key
        self.upload_id = upload_id
        self._bucket = bucket

    uploadId = property(lambda self: self.upload_id)

    def _args(self) -> list[tuple[bytes, bytes]]:
        return [(b"key", _r2_key(self.key)), (b"upload_id", self.upload_id.encode())]

    async def upload_part(self, part_number: int, value: Any,
                          options: Any = None) -> R2UploadedPart:
        if isinstance(part_number, bool) or not isinstance(part_number, int):
            raise TypeError("uploadPart() takes the part number as an int")
        args = self._args() + [(b"part_number", str(part_number).encode())]
        _, headers, _ = await call(self._bucket._name, "upload_part", args, _r2_value(value))
        return R2UploadedPart(partNumber=part_number, etag=headers.get("etag") or "")

    uploadPart = upload_part

    async def complete(self, uploaded_parts: Any) -> R2Object:
        parts = []
        for part in _to_py(uploaded_parts):
            part = _to_py(part)
            get = part.get if isinstance(part, dict) else lambda k: getattr(part, k, None)
            number = get("partNumber")
            if number is None:
                number = get("part_number")
            parts.append({"partNumber": number, "etag": get("etag")})
        args = self._args() + [(b"parts", json.dumps(parts).encode())]
        _, headers, _ = await call(self._bucket._name, "complete_multipart_upload", args)
        return R2Object(json.loads(headers.get("object") or "{}"))

    async def abort(self) -> None:
        await call(self._bucket._name, "abort_multipart_upload", self._args())

    def __repr__(self) -> str:
        return f"<R2MultipartUpload {self.key!r} {self.upload_id}>"


def _r2_value(value: Any) -> Any:
    """A put's value as what the transport sends: bytes, or an async iterable streamed."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, R2ObjectBody):
        return value.body
    body = getattr(value, "body", None)  # a Request or Response: its body
    if body is not None and not hasattr(value, "__aiter__") and hasattr(value, "_take_stream"):
        return body if not isinstance(body, (bytes, bytearray)) else bytes(body)
    if hasattr(value, "__aiter__") or hasattr(value, "__iter__"):
        return value
    raise TypeError("put() takes a str, bytes, a stream (async iterable) or None as its value, "
                    f"not {type(value).__name__}")


def _options(options: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    opts = _to_py(options) if options is not None else {}
    if not isinstance(opts, dict):
        raise TypeError("options are a dict (or keyword arguments)")
    merged = {_camel(str(k)): v for k, v in opts.items()}
    merged.update({_camel(k): v for k, v in kwargs.items()})
    return {k: v for k, v in merged.items() if v is not None}


class R2Bucket:
    """An R2 bucket (``env.MY_BUCKET``), served by the host from files by content address and
    an SQLite index: ``head``, ``get``, ``put``, ``delete``, ``list``,
    ``create_multipart_upload``, ``resume_multipart_upload`` (camelCase names too). Options
    are keyword arguments or a dict, in snake_case or camelCase (``only_if``/``onlyIf``,
    ``http_metadata``/``httpMetadata``...). Limits and errors are Cloudflare's
    (docs/bindings.md, "## R2"); a refusal raises :class:`R2Error`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<R2Bucket {self._name}>"

    async def head(self, key: str) -> R2Object | None:
        _, headers, _ = await call(self._name, "head", [(b"key", _r2_key(key))])
        if headers.get("found") != "1":
            return None
        return R2Object(json.loads(headers.get("object") or "{}"))

    async def get(self, key: str, options: Any = None, **kwargs: Any) -> R2Object | None:
        opts = _options(options, kwargs)
        args = [(b"key", _r2_key(key))]
        if "onlyIf" in opts:
            args.append((b"only_if", _only_if_json(opts["onlyIf"])))
        if "range" in opts:
            args.append((b"range", _range_json(opts["range"])))
        _, headers, body = await call(self._name, "get", args, None, stream_result=True)
        if headers.get("found") != "1":
            return None
        data = json.loads(headers.get("object") or "{}")
        if headers.get("body") != "1":
            return R2Object(data)
        return R2ObjectBody(data, body)

    async def put(self, key: str, value: Any, options: Any = None,
                  **kwargs: Any) -> R2Object | None:
        opts = _options(options, kwargs)
        args = [(b"key", _r2_key(key))]
        if "httpMetadata" in opts:
            args.append((b"http_metadata", _http_metadata_json(opts["httpMetadata"])))
        if "customMetadata" in opts:
            custom = _to_py(opts["customMetadata"])
            if not isinstance(custom, dict):
                raise TypeError("customMetadata is a dict of str to str")
            args.append((b"custom_metadata", json.dumps(custom).encode()))
        if "onlyIf" in opts:
            args.append((b"only_if", _only_if_json(opts["onlyIf"])))
        digests = [name for name in ("md5", "sha1", "sha256", "sha384", "sha512") if name in opts]
        if len(digests) > 1:
            raise TypeError("You cannot specify multiple hashing algorithms.")
        for name in digests:
            digest = _to_py(opts[name])
            text = digest.hex() if isinstance(digest, (bytes, bytearray, memoryview)) \
                else str(digest)
            args.append((name.encode(), text.encode()))
        _, headers, _ = await call(self._name, "put", args, _r2_value(value))
        if headers.get("found") != "1":
            return None  # only_if did not hold
        return R2Object(json.loads(headers.get("object") or "{}"))

    async def delete(self, keys: Any) -> None:
        keys = _to_py(keys)
        names = [keys] if isinstance(keys, str) else list(keys)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"an R2 key is a str, not {type(name).__name__}")
        await call(self._name, "delete", [(b"keys", json.dumps(names).encode())])

    async def list(self, options: Any = None, **kwargs: Any) -> R2Objects:
        opts = _options(options, kwargs)
        args: list[tuple[bytes, bytes]] = []
        for field, arg in (("prefix", b"prefix"), ("delimiter", b"delimiter"),
                           ("cursor", b"cursor"), ("startAfter", b"start_after")):
            if field in opts:
                args.append((arg, str(opts[field]).encode("utf-8")))
        if "limit" in opts:
            limit = opts["limit"]
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError("list() limit must be an integer")
            args.append((b"limit", str(limit).encode()))
        if "include" in opts:
            include = _to_py(opts["include"])
            args.append((b"include", ",".join(str(x) for x in include).encode()))
        _, _, body = await call(self._name, "list", args)
        return R2Objects(json.loads(await _body_bytes(body)))

    async def create_multipart_upload(self, key: str, options: Any = None,
                                      **kwargs: Any) -> R2MultipartUpload:
        opts = _options(options, kwargs)
        args = [(b"key", _r2_key(key))]
        if "httpMetadata" in opts:
            args.append((b"http_metadata", _http_metadata_json(opts["httpMetadata"])))
        if "customMetadata" in opts:
            args.append((b"custom_metadata",
                         json.dumps(_to_py(opts["customMetadata"])).encode()))
        _, headers, _ = await call(self._name, "create_multipart_upload", args)
        return R2MultipartUpload(self, key, headers.get("upload_id") or "")

    createMultipartUpload = create_multipart_upload

    def resume_multipart_upload(self, key: str, upload_id: str) -> R2MultipartUpload:
        """The upload ``upload_id`` of ``key`` (not checked until it is used, as on
        Cloudflare)."""
        _r2_key(key)
        return R2MultipartUpload(self, key, str(upload_id))

    resumeMultipartUpload = resume_multipart_upload


# --- Durable Objects: the namespace and stubs (the object's side: workers._durable) ---------

_DO_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class DurableObjectId:
    """An object's id: 64 lowercase hex digits (``str(id)``), with the name it was made
    from when it came from ``id_from_name``."""

    __slots__ = ("_hex", "name")

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self._hex = hex_id
        self.name = name

    def to_string(self) -> str:
        return self._hex

    toString = to_string

    def equals(self, other: Any) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __eq__(self, other: Any) -> bool:
        return self.equals(other)

    def __hash__(self) -> int:
        return hash(self._hex)

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex!r})"


class DurableObjectNamespace:
    """``env.ROOM``: makes ids and stubs of one Durable Object class."""

    def __init__(self, binding: str, namespace: str) -> None:
        self._binding = binding
        self._class = namespace  # the class's first name: ids hash it, renames keep them

    def id_from_name(self, name: str) -> DurableObjectId:
        if not isinstance(name, str):
            raise TypeError("id_from_name() takes a str")
        digest = hashlib.sha256(f"thaw-do\0{self._class}\0{name}".encode()).hexdigest()
        return DurableObjectId(digest, name)

    idFromName = id_from_name

    def new_unique_id(self, jurisdiction: str | None = None) -> DurableObjectId:
        return DurableObjectId(secrets.token_hex(32))

    newUniqueId = new_unique_id

    def id_from_string(self, text: str) -> DurableObjectId:
        if not isinstance(text, str) or not _DO_ID_RE.match(text):
            raise TypeError("Invalid Durable Object ID: must be 64 hex digits")
        return DurableObjectId(text)

    idFromString = id_from_string

    def get(self, object_id: DurableObjectId, location_hint: str | None = None,
            **options: Any) -> DurableObjectStub:
        if not isinstance(object_id, DurableObjectId):
            raise TypeError("get() takes a DurableObjectId (from id_from_name, new_unique_id "
                            "or id_from_string)")
        return DurableObjectStub(self._binding, object_id)

    def get_by_name(self, name: str, **options: Any) -> DurableObjectStub:
        return self.get(self.id_from_name(name))

    getByName = get_by_name


class DurableObjectStub:
    """A stub: ``await stub.method(*args)`` calls the object's method over RPC;
    ``await stub.fetch(request)`` its ``fetch``."""

    def __init__(self, binding: str, object_id: DurableObjectId) -> None:
        self._binding = binding
        self.id = object_id
        self.name = object_id.name

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._binding} {self.id}>"

    async def fetch(self, request: Any, init: Any = None, **options: Any) -> Response:
        from ._service import fetch_via
        return await fetch_via(self._binding, [(b":id", str(self.id).encode())], request, init,
                               options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from ._service import _RpcMethod
        return _RpcMethod(self._binding, name, [(b":id", str(self.id).encode())])


KINDS: dict[str, Callable[[str], Any]] = {"assets": Fetcher, "kv": KVNamespace, "d1": D1Database,
                                          "r2": R2Bucket}


def make(name: str, kind: str, entry: dict[str, Any] | None = None) -> Any:
    """The env object of a binding of type ``kind`` named ``name`` (``entry``: the rest of
    what the host said about it)."""
    if kind == "durable_object":
        class_name = (entry or {}).get("class_name")
        if not isinstance(class_name, str):
            raise ValueError(f"binding {name}: a Durable Object namespace needs its class_name")
        namespace = (entry or {}).get("namespace")
        return DurableObjectNamespace(name, namespace if isinstance(namespace, str)
                                      else class_name)
    factory = KINDS.get(kind)
    if factory is None:
        raise ValueError(f"binding {name}: this SDK does not know bindings of type {kind!r}")
    return factory(name)


# --- Queues ---------------------------------------------------------------------------------

QUEUE_CONTENT_TYPES = ("json", "text", "bytes", "v8")
QUEUE_MESSAGE_MAX = 128000  # Cloudflare: 128 KB (1 KB = 1000 bytes)
QUEUE_BATCH_MESSAGES_MAX = 100
QUEUE_BATCH_BYTES_MAX = 256000
QUEUE_DELAY_MAX = 43200  # 12 hours


def _js_to_py(value: Any) -> Any:
    """A JS proxy (``to_js(...)``) or a plain value, as a Python value."""
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value


def queue_serialize(body: Any, content_type: str) -> bytes:
    """A message body as stored: JSON text for "json" (and "v8", which thaw treats as
    JSON), UTF-8 for "text", the bytes themselves for "bytes"."""
    if content_type not in QUEUE_CONTENT_TYPES:
        raise TypeError(f"Unsupported queue message content type: {content_type!r} (one of "
                        "json, text, bytes, v8)")
    body = _js_to_py(body)
    if content_type == "text":
        if not isinstance(body, str):
            raise TypeError("a message with content_type='text' takes a str body")
        return body.encode("utf-8")
    if content_type == "bytes":
        if isinstance(body, str) or not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("a message with content_type='bytes' takes a bytes body")
        return bytes(body)
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError(f"the message body cannot be serialized as {content_type}: {error}") \
            from None


def queue_deserialize(data: bytes, content_type: str) -> Any:
    if content_type == "text":
        return data.decode("utf-8", "replace")
    if content_type == "bytes":
        return data
    return json.loads(data)


def _delay(value: Any, op: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError("delay_seconds must be a number of seconds")
    if value < 0 or value > QUEUE_DELAY_MAX:
        raise BindingError(f"Queue {op} failed: delaySeconds must be between 0 and "
                           f"{QUEUE_DELAY_MAX} seconds")
    return int(value)


class Queue:
    """A queue producer binding: ``await env.JOBS.send(body, content_type="json",
    delay_seconds=0)`` and ``await env.JOBS.send_batch([{"body": ...}, ...],
    delay_seconds=0)`` (``sendBatch``, ``contentType``, ``delaySeconds`` as in JS)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<Queue {self._name}>"

    async def _send(self, op: str, method: str,
                    messages: list[tuple[bytes, str, int | None]]) -> None:
        args: list[tuple[bytes, bytes]] = [(b"n", str(len(messages)).encode())]
        for i, (data, content_type, delay) in enumerate(messages):
            args.append((f"ct{i}".encode(), content_type.encode()))
            args.append((f"len{i}".encode(), str(len(data)).encode()))
            if delay is not None:
                args.append((f"delay{i}".encode(), str(delay).encode()))
        body = b"".join(m[0] for m in messages)
        await call(self._name, method, args, body)

    async def send(self, body: Any, options: Any = None, **kwargs: Any) -> None:
        opts = dict(_js_to_py(options) or {})
        opts.update(kwargs)
        content_type = _option(opts, "content_type", "contentType") or "json"
        delay = _delay(_option(opts, "delay_seconds", "delaySeconds"), "send")
        data = queue_serialize(body, content_type)
        if len(data) > QUEUE_MESSAGE_MAX:
            raise BindingError(f"Queue send failed: message too large: {len(data)} bytes, the "
                               f"limit is {QUEUE_MESSAGE_MAX} bytes")
        await self._send("send", "send", [(data, content_type, delay)])

    async def send_batch(self, messages: Any, options: Any = None, **kwargs: Any) -> None:
        opts = dict(_js_to_py(options) or {})
        opts.update(kwargs)
        batch_delay = _delay(_option(opts, "delay_seconds", "delaySeconds"), "sendBatch")
        items = list(_js_to_py(messages))
        if not items or len(items) > QUEUE_BATCH_MESSAGES_MAX:
            raise BindingError(f"Queue sendBatch failed: a batch holds 1 to "
                               f"{QUEUE_BATCH_MESSAGES_MAX} messages, not {len(items)}")
        out: list[tuple[bytes, str, int | None]] = []
        total = 0
        for item in items:
            item = dict(_js_to_py(item))
            if "body" not in item:
                raise TypeError("each message of send_batch is a dict with a 'body'")
            content_type = _option(item, "content_type", "contentType") or "json"
            delay = _delay(_option(item, "delay_seconds", "delaySeconds"), "sendBatch")
            data = queue_serialize(item["body"], content_type)
            if len(data) > QUEUE_MESSAGE_MAX:
                raise BindingError(f"Queue sendBatch failed: message too large: {len(data)} "
                                   f"bytes, the limit is {QUEUE_MESSAGE_MAX} bytes")
            total += len(data)
            out.append((data, content_type, delay if delay is not None else batch_delay))
        if total > QUEUE_BATCH_BYTES_MAX:
            raise BindingError(f"Queue sendBatch failed: batch too large: {total} bytes, the "
                               f"limit is {QUEUE_BATCH_BYTES_MAX} bytes")
        await self._send("sendBatch", "send_batch", out)

    sendBatch = send_batch


class Message:
    """One message of a consumer's batch (Cloudflare's ``Message``)."""

    __slots__ = ("id", "timestamp", "body", "attempts", "_batch", "_index")

    def __init__(self, batch: "MessageBatch", index: int, id: str, timestamp: Any, body: Any,
                 attempts: int) -> None:
        self.id = id
        self.timestamp = timestamp
        self.body = body
        self.attempts = attempts
        self._batch = batch
        self._index = index

    def ack(self) -> None:
        self._batch._decide(self._index, ("ack", 0), explicit=True)

    def retry(self, options: Any = None, **kwargs: Any) -> None:
        opts = dict(_js_to_py(options) or {})
        opts.update(kwargs)
        delay = _delay(_option(opts, "delay_seconds", "delaySeconds"), "retry") or 0
        self._batch._decide(self._index, ("retry", delay), explicit=True)

    def __repr__(self) -> str:
        return f"<Message {self.id} attempts={self.attempts}>"


class MessageBatch:
    """What a ``queue`` handler gets: ``batch.queue``, ``batch.messages``, ``ack_all()``,
    ``retry_all(delay_seconds=)`` (``ackAll``/``retryAll``). A message neither acked nor
    retried is acked when the handler returns and retried when it raises; the first call
    for a message wins (an explicit one over ``ack_all``/``retry_all``)."""

    def __init__(self, queue: str, messages: list[Message] | None = None) -> None:
        self.queue = queue
        self.messages: list[Message] = messages or []
        self._decisions: dict[int, tuple[str, int]] = {}
        self._all: tuple[str, int] | None = None

    def _decide(self, index: int, what: tuple[str, int], explicit: bool) -> None:
        self._decisions.setdefault(index, what)

    def ack_all(self) -> None:
        if self._all is None:
            self._all = ("ack", 0)

    def retry_all(self, options: Any = None, **kwargs: Any) -> None:
        opts = dict(_js_to_py(options) or {})
        opts.update(kwargs)
        delay = _delay(_option(opts, "delay_seconds", "delaySeconds"), "retryAll") or 0
        if self._all is None:
            self._all = ("retry", delay)

    ackAll = ack_all
    retryAll = retry_all

    def _answer(self) -> dict[str, Any]:
        acked: list[int] = []
        retried: list[list[int]] = []
        for i in range(len(self.messages)):
            what = self._decisions.get(i, self._all)
            if what is None:
                continue
            if what[0] == "ack":
                acked.append(i)
            else:
                retried.append([i, what[1]])
        return {"acked": acked, "retried": retried}


KINDS["queue"] = Queue
