"""``js`` for thaw: the JavaScript globals Cloudflare Python workers import, in plain Python.

On Cloudflare, ``from js import Response`` reaches the JavaScript runtime through
Pyodide. thaw has no JavaScript engine; this module implements the globals that
Cloudflare's Python examples call, with JavaScript's behaviour where Python code can
observe it:

    Response   Response.new(body, init) / .new(body, status=, headers=, statusText=),
               Response.json(data, init), Response.redirect(url, status); a subclass of
               workers.Response, so a handler may return one. ``await r.json()`` gives
               JsObject values (``.to_py()`` for dicts).
    Headers    Headers.new(init); get/set/append/delete/has, entries/keys/values (sorted,
               combined, as the web's Headers), forEach, getSetCookie.
    Object     fromEntries, keys, values, entries, assign, hasOwn, new.
    JSON       stringify(value, replacer, space), parse(text, reviver).
    console    log/info/debug (stdout), error/warn (stderr): the worker's log.
    fetch      ``await fetch(url, init)`` / ``fetch(url, method=, headers=, body=)``:
               workers.fetch, answering a js Response.
    Date       Date.now(), Date.new(...), Date.parse, Date.UTC; UTC is the local time.
    Error      Error.new(msg) (also TypeError, RangeError, SyntaxError): a JsException.
    URL        URL.new(url, base): href, protocol, host, hostname, port, pathname,
               search, hash, origin, searchParams (URLSearchParams); settable parts.

Any other name raises a NotImplementedError naming it (an AttributeError too, so
``hasattr(js, name)`` is False). The value types (JsProxy, JsObject, jsnull,
JsException) live in pyodide.ffi. See docs/cloudflare-compat.md.
"""

from __future__ import annotations

import json as _json
import math
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import workers as _workers
from pyodide.ffi import (JsArray, JsException, JsMap, JsObject, JsProxy, js_error, jsnull,
                         missing_member)
from pyodide.ffi import _own_properties, _property_key  # shared with pyodide.ffi
from workers._fetch import fetch as _sdk_fetch

_NO_ENGINE = "thaw runs Python workers without a JavaScript engine"

# --------------------------------------------------------------------------- helpers


def _number_text(number: int | float) -> str:
    """``String(number)`` as JavaScript writes it."""
    if isinstance(number, bool):
        return "true" if number else "false"
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" not in text:
        return text
    mantissa, exponent_text = text.split("e")
    exponent = int(exponent_text)
    if -7 < exponent < 21:
        return format(Decimal(text), "f")
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


def _to_string(value: Any) -> str:
    """``String(value)``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "undefined"
    if value is jsnull:
        return "null"
    if isinstance(value, (bool, int, float)):
        return _number_text(value)
    if isinstance(value, JsArray):
        return value.join(",")
    if isinstance(value, JsObject):
        return "[object Object]"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _options(init: Any, options: dict[str, Any], what: str) -> dict[str, Any]:
    """The init object of a call (positional JsObject/dict) merged with keyword arguments,
    which Pyodide passes to JavaScript as a trailing object."""
    merged: dict[str, Any] = {}
    if init is not None and init is not jsnull:
        if isinstance(init, JsObject):
            merged.update(_own_properties(init))
        elif isinstance(init, dict):
            merged.update((str(k), v) for k, v in init.items())
        else:
            raise js_error("TypeError", f"{what}: the init argument must be an object "
                           f"(to_js(dict, dict_converter=Object.fromEntries)), "
                           f"not {type(init).__name__}")
    merged.update(options)
    return merged


def _header_init(init: Any) -> Any:
    """Headers' init in a form workers.Headers takes."""
    if init is None or init is jsnull:
        return None
    if isinstance(init, JsObject):
        return [(name, _to_string(value)) for name, value in _own_properties(init)]
    return init


def _body(body: Any) -> Any:
    if body is jsnull:
        return None
    if isinstance(body, (JsObject, JsMap)):
        raise js_error("TypeError", "an object is not a body: JSON.stringify() it, or use "
                       "Response.json(data)")
    if isinstance(body, URLSearchParams):
        return body.toString()
    return body


# --------------------------------------------------------------------------- namespaces


class _Namespace(JsProxy):
    """A JavaScript namespace object (``Object``, ``JSON``, ``console``)."""

    __slots__ = ()
    _name = ""

    def __getattr__(self, name: str) -> Any:
        raise missing_member(f"js.{self._name}", name, _NO_ENGINE)

    def __repr__(self) -> str:
        return f"<js.{self._name}>"


