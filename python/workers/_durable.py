"""Durable Objects: the namespace binding (``env.ROOM``), ids, stubs, and what an object
gets as ``ctx`` (its id, its storage, ``block_concurrency_while``).

HOW A CALL IS SERVED. ``await env.ROOM.get(id).add_message("hi")`` is a CALL to the
namespace binding (method ``rpc``, the object's id, the arguments encoded as for service
bindings, workers._rpc). The host keeps exactly one live instance per object id: the first
call pins the object to an instance of the worker, every later call goes to that instance
until it exits (idle, evicted, killed), and that instance makes the object once, with
``Class(ctx, env)``, and calls the method on it (``_thaw_runtime`` dispatches ``:event
do``). ``ctx.storage`` calls go back to the host, which serves them from the object's own
SQLite file (src/state/dobj.h), and only for the instance that holds the object.

GATES (Cloudflare's semantics, as far as Python's asyncio allows). *Input gate*: while a
storage operation of an object is in flight, no new call is delivered to it, so a read, a
computation and a write made without another await between them cannot interleave with
another call (``v = await get("n"); await put("n", v + 1)`` counts exactly). The gate opens
only after the code that awaited the storage result has run to its next await. Awaiting
anything else (a fetch, a sleep) lets other calls in, as on Cloudflare. *Output gate*: every
write is confirmed (durable on the host) when its await returns, so a call's answer never
leaves before the writes it made are on disk.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from . import _bindings, _rpc
from ._bindings import DurableObjectId, DurableObjectNamespace, DurableObjectStub

__all__ = ["DurableObjectId", "DurableObjectNamespace", "DurableObjectState",
           "DurableObjectStorage", "DurableObjectStub", "SqlStorage", "SqlStorageCursor"]

# --- the object's side ---------------------------------------------------------------------


class _Gate:
    """An object's input gate (see the top): new calls wait while storage is in flight or
    ``block_concurrency_while`` runs."""

    def __init__(self) -> None:
        self.ops = 0
        self.blocked = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def enter(self) -> None:
        while self.ops or self.blocked:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def op_start(self) -> None:
        self.ops += 1

    def op_end(self) -> None:
        # After the code that awaited the result has run to its next await.
        asyncio.get_running_loop().call_soon(self._release)

    def _release(self) -> None:
        self.ops -= 1
        self._wake()

    def _wake(self) -> None:
        if self.ops or self.blocked:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def _encode_value(value: Any) -> str:
    """A stored value as text: the RPC encoding (structured-clone-like, workers._rpc) in
    base64, so any Python value RPC can carry can be stored, and read back as itself."""
    return base64.b64encode(_rpc.encode(value)).decode("ascii")


def _decode_value(text: str) -> Any:
    return _rpc.decode(base64.b64decode(text))


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a storage key must be a str, not {type(key).__name__}")
    return key


def _alarm_ms(when: Any) -> int:
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return int(when.timestamp() * 1000)
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return int(when)
    raise TypeError("set_alarm() takes a time in ms since the epoch, or a datetime")


class DurableObjectStorage:
    """``ctx.storage``: the object's transactional key-value storage, its SQL database
    (``sql``) and its alarm."""

    def __init__(self, binding: str, object_id: DurableObjectId, gate: _Gate,
                 state: DurableObjectState | None = None) -> None:
        self._binding = binding
        self._id = object_id
        self._gate = gate
        self._state = state
        self.sql = SqlStorage(self)

    async def _call(self, op: str, args: dict[str, Any], counted: bool = False) -> Any:
        """A storage call; it holds the input gate unless the caller did (``counted``)."""
        if not counted:
            self._gate.op_start()
        try:
            _status, _headers, result = await _bindings.call(
                self._binding, "storage",
                [(b":id", str(self._id).encode()), (b":op", op.encode())],
                json.dumps(args).encode())
            data = await result.read() if hasattr(result, "read") else (result or b"")
            return json.loads(data) if data else {}
        finally:
            self._gate.op_end()

    async def get(self, key: Any, **options: Any) -> Any:
        if isinstance(key, (list, tuple)):
            keys = [_key(k) for k in key]
            got = (await self._call("get", {"keys": keys}))["values"]
            return {k: _decode_value(got[k]) for k in keys if k in got}
        got = (await self._call("get", {"keys": [_key(key)]}))["values"]
        return _decode_value(got[key]) if key in got else None

    async def put(self, key: Any, value: Any = None, **options: Any) -> None:
        if isinstance(key, dict):
            entries = {_key(k): _encode_value(v) for k, v in key.items()}
        else:
            entries = {_key(key): _encode_value(value)}
        await self._call("put", {"entries": entries})

    async def delete(self, key: Any, **options: Any) -> Any:
        if isinstance(key, (list, tuple)):
            return (await self._call("delete", {"keys": [_key(k) for k in key]}))["deleted"]
        return (await self._call("delete", {"keys": [_key(key)]}))["deleted"] > 0

    async def list(self, start: str | None = None, start_after: str | None = None,
                   end: str | None = None, prefix: str | None = None, reverse: bool = False,
                   limit: int | None = None, **options: Any) -> dict[str, Any]:
        args = {"start": options.get("start", start),
                "start_after": options.get("startAfter", start_after),
                "end": end, "prefix": prefix, "reverse": bool(reverse), "limit": limit}
        got = await self._call("list", {k: v for k, v in args.items() if v is not None})
        return {k: _decode_value(v) for k, v in got["entries"]}

    async def delete_all(self, **options: Any) -> None:
        """Everything: the key-value pairs, the SQL tables and the alarm (Cloudflare's rule
        for SQLite-backed objects since the 2026-02-24 compatibility date)."""
        await self._call("delete_all", {})
        await self._call("alarm_delete", {})

    deleteAll = delete_all

    async def transaction(self, closure: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run ``closure(txn)``: its writes are made at once, atomically, when it returns,
        and not at all if it raises or calls ``txn.rollback()``. The object takes no other
        call meanwhile."""
        self._gate.blocked += 1
        try:
            txn = _Transaction(self)
            result = await closure(txn)
            if not txn._rolled_back and (txn._puts or txn._deletes):
                await self._call("write", {"puts": {k: _encode_value(v)
                                                    for k, v in txn._puts.items()},
                                           "deletes": sorted(txn._deletes)})
            return result
        finally:
            self._gate.blocked -= 1
            self._gate._wake()

    async def get_alarm(self, **options: Any) -> int | None:
        if self._state is not None and self._state._in_alarm and not self._state._alarm_set:
            return None  # the alarm running now is over (Cloudflare's rule)
        got = await self._call("alarm_get", {})
        at = got.get("at")
        return int(at) if at is not None else None

    getAlarm = get_alarm

    async def set_alarm(self, scheduled_time: Any, **options: Any) -> None:
        await self._call("alarm_set", {"at": _alarm_ms(scheduled_time)})
        if self._state is not None and self._state._in_alarm:
            self._state._alarm_set = True

    setAlarm = set_alarm

    async def delete_alarm(self, **options: Any) -> None:
        await self._call("alarm_delete", {})

    deleteAlarm = delete_alarm


