"""The Python half of a thaw instance: load a worker, then serve its requests.

The C worker (src/worker/) reads INIT itself, initialises Python, then calls:

    ready_json = _thaw_runtime.load(config_json)   # import the entry module, find the handler
    _thaw_runtime.serve(fd)                        # answer requests on the host socket until EOF

``load`` may be followed by a memory snapshot, so it starts no thread, leaves
no event loop and keeps no socket or file open: everything that serves is made
in ``serve``. An exception from ``load`` becomes the LOAD_ERROR text; a
``LoadError`` says in its message what is wrong and what to do.

Snapshots. A builder instance gets ``"snapshot_build": true`` in its INIT
config: ``load`` then imports the worker with entropy poisoned and watched,
runs the ``before_snapshot`` hooks, refuses what a snapshot cannot hold (a
thread, an open event loop, entropy drawn at import unless
``allow_entropy_at_import``), removes its watch and freezes the heap; C then
checkpoints the process. In every process restored from it, C calls

    ready_json = _thaw_runtime.after_restore(init_json)  # this instance's INIT config
    _thaw_runtime.serve(fd)

``after_restore`` takes the instance's vars (never from os.environ, which is
the builder's), reseeds entropy and runs the ``after_restore`` hooks. Without a
snapshot, ``load`` runs the ``after_restore`` hooks itself, at its end, so a
worker behaves the same however its instance started (see workers._hooks).

``serve`` speaks the frames of src/proto/frame.h. Each request (stream) runs
as its own asyncio task. Flow control, per stream and direction: the host
starts us with STREAM_WINDOW bytes of request-body credit, which we return
with WINDOW as the handler takes chunks; we hold STREAM_WINDOW bytes of
response-body credit and wait for the host's WINDOW when it runs out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime
import io
import functools
import gc
import importlib.util
import inspect
import json
import os
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from workers import (Context, Env, Headers, Request, Response, _bindings, _durable, _fetch,
                     _hooks, _rpc, _service, _snapshot, _sync)
from workers._body import BodyStream
from workers._entrypoint import ScheduledController, WorkerEntrypoint, pending_background_tasks
from workers._env import env as _module_env
from workers._env import replace_values
from workers._log import format_exception, log, set_worker_name

RESPONSE_CHUNK = 64 * 1024
DEFAULT_CONCURRENCY = 16
WAIT_UNTIL_GRACE = 10.0  # seconds given to ctx.wait_until tasks after the host hangs up

HANDLER_FORMS = (
    "expected `class Default(WorkerEntrypoint)` with `async def fetch(self, request)`, "
    "(or `async def scheduled(self, controller, env, ctx)` for cron triggers), "
    "or a module-level `async def on_fetch(request, env)` / `on_scheduled(controller, env, ctx)`"
)


class LoadError(Exception):
    """The worker cannot be loaded; the message says why, naming the project file."""


Call = Callable[[Request, Context, Env], Any]
Scheduled = Callable[[ScheduledController, Context, Env], Any]


@dataclass
class _Worker:
    name: str
    env: Env
    call: Call | None
    concurrency: int
    dev: bool
    project_dir: str = ""
    main: str = ""
    snapshot_built: bool = False
    record_ws: str | None = None
    capture_output: bool = False
    scheduled: Scheduled | None = None
    memory_bytes: int = 0  # the instance's memory limit (0: none), for its 503's message
    subrequests: int | None = None  # fetch() calls a request may make (None: unlimited)


@dataclass
class _Config:
    name: str
    project_dir: str
    main: str
    variables: dict[str, Any]
    concurrency: int
    dev: bool
    snapshot_build: bool
    allow_entropy_at_import: bool
    capture_output: bool = False
    secrets: dict[str, str] | None = None
    secret_names: frozenset[str] = frozenset()
    bindings: dict[str, Any] | None = None  # name -> the binding's env object
    memory_bytes: int = 0
    subrequests: int | None = None
    outbound: bool = True  # [tool.thaw] outbound (false: the sandbox refuses IP sockets)


def _env_values(config: _Config, with_secrets: bool = True) -> dict[str, Any]:
    """What ``env`` holds: the vars, the bindings (never the same name) and, once the top
    level has run, the secrets (over a var of the same name)."""
    values = {n: v for n, v in config.variables.items() if n not in config.secret_names}
    values.update(config.bindings or {})
    if with_secrets:
        values.update(config.secrets or {})
    return values


def _parse_bindings(raw: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """INIT's ``bindings`` ([{"name", "type"}]) as env objects."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise LoadError("INIT config: bindings must be a list")
    made: dict[str, Any] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("type"), str):
            raise LoadError("INIT config: each binding needs a name and a type")
        name = entry["name"]
        if name in variables or name in made:
            raise LoadError(f"the binding {name} has the name of a var or of another binding: "
                            "rename one of them")
        try:
            made[name] = _bindings.make(name, entry["type"], entry)
        except ValueError as error:
            raise LoadError(str(error)) from None
    return made


_worker: _Worker | None = None


def _entrypoint_instance(name: str, env: Env) -> Any:
    """An instance of the entrypoint class a service binding names ("": Default), made
    with (ctx, env) as for a request."""
    module = _entry_module
    cls = getattr(module, name or "Default", None) if module is not None else None
    if name and not (isinstance(cls, type) and issubclass(cls, WorkerEntrypoint)):
        raise TypeError(f"the worker has no entrypoint named {name!r}: a service binding's "
                        "entrypoint is a class of the entry module that extends WorkerEntrypoint")
    if not isinstance(cls, type):
        raise TypeError("the worker has no default entrypoint (class Default) to call")
    return cls(Context(), env)


def _line_buffered_output() -> None:
    """Make print() reach the host's terminal line by line, even on a pipe."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):
                pass


def _import_entry(path: str, relative: str) -> Any:
    """Import the file at ``path`` as a top-level module named by its stem."""
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    if not name.isidentifier():
        raise LoadError(f"{relative}: {name!r} is not a valid Python module name; rename the file")
    existing = sys.modules.get(name)
    if existing is not None and not getattr(existing, "__thaw_entry__", False):
        raise LoadError(
            f"{relative}: the module name {name!r} is already taken by {existing!r}; "
            "rename the file and update `main` in pyproject.toml"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{relative}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__thaw_entry__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        sys.modules.pop(name, None)
        raise error.with_traceback(_user_traceback(error.__traceback__))
    return module


def _user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading frames of this file and of the import machinery."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename != __file__ and not filename.startswith("<frozen importlib"):
            break
        tb = tb.tb_next
    return tb


def _positional_arity(function: Callable[..., Any]) -> int:
    """How many positional arguments ``function`` accepts (3 more for ``*args``: callers cap
    it at what they offer)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 2
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return count + 3
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _leading(function: Callable[..., Any], is_method: bool) -> int:
    """How many of the three arguments offered a handler takes: the leading ones it declares
    (Cloudflare drops the surplus, so `async def fetch(self)` works)."""
    arity = _positional_arity(function)
    if is_method:
        arity -= 1  # self
    return max(0, min(arity, 3))


def _find_handler(module: Any, relative: str) -> Call:
    """How to call the module's fetch handler with (request, ctx, env)."""
    fetch, _ = _find_handlers(module, relative)
    if fetch is None:
        raise LoadError(f"{relative} defines no fetch handler: {HANDLER_FORMS}")
    return fetch


_queue_handler: Callable[..., Any] | None = None


def _find_queue_handler(module: Any) -> None:
    """The module's queue consumer, called with (batch, ctx, env): `async def queue(self,
    batch, env, ctx)` on class Default, or a module-level `on_queue(batch, env, ctx)`."""
    global _queue_handler
    _queue_handler = None
    default = getattr(module, "Default", None)
    if isinstance(default, type) and callable(getattr(default, "queue", None)):
        arity = _leading(getattr(default, "queue"),
                         inspect.isfunction(inspect.getattr_static(default, "queue")))

        def call_queue(batch: Any, ctx: Context, env: Env, _arity: int = arity) -> Any:
            return default(ctx, env).queue(*(batch, env, ctx)[:_arity])

        _queue_handler = call_queue
    elif callable(getattr(module, "on_queue", None)):
        function = getattr(module, "on_queue")
        arity = _leading(function, False)

        def call_on_queue(batch: Any, ctx: Context, env: Env, _arity: int = arity) -> Any:
            return function(*(batch, env, ctx)[:_arity])

        _queue_handler = call_on_queue


# The entry module, where RPC and service fetches find their entrypoint classes.
_entry_module: Any = None
# The Durable Objects this instance holds, by (class, id).
_objects: dict[tuple[str, str], Any] = {}