class _ObjectNamespace(_Namespace):
    __slots__ = ()
    _name = "Object"

    @staticmethod
    def new(init: Any = None) -> JsObject:
        """``new Object()`` (or a copy of ``init``'s properties)."""
        result = JsObject()
        if init is not None and init is not jsnull:
            _ObjectNamespace.assign(result, init)
        return result

    @staticmethod
    def fromEntries(entries: Any) -> JsObject:  # noqa: N802
        """An object whose properties are the ``[key, value]`` pairs of ``entries``."""
        if isinstance(entries, dict):
            pairs: Iterable[Any] = entries.items()
        elif isinstance(entries, JsObject) or not hasattr(entries, "__iter__"):
            raise js_error("TypeError", f"Object.fromEntries: {type(entries).__name__} "
                           "is not iterable")
        else:
            pairs = entries
        result = JsObject()
        for pair in pairs:
            try:
                key, value = pair[0], pair[1]
            except (TypeError, IndexError, KeyError):
                raise js_error("TypeError", f"Object.fromEntries: entry {pair!r} is not a "
                               "[key, value] pair") from None
            result[_property_key(key)] = value
        return result

    @staticmethod
    def _check(value: Any, what: str) -> None:
        if value is None or value is jsnull:
            raise js_error("TypeError", f"Object.{what}: cannot convert undefined or null "
                           "to object")

    @staticmethod
    def keys(value: Any) -> JsArray:
        _ObjectNamespace._check(value, "keys")
        return JsArray(key for key, _ in _own_properties(value))

    @staticmethod
    def values(value: Any) -> JsArray:
        _ObjectNamespace._check(value, "values")
        return JsArray(item for _, item in _own_properties(value))

    @staticmethod
    def entries(value: Any) -> JsArray:
        _ObjectNamespace._check(value, "entries")
        return JsArray(JsArray(pair) for pair in _own_properties(value))

    @staticmethod
    def hasOwn(value: Any, key: Any) -> bool:  # noqa: N802
        _ObjectNamespace._check(value, "hasOwn")
        name = _property_key(key)
        return any(k == name for k, _ in _own_properties(value))

    @staticmethod
    def assign(target: Any, *sources: Any) -> Any:
        _ObjectNamespace._check(target, "assign")
        for source in sources:
            if source is None or source is jsnull:
                continue
            for key, value in _own_properties(source):
                target[key] = value
        return target