class _Transaction:
    """What ``transaction``'s closure gets: reads see its own writes."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage
        self._puts: dict[str, Any] = {}
        self._deletes: set[str] = set()
        self._rolled_back = False

    async def get(self, key: Any, **options: Any) -> Any:
        if isinstance(key, (list, tuple)):
            out = {}
            for k in key:
                v = await self.get(k)
                if v is not None:
                    out[k] = v
            return out
        if key in self._puts:
            return self._puts[key]
        if key in self._deletes:
            return None
        return await self._storage.get(key)

    async def put(self, key: Any, value: Any = None, **options: Any) -> None:
        entries = key if isinstance(key, dict) else {key: value}
        for k, v in entries.items():
            _key(k)
            _encode_value(v)  # refused now, not at commit
            self._puts[k] = v
            self._deletes.discard(k)

    async def delete(self, key: Any, **options: Any) -> Any:
        keys = list(key) if isinstance(key, (list, tuple)) else [key]
        existed = 0
        for k in keys:
            if await self.get(k) is not None:
                existed += 1
            self._puts.pop(_key(k), None)
            self._deletes.add(k)
        return existed if isinstance(key, (list, tuple)) else existed > 0

    async def list(self, **options: Any) -> dict[str, Any]:
        unlimited = {k: v for k, v in options.items() if k != "limit"}
        merged = await self._storage.list(**unlimited)
        for k in self._deletes:
            merged.pop(k, None)
        for k, v in self._puts.items():
            if _in_range(k, options):
                merged[k] = v
        ordered = sorted(merged.items(), key=lambda kv: kv[0].encode(),
                         reverse=bool(options.get("reverse")))
        limit = options.get("limit")
        return dict(ordered[:limit] if limit else ordered)

    def rollback(self) -> None:
        self._rolled_back = True


def _in_range(key: str, options: dict[str, Any]) -> bool:
    b = key.encode()
    start, after = options.get("start"), options.get("start_after", options.get("startAfter"))
    end, prefix = options.get("end"), options.get("prefix")
    return ((start is None or b >= start.encode()) and (after is None or b > after.encode())
            and (end is None or b < end.encode())
            and (prefix is None or key.startswith(prefix)))


class _Row(dict):  # type: ignore[type-arg]
    """A row: a dict whose columns also read as attributes (``cursor.one().greeting``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class SqlStorageCursor:
    """``sql.exec``'s answer: iterate it for rows as dicts, or ``to_array()``, ``one()``,
    ``raw()``; ``column_names``, ``rows_read``, ``rows_written``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.column_names: list[str] = list(answer.get("columns", []))
        self._rows: list[list[Any]] = [[_sql_value(v) for v in row]
                                       for row in answer.get("rows", [])]
        self.rows_read: int = int(answer.get("rows_read", 0))
        self.rows_written: int = int(answer.get("rows_written", 0))
        self._next = 0

    columnNames = property(lambda self: self.column_names)
    rowsRead = property(lambda self: self.rows_read)
    rowsWritten = property(lambda self: self.rows_written)

    def _dict(self, row: list[Any]) -> dict[str, Any]:
        return _Row(zip(self.column_names, row))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._next < len(self._rows):
            row = self._rows[self._next]
            self._next += 1
            yield self._dict(row)

    def to_array(self) -> list[dict[str, Any]]:
        return list(self)

    toArray = to_array

    def one(self) -> dict[str, Any]:
        rows = self.to_array()
        if len(rows) != 1:
            raise ValueError(f"Expected exactly one result from SQL query, but got "
                             f"{'no' if not rows else len(rows)} results.")
        return rows[0]

    def raw(self) -> Iterator[list[Any]]:
        while self._next < len(self._rows):
            row = self._rows[self._next]
            self._next += 1
            yield list(row)


def _sql_value(value: Any) -> Any:
    if isinstance(value, dict) and "$b" in value:
        import base64
        return base64.b64decode(value["$b"])
    return value


def _sql_param(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64
        return {"$b": base64.b64encode(bytes(value)).decode()}
    return value


class SqlStorage:
    """``ctx.storage.sql``: ``exec(query, *bindings)`` on the object's SQLite database.
    Synchronous as on Cloudflare: the call to the host is waited for with ``run_sync``."""

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def exec(self, query: str, *bindings: Any) -> SqlStorageCursor:
        from ._sync import run_sync
        # The gate closes now, before run_sync lets other tasks run.
        self._storage._gate.op_start()
        answer = run_sync(self._storage._call(
            "sql", {"query": query, "params": [_sql_param(b) for b in bindings]}, counted=True))
        return SqlStorageCursor(answer)

    @property
    def database_size(self) -> int:
        from ._sync import run_sync
        self._storage._gate.op_start()
        return int(run_sync(self._storage._call("size", {}, counted=True))["bytes"])

    databaseSize = database_size


class DurableObjectState:
    """An object's ``ctx``: ``id``, ``storage``, ``block_concurrency_while(fn)``,
    ``wait_until``."""

    def __init__(self, binding: str, object_id: DurableObjectId) -> None:
        self.id = object_id
        self._gate = _Gate()
        self._active = 0  # calls in the object now (the runtime counts them)
        self._in_alarm = False  # alarm() runs (the runtime sets it)
        self._alarm_set = False  # set_alarm() called while it runs
        self.storage = DurableObjectStorage(binding, object_id, self._gate, self)

    def block_concurrency_while(self, fn: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        """Run ``fn()`` with every new call to the object held until it is done (a task:
        await it for its result; in ``__init__`` just call it)."""
        gate = self._gate
        gate.blocked += 1

        async def run() -> Any:
            try:
                return await fn()
            finally:
                gate.blocked -= 1
                gate._wake()

        return asyncio.ensure_future(run())

    blockConcurrencyWhile = block_concurrency_while

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        asyncio.ensure_future(awaitable)

    waitUntil = wait_until
