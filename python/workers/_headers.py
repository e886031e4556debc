"""HTTP headers: a case-insensitive, multi-valued, ordered collection."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Union

# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

HeadersInit = Union["Headers", Mapping[str, object], Iterable[tuple[str, object]], None]


def _name(name: str | bytes) -> str:
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    if not isinstance(name, str):
        raise TypeError(f"header name must be str, not {type(name).__name__}")
    if not _TOKEN.fullmatch(name):  # (match with $ would take a trailing newline)
        raise ValueError(f"invalid header name: {name!r}")
    return name.lower()


def _value(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    elif not isinstance(value, str):
        value = str(value)
    value = value.strip(" \t")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"invalid header value (contains CR, LF or NUL): {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header value {value!r} has characters outside Latin-1; "
            "percent-encode or RFC 8187-encode it"
        ) from None
    return value


SET_COOKIE = "set-cookie"


class Headers:
    """Case-insensitive HTTP headers that keep their order.

    Reads behave as the ``http.client.HTTPMessage`` that Cloudflare's Python
    Workers hand out as ``request.headers``: a header sent more than once is
    folded into one value joined by ", " (as the Fetch standard combines
    them), except ``set-cookie``, whose values stay separate entries.
    ``headers[name]`` and ``get(name)`` give the (first) value or None when
    the name is absent; ``get_all(name)`` gives every value as a list, or
    None when absent. ``keys()``, ``values()``, ``items()``, iteration and
    ``len()`` work on entries. Names are stored lowercased.

    Beyond ``HTTPMessage``, the web ``Headers`` methods work too: ``set``
    (replace), ``append``, ``delete``, ``has``. ``headers[name] = value``
    replaces (``HTTPMessage`` would add a second entry).
    """

    __slots__ = ("_entries",)

    def __init__(self, init: HeadersInit = None) -> None:
        self._entries: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._entries = list(init._entries)
            return
        pairs = init.items() if isinstance(init, Mapping) else init
        for pair in pairs:
            try:
                name, value = pair
            except (TypeError, ValueError):
                raise TypeError(
                    f"headers must be a mapping or (name, value) pairs, got item {pair!r}"
                ) from None
            self.append(name, value)

    @classmethod
    def _of(cls, entries: list[tuple[str, str]]) -> Headers:
        """Headers holding ``entries`` as they are: (lowercased name, value) pairs already
        checked and folded as ``append`` does (the runtime's request heads, made in C)."""
        headers = cls.__new__(cls)
        headers._entries = entries
        return headers

    # Reads, as http.client.HTTPMessage.
    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (the first ``set-cookie``), or ``default``."""
        key = _name(name)
        for n, v in self._entries:
            if n == key:
                return v
        return default

    def get_all(self, name: str, failobj: object = None) -> list[str] | object:
        """Every value of ``name`` in order, or ``failobj`` (None) when absent."""
        key = _name(name)
        values = [v for n, v in self._entries if n == key]
        return values if values else failobj

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``; empty when absent."""
        key = _name(name)
        return [v for n, v in self._entries if n == key]

    def get_set_cookie(self) -> list[str]:
        """Every ``set-cookie`` value (the web ``getSetCookie()``)."""
        return self.getlist(SET_COOKIE)

    getSetCookie = get_set_cookie

    def has(self, name: str) -> bool:
        key = _name(name)
        return any(n == key for n, _ in self._entries)

    # Writes, as the web Headers.
    def set(self, name: str, value: object) -> None:
        """Replace every value of ``name`` with ``value`` (keeping its position)."""
        key, value = _name(name), _value(value)
        for i, (n, _) in enumerate(self._entries):
            if n == key:
                self._entries[i] = (key, value)
                self._entries[i + 1 :] = [e for e in self._entries[i + 1 :] if e[0] != key]
                return
        self._entries.append((key, value))

    def append(self, name: str, value: object) -> None:
        """Add a value for ``name``: joined to the one there by ", " (``set-cookie``: a new entry)."""
        key, value = _name(name), _value(value)
        if key != SET_COOKIE:
            for i, (n, v) in enumerate(self._entries):
                if n == key:
                    self._entries[i] = (key, f"{v}, {value}" if v else value)
                    return
        self._entries.append((key, value))

    add_header = append

    def delete(self, name: str) -> None:
        key = _name(name)
        self._entries = [e for e in self._entries if e[0] != key]

    def setdefault(self, name: str, value: object) -> str:
        current = self.get(name)
        if current is None:
            self.append(name, value)
            return _value(value)
        return current

    def copy(self) -> Headers:
        return Headers(self)

    # Mapping-like views over the entries.
    def items(self) -> list[tuple[str, str]]:
        return list(self._entries)

    def keys(self) -> list[str]:
        return [n for n, _ in self._entries]

    def values(self) -> list[str]:
        return [v for _, v in self._entries]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, (str, bytes)):
            return False
        try:
            return self.has(name if isinstance(name, str) else name.decode("latin-1"))
        except ValueError:
            return False

    def __getitem__(self, name: str) -> str | None:
        """The value of ``name``, or None when absent (as ``HTTPMessage``)."""
        return self.get(name)

    def __setitem__(self, name: str, value: object) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        """Remove every value of ``name``; nothing happens when it is absent."""
        self.delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._entries == other._entries
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._entries!r})"