def _has_rpc_methods(cls: type) -> bool:
    """Does the class define a public method that RPC may call? (A class whose only public
    methods are named like misspelt handlers, `fetchh`, is taken for the mistake it most likely
    is; one with any other method, `add` beside `requeue`, is an RPC entrypoint.)"""
    import difflib

    names = [name for klass in cls.__mro__ if klass not in (object, WorkerEntrypoint)
             for name, value in vars(klass).items()
             if not name.startswith("_") and name not in _rpc.RESERVED and callable(value)]
    return not all(
        difflib.get_close_matches(name, ("fetch", "scheduled", "queue"), n=1, cutoff=0.75)
        for name in names)


def _has_entrypoints(module: Any) -> bool:
    """Does the module define a named entrypoint (a WorkerEntrypoint subclass)?"""
    return any(isinstance(value, type) and issubclass(value, WorkerEntrypoint)
               and value is not WorkerEntrypoint for value in vars(module).values())


def _find_handlers(module: Any, relative: str) -> tuple[Call | None, Scheduled | None]:
    """The module's fetch and scheduled handlers, each called with (event, ctx, env), or None.

    Handlers are offered (event, env, ctx), as Cloudflare offers them: `fetch(self, request,
    env, ctx)` on `class Default(WorkerEntrypoint)`, or the older module-level `on_fetch`
    and `on_scheduled` functions. A worker needs one of them at least, or RPC methods (on
    Default, or on a named entrypoint class) for service bindings to call."""
    global _entry_module
    _entry_module = module
    default = getattr(module, "Default", None)
    if default is not None:
        if not isinstance(default, type):
            raise LoadError(
                f"{relative}: `Default` must be a class, `class Default(WorkerEntrypoint)`, "
                f"not {type(default).__name__}"
            )
        found: list[Any] = []
        for name in ("fetch", "scheduled"):
            method = getattr(default, name, None)
            if method is None:
                found.append(None)
                continue
            if not callable(method):
                raise LoadError(f"{relative}: Default.{name} must be a method")
            arity = _leading(method, inspect.isfunction(inspect.getattr_static(default, name)))

            def call_entrypoint(event: Any, ctx: Context, env: Env, _name: str = name,
                                _arity: int = arity) -> Any:
                return getattr(default(ctx, env), _name)(*(event, env, ctx)[:_arity])

            found.append(call_entrypoint)
        _find_queue_handler(module)
        if (found[0] is None and found[1] is None and _queue_handler is None
                and not _has_rpc_methods(default)):
            raise LoadError(
                f"{relative}: class Default has no fetch or scheduled method; "
                "add `async def fetch(self, request)`"
            )
        return found[0], found[1]

    handlers: list[Any] = []
    for name, what in (("on_fetch", "request"), ("on_scheduled", "controller")):
        function = getattr(module, name, None)
        if function is None:
            handlers.append(None)
            continue
        if not callable(function):
            raise LoadError(
                f"{relative}: `{name}` must be a function, not {type(function).__name__}"
            )
        arity = _leading(function, False)
        if arity < 1 and name == "on_fetch":
            raise LoadError(
                f"{relative}: on_fetch must take the request: `async def on_fetch(request, env)`"
            )

        def call_function(event: Any, ctx: Context, env: Env, _function: Any = function,
                          _arity: int = arity) -> Any:
            return _function(*(event, env, ctx)[:_arity])

        handlers.append(call_function)
    _find_queue_handler(module)
    if (handlers[0] is None and handlers[1] is None and _queue_handler is None
            and not _has_entrypoints(module)):
        raise LoadError(f"{relative} defines no handler: {HANDLER_FORMS}")
    return handlers[0], handlers[1]


_host_pid: int | None = None


def host_pid() -> int:
    """The pid the host knows this instance by. Inside the sandbox the instance is PID 1 of a
    namespace of its own (``os.getpid() == 1``); logs and tests name it by this one."""
    return _host_pid if _host_pid is not None else os.getpid()


def _note_host_pid(config_json: str) -> None:
    global _host_pid
    try:
        pid = json.loads(config_json).get("pid")
    except (ValueError, AttributeError):
        return
    _host_pid = pid if isinstance(pid, int) and pid > 0 else None


