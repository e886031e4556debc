"""What the runtime does around a memory snapshot: watch entropy, refuse what cannot be carried,
reseed after a restore.

Every instance restored from a snapshot starts from the same bytes. A value the
top-level code drew from the kernel's randomness (a token, a key, a UUID, the
seed of a ``random.Random()``) would be the same in all of them. So, while the
snapshot is built:

- ``random``'s global generator is seeded with a fixed poison (the image holds a
  known state; every restore reseeds it from the kernel);
- the functions that draw from the kernel are watched: ``os.urandom``,
  ``os.getrandom``, ``random._urandom`` (what ``random.SystemRandom``, ``secrets``
  and, through ``os.urandom``, ``uuid.uuid4`` use) and ``random.Random.seed(None)``
  (how a fresh ``random.Random()`` seeds itself). A watched call is recorded with
  what was called and where in the project, then still returns real entropy;
- draws the runtime undoes after every restore are not counted: the global
  generator of ``numpy.random`` seeded when it is imported, the authentication
  key ``multiprocessing`` makes when it is imported, ``tempfile``'s name sequence.

Not watched: entropy drawn by C code without Python (OpenSSL's generator,
``_random.Random()`` made directly, an extension calling ``getrandom(2)``).
OpenSSL's generator, when ``ssl`` is loaded, gets fresh kernel entropy mixed in
after every restore.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import linecache
import os
import random
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The seed of random's global generator while a snapshot is built ("thaw").
POISON = 0x74686177

# Where a call to a watched function is only the plumbing of the API the caller used.
_PLUMBING_MODULES = frozenset({"random", "secrets", "uuid"})
# Directories inside a project that hold its dependencies, not its own code.
_DEPENDENCY_DIRS = frozenset({"python_modules", "site-packages", "dist-packages", ".venv", "venv"})
MAX_SITES = 100  # distinct call sites recorded
MAX_REPORTED = 5  # of which an error message lists


@dataclass(frozen=True)
class EntropyUse:
    """One place where entropy was drawn while the snapshot was built."""

    call: str  # what was called, e.g. "os.urandom()"
    file: str  # relative to the project directory when inside it
    line: int
    source: str  # the source line, stripped ("" when unknown)
    via: str = ""  # "FILE:LINE" of the code that made the call, when not at ``file:line``

    def describe(self) -> str:
        text = f"{self.call} at {self.file}:{self.line}"
        if self.source:
            text += f": `{self.source}`"
        if self.via:
            text += f" (from {self.via})"
        return text


def _neutralised(frame: types.FrameType | None) -> bool:
    """Whether the draw made under ``frame`` is undone by ``reseed_after_restore``."""
    while frame is not None:
        name = frame.f_globals.get("__name__")
        code = frame.f_code
        if code.co_name == "<module>" and isinstance(name, str) and (
            name == "multiprocessing.process"  # _MainProcess's authkey
            or name == "numpy.random" or name.startswith("numpy.random.")  # the global RandomState
        ):
            return True
        if name == "tempfile" and code.co_name == "rng":  # _RandomNameSequence.rng
            return True
        frame = frame.f_back
    return False


def _api_name(frame: types.FrameType) -> str:
    """The name of the call that ``frame`` (in random, secrets or uuid) is running."""
    module = frame.f_globals.get("__name__")
    code = frame.f_code
    if module == "random":
        instance = frame.f_locals.get("self") if code.co_varnames[:1] == ("self",) else None
        if isinstance(instance, random.Random):
            cls = type(instance)
            prefix = "random." if cls.__module__ == "random" else f"{cls.__module__}."
            if code.co_name == "__init__":
                return f"{prefix}{cls.__qualname__}()"
            return f"{prefix}{cls.__qualname__}.{code.co_name}()"
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}()"


class EntropyWatch:
    """Wraps the functions that draw from the kernel and records who calls them while active."""

    def __init__(self, project_dir: str) -> None:
        self.project_dir = os.path.abspath(project_dir)
        self.project_real = os.path.realpath(project_dir)
        self.active = False
        self.uses: list[EntropyUse] = []
        self.calls = 0
        self._seen: set[tuple[str, str, int]] = set()
        self._local = threading.local()
        self._patches: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, wrapper)

    # Installing and removing.
    def install(self) -> None:
        """Poison random's global generator and start watching."""
        random.seed(POISON)
        self._patch(os, "urandom", "os.urandom()", lambda *a, **k: True)
        if hasattr(os, "getrandom"):
            self._patch(os, "getrandom", "os.getrandom()", lambda *a, **k: True)
        # random.py binds os.urandom at import: SystemRandom and secrets call it by this name.
        self._patch(random, "_urandom", "os.urandom()", lambda *a, **k: True)
        # random.Random() seeds itself with seed(None), from the kernel, in C.
        self._patch(random.Random, "seed", "random.Random.seed()",
                    lambda self, a=None, *args, **kwargs: a is None)
        self.active = True

    def _patch(self, owner: Any, name: str, call: str, counts: Callable[..., bool]) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        watch = self

        @functools.wraps(original)
        def watched(*args: Any, **kwargs: Any) -> Any:
            if watch.active and counts(*args, **kwargs):
                watch._record(call)
            return original(*args, **kwargs)

        setattr(owner, name, watched)
        self._patches.append((owner, name, original, watched))

    def remove(self) -> None:
        """Put the original functions back, also where a module imported the watched ones."""
        self.active = False
        originals = {id(wrapper): (wrapper, original)
                     for _, _, original, wrapper in self._patches}
        for owner, name, original, _ in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        # `from os import urandom` run while watching bound a wrapper in that module.
        for module in list(sys.modules.values()):
            if not issubclass(type(module), types.ModuleType):
                continue
            namespace = module.__dict__
            for name, value in list(namespace.items()):
                entry = originals.get(id(value))
                if entry is not None and entry[0] is value:
                    namespace[name] = entry[1]

    # Recording.
    def _record(self, call: str) -> None:
        local = self._local
        if getattr(local, "busy", False):
            return
        local.busy = True
        try:
            self.calls += 1
            # Frames: 0 _record, 1 the wrapper, 2 its caller.
            self._record_from(call, sys._getframe(2))
        finally:
            local.busy = False

    def _record_from(self, call: str, frame: types.FrameType | None) -> None:
        api = None
        while frame is not None and frame.f_globals.get("__name__") in _PLUMBING_MODULES:
            api = frame
            frame = frame.f_back
        if api is not None:
            call = _api_name(api)
        if frame is None:
            key, use = (call, "", 0), EntropyUse(call, "an unknown place", 0, "")
        else:
            if _neutralised(frame):
                return
            site = self._innermost(frame, own_code_only=True) or self._innermost(frame) or frame
            key = (call, site.f_code.co_filename, site.f_lineno)
            if key in self._seen:
                return
            via = ""
            if frame is not site:
                via = f"{self._display(frame.f_code.co_filename)}:{frame.f_lineno}"
            source = linecache.getline(site.f_code.co_filename, site.f_lineno,
                                       site.f_globals).strip()
            use = EntropyUse(call, self._display(site.f_code.co_filename), site.f_lineno,
                             source, via)
        if key in self._seen or len(self._seen) >= MAX_SITES:
            return
        self._seen.add(key)
        self.uses.append(use)

    def _relative(self, filename: str) -> str | None:
        """``filename`` relative to the project directory, or None when outside it."""
        if not filename or filename.startswith("<"):
            return None
        path = os.path.abspath(filename)
        for root, candidate in ((self.project_dir, path),
                                (self.project_real, os.path.realpath(path))):
            if candidate.startswith(root + os.sep):
                return os.path.relpath(candidate, root)
        return None

    def _display(self, filename: str) -> str:
        return self._relative(filename) or filename

    def _innermost(self, frame: types.FrameType | None,
                   own_code_only: bool = False) -> types.FrameType | None:
        """The innermost frame from ``frame`` outwards in the project (its own code only)."""
        while frame is not None:
            relative = self._relative(frame.f_code.co_filename)
            if relative is not None and not (
                own_code_only and _DEPENDENCY_DIRS.intersection(relative.split(os.sep))
            ):
                return frame
            frame = frame.f_back
        return None

    def error_message(self) -> str:
        """The build error naming each distinct call site (at most MAX_REPORTED)."""
        head = "top-level code consumed entropy while the snapshot was built:"
        advice = (
            "Values made at import are shared by every instance restored from the snapshot. "
            "Move this into the handler or an after_restore hook, or set "
            "`[tool.thaw] allow_entropy_at_import = true` to accept it."
        )
        shown = [use.describe() for use in self.uses[:MAX_REPORTED]]
        if len(shown) == 1:
            return f"{head} {shown[0]}. {advice}"
        lines = [head] + [f"  {text}" for text in shown]
        if len(self.uses) > len(shown):
            lines.append(f"  (and {len(self.uses) - len(shown)} more)")
        return "\n".join(lines + [advice])


