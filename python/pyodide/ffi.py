"""``pyodide.ffi`` for thaw: the JavaScript-interop names Cloudflare Python workers use.

There is no JavaScript engine in thaw. "JavaScript values" here are plain Python
objects that behave the way Pyodide's proxies of JavaScript values behave for
the code Cloudflare's docs show:

* ``JsProxy``: the base class of every JavaScript-style value (``js.Object``
  instances, ``js.Response``, ``js.Headers``, ``js.URL``, arrays and maps made by
  ``to_js``). ``to_py()`` converts one (deeply) to plain Python.
* ``JsObject`` (a plain JavaScript object): properties by attribute and by
  subscript (``obj.name``, ``obj["content-type"]``); a missing one raises
  AttributeError / KeyError, as in Pyodide.
* ``JsArray`` (a ``list``), ``JsMap`` (a ``dict``: JavaScript's ``Map``, what
  ``to_js`` makes of a dict unless given ``dict_converter``).
* ``jsnull``: JavaScript's ``null``; ``None`` is ``undefined``. ``JSON.parse``
  gives ``jsnull`` for ``null``; ``to_py`` turns it into ``None``.
* ``JsException``: a JavaScript error (``js.Error.new(msg)``, a failed
  ``JSON.parse``...), raisable and catchable.
* ``run_sync``: see workers/_sync.py for how it waits without deadlocking.

Anything else Pyodide's ``pyodide.ffi`` has raises a NotImplementedError naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from workers._sync import run_sync as _run_sync

IN_BROWSER = False


# --------------------------------------------------------------------------- missing names


class JsNotAvailableError(AttributeError, NotImplementedError):
    """A JavaScript global or FFI name that thaw does not provide (``js.WebSocketPair``).

    An AttributeError, so ``hasattr(js, name)`` is False, and a NotImplementedError."""


class JsImportNotAvailableError(NotImplementedError):
    """The same, raised for ``from js import NAME``: Python's import statement would replace
    an AttributeError by a bare "cannot import name", losing the explanation."""


_IMPORT_FROM = 109  # dis.opmap["IMPORT_FROM"] in CPython 3.11 (tested)


def missing_member(module: str, name: str, why: str) -> BaseException:
    """The error for ``module.name`` that does not exist; raise it from a module ``__getattr__``."""
    if name.startswith("_"):
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    message = f"{module}.{name} is not available in thaw ({why}); see docs/cloudflare-compat.md"
    try:
        frame = sys._getframe(2)  # the code that looked the name up
        code = frame.f_code.co_code
        importing = 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == _IMPORT_FROM
    except (ValueError, AttributeError):
        importing = False
    error: BaseException
    if importing:
        error = JsImportNotAvailableError(message)
    else:
        error = JsNotAvailableError(message, name=name)
    return error


# --------------------------------------------------------------------------- value types


class JsProxy:
    """Base class of thaw's JavaScript-style values."""

    __slots__ = ()

    @property
    def typeof(self) -> str:
        """What JavaScript's ``typeof`` would say."""
        return "function" if callable(self) else "object"

    def to_py(self, *, depth: int = -1, default_converter: Callable[..., Any] | None = None) -> Any:
        """This value converted to plain Python (dicts, lists, None for null)."""
        return to_py(self, depth=depth, default_converter=default_converter)

    def object_entries(self) -> JsArray:
        return JsArray(JsArray(pair) for pair in _own_properties(self))

    def object_keys(self) -> JsArray:
        return JsArray(key for key, _ in _own_properties(self))

    def object_values(self) -> JsArray:
        return JsArray(value for _, value in _own_properties(self))

    def as_object_map(self) -> "JsObjectMap":
        """A MutableMapping view of this object's own properties."""
        if not isinstance(self, JsObject):
            raise TypeError(f"{type(self).__name__} has no properties to map")
        return JsObjectMap(self)