def _parse_config(config_json: str) -> _Config:
    try:
        config = json.loads(config_json)
    except ValueError as error:
        raise LoadError(f"INIT config is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise LoadError("INIT config must be a JSON object")
    name = str(config.get("name") or "worker")
    project_dir = config.get("project_dir")
    if not isinstance(project_dir, str) or not project_dir:
        raise LoadError("INIT config has no project_dir")
    main = config.get("main") or "src/entry.py"
    if not isinstance(main, str):
        raise LoadError("`main` in [tool.thaw] must be a path such as \"src/entry.py\"")
    variables = config.get("vars") or {}
    if not isinstance(variables, dict):
        raise LoadError("`vars` in [tool.thaw] must be a table of NAME = value")
    concurrency = config.get("concurrency") or DEFAULT_CONCURRENCY
    if not isinstance(concurrency, int) or concurrency < 1:
        raise LoadError(f"concurrency must be a positive integer, not {concurrency!r}")
    snapshot_build = config.get("snapshot_build", False)
    if not isinstance(snapshot_build, bool):
        raise LoadError(f"INIT config: snapshot_build must be true or false, "
                        f"not {snapshot_build!r}")
    allow_entropy = config.get("allow_entropy_at_import", False)
    if not isinstance(allow_entropy, bool):
        raise LoadError("`allow_entropy_at_import` in [tool.thaw] must be true or false, "
                        f"not {allow_entropy!r}")
    secrets = config.get("secrets")
    if secrets is not None and not (isinstance(secrets, dict)
                                    and all(isinstance(v, str) for v in secrets.values())):
        raise LoadError("INIT config: secrets must be an object of strings")
    names = config.get("secret_names") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LoadError("INIT config: secret_names must be a list of strings")
    bindings = _parse_bindings(config.get("bindings"), variables)
    # The instance's limits (src/host/limits.c): the C side set its rlimits already.
    limits = config.get("limits") or {}
    if not isinstance(limits, dict):
        raise LoadError("INIT config: limits must be an object")
    memory_bytes, subrequests = limits.get("memory_bytes", 0), limits.get("subrequests")
    if not isinstance(memory_bytes, int) or memory_bytes < 0:
        raise LoadError("INIT config: limits.memory_bytes must be a whole number")
    if subrequests is not None and (not isinstance(subrequests, int) or subrequests < 0):
        raise LoadError("INIT config: limits.subrequests must be a whole number")
    outbound = config.get("outbound", True)
    if not isinstance(outbound, bool):
        raise LoadError("INIT config: outbound must be true or false")
    return _Config(name=name, project_dir=project_dir, main=main, variables=variables,
                   concurrency=concurrency, dev=bool(config.get("dev", False)),
                   snapshot_build=snapshot_build, allow_entropy_at_import=allow_entropy,
                   capture_output=bool(config.get("capture_output", False)),
                   bindings=bindings, secrets=secrets,
                   secret_names=frozenset(names) | frozenset(secrets or ()),
                   memory_bytes=memory_bytes, subrequests=subrequests, outbound=outbound)


def load(config_json: str) -> str:
    """Import the worker described by the INIT config; return the READY JSON.

    With ``"snapshot_build": true`` the process is about to be checkpointed
    (see the module docstring): entropy drawn by the top-level code is watched
    and refused unless ``allow_entropy_at_import``, the ``before_snapshot``
    hooks run (in reverse order of registration), a thread or an open event
    loop is refused, and the heap is collected and frozen. The
    ``after_restore`` hooks then run in each restored process, in
    ``after_restore``.

    Without it (a plain boot) the ``before_snapshot`` hooks never run and the
    ``after_restore`` hooks run once, here, after the top-level code, so a
    worker's code sees the same sequence however its instance started.
    """
    global _worker
    started = time.perf_counter()
    config = _parse_config(config_json)
    _note_host_pid(config_json)
    raw = json.loads(config_json)
    if _is_base and config.snapshot_build:
        _add_project_paths(raw, config)  # restored from the base: a build on it
    set_worker_name(config.name)
    _fetch.set_outbound(config.outbound)  # the top level's fetch() too
    main = config.main
    path = os.path.normpath(os.path.join(config.project_dir, main))
    if not main.endswith(".py"):
        raise LoadError(f"{main}: the entry module (`main` in [tool.thaw]) must be a .py file")
    if not os.path.isfile(path):
        raise LoadError(
            f"{main}: no such file; `main` in [tool.thaw] (pyproject.toml) names the entry "
            "module, relative to the project directory"
        )
    _line_buffered_output()
    # `from workers import env` at top level: vars and bindings; secrets exist by name but are
    # withheld (a snapshot must never hold them: the builder is not even given them).
    replace_values(_module_env, _env_values(config, with_secrets=False), config.secret_names)
    if config.snapshot_build:
        call, scheduled = _load_for_snapshot(config, path)
    else:
        module = _import_entry(path, main)
        call, scheduled = _find_handlers(module, main)
        replace_values(_module_env, _env_values(config))
        _run_hooks(_hooks.AFTER_RESTORE, config.project_dir)
    _worker = _Worker(name=config.name, env=_module_env, call=call, scheduled=scheduled,
                      concurrency=config.concurrency, dev=config.dev,
                      project_dir=config.project_dir, main=main,
                      snapshot_built=config.snapshot_build,
                      capture_output=config.capture_output, memory_bytes=config.memory_bytes,
                      subrequests=config.subrequests)
    ready: dict[str, Any] = {"concurrency": config.concurrency}
    if config.snapshot_build:
        _settle_heap()
        ready["snapshot_build"] = True
    ready["load_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return json.dumps(ready)


def prepare_base() -> str:
    """Leave this process as a base image should hold it; return the READY JSON.

    A base image (docs/snapshots.md, "The base image") is this runtime and the SDK imported
    into an interpreter with no worker: every worker's snapshot build on the host restores it
    and runs only the worker's top level, so the pages nobody writes stay the base's, shared
    by every instance of every worker through the page cache.
    """
    global _is_base
    started = time.perf_counter()
    _is_base = True
    for name in BASE_MODULES:
        __import__(name)
    _rehearse()
    _settle_heap()
    return json.dumps({"base": True,
                       "load_ms": round((time.perf_counter() - started) * 1000.0, 3)})


# This process was prepared as a base image (a build restored from it adds the project's paths).
_is_base = False

# Standard modules the base imports besides what this runtime and the SDK need: none yet; each
# one costs every worker's restore its pages but saves the builds that import it their time.
BASE_MODULES: tuple[str, ...] = ()


_REHEARSAL = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("")
"""


def _rehearse() -> None:
    """Walk a blank worker through what a build does and forget it: its config read, its entry
    module imported from a file under the entropy watch (spec, loader, compiler), its handlers
    found, its env and worker object made. The caches and first-use state that walk leaves are
    then the base's, shared, instead of written into every worker's image by its own build."""
    directory = f"/tmp/thaw-base-{os.getpid()}"
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "thaw_base_rehearsal.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(_REHEARSAL)
    saved_path = list(sys.path)
    try:
        config = _parse_config(json.dumps({"name": "base", "project_dir": directory,
                                           "main": "thaw_base_rehearsal.py",
                                           "snapshot_build": True, "vars": {"X": 1}}))
        values = _env_values(config, with_secrets=False)
        watch = _snapshot.EntropyWatch(config.project_dir)
        watch.install()
        try:
            module = _import_entry(path, config.main)
            call, scheduled = _find_handlers(module, config.main)
        finally:
            watch.remove()
        watch.finish()
        _Worker(name=config.name, env=Env(values), call=call, scheduled=scheduled,
                concurrency=config.concurrency, dev=False, project_dir=directory,
                main=config.main, snapshot_built=True)
    finally:
        sys.modules.pop("thaw_base_rehearsal", None)
        sys.path[:] = saved_path
        importlib.invalidate_caches()
        for root, dirs, files in os.walk(directory, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(directory)


def _add_project_paths(raw: dict[str, Any], config: _Config) -> None:
    """A build on the base: put the project's entries on sys.path where worker.c's python_init
    puts them in a fresh interpreter (the entry module's directory, src/, then the SDK, then
    python_modules/), which the base, having no project, left out."""
    sdk_dir = raw.get("sdk_dir")
    entry_dir = os.path.dirname(os.path.join(config.project_dir, config.main))
    src = os.path.join(config.project_dir, "src")
    front = [entry_dir] + ([src] if src != entry_dir and os.path.isdir(src) else [])
    after_sdk = sys.path.index(sdk_dir) + 1 if sdk_dir in sys.path else 0
    sys.path[after_sdk:after_sdk] = [os.path.join(config.project_dir, "python_modules")]
    sys.path[0:0] = front
    importlib.invalidate_caches()


def _load_for_snapshot(config: _Config, path: str) -> tuple[Call | None, Scheduled | None]:
    """Import the entry module as a snapshot build: watched, hooked and checked."""
    watch = _snapshot.EntropyWatch(config.project_dir)
    watch.install()
    try:
        module = _import_entry(path, config.main)
        handlers = _find_handlers(module, config.main)
        _run_hooks(_hooks.BEFORE_SNAPSHOT, config.project_dir)
    finally:
        watch.remove()
    watch.finish()
    if watch.notes:
        log("dependencies drew numbers from random's generators while imported; these values "
            "are the same in every instance restored from the snapshot (random is not for "
            "secrets; generators themselves are reseeded):\n"
            + "\n".join("  " + use.describe() for use in watch.notes))
    problems = [problem for problem in (_snapshot.thread_problem(),
                                        _snapshot.event_loop_problem()) if problem]
    if watch.uses:
        if config.allow_entropy_at_import:
            log("entropy drawn at import, shared by every instance restored from the snapshot "
                "(allowed by allow_entropy_at_import):\n"
                + "\n".join("  " + use.describe() for use in watch.uses))
        else:
            problems.append(watch.error_message())
    if problems:
        raise LoadError("\n".join(problems))
    _snapshot.poison_numpy()
    return handlers


def _settle_heap() -> None:
    """Flush output and leave the heap as the snapshot should hold it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()  # else every restored instance would print the builder's bytes
        except (OSError, ValueError):
            pass
    # Collected now and frozen, the first collection after a restore does not write to
    # (copy) every page of objects.
    gc.collect()
    gc.freeze()


def after_restore(init_json: str) -> str:
    """Make this restored process an instance of its own; return the READY JSON.

    ``init_json`` is the instance's INIT config (the keys of ``load``'s; its
    ``vars`` may differ from the builder's). The worker's ``env`` takes these
    vars, entropy is reseeded from the kernel (``random``, numpy's global
    generator if loaded, ``tempfile``'s names, ``multiprocessing``'s key), and
    the ``after_restore`` hooks run in the order of their registration. A hook
    that raises makes this raise: the instance fails.
    """
    started = time.perf_counter()
    worker = _worker
    if worker is None or not worker.snapshot_built:
        raise RuntimeError("after_restore() must follow a load() with \"snapshot_build\": true")
    config = _parse_config(init_json)
    _note_host_pid(init_json)
    if (os.path.normpath(config.project_dir) != os.path.normpath(worker.project_dir)
            or config.main != worker.main):
        raise LoadError(
            f"the snapshot holds {worker.main} of {worker.project_dir}, but this instance's "
            f"INIT names {config.main} of {config.project_dir}: rebuild the snapshot"
        )
    _snapshot.reseed_after_restore()
    set_worker_name(config.name)
    worker.name = config.name
    replace_values(worker.env, _env_values(config))
    worker.concurrency = config.concurrency
    worker.dev = config.dev
    worker.capture_output = config.capture_output
    worker.memory_bytes, worker.subrequests = config.memory_bytes, config.subrequests
    _fetch.set_outbound(config.outbound)
    _run_hooks(_hooks.AFTER_RESTORE, worker.project_dir)
    # The host asks the first instance restored from an image to record the
    # pages its first request touches, for later restores to fault in ahead.
    record = json.loads(init_json).get("record_ws")
    worker.record_ws = record if isinstance(record, str) else None
    restore_ms = (time.perf_counter() - started) * 1000.0
    return json.dumps({"concurrency": worker.concurrency, "load_ms": round(restore_ms, 3),
                       "restored": True})


def _run_hooks(kind: str, project_dir: str) -> None:
    try:
        _hooks.run(kind)
    except _hooks.HookFailed as failure:
        error = failure.error
        error.__traceback__ = _hook_traceback(error.__traceback__)
        raise LoadError(
            f"{kind} hook {_describe_function(failure.function, project_dir)} failed:\n"
            + format_exception(error).rstrip("\n")
        ) from None


def _hook_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading frames of the runtime, the hook runner and asyncio."""
    skipped = (__file__, _hooks.__file__)
    asyncio_dir = os.path.dirname(asyncio.__file__) + os.sep
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in skipped and not filename.startswith(asyncio_dir):
            break
        tb = tb.tb_next
    return tb


def _describe_function(function: Any, project_dir: str) -> str:
    """``module.qualname (file:line)`` of a hook, the file relative to the project."""
    target = function
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", None)
    if qualname is None:
        return repr(function)
    module = getattr(target, "__module__", None)
    name = f"{module}.{qualname}" if module else qualname
    code = getattr(inspect.unwrap(target), "__code__", None)
    if code is not None:
        filename = code.co_filename
        root = os.path.abspath(project_dir) + os.sep
        if os.path.abspath(filename).startswith(root):
            filename = os.path.relpath(os.path.abspath(filename), root)
        name += f" ({filename}:{code.co_firstlineno})"
    return name


def serve(fd: int) -> None:
    """Serve requests on the connected host socket ``fd`` until the host closes it."""
    import _thaw  # the C module; imported here so load() works without it in tests

    if _worker is None:
        raise RuntimeError("serve() called before load()")
    _line_buffered_output()
    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="thaw-executor")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    _sync.set_instance_loop(loop)  # pyodide.ffi.run_sync from worker threads runs coroutines here
    try:
        loop.run_until_complete(_serve(_thaw, _worker, fd))
    finally:
        _sync.set_instance_loop(None)
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            # Threads stuck in blocking calls are not waited for.
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _serve(thaw: Any, worker: _Worker, fd: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    connection = _Connection(thaw, worker)
    await loop.create_connection(lambda: connection, sock=sock)
    _bindings.set_transport(connection.call_binding)
    saved = sys.stdout, sys.stderr
    if worker.capture_output:
        sys.stdout = _FrameOutput(connection, 1, saved[0])
        sys.stderr = _FrameOutput(connection, 2, saved[1])
    try:
        await connection.closed
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _FrameOutput):
                stream.flush_all()
        sys.stdout, sys.stderr = saved
    pending = pending_background_tasks()
    if pending:
        await asyncio.wait(pending, timeout=WAIT_UNTIL_GRACE)
    if connection.error is not None:
        raise RuntimeError(connection.error)


# The request (stream id) the running task handles; 0 outside requests. Service binding calls
# name it to the host, which counts a chain's hops from it.
_current_stream: contextvars.ContextVar[int] = _service.current_stream

OUTPUT_LINE_MAX = 16 * 1024  # longer lines are sent in pieces
OUTPUT_COALESCE = 64 * 1024  # frames queued for the host past this are written at once
CALLS_RESERVED = 8  # of CALLS_MAX, for calls that do not wait on other workers
# Is the running task a Durable Object's call (its own binding calls may use the reserve)?
_in_object: contextvars.ContextVar[bool] = contextvars.ContextVar("thaw_in_object",
                                                                  default=False)


class _FrameOutput(io.TextIOBase):
    """sys.stdout/sys.stderr of an instance whose host collects its output
    (thaw serve): each line goes to the host as a LOG frame tagged with the
    request being handled, so `thaw tail` can show which request printed it.

    Threads print too: each thread has its own unfinished line (print() writes
    the text and the newline in two calls, and lines of two threads must not
    mix), and frames from other threads are handed to the event loop, which
    alone writes to the transport."""

    def __init__(self, connection: "_Connection", channel: int, fallback: Any) -> None:
        super().__init__()
        self._connection = connection
        self._channel = channel
        self._fallback = fallback
        self._pending: dict[int, str] = {}  # unfinished line of each thread
        self._lock = threading.RLock()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        me = threading.get_ident()
        with self._lock:
            pending = self._pending.get(me, "") + text
            while True:
                newline = pending.find("\n")
                if newline < 0:
                    break
                self._emit(pending[:newline])
                pending = pending[newline + 1:]
            while len(pending) > OUTPUT_LINE_MAX:
                self._emit(pending[:OUTPUT_LINE_MAX])
                pending = pending[OUTPUT_LINE_MAX:]
            if pending:
                self._pending[me] = pending
            else:
                self._pending.pop(me, None)
        return len(text)

    def flush(self) -> None:
        """Send the calling thread's unfinished line."""
        with self._lock:
            pending = self._pending.pop(threading.get_ident(), "")
            if pending:
                self._emit(pending)

    def flush_all(self) -> None:
        """Send every thread's unfinished line (the connection is ending)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for text in pending.values():
                self._emit(text)

    def _emit(self, line: str) -> None:
        data = line.encode("utf-8", "replace")
        # Pieces of at most OUTPUT_LINE_MAX bytes, cut between characters:
        # each frame is valid UTF-8 on its own.
        payloads = []
        start = 0
        while True:
            end = min(start + OUTPUT_LINE_MAX, len(data))
            while end < len(data) and end > start + 1 and (data[end] & 0xC0) == 0x80:
                end -= 1
            payloads.append(bytes((self._channel,)) + data[start:end])
            start = end
            if start >= len(data):
                break
        stream_id = _current_stream.get()
        if threading.get_ident() == self._loop_thread:
            self._send(line, stream_id, payloads)
            return
        try:
            self._loop.call_soon_threadsafe(self._send, line, stream_id, payloads)
        except RuntimeError:  # the loop is closed
            self._send_fallback(line)

    def _send(self, line: str, stream_id: int, payloads: list[bytes]) -> None:
        transport = self._connection.transport
        if transport is None or transport.is_closing():
            self._send_fallback(line)
            return
        for payload in payloads:
            self._connection._send(self._connection.thaw.LOG, stream_id, payload)

    def _send_fallback(self, line: str) -> None:
        if self._fallback is not None:
            try:
                self._fallback.write(line + "\n")
                self._fallback.flush()
            except (OSError, ValueError):
                pass


class _Call:
    """A binding call in flight: its result head (a future) and its body.

    A streamed result's body is held weakly (``hold_weakly``): only its reader holds it, so a
    body dropped unread is collected, and the call given up (call_binding's finalizer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[tuple[int, Headers, Any]] = loop.create_future()
        self._body: BodyStream | None = BodyStream()
        self._body_ref: weakref.ref[BodyStream] | None = None
        # Result credit goes back as the body is read (True), or at once (False).
        self.stream_result = False
        # Credit for the request body this call sends (returned by the host's WINDOW).
        self.credit = 0
        self.credit_added = asyncio.Event()

    @property
    def body(self) -> BodyStream | None:
        """The result's body; None once a weakly held one was dropped."""
        if self._body_ref is not None:
            return self._body_ref()
        return self._body

    def hold_weakly(self, body: BodyStream) -> None:
        self._body = None
        self._body_ref = weakref.ref(body)

    def fail(self, error: BaseException) -> None:
        body = self.body
        if not self.head.done():
            self.head.set_exception(error)
        elif body is not None and not body.ended:
            body.fail(error)


def _call_body_dropped(loop: asyncio.AbstractEventLoop, connection: Any, stream_id: int,
                       call: _Call) -> None:
    """A streamed call result's body was collected (weakref.finalize): give the call up, from
    the loop (a finalizer may run in the middle of any code, the connection's own included)."""
    if connection.calls.get(stream_id) is not call or loop.is_closed():
        return
    try:
        loop.call_soon(connection._abandon_call, stream_id, call)
    except RuntimeError:
        pass  # the loop is closing


class _Stream:
    """One request in flight: its task, its request body, its response credit."""

    def __init__(self, stream_id: int, credit: int, body: BodyStream | None = None) -> None:
        self.id = stream_id
        self.task: asyncio.Task[None] | None = None
        self.body = body if body is not None else BodyStream()
        self.credit = credit
        self.credit_added: asyncio.Event | None = None  # made when a sender waits
        self.cancelled = False
        self.head_sent = False

    def add_credit(self, increment: int) -> None:
        self.credit += increment
        if self.credit_added is not None:
            self.credit_added.set()

    async def take_credit(self, wanted: int) -> int:
        """Wait for response credit; take up to ``wanted`` bytes of it."""
        while self.credit <= 0:
            if self.credit_added is None:
                self.credit_added = asyncio.Event()
            self.credit_added.clear()
            await self.credit_added.wait()
        taken = min(wanted, self.credit)
        self.credit -= taken
        return taken

    def cancel(self) -> None:
        self.cancelled = True
        self.body.fail(ConnectionResetError("the client went away"))
        if self.task is not None:
            self.task.cancel()


class _Connection(asyncio.Protocol):
    """The host socket: decodes frames, runs a task per stream, writes replies."""

    def __init__(self, thaw: Any, worker: _Worker) -> None:
        self.thaw = thaw
        self.worker = worker
        self.decoder = thaw.Decoder()
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.error: str | None = None
        self.calls: dict[int, _Call] = {}  # binding calls in flight, by stream id
        # Set when a call leaves self.calls: a call waiting for one of the CALLS_MAX slots
        # (many requests of one instance each calling a binding) goes on then.
        self.call_freed = asyncio.Event()
        self.next_call = thaw.STREAM_WORKER_BASE
        self.loop = asyncio.get_running_loop()
        # Frames written in one turn of the loop go out in one write at its end (_write).
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except self.thaw.ProtocolError as error:
            self._fail(f"protocol error from host: {error}")
            return
        for frame_type, stream_id, payload in frames:
            if self.error is not None:
                return
            self._dispatch(frame_type, stream_id, payload)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._out.clear()
        self._out_bytes = 0
        for stream in self.streams.values():
            stream.cancel()
        self.streams.clear()
        for call in self.calls.values():
            call.fail(_bindings.BindingError("the connection to the host was lost"))
        self.calls.clear()
        self.call_freed.set()
        _bindings.set_transport(None)
        self.writable.set()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # Frames in.
    def _dispatch(self, frame_type: int, stream_id: int, payload: bytes) -> None:
        thaw = self.thaw
        if frame_type == thaw.REQ_HEAD:
            self._start_request(stream_id, payload)
            return
        if stream_id >= thaw.STREAM_WORKER_BASE:
            self._call_frame(frame_type, stream_id, payload)
            return
        stream = self.streams.get(stream_id)
        if frame_type == thaw.WINDOW:
            if len(payload) != 4:
                self._fail(f"WINDOW frame with a {len(payload)}-byte payload")
            elif stream is not None:
                stream.add_credit(struct.unpack("<I", payload)[0])
        elif frame_type in (thaw.REQ_BODY, thaw.REQ_END, thaw.CANCEL):
            if stream is None:
                return  # a stream that already finished: the host may not know yet
            if frame_type == thaw.CANCEL:
                del self.streams[stream_id]
                stream.cancel()
            elif frame_type == thaw.REQ_END:
                stream.body.end()
            elif not stream.body.ended:
                stream.body.push(payload)
        else:
            log(f"ignoring an unexpected frame of type {frame_type} from the host")

    # Binding calls (env.ASSETS.fetch): CALL out, CALL_HEAD/BODY/END/ERROR in.
    async def call_binding(self, binding: str, method: str, args: list[tuple[bytes, bytes]],
                           body: Any = None,
                           stream_result: bool = False) -> tuple[int, Headers, Any]:
        """Call a binding's method. ``body``: bytes, or an async iterable of chunks sent as
        they come (":body *", for kinds that spool it). ``stream_result``: the result's credit
        goes back as its body is read, so a large result is never held whole here; its
        body's ``_abandon()`` gives the call up."""
        thaw = self.thaw
        if self.transport is None or self.transport.is_closing():
            raise _bindings.BindingError("the connection to the host is closed")
        # A call that waits on another worker or object (rpc, fetch) may not take the last
        # CALLS_RESERVED slots: those stay for the calls it waits on (a Durable Object's storage
        # in this same instance), so requests waiting on objects cannot starve the objects.
        # A Durable Object's own calls (its code calling another object) may use the reserve:
        # the requests waiting on it hold the other slots.
        limit = thaw.CALLS_MAX - (CALLS_RESERVED if method in ("rpc", "fetch")
                                  and not _in_object.get() else 0)
        while len(self.calls) >= limit:
            self.call_freed.clear()
            await self.call_freed.wait()
            if self.transport is None or self.transport.is_closing():
                raise _bindings.BindingError("the connection to the host is closed")
        streamed = body is not None and not isinstance(body, (bytes, bytearray, memoryview))
        if streamed:
            extra = [(b":body", b"*")]
        else:
            extra = [(b":body", str(len(body)).encode())] if body else []
        payload = thaw.encode_kv([(b":binding", binding.encode("utf-8")),
                                  (b":call", method.encode("utf-8"))] + extra + args)
        if len(payload) > thaw.MAX_PAYLOAD:
            raise _bindings.BindingError(f"the call to {binding}.{method} is too large "
                                         f"({len(payload)} bytes encoded)")
        stream_id = self.next_call
        while stream_id in self.calls:
            stream_id = stream_id + 1 if stream_id < 0xFFFFFFFF else thaw.STREAM_WORKER_BASE
        self.next_call = stream_id + 1 if stream_id < 0xFFFFFFFF else thaw.STREAM_WORKER_BASE
        loop = asyncio.get_running_loop()
        call = _Call(loop)
        call.credit = thaw.STREAM_WINDOW
        result_body: BodyStream | None = None  # the only strong reference to a streamed body
        if stream_result:
            call.stream_result = True
            result_body = BodyStream(
                on_consume=lambda n: self._return_call_credit(stream_id, n))
            result_body._abandon = (  # type: ignore[attr-defined]
                lambda: self._abandon_call(stream_id, call))
            call.hold_weakly(result_body)
            weakref.finalize(result_body, _call_body_dropped, loop, self, stream_id,
                             call).atexit = False
        self.calls[stream_id] = call

        def result() -> tuple[int, Headers, Any]:
            status, headers, body = call.head.result()
            return status, headers, result_body if result_body is not None else body
        if body and not streamed and len(body) <= min(call.credit, RESPONSE_CHUNK) \
                and self.writable.is_set():
            # A small call whole in one write (CALL, its body, CALL_END): the host wakes
            # once for it.
            if self.transport is not None and not self.transport.is_closing():
                self._flush()
                self.transport.write(thaw.encode(thaw.CALL, stream_id, payload)
                                     + thaw.encode(thaw.CALL_BODY, stream_id, bytes(body))
                                     + thaw.encode(thaw.CALL_END, stream_id, b""))
            call.credit -= len(body)
            body = None
        else:
            self._send(thaw.CALL, stream_id, payload)
        try:
            if streamed:
                if not await self._send_call_stream(call, stream_id, body):
                    return result()  # refused early (CALL_ERROR)
                self._send(thaw.CALL_END, stream_id)
            elif body:
                # The request body, within the credit the host returns as it takes it.
                view = memoryview(body)
                offset = 0
                while offset < len(view):
                    while call.credit <= 0:
                        if call.head.done():
                            return result()  # refused early (CALL_ERROR)
                        call.credit_added.clear()
                        waiter = asyncio.ensure_future(call.credit_added.wait())
                        await asyncio.wait([waiter, call.head],
                                           return_when=asyncio.FIRST_COMPLETED)
                        waiter.cancel()
                    if call.head.done():
                        return result()
                    size = min(RESPONSE_CHUNK, call.credit, len(view) - offset)
                    if not self.writable.is_set():
                        await self.writable.wait()
                        if call.head.done():
                            return result()  # refused while we waited
                    self._send(thaw.CALL_BODY, stream_id, bytes(view[offset:offset + size]))
                    call.credit -= size
                    offset += size
                self._send(thaw.CALL_END, stream_id)
            await call.head
            return result()
        except BaseException:
            # Cancelled, or a streamed body's source failed: the host drops the call.
            if self.calls.pop(stream_id, None) is not None and self.transport is not None \
                    and not self.transport.is_closing():
                self._send(thaw.CANCEL, stream_id)
            self.call_freed.set()
            raise

    async def _wait_call_credit(self, call: _Call) -> bool:
        """Wait for request-body credit; False when the call was answered meanwhile."""
        while call.credit <= 0:
            if call.head.done():
                return False
            call.credit_added.clear()
            waiter = asyncio.ensure_future(call.credit_added.wait())
            await asyncio.wait([waiter, call.head], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        return not call.head.done()

    async def _send_call_stream(self, call: _Call, stream_id: int, body: Any) -> bool:
        """Send an async iterable's chunks as CALL_BODY within the call's credit, holding
        one chunk at a time. False when the host answered first."""
        from workers._body import _byte_chunks

        async for chunk in _byte_chunks(body):
            view = memoryview(chunk)
            offset = 0
            while offset < len(view):
                if not await self._wait_call_credit(call):
                    return False
                size = min(RESPONSE_CHUNK, call.credit, len(view) - offset)
                if not self.writable.is_set():
                    await self.writable.wait()
                if call.head.done():
                    return False  # refused (or lost) while we waited: its own error
                if stream_id not in self.calls:
                    raise _bindings.BindingError("the connection to the host was lost")
                self._send(self.thaw.CALL_BODY, stream_id, bytes(view[offset:offset + size]))
                call.credit -= size
                offset += size
        return not call.head.done()

    def _return_call_credit(self, stream_id: int, n: int) -> None:
        if stream_id in self.calls and n:
            self._send(self.thaw.WINDOW, stream_id, struct.pack("<I", n))

    def _abandon_call(self, stream_id: int, call: _Call | None = None) -> None:
        """A streamed result nobody will read: the host stops sending it. ``call``: only if
        it is still the call on stream_id (the id may have been reused)."""
        if call is not None and self.calls.get(stream_id) is not call:
            return
        call = self.calls.pop(stream_id, None)
        self.call_freed.set()
        if call is not None and self.transport is not None and not self.transport.is_closing():
            self._send(self.thaw.CANCEL, stream_id)

    def _call_frame(self, frame_type: int, stream_id: int, payload: bytes) -> None:
        thaw = self.thaw
        call = self.calls.get(stream_id)
        if call is None:
            return  # a call given up (CANCEL sent): its last frames may still come
        if frame_type == thaw.CALL_HEAD:
            if call.head.done() or len(payload) < 2:
                self._fail(f"unexpected CALL_HEAD on call stream {stream_id}")
                return
            try:
                pairs = thaw.decode_kv(payload[2:])
            except thaw.ProtocolError as error:
                self._fail(f"malformed CALL_HEAD key/value list: {error}")
                return
            headers = Headers()
            for name, value in pairs:
                headers.append(name, value)
            # A weakly held body is not put in the head: call_binding hands it out.
            call.head.set_result((struct.unpack("<H", payload[:2])[0], headers,
                                  None if call.stream_result else call.body))
        elif frame_type == thaw.WINDOW:
            if len(payload) != 4:
                self._fail(f"WINDOW frame with a {len(payload)}-byte payload")
                return
            call.credit += struct.unpack("<I", payload)[0]
            call.credit_added.set()
        elif frame_type == thaw.CALL_BODY:
            # Buffered here, credit returned at once: a result nobody reads
            # must not hold its call (and the host's file) open. A streamed one's
            # credit goes back as it is read; dropped unread, the call is given up.
            body = call.body
            if body is None:
                self._abandon_call(stream_id, call)
                return
            body.push(payload)
            if not call.stream_result:
                self._send(thaw.WINDOW, stream_id, struct.pack("<I", len(payload)))
        elif frame_type in (thaw.CALL_END, thaw.CALL_ERROR):
            del self.calls[stream_id]
            self.call_freed.set()
            if frame_type == thaw.CALL_END:
                body = call.body
                if body is not None:
                    body.end()
            else:
                text = payload.decode("utf-8", "replace")
                # A binding refuses bad arguments the way Cloudflare's runtime does: as a
                # TypeError ("TypeError: Key name cannot be empty."); anything else is an error
                # of the call itself.
                if text.startswith("TypeError: "):
                    call.fail(TypeError(text[11:]))
                elif text.startswith("R2Error: "):
                    call.fail(_bindings.R2Error(text[9:]))
                else:
                    call.fail(_bindings.BindingError(text))
        else:
            self._fail(f"unexpected frame of type {frame_type} on call stream {stream_id}")

    def _fail(self, message: str) -> None:
        log(message + "; closing the connection")
        self.error = message
        if self.transport is not None:
            self._flush()
            self.transport.close()

    def _start_request(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id in self.streams:
            self._fail(f"REQ_HEAD for stream {stream_id}, which is not a new stream")
            return
        # An HTTP request's head is decoded in C, its headers checked and folded as
        # Headers.append does; an event's (None) below.
        try:
            head = self.thaw.request_head(payload)
        except self.thaw.ProtocolError as error:
            self._fail(f"malformed REQ_HEAD key/value list: {error}")
            return
        except ValueError as error:
            log(f"rejecting stream {stream_id}: {error}")
            self._send(self.thaw.RESP_ERROR, stream_id, f"bad request head: {error}".encode())
            return
        if head is None:
            self._start_event(stream_id, payload)
            return
        method, url, entries, cf, entrypoint = head
        body = BodyStream(on_consume=lambda n: self._return_credit(stream_id, n))
        stream = _Stream(stream_id, self.thaw.STREAM_WINDOW, body)
        self.streams[stream_id] = stream
        request = Request._incoming(method, url, Headers._of(entries), body, cf)
        stream.task = self.loop.create_task(
            self._handle(stream, request, entrypoint), name=f"thaw stream {stream_id}"
        )

    def _start_event(self, stream_id: int, payload: bytes) -> None:
        """A REQ_HEAD whose third pair is ":event": a cron trigger, an RPC call, a Durable
        Object's call or a queue's batch."""
        try:
            pairs = self.thaw.decode_kv(payload)
        except self.thaw.ProtocolError as error:
            self._fail(f"malformed REQ_HEAD key/value list: {error}")
            return
        stream = _Stream(stream_id, self.thaw.STREAM_WINDOW)
        stream.body = BodyStream(on_consume=lambda n: self._return_credit(stream_id, n))
        self.streams[stream_id] = stream
        try:
            if len(pairs) < 2 or pairs[0][0] != b":method" or pairs[1][0] != b":url":
                raise ValueError("REQ_HEAD must start with :method and :url")
            method = pairs[0][1].decode("latin-1")
            url = pairs[1][1].decode("utf-8", "surrogateescape")
            if len(pairs) >= 5 and pairs[2] == (b":event", b"scheduled"):
                if pairs[3][0] != b":cron" or pairs[4][0] != b":scheduled-time":
                    raise ValueError("a scheduled event needs :cron and :scheduled-time")
                controller = ScheduledController(pairs[3][1].decode("utf-8", "replace"),
                                                 int(pairs[4][1].decode("ascii")))
                stream.task = asyncio.get_running_loop().create_task(
                    self._handle_scheduled(stream, controller), name=f"thaw stream {stream_id}"
                )
                return
            if len(pairs) >= 5 and pairs[2] == (b":event", b"rpc"):
                if pairs[3][0] != b":entrypoint" or pairs[4][0] != b":rpc-method":
                    raise ValueError("an RPC event needs :entrypoint and :rpc-method")
                stream.task = asyncio.get_running_loop().create_task(
                    self._handle_rpc(stream, pairs[3][1].decode("utf-8", "replace"),
                                     pairs[4][1].decode("utf-8", "replace")),
                    name=f"thaw stream {stream_id}"
                )
                return
            if len(pairs) >= 7 and pairs[2] == (b":event", b"do"):
                if [k for k, _ in pairs[3:7]] != [b":do-class", b":do-id", b":do-binding",
                                                  b":do-op"]:
                    raise ValueError("a Durable Object event needs :do-class, :do-id, "
                                     ":do-binding and :do-op")
                cls, oid, binding, op = (v.decode("utf-8", "replace") for _, v in pairs[3:7])
                stream.task = asyncio.get_running_loop().create_task(
                    self._handle_do(stream, method, url, cls, oid, binding, op, pairs[7:]),
                    name=f"thaw stream {stream_id}"
                )
                return
            if len(pairs) >= 4 and pairs[2] == (b":event", b"queue"):
                if pairs[3][0] != b":queue":
                    raise ValueError("a queue event needs :queue")
                stream.task = asyncio.get_running_loop().create_task(
                    self._handle_queue(stream, pairs[3][1].decode("utf-8", "replace")),
                    name=f"thaw stream {stream_id}"
                )
                return
            headers = Headers()
            cf: dict[str, str] = {}
            entrypoint = ""
            for name, value in pairs[2:]:
                if name.startswith(b":cf-"):  # the host's facts: request.cf
                    cf[name[4:].decode("latin-1")] = value.decode("latin-1")
                elif name == b":entrypoint":  # a service binding to a named entrypoint
                    entrypoint = value.decode("utf-8", "replace")
                else:
                    headers.append(name, value)
            if "accept-encoding" in headers:
                cf["clientAcceptEncoding"] = headers["accept-encoding"]
            request = Request._incoming(method, url, headers, stream.body, cf)
        except ValueError as error:
            del self.streams[stream_id]
            log(f"rejecting stream {stream_id}: {error}")
            self._send(self.thaw.RESP_ERROR, stream_id, f"bad request head: {error}".encode())
            return
        stream.task = asyncio.get_running_loop().create_task(
            self._handle(stream, request, entrypoint), name=f"thaw stream {stream_id}"
        )

    def _return_credit(self, stream_id: int, increment: int) -> None:
        if increment > 0 and stream_id in self.streams:
            self._send(self.thaw.WINDOW, stream_id, struct.pack("<I", increment))

    # Frames out.
    def _send(self, frame_type: int, stream_id: int, payload: bytes = b"") -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._flush()  # (in order after the responses queued before it)
        self.transport.write(self.thaw.encode(frame_type, stream_id, payload))

    def _queue(self, frame_type: int, stream_id: int, payload: bytes = b"") -> None:
        """A response's frame (RESP_HEAD, RESP_BODY, RESP_END), queued (_write)."""
        if self.transport is None or self.transport.is_closing():
            return
        if frame_type == self.thaw.RESP_HEAD:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.head_sent = True
        self._write(self.thaw.encode(frame_type, stream_id, payload))

    def _write(self, data: bytes) -> None:
        """Queue response frames for the host. Those of one turn of the loop (the responses
        of every request that turn ran) go out in one write at its end, or at once past
        OUTPUT_COALESCE bytes: each write wakes the host. Other frames flush the queue
        and go at once (_send)."""
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= OUTPUT_COALESCE:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_bytes = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _memory_exceeded(self, error: BaseException) -> bool:
        """A MemoryError that left a handler, in an instance with a memory limit: the limit
        (RLIMIT_DATA) was reached. Answer every request this instance holds 503, as the host
        does when the kernel kills an instance over its cgroup's limit, and exit with
        EXIT_MEMORY once that is written: the heap may be in any state, so the instance is
        replaced. False (the error is the handler's like any other) without a limit."""
        limit = self.worker.memory_bytes
        if not isinstance(error, MemoryError) or not limit:
            return False
        if self.error is not None:
            return True  # already on its way out
        self.error = "exceeded its memory limit"
        body = f"Worker exceeded its memory limit ({limit >> 20} MiB).\n".encode()
        log(f"MemoryError: the instance is over its memory limit ({limit >> 20} MiB); "
            "answering its requests 503 and exiting")
        # First: the host gives it no more requests (else one sent after these answers
        # would be lost with the instance, a 502 for a request that never ran).
        self._send(self.thaw.EXITING, 0, b"memory")
        for stream in list(self.streams.values()):
            if stream.cancelled or stream.head_sent:
                continue
            self._queue(self.thaw.RESP_HEAD, stream.id, struct.pack("<H", 503)
                        + self.thaw.encode_kv([(b"content-type", b"text/plain; charset=utf-8")]))
            if stream.credit >= len(body):
                self._queue(self.thaw.RESP_BODY, stream.id, body)
            self._queue(self.thaw.RESP_END, stream.id)
        self._exit_when_written(time.monotonic() + 1.0)
        return True

    def _exit_when_written(self, deadline: float) -> None:
        self._flush()
        transport = self.transport
        if (transport is not None and not transport.is_closing()
                and transport.get_write_buffer_size() and time.monotonic() < deadline):
            self.loop.call_later(0.005, self._exit_when_written, deadline)
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError, MemoryError):
                pass
        os._exit(self.thaw.EXIT_MEMORY)

    async def _handle(self, stream: _Stream, request: Request, entrypoint: str = "") -> None:
        _current_stream.set(stream.id)  # this task's own context
        # Responses queued by the handlers before this one go out before its code runs: it
        # may block the loop (synchronous work) for as long as it likes.
        self._flush()
        _fetch.begin_request(self.worker.subrequests)
        try:
            if entrypoint:
                # A service binding's fetch to a named entrypoint (its class's fetch).
                instance = _entrypoint_instance(entrypoint, self.worker.env)
                fetch = getattr(instance, "fetch", None)
                if not callable(fetch):
                    await self._send_rpc_error(stream, TypeError(
                        "Handler does not export a fetch() function."), 500)
                    return
                is_method = inspect.isfunction(inspect.getattr_static(type(instance), "fetch"))
                arity = _leading(getattr(type(instance), "fetch"), is_method)
                response = fetch(*(request, self.worker.env, instance.ctx)[:arity])
                if inspect.isawaitable(response):
                    response = await response
                if not isinstance(response, Response):
                    raise TypeError(f"the handler returned {type(response).__name__}, "
                                    "expected a workers.Response")
                await self._send_response(stream, response)
                return
            if self.worker.call is None:
                # A worker of cron triggers or queues only: every request gets this 500,
                # marked so that a host's deploy check knows the worker itself is sound.
                text = (f"{self.worker.main} has no fetch handler (it has only `scheduled` or "
                        "`queue`): add `async def fetch(self, request)` to class Default to "
                        "answer requests\n")
                await self._send_response(stream, Response(
                    text, status=500, headers={"thaw-no-fetch-handler": "1"}))
                return
            response = self.worker.call(request, Context(), self.worker.env)
            if inspect.isawaitable(response):
                response = await response
            if not isinstance(response, Response):
                raise TypeError(
                    f"the handler returned {type(response).__name__}, expected a workers.Response"
                )
            await self._send_response(stream, response)
        except asyncio.CancelledError:
            if stream.cancelled or self.closed.done():
                return  # the client or the host went away: nothing more to send
            self._report_error(stream, request, "the handler was cancelled (CancelledError)")
        except (Exception, SystemExit) as error:
            if self._memory_exceeded(error):
                return
            error.__traceback__ = _user_traceback(error.__traceback__)
            self._report_error(stream, request, format_exception(error))
        finally:
            if self.streams.get(stream.id) is stream:
                del self.streams[stream.id]

    async def _handle_scheduled(self, stream: _Stream, controller: ScheduledController) -> None:
        """Run the scheduled handler; answer 200 or 500 with how it went.

        The answer is for the host (a run record) and for `thaw dev --test-scheduled`:
        `thaw-outcome: ok|exception`, `thaw-no-retry: 1` when the handler asked for it,
        and the error's last line as the body."""
        _current_stream.set(stream.id)
        _fetch.begin_request(self.worker.subrequests)
        status, outcome, body = 200, "ok", b"Ran scheduled event\n"
        try:
            if self.worker.scheduled is None:
                raise LookupError(
                    f"{self.worker.main} has no scheduled handler: add `async def scheduled(self, "
                    "controller, env, ctx)` to class Default for cron triggers"
                )
            result = self.worker.scheduled(controller, Context(), self.worker.env)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            if stream.cancelled or self.closed.done():
                return
            status, outcome, body = 500, "exception", b"CancelledError\n"
        except (Exception, SystemExit) as error:
            if self._memory_exceeded(error):
                return
            error.__traceback__ = _user_traceback(error.__traceback__)
            text = format_exception(error)
            log(f"error in the scheduled handler (cron {controller.cron!r}):\n{text}")
            last = text.rstrip("\n").rsplit("\n", 1)[-1]
            status, outcome, body = 500, "exception", (last + "\n").encode("utf-8", "replace")
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"thaw-outcome", outcome.encode())]
        if controller._no_retry:
            headers.append((b"thaw-no-retry", b"1"))
        await self._answer(stream, status, headers, body[:4096])

    async def _handle_queue(self, stream: _Stream, queue: str) -> None:
        """Run the queue handler on the batch in the request body (a JSON line of the
        messages' facts, then their bodies); answer 200 or 500 with `thaw-outcome` and
        `{"acked": [i..], "retried": [[i, delay]..]}`: what the handler said explicitly
        (the host applies Cloudflare's rule to the rest)."""
        _current_stream.set(stream.id)
        _fetch.begin_request(self.worker.subrequests)
        status, outcome = 200, "ok"
        batch = _bindings.MessageBatch(queue)
        try:
            data = b""
            while True:
                chunk = await stream.body.read()
                if chunk is None:
                    break
                data += chunk
                if len(data) > 1 << 20:
                    raise ValueError("the batch is too large")
            line, _, rest = data.partition(b"\n")
            offset = 0
            for index, facts in enumerate(json.loads(line)):
                size = int(facts["len"])
                raw = rest[offset:offset + size]
                offset += size
                stamp = datetime.datetime.fromtimestamp(int(facts["timestamp"]) / 1000,
                                                        datetime.timezone.utc)
                batch.messages.append(_bindings.Message(
                    batch, index, str(facts["id"]), stamp,
                    _bindings.queue_deserialize(raw, str(facts["content_type"])),
                    int(facts["attempts"])))
            if _queue_handler is None:
                raise LookupError(
                    f"{self.worker.main} has no queue handler: add `async def queue(self, "
                    "batch, env, ctx)` to class Default to consume a queue"
                )
            result = _queue_handler(batch, Context(), self.worker.env)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            if stream.cancelled or self.closed.done():
                return
            status, outcome = 500, "exception"
        except (Exception, SystemExit) as error:
            if self._memory_exceeded(error):
                return
            error.__traceback__ = _user_traceback(error.__traceback__)
            text = format_exception(error)
            log(f"error in the queue handler (queue {queue!r}):\n{text}")
            status, outcome = 500, "exception"
        body = json.dumps(batch._answer(), separators=(",", ":")).encode()
        await self._answer(stream, status, [(b"content-type", b"application/json"),
                                            (b"thaw-outcome", outcome.encode())], body)

    async def _handle_rpc(self, stream: _Stream, entrypoint: str, method: str) -> None:
        """Call an RPC method of an entrypoint (workers._rpc): the arguments are the request
        body; answer 200 with `thaw-rpc: result` and the encoded result, or `thaw-rpc: error`
        and the exception's type name and message (which the caller raises)."""
        _current_stream.set(stream.id)
        _fetch.begin_request(self.worker.subrequests)
        await self._rpc_on(stream, lambda: _entrypoint_instance(entrypoint, self.worker.env),
                           method)

    async def _durable_object(self, cls: str, oid: str, binding: str) -> Any:
        """The instance's object of class ``cls`` with id ``oid``, made on its first call
        (``Class(ctx, env)``); the host sends an object's calls to one instance only. Calls
        that come while the constructor runs (it may wait, e.g. on ``sql.exec``) wait for
        that one object."""
        key = (cls, oid)
        found = _objects.get(key)
        if isinstance(found, asyncio.Future):
            return await asyncio.shield(found)
        if found is not None:
            return found
        klass = getattr(_entry_module, cls, None) if _entry_module is not None else None
        if not isinstance(klass, type):
            raise TypeError(f"the worker's entry module has no Durable Object class {cls!r} "
                            "(durable_objects.bindings' class_name)")
        made: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        _objects[key] = made
        try:
            state = _durable.DurableObjectState(binding, _bindings.DurableObjectId(oid))
            obj = klass(state, self.worker.env)
        except BaseException as error:
            del _objects[key]
            made.set_exception(error)
            made.exception()  # retrieved: the waiters raise it too
            raise
        _objects[key] = obj
        made.set_result(obj)
        return obj

    async def _handle_do(self, stream: _Stream, method: str, url: str, cls: str, oid: str,
                         binding: str, op: str, rest: list[tuple[bytes, bytes]]) -> None:
        """A call to a Durable Object held by this instance: an RPC method, its fetch, or
        its alarm, each entering the object's input gate first (workers._durable)."""
        _current_stream.set(stream.id)
        _fetch.begin_request(self.worker.subrequests)
        _in_object.set(True)
        if op == "evict":
            await self._evict_object(stream, (cls, oid))
            return
        try:
            obj = await self._durable_object(cls, oid, binding)
        except (Exception, SystemExit) as error:
            await self._send_rpc_error(stream, error, 500)
            return
        obj.ctx._active += 1
        try:
            await self._call_object(stream, obj, method, url, op, rest)
        finally:
            obj.ctx._active -= 1

    async def _evict_object(self, stream: _Stream, key: tuple[str, str]) -> None:
        """The host evicts an idle object: drop it unless a call is in it now (then the host
        keeps it pinned here). Answers `thaw-do-evicted: 1` when the instance holds it no
        more."""
        found = _objects.get(key)
        dropped = found is None
        if found is not None and not isinstance(found, asyncio.Future):
            ctx = found.ctx
            gate = ctx._gate
            if not (ctx._active or gate.ops or gate.blocked or gate.waiters):
                del _objects[key]
                dropped = True
        await self._answer(stream, 200, [(b"thaw-rpc", b"result"),
                                         (b"thaw-do-evicted", b"1" if dropped else b"0")], b"")

    async def _call_object(self, stream: _Stream, obj: Any, method: str, url: str, op: str,
                           rest: list[tuple[bytes, bytes]]) -> None:
        gate = obj.ctx._gate
        if op == "rpc":
            name = rest[0][1].decode("utf-8", "replace") if rest and \
                rest[0][0] == b":rpc-method" else ""
            await self._rpc_on(stream, lambda: obj, name, gate=gate)
        elif op == "alarm":
            retry = int(rest[0][1]) if rest and rest[0][0] == b":do-retry" else 0
            info = {"retry_count": retry, "is_retry": retry > 0,
                    "retryCount": retry, "isRetry": retry > 0}

            async def run() -> Any:
                alarm = getattr(obj, "alarm", None)
                if not callable(alarm):
                    raise TypeError("the Durable Object has no alarm() method")
                takes = _leading(alarm, False) if not inspect.ismethod(alarm) else \
                    _leading(alarm.__func__, True)
                result = alarm(*((info,)[:takes]))
                if inspect.isawaitable(result):
                    await result
                return None
            obj.ctx._in_alarm, obj.ctx._alarm_set = True, False
            try:
                await self._rpc_on(stream, lambda: None, "", call=run, gate=gate)
            finally:
                obj.ctx._in_alarm = False
        elif op == "fetch":
            headers = Headers()
            for name, value in rest:
                headers.append(name, value)
            request = Request._incoming(method, url, headers, stream.body, {})
            fetch = getattr(obj, "fetch", None)
            if not callable(fetch):
                await self._send_rpc_error(stream, TypeError(
                    "Handler does not export a fetch() function."), 500)
                return
            await gate.enter()
            try:
                response = fetch(request)
                if inspect.isawaitable(response):
                    response = await response
                if not isinstance(response, Response):
                    raise TypeError(f"fetch() returned {type(response).__name__}, "
                                    "expected a workers.Response")
            except (Exception, SystemExit) as error:
                await self._send_rpc_error(stream, error, 500)
                return
            await self._send_response(stream, response)
        else:
            await self._send_rpc_error(stream, ValueError(f"unknown Durable Object op {op!r}"),
                                       500)

    async def _rpc_on(self, stream: _Stream, target_of: Callable[[], Any], method: str,
                      call: Callable[[], Awaitable[Any]] | None = None,
                      gate: Any = None) -> None:
        """Run method on target_of() with the request body's arguments (or call()), and
        answer with its encoded result or error. ``gate``: an object's input gate, entered
        once the arguments are in, right before the method runs."""
        try:
            if call is not None:
                if gate is not None:
                    await gate.enter()
                result = await call()
                body = _rpc.encode(result)
                await self._send_rpc(stream, 200, "result", body)
                return
        except asyncio.CancelledError:
            if stream.cancelled or self.closed.done():
                return
            await self._send_rpc_error(stream, RuntimeError("the call was cancelled"), 200)
            return
        except (Exception, SystemExit) as error:
            await self._send_rpc_error(stream, error, 200)
            return
        try:
            data = bytearray()
            while True:
                chunk = await stream.body.read()
                if chunk is None:
                    break
                data += chunk
                if len(data) > _rpc.MESSAGE_MAX:
                    raise ValueError(f"the RPC arguments are larger than {_rpc.MESSAGE_MAX} bytes")
            args, kwargs = _rpc.decode_call(bytes(data))
            target = target_of()
            function = _rpc.method_of(target, method)
            if gate is not None:
                await gate.enter()
            result = function(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            body = _rpc.encode(result)
        except asyncio.CancelledError:
            if stream.cancelled or self.closed.done():
                return
            await self._send_rpc_error(stream, RuntimeError("the RPC method was cancelled"), 200)
            return
        except (Exception, SystemExit) as error:
            await self._send_rpc_error(stream, error, 200)
            return
        await self._send_rpc(stream, 200, "result", body)

    async def _send_rpc_error(self, stream: _Stream, error: BaseException, status: int) -> None:
        if self._memory_exceeded(error):
            return
        log(f"error in an RPC call: {type(error).__name__}: {error}")
        await self._send_rpc(stream, status, "error", _rpc.encode_error(error))

    async def _send_rpc(self, stream: _Stream, status: int, outcome: str, body: bytes) -> None:
        await self._answer(stream, status, [(b"content-type", b"application/octet-stream"),
                                            (b"thaw-rpc", outcome.encode())], body)

    async def _answer(self, stream: _Stream, status: int, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> None:
        """An answer made whole here (an event's outcome, an RPC result): its head, its body
        within the stream's credit, its end; the stream is done after."""
        try:
            if not stream.cancelled:
                head = struct.pack("<H", status) + self.thaw.encode_kv(headers)
                self._queue(self.thaw.RESP_HEAD, stream.id, head)
                await self._send_body(stream, body)
                self._queue(self.thaw.RESP_END, stream.id)
        except asyncio.CancelledError:
            pass
        finally:
            if self.streams.get(stream.id) is stream:
                del self.streams[stream.id]

    def _report_error(self, stream: _Stream, request: Request, text: str) -> None:
        log(f"error handling {request.method} {request.url}:\n{text}")
        if not stream.cancelled:
            data = text.encode("utf-8", "replace")
            self._send(self.thaw.RESP_ERROR, stream.id, data[-self.thaw.MAX_PAYLOAD:])

    async def _send_response(self, stream: _Stream, response: Response) -> None:
        thaw = self.thaw
        headers = response.headers
        entries = headers._entries if type(headers) is Headers else list(headers.items())
        buffered = response._buffered()
        if (buffered is not None and len(buffered) <= min(stream.credit, RESPONSE_CHUNK)
                and self.writable.is_set()):
            # The common case: head, body and end made in C, one write.
            frames = thaw.response(stream.id, response.status, entries, buffered)
            if self.transport is not None and not self.transport.is_closing():
                stream.head_sent = True
                stream.credit -= len(buffered)
                self._write(frames)
            self._after_response()
            return
        head = thaw.response(stream.id, response.status, entries)[12:]  # the RESP_HEAD payload
        if buffered is not None:
            self._queue(self.thaw.RESP_HEAD, stream.id, head)
            await self._send_body(stream, buffered)
        else:
            chunks = response._take_stream()
            # A stream's head and each chunk go out as they are made: its producer may not
            # yield to the loop between chunks (a sync generator), and the end of the turn
            # could be seconds away (the host would answer 504 before the head).
            self._queue(self.thaw.RESP_HEAD, stream.id, head)
            self._flush()
            try:
                async for chunk in chunks:
                    await self._send_body(stream, chunk)
                    self._flush()
            finally:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
        self._queue(self.thaw.RESP_END, stream.id)
        self._after_response()

    def _after_response(self) -> None:
        if getattr(self.worker, "record_ws", None):
            path, self.worker.record_ws = self.worker.record_ws, None
            self._flush()  # the response first: recording takes a page-map walk
            try:
                self.thaw.record_working_set(path)
            except OSError as error:
                log(f"could not record the working set: {error}")
            else:
                self._send(self.thaw.WS_DONE, 0)

    async def _send_body(self, stream: _Stream, data: bytes) -> None:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            size = await stream.take_credit(min(RESPONSE_CHUNK, len(view) - offset))
            if not self.writable.is_set():
                await self.writable.wait()
            self._queue(self.thaw.RESP_BODY, stream.id, bytes(view[offset : offset + size]))
            offset += size

