"""Snapshot hooks: code to run before a memory snapshot is taken and after it is restored.

A worker's top-level code runs once, when its snapshot is built; every instance
then starts from a copy of that memory. What must not be shared, or cannot be
carried (a connection, a thread, a per-instance value), is closed or made in a
hook::

    from workers import register_after_restore, register_before_snapshot

    pool = None

    @register_after_restore
    def connect():
        global pool
        pool = make_pool()

    @register_before_snapshot
    async def drain():
        await flush_metrics()

    register_after_restore(warm_cache, "users", size=100)   # a plain call, with arguments

Order (as AWS Lambda SnapStart's Python hooks): ``before_snapshot`` hooks run
in the reverse order of their registration, ``after_restore`` hooks in the
order of their registration. A hook may be a plain function or an ``async``
one; an async hook runs to completion on a temporary event loop that is closed
afterwards (tasks it leaves behind are cancelled).

Without a snapshot (an instance that boots, e.g. ``thaw dev --no-snapshot``),
``before_snapshot`` hooks never run and ``after_restore`` hooks run once, right
after the top-level code, so a worker behaves the same whichever way its
instance started.

A hook that raises fails the snapshot build (``before_snapshot``) or the
instance (``after_restore``), with the hook's name and traceback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

BEFORE_SNAPSHOT = "before_snapshot"
AFTER_RESTORE = "after_restore"


@dataclass
class _Hook:
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


_hooks: dict[str, list[_Hook]] = {BEFORE_SNAPSHOT: [], AFTER_RESTORE: []}


class HookFailed(Exception):
    """A hook raised ``error``; the runtime turns this into the build's or instance's error."""

    def __init__(self, kind: str, function: Callable[..., Any], error: BaseException) -> None:
        super().__init__(f"{kind} hook {function!r} failed: {error!r}")
        self.kind = kind
        self.function = function
        self.error = error


def _register(kind: str, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not callable(function):
        raise TypeError(
            f"register_{kind}() takes a function: use it as a decorator, @register_{kind}, "
            f"or call register_{kind}(function, *args, **kwargs); got {type(function).__name__}"
        )
    _hooks[kind].append(_Hook(function, args, kwargs))
    return function


def register_before_snapshot(function: F, /, *args: Any, **kwargs: Any) -> F:
    """Run ``function(*args, **kwargs)`` before the snapshot is taken; returns ``function``.

    Use it as a decorator (``@register_before_snapshot``) or call it. Hooks run in
    the reverse order of registration. They run only when a snapshot is built.
    """
    return _register(BEFORE_SNAPSHOT, function, args, kwargs)


def register_after_restore(function: F, /, *args: Any, **kwargs: Any) -> F:
    """Run ``function(*args, **kwargs)`` in every instance, before it serves; returns ``function``.

    Use it as a decorator (``@register_after_restore``) or call it. Hooks run in
    the order of registration: after each restore from a snapshot, or once after
    the top-level code when the instance booted without one.
    """
    return _register(AFTER_RESTORE, function, args, kwargs)


def registered(kind: str) -> list[Callable[..., Any]]:
    """The functions registered as ``kind`` hooks, in registration order."""
    return [hook.function for hook in _hooks[kind]]


def clear() -> None:
    """Forget every registered hook (for tests)."""
    for hooks in _hooks.values():
        hooks.clear()


def run(kind: str) -> None:
    """Run the ``kind`` hooks in their order; the first that raises stops the run (HookFailed)."""
    hooks = list(_hooks[kind])
    if kind == BEFORE_SNAPSHOT:
        hooks.reverse()
    for hook in hooks:
        try:
            result = hook.function(*hook.args, **hook.kwargs)
            if inspect.isawaitable(result):
                _run_to_completion(result)
        except (Exception, SystemExit) as error:
            raise HookFailed(kind, hook.function, error) from error


def _run_to_completion(awaitable: Any) -> Any:
    """Run ``awaitable`` on a new event loop, then close the loop and everything it made.

    The loop is not made the thread's current loop, so nothing of it is left
    behind: its tasks are cancelled, its async generators and default executor
    (its threads) shut down, and its selector and self-pipe closed.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(awaitable)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
