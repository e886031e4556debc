"""``run_sync``: wait for an awaitable from plain synchronous code.

Cloudflare's ``pyodide.ffi.run_sync`` suspends the WebAssembly stack (JSPI) while a
promise settles, so sync code (a Flask view, a helper called from an async
handler) can use async APIs. thaw runs CPython, so it does the same three ways,
chosen by the thread that calls:

* **A thread without an event loop whose work came from the instance's loop** (a
  WSGI app run by ``wsgi.fetch``, anything run with ``run_in_executor`` or
  ``asyncio.to_thread`` while serving): the coroutine is handed to that loop with
  ``run_coroutine_threadsafe`` and the thread blocks until it is done. The loop
  keeps serving meanwhile.
* **The event loop's own thread, inside a running loop** (sync code called from an
  ``async def`` handler): blocking that thread on the loop would deadlock, so the
  loop is run *re-entrantly* until the coroutine is done: this frame drives
  ``loop._run_once()`` itself, so other requests, timers and I/O keep being
  served while the caller waits. Nested waits finish last-in first-out: a
  ``run_sync`` returns only after every ``run_sync`` started inside it (by other
  requests served meanwhile) has returned.
* **No loop anywhere** (a worker's top level, a script, a test): the coroutine
  runs on a private loop that is closed afterwards (``asyncio.run``), so nothing
  is left open for a snapshot.

The re-entrant mode uses two private details of CPython 3.11's asyncio, the
Python embedded by thaw (checked by tests/python/test_pyodide_ffi.py):
``BaseEventLoop._run_once`` (one iteration) and ``_ready`` (the deque of
callbacks that iteration pops a counted number of), plus the task registry
``asyncio.tasks._current_tasks``, from which the task that is blocked is
removed while the others run (a task may not start while another is marked
running).
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_instance_loop: asyncio.AbstractEventLoop | None = None
_thread_loop = threading.local()  # .loop: the loop whose work this thread is doing


def set_instance_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """The loop serving this instance (set by the runtime while it serves)."""
    global _instance_loop
    _instance_loop = loop


def call_for_loop(loop: asyncio.AbstractEventLoop, function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)`` in this (worker) thread, doing ``loop``'s work: a ``run_sync``
    in it runs its coroutine on ``loop``."""
    previous = getattr(_thread_loop, "loop", None)
    _thread_loop.loop = loop
    try:
        return function(*args)
    finally:
        _thread_loop.loop = previous


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run_sync(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` (a coroutine, task, future or any object with ``__await__``)
    and return its result, or raise its exception."""
    if not hasattr(awaitable, "__await__"):
        raise TypeError(f"run_sync() needs an awaitable (a coroutine, a task, a future), "
                        f"not {type(awaitable).__name__}")
    coroutine = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        return _run_reentrant(running, coroutine)
    home = getattr(_thread_loop, "loop", None) or _instance_loop
    if home is not None and home.is_running() and not home.is_closed():
        return asyncio.run_coroutine_threadsafe(coroutine, home).result()
    return asyncio.run(coroutine)


def _spent_handle(loop: asyncio.AbstractEventLoop) -> asyncio.Handle:
    handle = asyncio.Handle(lambda: None, (), loop)
    handle.cancel()
    return handle


def _run_reentrant(loop: asyncio.AbstractEventLoop, coroutine: Any) -> Any:
    run_once = getattr(loop, "_run_once", None)
    ready = getattr(loop, "_ready", None)
    if run_once is None or ready is None:
        coroutine.close()
        raise RuntimeError(
            f"run_sync() cannot run the event loop re-entrantly: {type(loop).__name__} is not "
            "an asyncio.BaseEventLoop; await the coroutine instead")
    # The iteration of the loop that is running us pops up to this many more callbacks
    # when we return; the ones we run meanwhile are replaced by cancelled (skipped) ones.
    owed = len(ready)
    task = loop.create_task(coroutine)
    current_tasks = asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    blocked = current_tasks.pop(loop, None)
    try:
        cancelled = False
        while not task.done():
            if blocked is not None and not cancelled and blocked.cancelling():
                task.cancel()  # the caller's request was cancelled: so is what it waits for
                cancelled = True
            run_once()
    finally:
        if blocked is not None:
            current_tasks[loop] = blocked
        while len(ready) < owed:
            ready.append(_spent_handle(loop))
    return task.result()
