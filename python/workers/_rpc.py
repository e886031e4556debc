"""RPC between workers: the value encoding, and how a callee finds and runs a method.

Used by service bindings (``await env.OTHER.method(args)``, workers._service) and meant to
carry Durable Object stub calls as well: nothing here knows where the call came from.

THE ENCODING (version 1), structured-clone-like and bounded. A message is ``b"TR\\x01"``
then one value; a value is a tag byte and its payload (integers little-endian):

    n            None                    f / t        False / True
    i  i64       an int in 64 bits       I  u16 n, n  a larger int: signed big-endian bytes
    d  f64       a float                 s  u32 n, n  a str, UTF-8
    b  u32 n, n  bytes (bytearray, memoryview too)
    l  u32 n, n values                   a list (a tuple too)
    o  u32 n, n (key, value) pairs       a dict; keys are str, bytes, bool, None, 64-bit
                                         ints or tuples of these (a tuple key or set item
                                         travels as a list, arrives as a tuple)
    S  u32 n, n values                   a set (frozenset too)
    T  i64 us, u8 aware                  a datetime: microseconds since the epoch; aware ones
                                         are sent in UTC and arrive in UTC, naive ones naive
    D  i32 days                          a date (days since 1970-01-01)

Anything else (a class instance, a function, a Request) is refused with a TypeError naming
it, as Cloudflare refuses what structured clone cannot copy. Bounds, checked both ways (the
bytes come from another worker): at most MESSAGE_MAX bytes, DEPTH_MAX levels of nesting,
BIGINT_MAX bytes for a large int, ITEMS_MAX values in all (a list, dict or set counts
CONTAINER_COST of them: an empty set takes 5 bytes to send and 216 to hold); a count larger
than the bytes left, a bad tag, truncated or trailing bytes, invalid UTF-8 or a dict key or set
item of another type (a float, a large int: keys whose hashes a sender could make collide) is a
``RpcDecodeError``. A dict key or set item of another type is a TypeError when sent.

A call's arguments are the message of ``[args, kwargs]``; its answer is the message of the
result (header ``thaw-rpc: result``) or of ``{"type", "message"}`` (``thaw-rpc: error``),
which the caller raises as the same builtin exception type when there is one (ValueError,
KeyError, ...) and as :class:`RpcError` otherwise; the message is the callee's.
"""

from __future__ import annotations

import builtins
import datetime
import inspect
import struct
from typing import Any

MAGIC = b"TR\x01"
MESSAGE_MAX = 32 << 20  # the host's SERVICE_BODY_MAX
DEPTH_MAX = 64
BIGINT_MAX = 1024
ITEMS_MAX = 1_000_000
CONTAINER_COST = 8

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_EPOCH_NAIVE = datetime.datetime(1970, 1, 1)
_EPOCH_DATE = datetime.date(1970, 1, 1)

# Handler methods of an entrypoint, and the base class's own names: never RPC methods.
RESERVED = frozenset({"fetch", "scheduled", "queue", "tail", "trace", "test", "email",
                      "alarm", "connect", "dup", "ctx", "env"})


class RpcError(Exception):
    """An exception an RPC method raised in the other worker whose type has no builtin
    equivalent here: ``remote_type`` is its type name, the message is the callee's."""

    def __init__(self, remote_type: str, message: str) -> None:
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
        self.remote_type = remote_type
        self.remote_message = message


class RpcDecodeError(ValueError):
    """Bytes that are not a valid RPC message (from a broken or hostile peer)."""


