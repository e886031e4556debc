"""HTTP headers: a case-insensitive, multi-valued, ordered collection."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Union

# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

HeadersInit = Union["Headers", Mapping[str, object], Iterable[tuple[str, object]], None]


def _name(name: str | bytes) -> str:
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    if not isinstance(name, str):
        raise TypeError(f"header name must be str, not {type(name).__name__}")
    if not _TOKEN.match(name):
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


class Headers:
    """Case-insensitive, multi-valued HTTP headers that keep their order.

    Names are stored lowercased. Like ``email.message.Message`` (and the
    headers of Cloudflare's Python Workers), ``keys()``, ``values()``,
    ``items()``, iteration and ``len()`` work on entries, so a header sent
    twice appears twice. ``get()`` and ``[]`` join repeated values with ", ";
    use ``get_all()`` for the separate values (``set-cookie``).
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

    # Web Headers API.
    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (repeated values joined by ", "), or ``default``."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; empty if absent."""
        key = _name(name)
        return [v for n, v in self._entries if n == key]

    getlist = get_all

    def has(self, name: str) -> bool:
        key = _name(name)
        return any(n == key for n, _ in self._entries)

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
        """Add a value for ``name``, keeping the ones already there."""
        self._entries.append((_name(name), _value(value)))

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
            return self.has(name)
        except ValueError:
            return False

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: object) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if not self.has(name):
            raise KeyError(name)
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
