"""Entrypoint base classes and the per-request execution context."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._log import log_exception

F = TypeVar("F", bound=Callable[..., Any])

# wait_until tasks, kept referenced until they finish (the loop holds only weak references).
_background: set[asyncio.Future[Any]] = set()


def _background_done(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log_exception("error in a ctx.wait_until task", error)


def pending_background_tasks() -> set[asyncio.Future[Any]]:
    """The wait_until tasks still running."""
    return set(_background)


class Context:
    """What a handler can ask of the request's lifetime (``self.ctx``)."""

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        """Keep ``awaitable`` running after the response is sent; its errors are logged."""
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                "wait_until() takes an awaitable (a coroutine or task), "
                f"not {type(awaitable).__name__}"
            )
        task = asyncio.ensure_future(awaitable)
        _background.add(task)
        task.add_done_callback(_background_done)

    waitUntil = wait_until

    def pass_through_on_exception(self) -> None:
        """Accepted for compatibility; thaw has no origin to fall back to."""

    passThroughOnException = pass_through_on_exception


def wait_until(awaitable: Awaitable[Any]) -> None:
    """``ctx.wait_until`` without a ``ctx`` at hand (``from workers import wait_until``)."""
    Context().wait_until(awaitable)


class ScheduledController:
    """What a ``scheduled`` handler is told about its run (Cloudflare's ScheduledController).

    ``cron`` is the trigger's expression ("" when fired by hand without one),
    ``scheduled_time`` the minute it was due, in milliseconds since the epoch (UTC).
    """

    __slots__ = ("cron", "scheduled_time", "_no_retry")

    type = "scheduled"

    def __init__(self, cron: str, scheduled_time: int) -> None:
        self.cron = cron
        self.scheduled_time = scheduled_time
        self._no_retry = False

    @property
    def scheduledTime(self) -> int:  # noqa: N802 - Cloudflare's spelling
        return self.scheduled_time

    def no_retry(self) -> None:
        """Mark this run as not to be retried; thaw records it with the run (it never retries)."""
        self._no_retry = True

    noRetry = no_retry

    def __repr__(self) -> str:
        return f"<ScheduledController cron={self.cron!r} scheduled_time={self.scheduled_time}>"


class WorkerEntrypoint:
    """Base class of a worker: subclass it as ``Default`` with ``async def fetch(self, request)``.

    An instance is made for each request, with ``self.ctx`` and ``self.env``.
    """

    ctx: Context
    env: Any

    def __init__(self, ctx: Context, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base class of a Durable Object (bindings are not served by this version of thaw yet)."""

    ctx: Any
    env: Any

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: F) -> F:
    """Accepted for compatibility with Cloudflare's ``@handler``; returns ``func`` unchanged."""
    return func