def _own_properties(value: Any) -> list[tuple[str, Any]]:
    """The (key, value) pairs ``Object.entries`` would give for ``value``."""
    if isinstance(value, JsObject):
        return list(object.__getattribute__(value, "_props").items())
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()] if not isinstance(value, JsMap) else []
    if isinstance(value, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(value)]
    if isinstance(value, str):
        return [(str(i), c) for i, c in enumerate(value)]
    return []


class JsNull(JsProxy):
    """The type of ``jsnull``, JavaScript's ``null`` (``None`` stands for ``undefined``)."""

    __slots__ = ()
    _instance: "JsNull | None" = None

    def __new__(cls) -> "JsNull":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "jsnull"

    def __reduce__(self) -> str:
        return "jsnull"

    @property
    def typeof(self) -> str:
        return "object"


jsnull = JsNull()


class JsObject(JsProxy):
    """A plain JavaScript object: properties by attribute or subscript, in insertion order."""

    __slots__ = ("_props",)

    def __init__(self, properties: Iterable[tuple[str, Any]] | dict[str, Any] | None = None,
                 **named: Any) -> None:
        props: dict[str, Any] = {}
        object.__setattr__(self, "_props", props)
        if properties is not None:
            pairs = properties.items() if isinstance(properties, dict) else properties
            for key, value in pairs:
                props[_property_key(key)] = value
        for key, value in named.items():
            props[key] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_props")[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_props")[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del object.__getattribute__(self, "_props")[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        return object.__getattribute__(self, "_props")[_property_key(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        object.__getattribute__(self, "_props")[_property_key(key)] = value

    def __delitem__(self, key: Any) -> None:
        del object.__getattribute__(self, "_props")[_property_key(key)]

    def __contains__(self, key: Any) -> bool:
        return _property_key(key) in object.__getattribute__(self, "_props")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(object.__getattribute__(self, "_props")))

    def __repr__(self) -> str:
        return f"JsObject({object.__getattribute__(self, '_props')!r})"


def _property_key(key: Any) -> str:
    """A property name as JavaScript makes it: numbers and booleans become strings."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        from js import _number_text  # one formatting of numbers for keys and JSON

        return _number_text(key)
    if key is None:
        return "undefined"
    if key is jsnull:
        return "null"
    return str(key)


class JsObjectMap(MutableMapping):
    """``obj.as_object_map()``: a JsObject's properties as a Python mapping."""

    def __init__(self, target: JsObject) -> None:
        self._props: dict[str, Any] = object.__getattribute__(target, "_props")

    def __getitem__(self, key: str) -> Any:
        return self._props[_property_key(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        self._props[_property_key(key)] = value

    def __delitem__(self, key: str) -> None:
        del self._props[_property_key(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._props))

    def __len__(self) -> int:
        return len(self._props)


class JsArray(list, JsProxy):  # type: ignore[misc]
    """A JavaScript array: a Python list with ``length`` and a few Array methods."""

    __slots__ = ()

    @property
    def length(self) -> int:
        return len(self)

    def push(self, *items: Any) -> int:
        self.extend(items)
        return len(self)

    def includes(self, item: Any) -> bool:
        return item in self

    def indexOf(self, item: Any) -> int:  # noqa: N802 (JavaScript's name)
        try:
            return self.index(item)
        except ValueError:
            return -1

    def join(self, separator: str = ",") -> str:
        from js import _to_string

        return separator.join("" if v is None or v is jsnull else _to_string(v) for v in self)

    def __repr__(self) -> str:
        return f"JsArray({list.__repr__(self)})"


class JsMap(dict, JsProxy):  # type: ignore[misc]
    """A JavaScript ``Map`` (what ``to_js`` makes of a dict by default): a Python dict with
    ``size``, ``has``, ``set`` and ``delete``."""

    __slots__ = ()

    @property
    def size(self) -> int:
        return len(self)

    def has(self, key: Any) -> bool:
        return key in self

    def set(self, key: Any, value: Any) -> "JsMap":
        self[key] = value
        return self

    def delete(self, key: Any) -> bool:
        return self.pop(key, _ABSENT) is not _ABSENT

    def __repr__(self) -> str:
        return f"JsMap({dict.__repr__(self)})"


_ABSENT = object()


class JsException(JsProxy, Exception):
    """A JavaScript error (``name``, ``message``, ``stack``), raised and caught as a Python
    exception: ``js.Error.new(msg)``, ``JSON.parse`` of bad text, an invalid ``URL``."""

    def __init__(self, message: str = "", *, name: str = "Error") -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    @property
    def stack(self) -> str:
        return f"{self.name}: {self.message}"

    def toString(self) -> str:  # noqa: N802 (JavaScript's name)
        return f"{self.name}: {self.message}" if self.message else self.name

    def __str__(self) -> str:
        return self.toString()

    def __repr__(self) -> str:
        return f"JsException({self.name}: {self.message})"


def js_error(name: str, message: str) -> JsException:
    """A JsException as JavaScript's ``new <name>(message)`` would make it."""
    return JsException(message, name=name)


# --------------------------------------------------------------------------- proxies of Python


class JsDoubleProxy(JsProxy):
    """What ``create_proxy`` returns: a handle on a Python object that JavaScript code would
    keep. Calling it or reading its attributes reaches the object until ``destroy()``."""

    __slots__ = ("_target", "_once", "_destroyed", "__weakref__")

    def __init__(self, target: Any, once: bool = False) -> None:
        self._target = target
        self._once = once
        self._destroyed = False

    def _live(self) -> Any:
        if self._destroyed:
            if self._once:
                raise js_error("Error", "this function was made by create_once_callable and has "
                               "already been called (or destroyed); it can be called only once")
            raise js_error("Error", "this proxy has been destroyed (destroy() was called)")
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._live()
        if self._once:
            self.destroy()
        return target(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._live(), name)

    def unwrap(self) -> Any:
        """The Python object itself."""
        return self._live()

    def destroy(self) -> None:
        self._destroyed = True
        self._target = None

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else repr(self._target)
        return f"<JsDoubleProxy {state}>"


def create_proxy(obj: Any, *, capture_this: bool = False, roundtrip: bool = True) -> JsDoubleProxy:
    """A proxy of ``obj`` that lives until ``destroy()`` (Pyodide's ``create_proxy``)."""
    del capture_this, roundtrip  # meaningful only with a JavaScript engine
    return JsDoubleProxy(obj)


def create_once_callable(obj: Callable[..., Any], *, _may_syncify: bool = False) -> JsDoubleProxy:
    """A proxy of the callable ``obj`` that may be called once; it is destroyed by the call."""
    del _may_syncify
    if not callable(obj):
        raise TypeError(f"create_once_callable() needs a callable, not {type(obj).__name__}")
    return JsDoubleProxy(obj, once=True)


def destroy_proxies(proxies: Iterable[Any]) -> None:
    """Destroy every proxy in ``proxies``."""
    for proxy in proxies:
        destroy = getattr(proxy, "destroy", None)
        if destroy is not None:
            destroy()


# --------------------------------------------------------------------------- conversions


def to_js(obj: Any, *, depth: int = -1, pyproxies: Any = None, create_pyproxies: bool = True,
          dict_converter: Callable[[Iterable[JsArray]], Any] | None = None,
          default_converter: Callable[..., Any] | None = None,
          eager_converter: Callable[..., Any] | None = None) -> Any:
    """``obj`` as a JavaScript-style value, as Pyodide's ``to_js`` converts it.

    dict -> ``JsMap`` (JavaScript's Map), or ``dict_converter(entries)`` where entries are
    ``[key, value]`` arrays (``dict_converter=js.Object.fromEntries`` gives a plain object);
    list, tuple, set -> ``JsArray``; bytes-like -> ``bytes``; str, numbers, bool, None,
    ``jsnull`` and JsProxy values unchanged; anything else unchanged (a proxy of the Python
    object) unless ``default_converter(value, convert, cache_conversion)`` converts it.
    ``depth`` limits how deep containers are converted (-1: all the way).
    """
    del pyproxies, create_pyproxies
    cache: dict[int, Any] = {}
    in_progress: set[int] = set()

    def cache_conversion(source: Any, result: Any) -> None:
        cache[id(source)] = result

    def convert(value: Any, level: int) -> Any:
        if level == 0 or value is None or isinstance(value, (str, bool, int, float, JsProxy)):
            return value
        key = id(value)
        if key in cache:
            return cache[key]
        if eager_converter is not None:
            return eager_converter(value, lambda v: convert(v, level - 1), cache_conversion)
        if isinstance(value, dict):
            if key in in_progress:
                raise ValueError("to_js(): the dict contains itself; a dict_converter cannot "
                                 "convert a cycle")
            in_progress.add(key)
            try:
                if dict_converter is None:
                    result: Any = JsMap()
                    cache[key] = result
                    for k, v in value.items():
                        result[convert(k, level - 1)] = convert(v, level - 1)
                    return result
                entries = JsArray(JsArray((convert(k, level - 1), convert(v, level - 1)))
                                  for k, v in value.items())
                result = dict_converter(entries)
            finally:
                in_progress.discard(key)
            cache[key] = result
            return result
        if isinstance(value, (list, tuple, set, frozenset)):
            array = JsArray()
            cache[key] = array
            array.extend(convert(v, level - 1) for v in value)
            return array
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if default_converter is not None:
            return default_converter(value, lambda v: convert(v, level - 1), cache_conversion)
        return value

    return convert(obj, depth)


def to_py(obj: Any, *, depth: int = -1,
          default_converter: Callable[..., Any] | None = None) -> Any:
    """``obj`` as plain Python: JsObject and JsMap -> dict, JsArray -> list, ``jsnull`` ->
    None, deeply (``depth`` levels; -1: all). Other JsProxy values stay as they are unless
    ``default_converter(value, convert, cache_conversion)`` converts them. Plain Python
    containers are walked too, so their JavaScript-style contents are converted."""
    cache: dict[int, Any] = {}

    def cache_conversion(source: Any, result: Any) -> None:
        cache[id(source)] = result

    def convert(value: Any, level: int) -> Any:
        if value is jsnull:
            return None
        if level == 0 or value is None or isinstance(value, (str, bool, int, float, bytes)):
            return value
        key = id(value)
        if key in cache:
            return cache[key]
        if isinstance(value, JsObject):
            result: Any = {}
            cache[key] = result
            for k, v in object.__getattribute__(value, "_props").items():
                result[k] = convert(v, level - 1)
            return result
        if isinstance(value, dict):
            result = {}
            cache[key] = result
            for k, v in value.items():
                result[convert(k, level - 1) if isinstance(k, JsProxy) else k] = \
                    convert(v, level - 1)
            return result
        if isinstance(value, list):
            items: list[Any] = []
            cache[key] = items
            items.extend(convert(v, level - 1) for v in value)
            return items
        if isinstance(value, tuple):
            return tuple(convert(v, level - 1) for v in value)
        if isinstance(value, JsProxy) and default_converter is not None:
            return default_converter(value, lambda v: convert(v, level - 1), cache_conversion)
        return value

    return convert(obj, depth)


def run_sync(awaitable: Any) -> Any:
    """Wait for ``awaitable`` from synchronous code and return its result.

    Works in a WSGI view (a thread: the coroutine runs on the instance's event loop), in
    sync code called from an async handler (the loop is run re-entrantly until the
    coroutine is done, serving other requests meanwhile) and where no loop runs (a private
    loop). See docs/cloudflare-compat.md for what the re-entrant case implies."""
    return _run_sync(awaitable)


def can_run_sync() -> bool:
    """Whether ``run_sync`` may be called here: always, in thaw."""
    return True


__all__ = [
    "IN_BROWSER", "JsArray", "JsDoubleProxy", "JsException", "JsMap", "JsNotAvailableError",
    "JsNull", "JsObject", "JsProxy", "can_run_sync", "create_once_callable", "create_proxy",
    "destroy_proxies", "jsnull", "run_sync", "to_js", "to_py",
]


def __getattr__(name: str) -> Any:
    raise missing_member("pyodide.ffi", name, "thaw runs CPython, not Pyodide, and has no "
                         "JavaScript engine")