def thread_problem() -> str | None:
    """Why the live threads other than this one prevent a snapshot, or None."""
    current = threading.current_thread()
    others = [thread.name for thread in threading.enumerate() if thread is not current]
    if not others:
        return None
    if len(others) == 1:
        return (f"top-level code started a thread ({others[0]}): start it in an after_restore "
                "hook (or stop it in a before_snapshot hook); a snapshot holds one thread")
    return (f"top-level code started threads ({', '.join(others)}): start them in an "
            "after_restore hook (or stop them in a before_snapshot hook); a snapshot holds "
            "one thread")


def event_loop_problem() -> str | None:
    """Why an asyncio event loop left running or open prevents a snapshot, or None."""
    if asyncio._get_running_loop() is not None:
        return ("an asyncio event loop is running while the snapshot is built: "
                "top-level code must not run a loop forever; run work in the handler "
                "or an after_restore hook")
    current = None
    # Peek without asking for a loop: get_event_loop() would make one. None: never asked for.
    policy = getattr(asyncio.events, "_event_loop_policy", None)
    if policy is not None:
        current = getattr(getattr(policy, "_local", None), "_loop", None)
    if current is not None and not current.is_closed():
        return ("top-level code left an asyncio event loop open and set as the current loop "
                "(asyncio.get_event_loop() or set_event_loop() at import): its selector and "
                "sockets cannot be carried into the snapshot. Make loops in the handler "
                "(thaw runs it on its own loop) or use asyncio.run(); or close it in a "
                "before_snapshot hook: `loop.close(); asyncio.set_event_loop(None)`")
    gc.collect()  # a loop nothing refers to any more is closed when collected
    open_loops = sum(1 for obj in gc.get_objects()
                     if issubclass(type(obj), asyncio.AbstractEventLoop) and not obj.is_closed())
    if open_loops:
        return (f"top-level code left {open_loops} asyncio event loop(s) open "
                "(asyncio.new_event_loop() without loop.close()): their selectors and sockets "
                "cannot be carried into the snapshot. Close them, use asyncio.run(), or make "
                "them in the handler or an after_restore hook")
    return None


def poison_numpy() -> None:
    """Seed numpy's global generator with the poison, when numpy.random is loaded."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed(POISON)


def reseed_after_restore() -> None:
    """Give this instance its own entropy: what a snapshot shares and must not."""
    random.seed()  # the global generator, from the kernel
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile._name_sequence = None  # type: ignore[attr-defined]
    # OpenSSL needs nothing here: its DRBGs reseed themselves when the process
    # id changes (their fork detection), and a restored process always has a
    # new one. Calling ssl.RAND_add would instead build OpenSSL's whole DRBG
    # chain on the request path (measured: ~650 page faults, ~2 ms).
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.current_process().authkey = os.urandom(32)  # type: ignore[attr-defined]
    # The builder's thread id is cached; this process has its own.
    set_native_id = getattr(threading.current_thread(), "_set_native_id", None)
    if set_native_id is not None:
        set_native_id()
