"""Snapshot files: `thaw snapshot inspect`, and what the host does with an image that is damaged
or no longer matches the binary or a library it was made with (refuse it with the reason, boot
the instance, build a new snapshot; never crash).

The image a running host uses is never changed in place here: damaged copies are written to a
temporary path and either inspected there or renamed over the host's file (as a deploy would),
so instances that already map the old file are not affected. Skipped on the sanitizer build.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from thawtest import REFUSED_RE, THAW_BIN, require_snapshots, run_thaw, write_project

pytestmark = pytest.mark.usefixtures("snapshots")

HELLO = """
import os
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"hello {__import__('_thaw_runtime').host_pid()}")
"""


def inspect(path, *flags, binary=None):
    return run_thaw("snapshot", "inspect", path, *flags, binary=binary, timeout=60)


def section(text, name):
    """The lines of `text` after the line `name:` up to the next unindented line."""
    lines = text.splitlines()
    try:
        i = lines.index(f"{name}:")
    except ValueError:
        pytest.fail(f"no `{name}:` section in the inspect output:\n{text}")
    out = []
    for line in lines[i + 1:]:
        if line and not line[0].isspace():
            break
        out.append(line.strip())
    return out


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory, module_dev):
    """A copy of a fresh snapshot of the hello worker (the host deletes its own at exit)."""
    require_snapshots()
    root = tmp_path_factory.mktemp("snap")
    d = module_dev(write_project(root / "p", HELLO))
    d.wait_snapshot()
    copy = root / "good.snap"
    shutil.copyfile(d.snapshot_file(), copy)
    d.stop()
    return copy


# --------------------------------------------------------------------------- inspect


def test_inspect_lists_header_regions_and_dependencies(good_snapshot):
    r = inspect(good_snapshot)
    assert r.returncode == 0, r.stdout + r.stderr
    regions = section(r.stdout, "regions")
    assert len(regions) > 10, r.stdout
    base = re.search(r"^\s+base\s+(/\S+)", r.stdout, re.M)
    if base:
        # A delta on the base image: the heap it had from the base is a writable mapping of
        # the base's file, and only what the build grew past it is a heap region of its own.
        assert any("heap" in line or ("rw-" in line and base.group(1) in line)
                   for line in regions), regions
    else:
        assert any("heap" in line for line in regions), regions
    assert any("stack" in line for line in regions), regions
    deps = section(r.stdout, "dependencies")
    binary = os.path.realpath(THAW_BIN)
    assert any(line.startswith(binary + " ") for line in deps), (
        f"the thaw binary {binary} is not among the dependencies:\n{deps}")
    for lib in ("libpython3", "libc.so", "ld-linux"):
        assert any(lib in line for line in deps), f"{lib} missing from dependencies:\n{deps}"
    assert "invalid" not in r.stdout.lower()


def test_inspect_verify_says_checksum_ok(good_snapshot):
    r = inspect(good_snapshot, "--verify")
    if "checksum ok" not in r.stdout or r.returncode != 0:
        pytest.fail(f"`thaw snapshot inspect --verify` on a good snapshot: exit {r.returncode}, "
                    f"last line {r.stdout.strip().splitlines()[-1:]} {r.stderr}")
    assert "INVALID" not in r.stdout, r.stdout[-500:]


def damage(src, dst, how):
    data = bytearray(Path(src).read_bytes())
    if how == "corrupt":  # one byte of the header
        data[40] ^= 0xFF
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "header-only":
        data = data[:100]
    elif how == "garbage":
        data = bytearray(b"this is not a thaw snapshot\n" * 500)
    elif how == "empty":
        data = bytearray()
    else:
        raise ValueError(how)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


@pytest.mark.parametrize("how, reason", [
    ("corrupt", r"checksum"),
    ("truncated", r"truncated"),
    ("header-only", r"too short"),
    ("garbage", r"not a thaw snapshot|magic"),
    ("empty", r"too short|empty"),
])
def test_inspect_reports_an_invalid_snapshot_and_why(good_snapshot, tmp_path, how, reason):
    bad = damage(good_snapshot, tmp_path / f"{how}.snap", how)
    r = inspect(bad)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    text = r.stdout + r.stderr
    assert "invalid snapshot" in text, text
    assert re.search(reason, text), f"no reason matching {reason!r}: {text}"
    assert "regions:" not in r.stdout


def test_inspect_missing_file(tmp_path):
    r = inspect(tmp_path / "nope.snap")
    assert r.returncode == 1
    assert "invalid snapshot" in r.stdout + r.stderr


# --------------------------------------------------------------------------- refused at restore


def refused_then_rebuilt(d, mark, reason):
    """After the host's snapshot stopped matching (from output index `mark` on): the next
    request (--idle-timeout 0) is answered by a booted instance, the refusal is logged with its
    reason, a new snapshot is built and the instances after it restore again."""
    r = d.get("/")
    assert r.status == 200 and r.text.startswith("hello "), f"{r}\n{d.output_since(mark)}"
    assert r.timing()[0] == "boot", (
        f"the request after the damage should boot (its restore refused): {r}\n"
        f"{d.output_since(mark)}")
    m = d.wait_for(REFUSED_RE, start=mark, timeout=10)
    assert re.search(reason, m.group("reason")), (
        f"refusal reason {m.group('reason')!r} does not match {reason!r}")
    d.wait_snapshot(start=mark, timeout=30)
    for _ in range(3):
        r = d.get("/")
        assert r.status == 200, r
        assert r.timing()[0] == "snapshot", f"{r}\n{d.output_since(mark)}"
    assert d.alive(), "the host died"
    assert "Segmentation" not in d.output() and "core dumped" not in d.output()


def replace_file(path, data_or_src):
    """Put new content at `path` the way a deploy does: a new file renamed over it."""
    tmp = Path(str(path) + ".new")
    if isinstance(data_or_src, Path):
        shutil.copy2(data_or_src, tmp)
    else:
        tmp.write_bytes(data_or_src)
    os.replace(tmp, path)


@pytest.mark.parametrize("how, reason", [
    ("corrupt", r"checksum"),
    ("truncated", r"truncated"),
    ("garbage", r"not a thaw snapshot|magic"),
])
def test_damaged_snapshot_is_refused_booted_and_rebuilt(project, dev, tmp_path, how, reason):
    d = dev(project(HELLO), "--idle-timeout", "0")
    d.wait_snapshot()
    assert d.get("/").timing()[0] == "snapshot"
    snap = d.snapshot_file()
    bad = damage(snap, tmp_path / "bad.snap", how)
    mark = d.mark()
    replace_file(snap, bad.read_bytes())
    refused_then_rebuilt(d, mark, reason)


@pytest.mark.parametrize("change", ["touch", "replace"])
def test_foreign_binary_snapshot_is_refused_booted_and_rebuilt(project, dev, tmp_path, change):
    # The snapshot is made by a copy of thaw; then that copy changes (its mtime, or a new
    # file in its place as a rebuild leaves it) while the host runs.
    binary = tmp_path / "bin" / "thaw"
    binary.parent.mkdir()
    shutil.copy2(THAW_BIN, binary)
    d = dev(project(HELLO), "--idle-timeout", "0", binary=binary)
    d.wait_snapshot()
    assert d.get("/").timing()[0] == "snapshot"
    deps = section(inspect(d.snapshot_file()).stdout, "dependencies")
    assert any(line.startswith(f"{binary} ") for line in deps), deps
    mark = d.mark()
    if change == "touch":
        st = binary.stat()
        os.utime(binary, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    else:
        new = tmp_path / "thaw.new"
        shutil.copy2(binary, new)
        with open(new, "ab") as f:
            f.write(b"\0")
        os.replace(new, binary)
    refused_then_rebuilt(d, mark, rf"{re.escape(str(binary))}.*changed since the snapshot")


def test_a_binary_at_a_long_path_restores(project, dev, tmp_path):
    # /proc/self/maps names the binary by its whole path; a restore compares it with the
    # image's dependency. A path over 255 characters was cut short and never matched: every
    # restore refused, every image rebuilt.
    binary = tmp_path / ("d" * 120) / ("e" * 120) / "thaw"
    assert len(str(binary)) > 260
    binary.parent.mkdir(parents=True)
    shutil.copy2(THAW_BIN, binary)
    d = dev(project(HELLO), "--idle-timeout", "0", binary=binary)
    d.wait_snapshot()
    for _ in range(3):
        r = d.get("/")
        assert r.status == 200 and r.timing()[0] == "snapshot", (r, d.output()[-2000:])
    assert "refused" not in d.output()


def test_foreign_library_snapshot_is_refused_booted_and_rebuilt(project, dev, tmp_path):
    # A shared library loaded by dlopen (ctypes) at top level from a directory of ours; it
    # changes after the snapshot was made.
    # In the project (the fixture's first one): the sandbox shows an instance nothing else of
    # the machine's files. In a dot-directory, which thaw dev does not watch: a change there
    # must be found by the restore, not raced by a reload.
    lib = tmp_path / "proj1" / ".native" / "libbz2copy.so"
    p = project(f"""
        import ctypes
        import os
        from workers import WorkerEntrypoint, Response

        LIB = ctypes.CDLL({str(lib)!r})
        LIB.BZ2_bzlibVersion.restype = ctypes.c_char_p

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                assert LIB.BZ2_bzlibVersion().startswith(b"1.")
                return Response(f"hello {{__import__('_thaw_runtime').host_pid()}}")
        """)
    assert lib.parent.parent == p
    lib.parent.mkdir()
    shutil.copy2("/usr/lib/x86_64-linux-gnu/libbz2.so.1.0", lib)
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    r = d.get("/")
    assert r.status == 200 and r.timing()[0] == "snapshot", r
    deps = section(inspect(d.snapshot_file()).stdout, "dependencies")
    assert any(line.startswith(f"{lib} ") for line in deps), deps
    mark = d.mark()
    with open(lib, "ab") as f:  # mapped, not executed: appending is allowed
        f.write(b"\0")
    refused_then_rebuilt(d, mark, rf"{re.escape(str(lib))}.*changed since the snapshot")


def test_host_survives_snapshot_file_removed(project, dev):
    d = dev(project(HELLO), "--idle-timeout", "0")
    d.wait_snapshot()
    # The instance the host restores to validate a new snapshot may already have mapped it.
    assert d.get("/").timing()[0] == "snapshot"
    snap = d.snapshot_file()
    mark = d.mark()
    snap.unlink()
    r = d.get("/")
    assert r.status == 200, f"{r}\n{d.output_since(mark)}"
    assert r.timing()[0] == "boot", r
    d.wait_snapshot(start=mark, timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and d.get("/").timing()[0] != "snapshot":
        time.sleep(0.1)
    assert d.get("/").timing()[0] == "snapshot"
    assert d.alive()
