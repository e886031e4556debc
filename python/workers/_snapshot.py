"""What the runtime does around a memory snapshot: watch entropy, refuse what cannot be carried,
reseed after a restore.

Every instance restored from a snapshot starts from the same bytes. A value the
top-level code drew from the kernel's randomness (a token, a key, a UUID, a
number drawn from a freshly seeded generator) would be the same in all of them.
A *generator* made at import is another matter: it holds no value yet, and thaw
gives it a new seed in every restored instance. So, while the snapshot is built:

- ``random``'s global generator is seeded with a fixed poison (the image holds a
  known state; every restore reseeds it from the kernel, as a fork does);
- every ``random.Random`` seeded from the kernel (``random.Random()``,
  ``seed()``/``seed(None)``) is remembered by a weak reference and reseeded from
  the kernel after every restore; so are numpy's generators (``default_rng()``,
  ``Generator(PCG64())``, ``RandomState()``) whose seed was drawn during the
  build, found when the build ends. A generator seeded with a value of the
  user's (``Random(42)``) is left alone: its sequence is meant to repeat;
- what is drawn is watched: the kernel's randomness (``os.urandom``,
  ``os.getrandom``, ``random._urandom``, through which ``random.SystemRandom``,
  ``secrets`` and ``uuid.uuid4`` draw) and numbers drawn from a generator that
  will be reseeded (``random.random()``, ``rng.randint()`` on a remembered
  ``random.Random``). Each such draw is recorded with what was called and where
  in the project, and fails the build unless ``allow_entropy_at_import``;
- numpy seeds through ``secrets.randbits`` from C, where no Python frame shows
  who called: the name ``randbits`` in ``numpy.random.bit_generator`` is wrapped
  to mark those draws, and when the build ends they are matched by value to the
  bit generators alive (``_find_numpy``): the seed of one whose state is still
  fresh is not counted (it is reseeded); anything else is a value kept;
- draws the runtime undoes after every restore are not counted: the global
  generator of ``numpy.random`` seeded when it is imported, the authentication
  key ``multiprocessing`` makes when it is imported, ``tempfile``'s names; nor
  are known probes whose value is thrown away at once (``_HARMLESS_DRAWS``: the
  stdlib ``crypt`` module testing its methods, passlib testing ``os.urandom``).

Not watched: entropy drawn by C code without Python (OpenSSL's generator,
``_random.Random()`` made directly, an extension calling ``getrandom(2)``).
OpenSSL reseeds itself in a restored process (a new process id). numpy
generators cannot be weakly referenced: the few made at import are kept for the
life of the instance. ``SeedSequence.spawn()`` of a reseeded numpy generator
still derives from the image's seed.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import gc
import importlib.abc
import importlib.util
import linecache
import os
import random
import sys
import threading
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The seed of random's global generator while a snapshot is built ("thaw").
POISON = 0x74686177

# Where a call to a watched function is only the plumbing of the API the caller used.
_PLUMBING_MODULES = frozenset({"random", "secrets", "uuid", __name__})
# Directories inside a project that hold its dependencies, not its own code.
_DEPENDENCY_DIRS = frozenset({"python_modules", "site-packages", "dist-packages", ".venv", "venv"})
MAX_SITES = 100  # distinct call sites recorded
MAX_REPORTED = 5  # of which an error message lists
MAX_DRAWS = 4096  # kernel draws whose values are kept, to match numpy seeds against
# The methods through which every draw from a random.Random passes (the others call these).
_DRAW_METHODS = ("random", "getrandbits")


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


@dataclass
class _Reseed:
    """The generators made during the build that every restored instance reseeds."""

    randoms: list = field(default_factory=list)  # weak references to random.Random objects
    numpy_states: list = field(default_factory=list)  # numpy RandomState objects
    numpy_bits: list = field(default_factory=list)  # numpy BitGenerators not in a RandomState


_reseed = _Reseed()


# Draws that are harmless in an image, by the module and function that make them: either
# undone by reseed_after_restore, or probes whose value is thrown away at once. "*" is any
# function of the module; a module name ending in "." covers its submodules.
_HARMLESS_DRAWS = {
    ("multiprocessing.process", "<module>"),  # _MainProcess's authkey: replaced after restore
    ("numpy.random", "<module>"),  # the global RandomState: reseeded after restore
    ("numpy.random.", "<module>"),
    ("tempfile", "*"),  # _RandomNameSequence: reset after restore
    ("crypt", "_add_method"),  # stdlib crypt hashes '' with a throwaway salt per method
    ("passlib.utils", "<module>"),  # `os.urandom(1)`: only whether it works is kept
}


def _harmless(module: Any, function: str) -> bool:
    if not isinstance(module, str):
        return False
    for name, code in _HARMLESS_DRAWS:
        if code not in ("*", function):
            continue
        if module == name or (name.endswith(".") and module.startswith(name)):
            return True
    return False


def _neutralised(frame: types.FrameType | None) -> bool:
    """Whether the draw made under ``frame`` is undone after a restore or thrown away."""
    while frame is not None:
        if _harmless(frame.f_globals.get("__name__"), frame.f_code.co_name):
            return True
        frame = frame.f_back
    return False


def _api_name(frame: types.FrameType) -> str:
    """The name of the call that ``frame`` (in random, secrets or uuid) is running."""
    module = frame.f_globals.get("__name__")
    code = frame.f_code
    if module == "random":
        instance = frame.f_locals.get("self") if code.co_varnames[:1] == ("self",) else None
        if instance is getattr(random, "_inst", None):
            return f"random.{code.co_name}()"
        if isinstance(instance, random.Random):
            cls = type(instance)
            prefix = "random." if cls.__module__ == "random" else f"{cls.__module__}."
            if code.co_name == "__init__":
                return f"{prefix}{cls.__qualname__}()"
            return f"{prefix}{cls.__qualname__}.{code.co_name}()"
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}()"


def _same_state(a: Any, b: Any) -> bool:
    """Whether two numpy bit generator states (dicts of ints and arrays) are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if hasattr(a, "shape") or hasattr(b, "shape"):
        import numpy
        return bool(numpy.array_equal(a, b))
    return bool(a == b)