def _key_ok(value: Any) -> bool:
    """May value be a dict key or set item? Types whose hash a sender cannot steer into
    collisions cheaply (not large ints, floats or datetimes), and tuples of them."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return True
    if isinstance(value, int):
        return -(1 << 63) <= value < (1 << 63)
    if isinstance(value, tuple):
        return all(_key_ok(item) for item in value)
    return False


def _check_key(value: Any, what: str) -> None:
    if not _key_ok(value):
        raise TypeError(f"a {what} of type {type(value).__name__} cannot be passed over RPC "
                        "(str, bytes, bool, None, 64-bit ints and tuples of these can)")


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > DEPTH_MAX:
        raise TypeError(f"an RPC value is nested more than {DEPTH_MAX} levels deep")
    if value is None:
        out += b"n"
    elif value is True:
        out += b"t"
    elif value is False:
        out += b"f"
    elif isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            out += b"i" + struct.pack("<q", value)
        else:
            size = (value.bit_length() + 8) // 8
            if size > BIGINT_MAX:
                raise TypeError(f"an int of {value.bit_length()} bits is too large for RPC")
            out += b"I" + struct.pack("<H", size) + value.to_bytes(size, "big", signed=True)
    elif isinstance(value, float):
        out += b"d" + struct.pack("<d", value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        out += b"s" + struct.pack("<I", len(data)) + data
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        out += b"b" + struct.pack("<I", len(data)) + data
    elif isinstance(value, (list, tuple)):
        out += b"l" + struct.pack("<I", len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out += b"o" + struct.pack("<I", len(value))
        for key, item in value.items():
            _check_key(key, "dict key")
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif isinstance(value, (set, frozenset)):
        out += b"S" + struct.pack("<I", len(value))
        for item in value:
            _check_key(item, "set item")
            _encode(item, out, depth + 1)
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            delta = value - _EPOCH
            aware = 1
        else:
            delta = value - _EPOCH_NAIVE
            aware = 0
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        out += b"T" + struct.pack("<qB", micros, aware)
    elif isinstance(value, datetime.date):
        out += b"D" + struct.pack("<i", (value - _EPOCH_DATE).days)
    else:
        to_py = getattr(value, "to_py", None)  # a JS proxy of the SDK's pyodide shim
        if callable(to_py) and depth < DEPTH_MAX:
            _encode(to_py(), out, depth + 1)
            return
        raise TypeError(f"a value of type {type(value).__name__} cannot be passed over RPC "
                        "(JSON types, bytes, sets, dates and datetimes can)")
    if len(out) > MESSAGE_MAX:
        raise TypeError(f"an RPC message is limited to {MESSAGE_MAX} bytes")


def encode(value: Any) -> bytes:
    """``value`` as an RPC message; TypeError for what cannot be sent."""
    out = bytearray(MAGIC)
    _encode(value, out, 0)
    return bytes(out)


def _frozen(value: Any) -> Any:
    """A dict key or set item as sent: a tuple arrives as a list, and becomes a tuple again."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


# Tuple keys hash without randomisation (CPython's tuple hash is invertible): a sender can
# make any number collide, and each insert then costs as many comparisons as there are keys.
# A message may hold this many of them.
TUPLE_KEYS_MAX = 4096


