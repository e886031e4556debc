"""The thaw workers SDK: what a worker imports.

Its surface follows Cloudflare's Python Workers, so their workers run unchanged::

    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("Hello world!")

Memory snapshots: ``register_before_snapshot`` and ``register_after_restore``
(see ``workers._hooks``) run code before an instance's memory is snapshotted
and in every instance restored from it.
"""

from ._body import BodyStream, BodyUsedError
from ._entrypoint import (
    Context,
    DurableObject,
    ScheduledController,
    WorkerEntrypoint,
    handler,
    wait_until,
)
from ._env import Env, env
from ._fetch import fetch
from ._headers import Headers
from ._hooks import register_after_restore, register_before_snapshot
from ._http import HttpStatusError, Request, Response

__all__ = [
    "BodyStream",
    "BodyUsedError",
    "Context",
    "DurableObject",
    "Env",
    "Headers",
    "HttpStatusError",
    "Request",
    "Response",
    "ScheduledController",
    "WorkerEntrypoint",
    "env",
    "fetch",
    "handler",
    "register_after_restore",
    "register_before_snapshot",
    "wait_until",
]