class _JsonNamespace(_Namespace):
    __slots__ = ()
    _name = "JSON"

    @staticmethod
    def stringify(value: Any, replacer: Any = None, space: Any = None) -> str | None:
        """JSON text of ``value`` as JavaScript writes it (None, i.e. undefined, for a value
        JSON cannot hold, such as undefined itself)."""
        return _Stringifier(replacer, space).run(value)

    @staticmethod
    def parse(text: Any, reviver: Callable[[str, Any], Any] | None = None) -> Any:
        """The value of JSON ``text``: objects are JsObject, arrays JsArray, null ``jsnull``;
        bad text raises a JsException named SyntaxError."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8", "replace")
        elif not isinstance(text, str):
            text = _to_string(text)
        try:
            value = _json.loads(text, object_pairs_hook=JsObject, parse_int=_parse_int,
                                parse_float=_parse_float, parse_constant=_reject_constant)
        except _json.JSONDecodeError as error:
            raise js_error("SyntaxError", f"JSON.parse: {error.msg} at line {error.lineno} "
                           f"column {error.colno}") from None
        except RecursionError:
            raise js_error("RangeError", "JSON.parse: nested too deeply") from None
        value = _javascript_values(value)
        if reviver is not None:
            holder = JsObject({"": value})
            value = _revive(holder, "", reviver)
        return value


_SAFE_INTEGER = 2**53


def _parse_int(text: str) -> int | float:
    number = int(text)
    return number if abs(number) <= _SAFE_INTEGER else float(number)


def _parse_float(text: str) -> int | float:
    number = float(text)
    if number.is_integer() and abs(number) <= _SAFE_INTEGER:
        return int(number)  # JavaScript has one number type; Pyodide gives int for these
    return number


def _reject_constant(name: str) -> Any:
    raise _json.JSONDecodeError(f"unexpected token {name}", name, 0)


def _javascript_values(root: Any) -> Any:
    """Lists as JsArray and None as jsnull, throughout what json.loads made (iteratively:
    the depth is whatever the text had)."""
    def fix(value: Any) -> Any:
        if value is None:
            return jsnull
        if type(value) is list:
            array = JsArray(value)
            work.append(array)
            return array
        if isinstance(value, JsObject):
            work.append(value)
        return value

    work: list[Any] = []
    root = fix(root)
    while work:
        container = work.pop()
        if isinstance(container, JsArray):
            for index, item in enumerate(container):
                container[index] = fix(item)
        else:
            props = object.__getattribute__(container, "_props")
            for key, item in props.items():
                props[key] = fix(item)
    return root


def _revive(holder: Any, key: str, reviver: Callable[[str, Any], Any]) -> Any:
    value = holder[int(key)] if isinstance(holder, JsArray) else holder[key]
    if isinstance(value, JsArray):
        for index in range(len(value)):
            revived = _revive(value, str(index), reviver)
            value[index] = revived
    elif isinstance(value, JsObject):
        for name in list(object.__getattribute__(value, "_props")):
            revived = _revive(value, name, reviver)
            if revived is None:
                del value[name]
            else:
                value[name] = revived
    return reviver(key, value)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _quote(text: str) -> str:
    quoted = _json.dumps(text, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


class _Stringifier:
    """JSON.stringify's algorithm (SerializeJSONProperty) over thaw's values."""

    def __init__(self, replacer: Any, space: Any) -> None:
        self.function = replacer if callable(replacer) else None
        self.allowed: list[str] | None = None
        if isinstance(replacer, (list, tuple)):
            self.allowed = list(dict.fromkeys(
                _property_key(k) for k in replacer
                if isinstance(k, (str, int, float)) and not isinstance(k, bool)))
        if isinstance(space, (int, float)) and not isinstance(space, bool):
            self.gap = " " * max(0, min(10, int(space)))
        elif isinstance(space, str):
            self.gap = space[:10]
        else:
            self.gap = ""
        self.stack: list[int] = []

    def run(self, value: Any) -> str | None:
        try:
            return self.property(JsObject({"": value}), "", value, "")
        except RecursionError:
            raise js_error("RangeError", "JSON.stringify: nested too deeply") from None

    def property(self, holder: Any, key: str, value: Any, indent: str) -> str | None:
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            to_json = getattr(value, "toJSON", None) if not isinstance(value, dict) else None
            if callable(to_json):
                value = to_json(key)
        if self.function is not None:
            value = self.function(key, value)
        if value is jsnull:
            return "null"
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return _quote(value)
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return "null"
            return _number_text(value)
        if isinstance(value, (list, tuple)):
            return self.array(value, indent)
        if isinstance(value, (JsObject, dict)):
            return self.object(value, indent)
        if isinstance(value, JsProxy):
            return None if callable(value) else "{}"
        if callable(value):
            return None
        raise js_error("TypeError", f"JSON.stringify: a Python {type(value).__name__} cannot "
                       "be serialized; convert it to a dict, list, str or number first")

    def enter(self, value: Any) -> None:
        if id(value) in self.stack:
            raise js_error("TypeError", "JSON.stringify: converting a circular structure")
        self.stack.append(id(value))

    def object(self, value: Any, indent: str) -> str:
        self.enter(value)
        inner = indent + self.gap
        if isinstance(value, JsObject):
            pairs = list(object.__getattribute__(value, "_props").items())
        else:
            pairs = [(_property_key(k), v) for k, v in value.items()]
        if self.allowed is not None:
            present = dict(pairs)
            pairs = [(k, present[k]) for k in self.allowed if k in present]
        parts = []
        separator = ": " if self.gap else ":"
        for key, item in pairs:
            text = self.property(value, key, item, inner)
            if text is not None:
                parts.append(_quote(key) + separator + text)
        self.stack.pop()
        if not parts:
            return "{}"
        if not self.gap:
            return "{" + ",".join(parts) + "}"
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "}"

    def array(self, value: Any, indent: str) -> str:
        self.enter(value)
        inner = indent + self.gap
        parts = []
        for index, item in enumerate(value):
            text = self.property(value, str(index), item, inner)
            parts.append("null" if text is None else text)
        self.stack.pop()
        if not parts:
            return "[]"
        if not self.gap:
            return "[" + ",".join(parts) + "]"
        return "[\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "]"


class _Console(_Namespace):
    __slots__ = ()
    _name = "console"

    @staticmethod
    def _write(to_stderr: bool, args: tuple[Any, ...]) -> None:
        stream = sys.stderr if to_stderr else sys.stdout  # the runtime's, looked up per call
        if stream is None:
            return
        stream.write(" ".join(_inspect(a) for a in args) + "\n")
        stream.flush()

    def log(self, *args: Any) -> None:
        self._write(False, args)

    def info(self, *args: Any) -> None:
        self._write(False, args)

    def debug(self, *args: Any) -> None:
        self._write(False, args)

    def warn(self, *args: Any) -> None:
        self._write(True, args)

    def error(self, *args: Any) -> None:
        self._write(True, args)


def _inspect(value: Any) -> str:
    """One console argument as text: strings as they are, values as JavaScript shows them."""
    if isinstance(value, str):
        return value
    if isinstance(value, JsException):
        return value.stack
    if isinstance(value, (JsObject, JsArray, JsMap, dict, list, tuple)):
        try:
            text = _Stringifier(None, None).run(value)
        except JsException:
            text = None
        return text if text is not None else repr(value)
    if isinstance(value, (bool, int, float)) or value is None or value is jsnull:
        return _to_string(value)
    return str(value)


Object = _ObjectNamespace()
JSON = _JsonNamespace()
console = _Console()


# --------------------------------------------------------------------------- Headers, Response


class Headers(JsProxy, _workers.Headers):
    """The web's Headers: ``Headers.new(init)``, where init is an object, a dict, pairs or
    Headers. Iteration, ``entries()``, ``keys()`` and ``values()`` go by name, sorted, with
    repeated values joined by ", " (``set-cookie`` stays separate), as in JavaScript."""

    __slots__ = ()

    def __init__(self, init: Any = None) -> None:
        super().__init__(_header_init(init))

    @classmethod
    def new(cls, init: Any = None) -> "Headers":
        return cls(init)

    def entries(self) -> JsArray:
        result = JsArray()
        for name in sorted({n for n, _ in self.items()}):
            if name == "set-cookie":
                result.extend(JsArray((name, v)) for v in self.getlist(name))
            else:
                result.append(JsArray((name, self.get(name))))
        return result

    def keys(self) -> JsArray:  # type: ignore[override]
        return JsArray(name for name, _ in self.entries())

    def values(self) -> JsArray:  # type: ignore[override]
        return JsArray(value for _, value in self.entries())

    def __iter__(self):  # type: ignore[override]
        return iter(self.entries())

    def forEach(self, callback: Callable[..., Any]) -> None:  # noqa: N802
        for name, value in self.entries():
            callback(value, name, self)

    def getSetCookie(self) -> JsArray:  # type: ignore[override]  # noqa: N802
        return JsArray(self.getlist("set-cookie"))

    def __repr__(self) -> str:
        return f"js.Headers({self.items()!r})"


class _JsonMember:
    """``Response.json(data, init)`` makes a JSON response; ``await response.json()`` parses
    one into JsObject values."""

    def __get__(self, instance: Any, owner: type) -> Callable[..., Any]:
        if instance is None:
            return getattr(owner, "_json_response")
        return instance._parse_json


class Response(JsProxy, _workers.Response):
    """The web's Response: ``Response.new(body, init)``. A workers.Response too, so the
    runtime sends it when a handler returns it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = Headers(self.headers)

    @classmethod
    def new(cls, body: Any = None, init: Any = None, **options: Any) -> "Response":
        """``new Response(body, init)``: init (or keywords) may hold status, statusText and
        headers."""
        opts = _options(init, options, "Response.new")
        status = opts.get("status", 200)
        status_text = opts.get("statusText", opts.get("status_text"))
        if isinstance(status, bool) or not isinstance(status, (int, float)):
            raise js_error("TypeError", f"Response.new: status must be a number, "
                           f"not {status!r}")
        try:
            return cls(_body(body), status=int(status),
                       headers=_header_init(opts.get("headers")),
                       status_text=None if status_text is None else _to_string(status_text))
        except ValueError as error:
            name = "RangeError" if "status" in str(error) and "body" not in str(error) \
                else "TypeError"
            raise js_error(name, f"Response.new: {error}") from None

    @classmethod
    def _json_response(cls, data: Any, init: Any = None, **options: Any) -> "Response":
        text = JSON.stringify(data)
        if text is None:
            raise js_error("TypeError", "Response.json: the value is not JSON serializable")
        opts = _options(init, options, "Response.json")
        headers = Headers(opts.get("headers"))
        if not headers.has("content-type"):
            headers.set("content-type", "application/json")
        opts["headers"] = headers
        return cls.new(text.encode("utf-8"), JsObject(opts))

    json = _JsonMember()  # type: ignore[assignment]

    @classmethod
    def _adopt(cls, response: _workers.Response) -> "Response":
        """``response`` (from workers.fetch) as a js Response, sharing its body."""
        adopted = cls.__new__(cls)
        adopted.__dict__.update(vars(response))
        adopted.headers = Headers(response.headers)
        return adopted

    async def _parse_json(self) -> Any:
        return JSON.parse(await self.bytes())

    async def arrayBuffer(self) -> bytes:  # noqa: N802
        return await self.bytes()

    @property
    def statusText(self) -> str:  # noqa: N802
        return self.status_text

    @property
    def bodyUsed(self) -> bool:  # noqa: N802
        return self.body_used

    @property
    def type(self) -> str:
        return "basic" if self.url else "default"

    def clone(self) -> "Response":
        """A copy; the body must not have been streamed yet (read it in full first)."""
        if self._buffered() is None:
            raise js_error("TypeError", "Response.clone: a streamed body cannot be cloned "
                           "here; await .bytes() first")
        return self._adopt(self)

    def __repr__(self) -> str:
        return f"<js.Response {self.status}>"