class _Reader:
    __slots__ = ("data", "pos", "budget", "tuple_keys")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.budget = ITEMS_MAX
        self.tuple_keys = 0

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise RpcDecodeError(f"an RPC message holds more than {ITEMS_MAX} values")

    def key(self, depth: int, what: str) -> Any:
        key = _frozen(self.value(depth))
        if not _key_ok(key):
            raise RpcDecodeError(f"an RPC {what} of type {type(key).__name__}")
        if isinstance(key, tuple):
            self.tuple_keys += 1
            if self.tuple_keys > TUPLE_KEYS_MAX:
                raise RpcDecodeError(f"an RPC message holds more than {TUPLE_KEYS_MAX} tuple "
                                     "keys and set items")
        return key

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise RpcDecodeError("an RPC message ends in the middle of a value")
        piece = self.data[self.pos:self.pos + n]
        self.pos += n
        return piece

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        n: int = self.unpack("<I")
        if n > len(self.data) - self.pos:  # every item takes a byte at least
            raise RpcDecodeError("an RPC message counts more items than it holds")
        return n

    def value(self, depth: int) -> Any:
        if depth > DEPTH_MAX:
            raise RpcDecodeError(f"an RPC value is nested more than {DEPTH_MAX} levels deep")
        tag = self.take(1)
        self.spend(CONTAINER_COST if tag in (b"l", b"o", b"S") else 1)
        if tag == b"n":
            return None
        if tag == b"t":
            return True
        if tag == b"f":
            return False
        if tag == b"i":
            return self.unpack("<q")
        if tag == b"I":
            size = self.unpack("<H")
            if size == 0 or size > BIGINT_MAX:
                raise RpcDecodeError("an RPC int of a bad size")
            return int.from_bytes(self.take(size), "big", signed=True)
        if tag == b"d":
            return self.unpack("<d")
        if tag == b"s":
            try:
                return self.take(self.unpack("<I")).decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise RpcDecodeError("an RPC str is not UTF-8") from None
        if tag == b"b":
            return self.take(self.unpack("<I"))
        if tag == b"l":
            return [self.value(depth + 1) for _ in range(self.count())]
        if tag == b"o":
            result: dict[Any, Any] = {}
            for _ in range(self.count()):
                key = self.key(depth + 1, "dict key")
                result[key] = self.value(depth + 1)
            return result
        if tag == b"S":
            return {self.key(depth + 1, "set item") for _ in range(self.count())}
        if tag == b"T":
            micros = self.unpack("<q")
            aware = self.unpack("<B")
            try:
                base = _EPOCH if aware == 1 else _EPOCH_NAIVE
                if aware > 1:
                    raise OverflowError
                return base + datetime.timedelta(microseconds=micros)
            except OverflowError:
                raise RpcDecodeError("an RPC datetime out of range") from None
        if tag == b"D":
            try:
                return _EPOCH_DATE + datetime.timedelta(days=self.unpack("<i"))
            except OverflowError:
                raise RpcDecodeError("an RPC date out of range") from None
        raise RpcDecodeError(f"an RPC value of unknown type {tag!r}")


def decode(data: bytes) -> Any:
    """The value of an RPC message; RpcDecodeError for anything but a valid one."""
    if len(data) > MESSAGE_MAX:
        raise RpcDecodeError(f"an RPC message is limited to {MESSAGE_MAX} bytes")
    if not data.startswith(MAGIC):
        raise RpcDecodeError("not an RPC message (or one of another version)")
    reader = _Reader(bytes(data))
    reader.pos = len(MAGIC)
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise RpcDecodeError("an RPC message has bytes after its value")
    return value


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return encode([list(args), kwargs])


def decode_call(data: bytes) -> tuple[list[Any], dict[str, Any]]:
    value = decode(data)
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], list)
            or not isinstance(value[1], dict) or not all(isinstance(k, str) for k in value[1])):
        raise RpcDecodeError("an RPC call is [args, kwargs]")
    return value[0], value[1]


def encode_error(error: BaseException) -> bytes:
    if isinstance(error, RpcError):  # from a worker further down a chain: passed on as it was
        return encode({"type": error.remote_type, "message": error.remote_message})
    args = error.args
    message = args[0] if len(args) == 1 and isinstance(args[0], str) else str(error)
    return encode({"type": type(error).__name__, "message": message})


def error_from(data: bytes) -> Exception:
    """The exception to raise in the caller for an encoded error."""
    try:
        value = decode(data)
        name, message = str(value["type"]), str(value["message"])
    except (RpcDecodeError, KeyError, TypeError):
        return RpcError("RpcError", "the other worker answered with a malformed error")
    cls = getattr(builtins, name, None)
    if (isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins"
            and not issubclass(cls, (OSError, UnicodeError))):  # their constructors differ
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - any constructor that refuses a message
            pass
    return RpcError(name, message)


def method_of(target: Any, name: str) -> Any:
    """The bound public method ``name`` of an entrypoint instance, for an RPC call; a
    TypeError as Cloudflare words it when there is none (or it is private or a handler)."""
    missing = TypeError(f'The RPC receiver does not implement the method "{name}".')
    if not name.isidentifier() or name.startswith("_") or name in RESERVED:
        raise missing
    try:
        static = inspect.getattr_static(type(target), name)
    except AttributeError:
        raise missing from None
    if isinstance(static, property) or not callable(getattr(target, name, None)):
        raise missing
    return getattr(target, name)
