"""The executable/extension split: instances map few shared objects.

Instances are the `thaw` executable itself (`thaw worker`), so every library `thaw` links is
mapped into every instance and every snapshot, and a restore pays for each one (restore p50 went
from 9.1 to 11.0-11.7 ms when instances mapped 49 objects instead of 18). `thaw serve` and the
client commands need SQLite, libcurl, libarchive and OpenSSL's libcrypto: those live in
`thaw-ext.so`, next to the binary, which only those commands dlopen. These tests fail when that
boundary leaks: a restored instance maps a library only the extension needs, or the executable
links more than it does today.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from thawtest import THAW_BIN, require_binary, require_snapshots, thaw_version

# What only thaw-ext.so needs, whatever else an instance may map.
EXT_LIBRARIES = ("libsqlite3", "libcurl", "libarchive", "libzstd")
# Also only thaw-ext.so's, but CPython's own _ssl and _hashlib modules (which the worker
# runtime imports through asyncio and hashlib) link them as well, so every instance maps them
# today: in an instance's maps they are accepted only next to a CPython module that needs them.
# That `thaw` itself does not bring them is checked on the executable (its NEEDED entries and
# what the loader maps for it) in the second test.
OPENSSL_LIBRARIES = ("libcrypto", "libssl")

# The executable's NEEDED entries today (readelf -d build/thaw). Fewer is fine; more is the
# regression. The sanitizer build also links its runtimes.
NEEDED_ALLOWED = {"libjansson.so.4", "libmicrohttpd.so.12", "libpython3.11.so.1.0", "libc.so.6",
                  "ld-linux-x86-64.so.2"}
SANITIZER_RUNTIMES = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")

# Distinct shared objects a restored hello instance maps. Measured: 30 today (the loader maps
# 17 libraries for the executable, the `~18` of `ldd build/thaw` with the vDSO; CPython's
# extension modules the runtime imports add 9 modules and 4 libraries they link: libssl,
# libcrypto, libbz2, liblzma), 57 at e8e854a, when serve and the client commands were linked
# into the executable. The bound leaves room for a few more CPython modules, not for one more
# library family like libcurl's (27 objects).
MAX_SHARED_OBJECTS = 36

HELLO_MAPS = """
import os
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        with open("/proc/self/maps") as f:
            maps = f.read()
        with open("/proc/self/comm") as f:
            comm = f.read().strip()
        return Response.json({"pid": __import__("_thaw_runtime").host_pid(), "comm": comm, "maps": maps})
"""


def soname_stem(path):
    """'/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0' -> 'libcurl'."""
    return Path(path).name.split(".so")[0]


def shared_objects(maps):
    """The distinct files mapped in a /proc/PID/maps text that are shared objects."""
    found = set()
    for line in maps.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            path = fields[5].removesuffix(" (deleted)")
            if re.search(r"\.so(\.[0-9.]+)?$", path):
                found.add(path)
    return found


def ldd(path):
    """{soname stem: resolved path} of what the loader maps for `path` (its whole closure)."""
    r = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"ldd {path}: {r.stdout}{r.stderr}"
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)(?: => (\S+))?", line)
        if m and "vdso" not in m.group(1):
            out[soname_stem(m.group(1))] = m.group(2) or m.group(1)
    return out


def needed(path):
    """The DT_NEEDED entries of an ELF file, from readelf -d."""
    r = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"readelf -d {path}: {r.stderr}"
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout))


def ext_module():
    return Path(THAW_BIN).resolve().parent / "thaw-ext.so"


def test_a_restored_instance_maps_no_library_only_the_extension_needs(project, dev):
    require_snapshots()
    d = dev(project(HELLO_MAPS, name="hello"), "--idle-timeout", "0")
    d.wait_snapshot()
    r = d.get("/")
    assert r.status == 200, r
    assert r.timing()[0] == "snapshot", f"not a restored instance: {r.headers['Server-Timing']}"
    info = json.loads(r.body)
    assert info["comm"] == "thaw:hello", info["comm"]
    objects = shared_objects(info["maps"])
    listing = "\n".join(sorted(objects))

    leaked = sorted(p for p in objects if soname_stem(p) in EXT_LIBRARIES)
    assert not leaked, (f"a restored instance (pid {info['pid']}) maps libraries only thaw-ext.so "
                        f"needs: {leaked}\nall {len(objects)} shared objects:\n{listing}")

    # Whatever else thaw-ext.so brings (its libraries' own dependencies) must not be there
    # either, unless a CPython module that this instance imported links it too.
    python_modules = [p for p in objects if "/python3" in p and ".cpython-" in p]
    explained = set()
    for mod in python_modules:
        explained |= set(ldd(mod))
    ext = ext_module()
    if ext.exists():
        ext_only = set(ldd(ext)) - set(ldd(THAW_BIN))
    else:  # a build from before the split: all of it was linked in
        ext_only = set()
    ext_only |= set(EXT_LIBRARIES) | set(OPENSSL_LIBRARIES)
    leaked = sorted(p for p in objects
                    if soname_stem(p) in ext_only and soname_stem(p) not in explained)
    assert not leaked, (f"a restored instance (pid {info['pid']}) maps libraries that only "
                        f"thaw-ext.so needs: {leaked}\nall {len(objects)} shared objects:\n"
                        f"{listing}")

    assert len(objects) < MAX_SHARED_OBJECTS, (
        f"a restored hello instance maps {len(objects)} shared objects (30 when this test was "
        f"written, bound {MAX_SHARED_OBJECTS}): every one of them slows each restore\n{listing}")


def test_the_executable_links_only_what_instances_need():
    require_binary()
    allowed = set(NEEDED_ALLOWED)
    sanitizer = "sanitizer" in thaw_version()
    links = needed(THAW_BIN)
    extra = sorted(n for n in links - allowed
                   if not (sanitizer and SANITIZER_RUNTIMES.match(n)))
    assert not extra, (
        f"{THAW_BIN} links {extra} beyond {sorted(allowed)}: every instance would map them "
        "(and their dependencies). Link them into thaw-ext.so instead.")
    closure = ldd(THAW_BIN)
    pulled = sorted(s for s in EXT_LIBRARIES + OPENSSL_LIBRARIES if s in closure)
    assert not pulled, f"the loader maps {pulled} for {THAW_BIN} (through {sorted(links)})"

    # The files looked at are the right ones: the extension next to the binary links what the
    # executable must not.
    ext = ext_module()
    assert ext.is_file(), f"no thaw-ext.so next to {THAW_BIN}"
    ext_links = {soname_stem(n) for n in needed(ext)}
    for lib in ("libsqlite3", "libcurl", "libarchive", "libcrypto"):
        assert lib in ext_links, f"{ext} does not link {lib}: {sorted(ext_links)}"