async def fetch(resource: Any, init: Any = None, **options: Any) -> Response:
    """``fetch(resource, init)``: workers.fetch with the web's arguments, answering a js
    Response (``await r.json()`` gives JsObject values)."""
    opts = _options(init, options, "fetch")
    if not isinstance(resource, _workers.Request):
        resource = _to_string(resource) if not isinstance(resource, URL) else resource.href
    extra = {k: v for k, v in opts.items() if k not in ("method", "headers", "body")}
    reply = await _sdk_fetch(resource, method=opts.get("method"),
                             headers=_header_init(opts.get("headers")),
                             body=_body(opts.get("body")), **extra)
    return Response._adopt(reply)


# --------------------------------------------------------------------------- Error


class _ErrorConstructor(JsProxy):
    """``Error``, ``TypeError``...: ``.new(message)`` (or a call) makes a JsException."""

    __slots__ = ("_error_name",)

    def __init__(self, name: str) -> None:
        self._error_name = name

    def new(self, message: Any = "") -> JsException:
        return js_error(self._error_name, "" if message is None else _to_string(message))

    def __call__(self, message: Any = "") -> JsException:
        return self.new(message)

    def __repr__(self) -> str:
        return f"<js.{self._error_name}>"


Error = _ErrorConstructor("Error")
TypeError_ = _ErrorConstructor("TypeError")
RangeError = _ErrorConstructor("RangeError")
SyntaxError_ = _ErrorConstructor("SyntaxError")