class _AfterImport:
    """A meta path finder that calls ``then(module)`` once ``name`` has been executed."""

    def __init__(self, name: str, then: Callable[[types.ModuleType], None]) -> None:
        self.name = name
        self.then = then
        self.busy = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, then = spec.loader, self.then

        class Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: types.ModuleType) -> None:
                # The module keeps its own loader, not this one (nor the watch through it).
                module.__loader__ = loader
                spec = getattr(module, "__spec__", None)
                if spec is not None:
                    spec.loader = loader
                loader.exec_module(module)
                then(module)

        spec = copy.copy(spec)  # a reload's find_spec may hand back the module's own
        spec.loader = Loader()
        return spec


class EntropyWatch:
    """Wraps the functions that draw entropy and records who calls them while active."""

    def __init__(self, project_dir: str) -> None:
        self.project_dir = os.path.abspath(project_dir)
        self.project_real = os.path.realpath(project_dir)
        self.active = False
        self.uses: list[EntropyUse] = []  # what the build must refuse: filled by finish()
        self.calls = 0
        # Every watched draw: (site key, where, value drawn from the kernel or None, and
        # whether numpy drew it to seed a SeedSequence).
        self._draws: list[tuple[tuple[str, str, int], EntropyUse, Any, bool]] = []
        # random.Random objects seeded from the kernel while watching, by id (a subclass may
        # be unhashable): (weak reference, where it was made).
        self._generators: dict[int, tuple[weakref.ref, EntropyUse]] = {}
        self._global_seeded = False  # the top level seeded random's global generator itself
        # Draws from random's generators made by dependencies: logged, not refused.
        self.notes: list[EntropyUse] = []
        self._noted: set[tuple[str, str, int]] = set()
        self._local = threading.local()
        # (owner, name, original or None when inherited, wrapper)
        self._patches: list[tuple[Any, str, Any, Any]] = []
        self._finder: _AfterImport | None = None
        self._removed = False

    # Installing and removing.
    def install(self) -> None:
        """Poison random's global generator and start watching."""
        random.seed(POISON)
        always = lambda *a, **k: True  # noqa: E731
        self._patch(os, "urandom", "os.urandom()", always)
        if hasattr(os, "getrandom"):
            self._patch(os, "getrandom", "os.getrandom()", always)
        # random.py binds os.urandom at import: SystemRandom and secrets call it by this name.
        self._patch(random, "_urandom", "os.urandom()", always)
        # The global generator's draws that do not pass through a Random method.
        unseeded = lambda *a, **k: not self._global_seeded  # noqa: E731
        for name in _DRAW_METHODS:
            self._patch(random, name, f"random.{name}()", unseeded, keep_value=False)
        self._patch_random_class()
        self._watch_numpy_seeding()
        self.active = True

    def _patch(self, owner: Any, name: str, call: str, counts: Callable[..., bool],
               keep_value: bool = True) -> None:
        original = getattr(owner, name)
        watch = self

        @functools.wraps(original)
        def watched(*args: Any, **kwargs: Any) -> Any:
            value = original(*args, **kwargs)
            if watch.active and counts(*args, **kwargs):
                watch._record(call, value if keep_value else None, generator=not keep_value)
            return value

        self._install(owner, name, original, watched)

    def _install(self, owner: Any, name: str, original: Any, wrapper: Any) -> None:
        """Put ``wrapper`` in place of ``original`` (None: inherited) until ``remove``."""
        if original is not None and hasattr(original, "__self__"):
            # A bound method (random.random is random._inst.random): code asks for its object.
            wrapper.__self__ = original.__self__
        setattr(owner, name, wrapper)
        self._patches.append((owner, name, original, wrapper))

    def _patch_random_class(self) -> None:
        """Watch how each random.Random is seeded and what is drawn from it."""
        watch = self
        cls = random.Random
        seed = cls.__dict__["seed"]

        @functools.wraps(seed)
        def watched_seed(gen: random.Random, a: Any = None, *args: Any, **kwargs: Any) -> Any:
            result = seed(gen, a, *args, **kwargs)
            if watch.active:
                watch._seeded(gen, a is None)
            return result

        self._install(cls, "seed", seed, watched_seed)
        # A state set from elsewhere (setstate; copy, deepcopy and pickle go through it) is the
        # user's: the generator repeats a known sequence, it is not reseeded.
        setstate = cls.__dict__["setstate"]

        @functools.wraps(setstate)
        def watched_setstate(gen: random.Random, *args: Any, **kwargs: Any) -> Any:
            result = setstate(gen, *args, **kwargs)
            if watch.active:
                watch._seeded(gen, False)
            return result

        self._install(cls, "setstate", setstate, watched_setstate)
        # random.seed and random.setstate are the global generator's, bound when random was
        # imported: they do not pass through the class.
        for name in ("seed", "setstate"):
            bound = getattr(random, name)

            def watched_global(*args: Any, _bound: Any = bound, _name: str = name,
                               **kwargs: Any) -> Any:
                result = _bound(*args, **kwargs)
                if watch.active:
                    watch._global_seeded = _name == "setstate" or (
                        args[0] if args else kwargs.get("a")) is not None
                return result

            functools.update_wrapper(watched_global, bound)
            self._install(random, name, bound, watched_global)
        for name in _DRAW_METHODS:
            base = getattr(cls, name)  # _random.Random's, in C

            def watched_draw(gen: random.Random, *args: Any, _base: Any = base,
                             _name: str = name) -> Any:
                if watch.active and watch._reseeded(gen):
                    watch._record(f"random.Random.{_name}()", None, generator=True)
                return _base(gen, *args)

            watched_draw.__name__ = watched_draw.__qualname__ = name
            self._install(cls, name, None, watched_draw)

    def _watch_numpy_seeding(self) -> None:
        """Mark the kernel draws numpy makes to seed a SeedSequence (it calls
        ``secrets.randbits`` from C, where no frame shows who called): through the name
        ``randbits`` in numpy.random.bit_generator, now or when it is imported."""
        module = sys.modules.get("numpy.random.bit_generator")
        if module is not None:
            self._wrap_numpy_randbits(module)
            return
        finder = _AfterImport("numpy.random.bit_generator", self._wrap_numpy_randbits)
        sys.meta_path.insert(0, finder)
        self._finder = finder

    def _wrap_numpy_randbits(self, module: types.ModuleType) -> None:
        original: Callable[..., Any] | None = getattr(module, "randbits", None)
        if original is None or self._removed:
            return
        call = original
        local = self._local

        @functools.wraps(original)
        def seeding(*args: Any, **kwargs: Any) -> Any:
            local.numpy_seed = True
            try:
                return call(*args, **kwargs)
            finally:
                local.numpy_seed = False

        self._install(module, "randbits", original, seeding)

    def remove(self) -> None:
        """Put the original functions back, also where a module imported the watched ones."""
        self.active = False
        self._removed = True
        finder = getattr(self, "_finder", None)
        if finder is not None and finder in sys.meta_path:
            sys.meta_path.remove(finder)
        self._finder = None
        originals = {id(wrapper): (wrapper, original)
                     for _, _, original, wrapper in self._patches if original is not None}
        for owner, name, original, _ in reversed(self._patches):
            if original is None:
                delattr(owner, name)  # it was inherited
            else:
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
    def _seeded(self, gen: random.Random, from_kernel: bool) -> None:
        if gen is getattr(random, "_inst", None):
            self._global_seeded = not from_kernel
            return
        key = id(gen)
        if not from_kernel:
            self._generators.pop(key, None)  # seeded by the user: meant to repeat
            return
        # Frames: 0 _seeded, 1 the wrapper, 2 its caller.
        located = self._locate("random.Random()", sys._getframe(2))
        if located is None:
            return
        generators = self._generators

        def gone(ref: weakref.ref, key: int = key) -> None:
            entry = generators.get(key)
            if entry is not None and entry[0] is ref:
                del generators[key]

        self._generators[key] = (weakref.ref(gen, gone), located[1])

    def _reseeded(self, gen: random.Random) -> bool:
        """Whether ``gen`` gets a new seed after a restore (so a draw now is shared)."""
        if gen is getattr(random, "_inst", None):
            return not self._global_seeded
        entry = self._generators.get(id(gen))
        return entry is not None and entry[0]() is gen

    def _record(self, call: str, value: Any, generator: bool = False) -> None:
        """Record a draw: from the kernel (``value`` what it gave) or from a ``generator``."""
        local = self._local
        if getattr(local, "busy", False):
            return
        local.busy = True
        try:
            self.calls += 1
            # Frames: 0 _record, 1 the wrapper, 2 its caller.
            frame = sys._getframe(2)
            located = self._locate(call, frame)
            if located is None:
                return
            key, use = located
            if generator and not self._drawn_by_own_code(frame):
                # A dependency drew from random's (non-cryptographic) generators while
                # imported, e.g. sympy's Dummy index base: not a secret, and not the
                # user's to move. Noted in the build log; the value is shared.
                if key not in self._noted and len(self._noted) < MAX_SITES:
                    self._noted.add(key)
                    self.notes.append(use)
                return
            numpy_seed = getattr(local, "numpy_seed", False)
            if numpy_seed:
                use = EntropyUse("a numpy seed from the kernel (SeedSequence())", use.file,
                                 use.line, use.source, use.via)
                key = (use.call,) + key[1:]
            if len(self._draws) < MAX_DRAWS * 4:
                kept = value if len(self._draws) < MAX_DRAWS else None
                self._draws.append((key, use, kept, numpy_seed))
        finally:
            local.busy = False

    def _drawn_by_own_code(self, frame: types.FrameType | None) -> bool:
        """Whether the first frame out of the plumbing modules is the project's own code."""
        while frame is not None and frame.f_globals.get("__name__") in _PLUMBING_MODULES:
            frame = frame.f_back
        if frame is None:
            return True
        relative = self._relative(frame.f_code.co_filename)
        return relative is not None and not _DEPENDENCY_DIRS.intersection(relative.split(os.sep))

    def _locate(self, call: str, frame: types.FrameType | None
                ) -> tuple[tuple[str, str, int], EntropyUse] | None:
        """The site key and description of a draw made under ``frame``; None if undone."""
        api = None
        while frame is not None and frame.f_globals.get("__name__") in _PLUMBING_MODULES:
            api = frame
            frame = frame.f_back
        if api is not None:
            call = _api_name(api)
        if frame is None:
            return (call, "", 0), EntropyUse(call, "an unknown place", 0, "")
        if _neutralised(frame):
            return None
        site = self._innermost(frame, own_code_only=True) or self._innermost(frame) or frame
        via = ""
        if frame is not site:
            via = f"{self._display(frame.f_code.co_filename)}:{frame.f_lineno}"
        source = linecache.getline(site.f_code.co_filename, site.f_lineno,
                                   site.f_globals).strip()
        use = EntropyUse(call, self._display(site.f_code.co_filename), site.f_lineno,
                         source, via)
        return (call, site.f_code.co_filename, site.f_lineno), use

    # The end of the build.
    def finish(self) -> None:
        """Decide what the build refuses (``uses``) and what every restore reseeds."""
        ignored: set[int] = set()  # indexes of draws that are not a value kept
        drawn: list[EntropyUse] = []
        reseed = _Reseed()
        for ref, _ in self._generators.values():
            if ref() is not None:
                reseed.randoms.append(ref)
        if any(draw[3] for draw in self._draws) and "numpy.random" in sys.modules:
            self._find_numpy(reseed, ignored, drawn)
        seen: set[tuple[str, str, int]] = set()
        uses: list[EntropyUse] = []
        for index, (key, use, _, _) in enumerate(self._draws):
            if index in ignored or key in seen or len(seen) >= MAX_SITES:
                continue
            seen.add(key)
            uses.append(use)
        self.uses = uses + drawn
        global _reseed
        _reseed = reseed

    def _find_numpy(self, reseed: _Reseed, ignored: set[int], drawn: list[EntropyUse]) -> None:
        """Sort numpy's seeding draws by the objects alive at the end of the build.

        A draw is no value kept only when it is the seed of a bit generator that is reseeded
        after every restore, and no SeedSequence of that seed is kept elsewhere (its spawn()
        would repeat). A bit generator is reseeded only while its state is still the one its
        seed gave: drawn from, jumped or set at import, its state is a value kept. Every other
        seeding draw (a number derived from it, a seed overwritten by ``RandomState(42)``'s
        legacy seeding: thaw cannot tell the two apart) is refused. Matched by value: numpy
        draws 32 * pool_size bits, the bytes read big-endian.
        """
        try:
            from numpy.random import MT19937, RandomState, SeedSequence
            from numpy.random.bit_generator import BitGenerator
        except ImportError:
            return
        by_value: dict[tuple[int, int], list[int]] = {}  # (bytes, value) -> draw indexes
        for index, (_, _, value, numpy_seed) in enumerate(self._draws):
            if numpy_seed and isinstance(value, (bytes, bytearray)) and value:
                by_value.setdefault((len(value), int.from_bytes(value, "big")), []).append(index)
        if not by_value:
            return
        gc.unfreeze()  # objects frozen by the top level are not listed otherwise
        sequences: list[Any] = []
        bit_generators: list[Any] = []
        states: list[Any] = []
        for obj in gc.get_objects():
            # issubclass(type(...)): isinstance would ask lazy objects for their __class__.
            kind = type(obj)
            if issubclass(kind, BitGenerator):
                bit_generators.append(obj)
            elif issubclass(kind, SeedSequence):
                sequences.append(obj)
            elif issubclass(kind, RandomState):
                states.append(obj)

        def draws_of(seq: Any) -> list[int]:
            if seq is None or not issubclass(type(seq), SeedSequence):
                return []
            entropy, pool = getattr(seq, "entropy", None), getattr(seq, "pool_size", 0)
            if type(entropy) is not int or type(pool) is not int:
                return []
            return by_value.get((4 * pool, entropy), [])

        made_here: dict[int, EntropyUse] = {}  # id(bit generator) -> where its seed was drawn
        owned: set[int] = set()  # ids of their SeedSequences
        for bits in bit_generators:
            seq = getattr(bits, "_seed_seq", None)
            indexes = draws_of(seq)
            if not indexes:
                continue
            where = self._draws[indexes[0]][1]
            try:
                fresh = _same_state(type(bits)(seq).state, bits.state)
            except Exception:  # an unusual bit generator: cannot tell
                fresh = False
            if not fresh:
                drawn.append(EntropyUse(
                    f"numpy.random.{type(bits).__name__} (drawn from, jumped or set at import, "
                    "seeded)", where.file, where.line, where.source, where.via))
                continue
            made_here[id(bits)] = where
            owned.add(id(seq))
        kept: set[int] = set()
        for seq in sequences:
            if id(seq) not in owned:
                kept.update(draws_of(seq))
        for bits in bit_generators:
            if id(bits) in made_here:
                ignored.update(i for i in draws_of(bits._seed_seq) if i not in kept)
        in_states: set[int] = set()
        for state in states:
            bits = getattr(state, "_bit_generator", None)
            if id(bits) in made_here and issubclass(type(bits), MT19937) \
                    and id(bits) not in in_states:
                in_states.add(id(bits))
                reseed.numpy_states.append(state)
        reseed.numpy_bits.extend(bits for bits in bit_generators
                                 if id(bits) in made_here and id(bits) not in in_states)

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
    for ref in _reseed.randoms:
        gen = ref()
        if gen is not None:
            random.Random.seed(gen)
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    for state in _reseed.numpy_states:
        state.seed()  # a legacy MT19937 RandomState: new key, no cached gauss
    for bits in _reseed.numpy_bits:
        bits.state = type(bits)().state
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
    # What else a new process needs (threading's idea of this thread, the locks
    # of logging and concurrent.futures, random's global generator, every hook
    # registered with os.register_at_fork(after_in_child=...)) C gives it before
    # this runs: PyOS_AfterFork_Child, as in the child of a fork. Python 3.11's
    # threading then still holds the builder's thread id (fixed in 3.12).
    set_native_id = getattr(threading.current_thread(), "_set_native_id", None)
    if set_native_id is not None:
        set_native_id()