# --------------------------------------------------------------------------- Date

_DAY_MS = 86_400_000
_MAX_TIME = 8.64e15
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ISO_DATE = re.compile(
    r"^([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?$")


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (month 1..12)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return year_of_era + era * 400 + (month <= 2), month, day


def _make_time(year: float, month: float, day: float = 1, hours: float = 0, minutes: float = 0,
               seconds: float = 0, ms: float = 0) -> float:
    """JavaScript's MakeDate(MakeDay(...), MakeTime(...)), UTC, as milliseconds (NaN when a
    part is not finite)."""
    parts = (year, month, day, hours, minutes, seconds, ms)
    if not all(isinstance(p, (int, float)) and math.isfinite(p) for p in parts):
        return math.nan
    year, month = int(year), int(month)
    year += month // 12
    month %= 12
    days = _days_from_civil(year, month + 1, 1) + int(day) - 1
    return _time_clip(days * _DAY_MS + int(hours) * 3_600_000 + int(minutes) * 60_000
                      + int(seconds) * 1000 + int(ms))


def _time_clip(ms: float) -> float:
    if not math.isfinite(ms) or abs(ms) > _MAX_TIME:
        return math.nan
    return float(int(ms))


def _parse_date(text: str) -> float:
    text = text.strip()
    match = _ISO_DATE.match(text)
    if match:
        year, month, day, hours, minutes, seconds, fraction, zone = match.groups()
        ms = int((fraction or "0")[:3].ljust(3, "0"))
        time_ms = _make_time(int(year), int(month or 1) - 1, int(day or 1), int(hours or 0),
                             int(minutes or 0), int(seconds or 0), ms)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            time_ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000
        return _time_clip(time_ms)
    from email.utils import parsedate_tz  # RFC 2822, what toUTCString() writes

    parsed = parsedate_tz(text)
    if parsed is None:
        return math.nan
    year, month, day, hours, minutes, seconds = parsed[:6]
    offset = parsed[9] or 0
    return _time_clip(_make_time(year, month - 1, day, hours, minutes, seconds) - offset * 1000)


class Date(JsProxy):
    """JavaScript's Date (milliseconds since the epoch, UTC; a worker's local time is UTC,
    as on Cloudflare). ``Date.new()``: now; ``Date.new(ms)``, ``Date.new("2024-01-02")``,
    ``Date.new(year, month0, day, h, m, s, ms)``."""

    __slots__ = ("_time",)

    def __init__(self, *args: Any) -> None:
        if not args:
            self._time = float(Date.now())
        elif len(args) == 1:
            value = args[0]
            if isinstance(value, Date):
                self._time = value._time
            elif isinstance(value, str):
                self._time = _parse_date(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                self._time = _time_clip(value)
            else:
                self._time = _parse_date(_to_string(value))
        else:
            year = args[0]
            if isinstance(year, (int, float)) and math.isfinite(year) and 0 <= int(year) <= 99:
                year = 1900 + int(year)
            self._time = _make_time(year, *args[1:7])

    @classmethod
    def new(cls, *args: Any) -> "Date":
        return cls(*args)

    @staticmethod
    def now() -> int:
        return time.time_ns() // 1_000_000

    @staticmethod
    def parse(text: Any) -> float:
        return _parse_date(_to_string(text))

    @staticmethod
    def UTC(year: float, month: float = 0, *rest: float) -> float:  # noqa: N802
        if isinstance(year, (int, float)) and math.isfinite(year) and 0 <= int(year) <= 99:
            year = 1900 + int(year)
        return _make_time(year, month, *rest)

    def _parts(self) -> tuple[int, int, int, int, int, int, int, int]:
        if math.isnan(self._time):
            return (0,) * 8  # type: ignore[return-value]
        ms = int(self._time)
        days, in_day = divmod(ms, _DAY_MS)
        year, month, day = _civil_from_days(days)
        weekday = (days + 4) % 7  # 1970-01-01 was a Thursday
        return (year, month - 1, day, in_day // 3_600_000, in_day // 60_000 % 60,
                in_day // 1000 % 60, in_day % 1000, weekday)

    def _get(self, index: int) -> float:
        return math.nan if math.isnan(self._time) else self._parts()[index]

    def getTime(self) -> float:  # noqa: N802
        return self._time if math.isnan(self._time) else int(self._time)

    valueOf = getTime

    def getFullYear(self) -> float: return self._get(0)  # noqa: E704, N802
    def getMonth(self) -> float: return self._get(1)  # noqa: E704, N802
    def getDate(self) -> float: return self._get(2)  # noqa: E704, N802
    def getHours(self) -> float: return self._get(3)  # noqa: E704, N802
    def getMinutes(self) -> float: return self._get(4)  # noqa: E704, N802
    def getSeconds(self) -> float: return self._get(5)  # noqa: E704, N802
    def getMilliseconds(self) -> float: return self._get(6)  # noqa: E704, N802
    def getDay(self) -> float: return self._get(7)  # noqa: E704, N802
    getUTCFullYear, getUTCMonth, getUTCDate = getFullYear, getMonth, getDate
    getUTCHours, getUTCMinutes, getUTCSeconds = getHours, getMinutes, getSeconds
    getUTCMilliseconds, getUTCDay = getMilliseconds, getDay

    def getTimezoneOffset(self) -> float:  # noqa: N802
        return math.nan if math.isnan(self._time) else 0

    def toISOString(self) -> str:  # noqa: N802
        if math.isnan(self._time):
            raise js_error("RangeError", "Invalid time value")
        year, month, day, hours, minutes, seconds, ms, _ = self._parts()
        year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+07d}"
        return (f"{year_text}-{month + 1:02d}-{day:02d}T{hours:02d}:{minutes:02d}:"
                f"{seconds:02d}.{ms:03d}Z")

    def toJSON(self, key: Any = None) -> Any:  # noqa: N802
        return jsnull if math.isnan(self._time) else self.toISOString()

    def toUTCString(self) -> str:  # noqa: N802
        if math.isnan(self._time):
            return "Invalid Date"
        year, month, day, hours, minutes, seconds, _, weekday = self._parts()
        return (f"{_WEEKDAYS[weekday]}, {day:02d} {_MONTHS[month]} {year:04d} "
                f"{hours:02d}:{minutes:02d}:{seconds:02d} GMT")

    toGMTString = toUTCString

    def toString(self) -> str:  # noqa: N802
        if math.isnan(self._time):
            return "Invalid Date"
        year, month, day, hours, minutes, seconds, _, weekday = self._parts()
        return (f"{_WEEKDAYS[weekday]} {_MONTHS[month]} {day:02d} {year:04d} "
                f"{hours:02d}:{minutes:02d}:{seconds:02d} GMT+0000 (Coordinated Universal Time)")

    def __str__(self) -> str:
        return self.toString()

    def __repr__(self) -> str:
        return f"js.Date({self.toString()})"


# --------------------------------------------------------------------------- URL

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|]")
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_PATH_SAFE = "".join(c for c in _PRINTABLE if c not in '"#<>?`{}')
_QUERY_SAFE = "".join(c for c in _PRINTABLE if c not in "\"#<>'")
_FRAGMENT_SAFE = "".join(c for c in _PRINTABLE if c not in '"<>`')


def _invalid_url(text: str) -> JsException:
    return js_error("TypeError", f"Invalid URL: {text!r}")


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (".", "%2e", "%2E"):
            if last:
                output.append("")
        elif segment.lower() in ("..", ".%2e", "%2e.", "%2e%2e"):
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output) if output != [""] else "/"


class URL(JsProxy):
    """The web's URL (WHATWG): ``URL.new(url, base)``; an invalid URL raises a JsException
    named TypeError. Parts may be set (``url.pathname = "/x"``); ``searchParams`` is live."""

    __slots__ = ("_scheme", "_username", "_password", "_hostname", "_port", "_path",
                 "_query", "_fragment", "_authority", "_params")

    def __init__(self, url: Any, base: Any = None) -> None:
        text = _to_string(url) if not isinstance(url, URL) else url.href
        if base is not None and base is not jsnull:
            base_href = base.href if isinstance(base, URL) else URL(_to_string(base)).href
            text = urllib.parse.urljoin(base_href, text.strip())
        self._params: URLSearchParams | None = None
        self._parse(text)

    def _parse(self, text: str) -> None:
        cleaned = re.sub(r"[\t\n\r]", "", text.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n"
                                                     "\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14"
                                                     "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e"
                                                     "\x1f "))
        scheme, colon, rest = cleaned.partition(":")
        if not colon or not _SCHEME.match(scheme):
            raise _invalid_url(text)
        scheme = scheme.lower()
        special = scheme in _DEFAULT_PORTS
        if special:
            rest = rest.replace("\\", "/")
        try:
            parts = urllib.parse.urlsplit(f"{scheme}:{rest}", allow_fragments=True)
            port = parts.port
        except ValueError:
            raise _invalid_url(text) from None
        self._scheme = scheme
        self._authority = bool(parts.netloc) or (special and rest.startswith("//"))
        hostname = parts.hostname or ""
        if special and scheme != "file" and not hostname:
            raise _invalid_url(text)
        if hostname:
            hostname = urllib.parse.unquote(hostname)
            if not hostname.isascii():
                try:
                    hostname = hostname.encode("idna").decode("ascii")
                except UnicodeError:
                    raise _invalid_url(text) from None
            ipv6 = ":" in hostname
            if not ipv6 and _FORBIDDEN_HOST.search(hostname):
                raise _invalid_url(text)
            hostname = f"[{hostname}]" if ipv6 else hostname.lower()
        self._hostname = hostname
        self._username = parts.username or ""
        self._password = parts.password or ""
        self._port = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else str(port)
        path = parts.path
        if self._authority or special:
            path = _remove_dot_segments(path) if path else ("/" if special else "")
            path = urllib.parse.quote(path, safe=_PATH_SAFE)
        self._path = path
        self._query = urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
        self._fragment = urllib.parse.quote(parts.fragment, safe=_FRAGMENT_SAFE)
        if self._params is not None:
            self._params._replace(self._query)

    @classmethod
    def new(cls, url: Any, base: Any = None) -> "URL":
        return cls(url, base)

    @staticmethod
    def canParse(url: Any, base: Any = None) -> bool:  # noqa: N802
        try:
            URL(url, base)
        except JsException:
            return False
        return True

    @staticmethod
    def parse(url: Any, base: Any = None) -> Any:
        try:
            return URL(url, base)
        except JsException:
            return jsnull

    # Getters.
    @property
    def href(self) -> str:
        text = self._scheme + ":"
        if self._authority:
            userinfo = self._username + (":" + self._password if self._password else "")
            text += "//" + (userinfo + "@" if userinfo else "") + self.host
        text += self._path
        if self._query:
            text += "?" + self._query
        if self._fragment:
            text += "#" + self._fragment
        return text

    @href.setter
    def href(self, value: Any) -> None:
        self._parse(_to_string(value))

    @property
    def protocol(self) -> str:
        return self._scheme + ":"

    @protocol.setter
    def protocol(self, value: Any) -> None:
        scheme = _to_string(value).rstrip(":").lower()
        if _SCHEME.match(scheme) and (scheme in _DEFAULT_PORTS) == (self._scheme in _DEFAULT_PORTS):
            self._scheme = scheme
            if self._port and int(self._port) == _DEFAULT_PORTS.get(scheme):
                self._port = ""

    @property
    def username(self) -> str:
        return self._username

    @username.setter
    def username(self, value: Any) -> None:
        self._username = urllib.parse.quote(_to_string(value), safe="")

    @property
    def password(self) -> str:
        return self._password

    @password.setter
    def password(self, value: Any) -> None:
        self._password = urllib.parse.quote(_to_string(value), safe="")

    @property
    def host(self) -> str:
        return self._hostname + (":" + self._port if self._port else "")

    @host.setter
    def host(self, value: Any) -> None:
        probe = URL(f"{self._scheme}://{_to_string(value)}/")
        self._hostname, self._port = probe._hostname, probe._port

    @property
    def hostname(self) -> str:
        return self._hostname

    @hostname.setter
    def hostname(self, value: Any) -> None:
        probe = URL(f"{self._scheme}://{_to_string(value)}/")
        self._hostname = probe._hostname

    @property
    def port(self) -> str:
        return self._port

    @port.setter
    def port(self, value: Any) -> None:
        text = _to_string(value)
        digits = re.match(r"^\d*", text).group()  # type: ignore[union-attr]
        if text == "":
            self._port = ""
        elif digits and int(digits) <= 65535:
            self._port = "" if int(digits) == _DEFAULT_PORTS.get(self._scheme) \
                else str(int(digits))

    @property
    def pathname(self) -> str:
        return self._path

    @pathname.setter
    def pathname(self, value: Any) -> None:
        path = _to_string(value)
        if self._scheme in _DEFAULT_PORTS or self._authority:
            path = _remove_dot_segments(path if path.startswith("/") else "/" + path)
        self._path = urllib.parse.quote(path, safe=_PATH_SAFE)

    @property
    def search(self) -> str:
        return "?" + self._query if self._query else ""

    @search.setter
    def search(self, value: Any) -> None:
        text = _to_string(value)
        self._query = urllib.parse.quote(text[1:] if text.startswith("?") else text,
                                         safe=_QUERY_SAFE)
        if self._params is not None:
            self._params._replace(self._query)

    @property
    def hash(self) -> str:
        return "#" + self._fragment if self._fragment else ""

    @hash.setter
    def hash(self, value: Any) -> None:
        text = _to_string(value)
        self._fragment = urllib.parse.quote(text[1:] if text.startswith("#") else text,
                                            safe=_FRAGMENT_SAFE)

    @property
    def origin(self) -> str:
        if self._scheme in _DEFAULT_PORTS and self._scheme != "file":
            return f"{self._scheme}://{self.host}"
        return "null"

    @property
    def searchParams(self) -> "URLSearchParams":  # noqa: N802
        if self._params is None:
            self._params = URLSearchParams(self._query)
            self._params._url = self
        return self._params

    def toString(self) -> str:  # noqa: N802
        return self.href

    def toJSON(self, key: Any = None) -> str:  # noqa: N802
        return self.href

    def __str__(self) -> str:
        return self.href

    def __repr__(self) -> str:
        return f"js.URL({self.href!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and other.href == self.href

    __hash__ = None  # type: ignore[assignment]


class URLSearchParams(JsProxy):
    """The web's URLSearchParams: ``URLSearchParams.new("a=1&b=2")`` (or an object, a dict,
    pairs); ``get`` answers None for a missing name (JavaScript's null)."""

    __slots__ = ("_pairs", "_url")

    def __init__(self, init: Any = None) -> None:
        self._url: URL | None = None
        self._pairs: list[tuple[str, str]] = []
        if init is None or init is jsnull:
            return
        if isinstance(init, str):
            self._replace(init[1:] if init.startswith("?") else init)
        elif isinstance(init, URLSearchParams):
            self._pairs = list(init._pairs)
        elif isinstance(init, JsObject):
            self._pairs = [(k, _to_string(v)) for k, v in _own_properties(init)]
        elif isinstance(init, dict):
            self._pairs = [(_to_string(k), _to_string(v)) for k, v in init.items()]
        else:
            for pair in init:
                if len(pair) != 2:
                    raise js_error("TypeError", "URLSearchParams: each pair must have "
                                   "exactly two items")
                self._pairs.append((_to_string(pair[0]), _to_string(pair[1])))

    @classmethod
    def new(cls, init: Any = None) -> "URLSearchParams":
        return cls(init)

    def _replace(self, query: str) -> None:
        self._pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)

    def _update(self) -> None:
        if self._url is not None:
            self._url._query = self.toString()

    @property
    def size(self) -> int:
        return len(self._pairs)

    def get(self, name: Any) -> str | None:
        key = _to_string(name)
        return next((v for k, v in self._pairs if k == key), None)

    def getAll(self, name: Any) -> JsArray:  # noqa: N802
        key = _to_string(name)
        return JsArray(v for k, v in self._pairs if k == key)

    def has(self, name: Any, value: Any = None) -> bool:
        key = _to_string(name)
        wanted = None if value is None else _to_string(value)
        return any(k == key and (wanted is None or v == wanted) for k, v in self._pairs)

    def append(self, name: Any, value: Any) -> None:
        self._pairs.append((_to_string(name), _to_string(value)))
        self._update()

    def set(self, name: Any, value: Any) -> None:
        key, text = _to_string(name), _to_string(value)
        for index, (k, _) in enumerate(self._pairs):
            if k == key:
                self._pairs[index] = (key, text)
                self._pairs[index + 1:] = [p for p in self._pairs[index + 1:] if p[0] != key]
                break
        else:
            self._pairs.append((key, text))
        self._update()

    def delete(self, name: Any, value: Any = None) -> None:
        key = _to_string(name)
        wanted = None if value is None else _to_string(value)
        self._pairs = [(k, v) for k, v in self._pairs
                       if not (k == key and (wanted is None or v == wanted))]
        self._update()

    def sort(self) -> None:
        self._pairs.sort(key=lambda pair: pair[0].encode("utf-16-be", "surrogatepass"))
        self._update()

    def entries(self) -> JsArray:
        return JsArray(JsArray(pair) for pair in self._pairs)

    def keys(self) -> JsArray:
        return JsArray(k for k, _ in self._pairs)

    def values(self) -> JsArray:
        return JsArray(v for _, v in self._pairs)

    def forEach(self, callback: Callable[..., Any]) -> None:  # noqa: N802
        for key, value in list(self._pairs):
            callback(value, key, self)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries())

    def toString(self) -> str:  # noqa: N802
        return urllib.parse.urlencode(self._pairs, quote_via=urllib.parse.quote_plus, safe="*")

    def __str__(self) -> str:
        return self.toString()

    def __repr__(self) -> str:
        return f"js.URLSearchParams({self.toString()!r})"


# --------------------------------------------------------------------------- the module

_GLOBALS = {
    "TypeError": TypeError_,
    "SyntaxError": SyntaxError_,
}

__all__ = ["Date", "Error", "Headers", "JSON", "Object", "RangeError", "Response", "URL",
           "URLSearchParams", "console", "fetch"]


def __getattr__(name: str) -> Any:
    value = _GLOBALS.get(name)
    if value is not None:
        return value
    raise missing_member("js", name, _NO_ENGINE)
