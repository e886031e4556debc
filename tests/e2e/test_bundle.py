"""`thaw pack` and `thaw unpack-bundle` (the child the host runs to unpack an upload).

A packed project unpacks to the same tree; hostile bundles (built here with tarfile and the
zstd command) are refused with their reason as one JSON line, exit 1, and the destination
is removed; nothing lands outside it.
"""
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from thawtest import run_thaw

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")


def tree(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out.append(os.path.normpath(os.path.join(rel, d)) + "/")
        for f in filenames:
            out.append(os.path.normpath(os.path.join(rel, f)))
    return sorted(out)


def entry(name, kind=tarfile.REGTYPE, data=b"", link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname = kind, 0o644, link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, data


def zstd_bundle(path, entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    subprocess.run(["zstd", "-q", "-f", "-o", str(path)], input=raw.getvalue(), check=True)


def zeros_bundle(path, size):
    """One file of `size` zero bytes, streamed into zstd (never held in memory)."""
    z = subprocess.Popen(["zstd", "-q", "-f", "-o", str(path)], stdin=subprocess.PIPE)
    ti = tarfile.TarInfo("zeros")
    ti.size = size
    z.stdin.write(ti.tobuf(format=tarfile.PAX_FORMAT))
    chunk = b"\0" * (1 << 20)
    left = size
    while left:
        n = min(left, len(chunk))
        z.stdin.write(chunk[:n])
        left -= n
    z.stdin.write(b"\0" * (-size % 512 + 1024))
    z.stdin.close()
    assert z.wait() == 0


def unpack(bundle, dest, *extra):
    r = run_thaw("unpack-bundle", bundle, dest, *extra)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout + r.stderr
    return r.returncode, json.loads(lines[0])


def test_packed_project_unpacks_to_the_same_tree(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "entry.py").write_text("print('hi')\n")
    (proj / "src" / "entry.py").chmod(0o755)
    (proj / "python_modules" / "lib").mkdir(parents=True)
    (proj / "python_modules" / "lib" / "__init__.py").write_text("X = 1\n")
    (proj / "build").mkdir()
    (proj / "build" / "junk").write_text("junk\n")
    (proj / ".gitignore").write_text("build/\npython_modules/\n")
    bundle = tmp_path / "b.tar.zst"
    r = run_thaw("pack", proj, bundle)
    assert r.returncode == 0, r.stderr
    assert "packed 3 files, 3 directories, 41 bytes" in r.stdout

    code, res = unpack(bundle, tmp_path / "out")
    assert code == 0 and res == {"ok": True, "files": 3, "dirs": 3, "bytes": 41}
    assert tree(tmp_path / "out") == [".gitignore", "python_modules/", "python_modules/lib/",
                                      "python_modules/lib/__init__.py", "src/",
                                      "src/entry.py"]
    assert (tmp_path / "out" / "src" / "entry.py").read_text() == "print('hi')\n"
    assert (tmp_path / "out" / "src" / "entry.py").stat().st_mode & 0o777 == 0o755

    # The destination must not exist yet.
    code, res = unpack(bundle, tmp_path / "out")
    assert code == 1 and "already exists" in res["error"]
    assert "unpack-bundle" not in run_thaw("help").stdout


HOSTILE = [
    ("traversal", [entry("ok.txt", data=b"x"), entry("../escaped", data=b"x")],
     '".." components are not allowed'),
    ("absolute", [entry("/tmp/thaw-e2e-escaped", data=b"x")], "absolute paths are not allowed"),
    ("symlink_escape", [entry("link", tarfile.SYMTYPE, link="/etc"),
                        entry("link/passwd", data=b"x")], "link: links are not allowed"),
    ("hardlink", [entry("f", data=b"x"), entry("h", tarfile.LNKTYPE, link="/etc/passwd")],
     "h: links are not allowed"),
    ("too_many", [entry("f%05d" % i) for i in range(10000)], "too many files"),
]


@pytest.mark.parametrize("name,entries,why", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bundle_is_refused_and_dest_removed(tmp_path, name, entries, why):
    bundle = tmp_path / "b.tar.zst"
    zstd_bundle(bundle, entries)
    work = tmp_path / "work"
    work.mkdir()
    code, res = unpack(bundle, work / "dest")
    assert code == 1 and res["ok"] is False
    assert why in res["error"]
    assert not (work / "dest").exists()
    assert os.listdir(work) == []
    assert not os.path.exists("/tmp/thaw-e2e-escaped")


def test_decompression_bomb_is_refused(tmp_path):
    bundle = tmp_path / "bomb.tar.zst"
    zeros_bundle(bundle, 200 << 20)
    assert bundle.stat().st_size < 64 << 10
    code, res = unpack(bundle, tmp_path / "dest")
    assert code == 1
    assert "zeros: compression ratio over 100: refused as a decompression bomb" in res["error"]
    assert not (tmp_path / "dest").exists()


def test_limits_from_the_command_line(tmp_path):
    bundle = tmp_path / "b.tar.zst"
    zstd_bundle(bundle, [entry("a", data=b"x" * 100), entry("b", data=b"y" * 100)])
    code, res = unpack(bundle, tmp_path / "d1", "--max-files", "1")
    assert code == 1 and "b: too many files (more than 1 entries)" in res["error"]
    code, res = unpack(bundle, tmp_path / "d2", "--max-total", "150")
    assert code == 1 and "b: total unpacked size over 150 bytes" in res["error"]
    code, res = unpack(bundle, tmp_path / "d3", "--max-compressed", "10")
    assert code == 1 and "bundle larger than 10 bytes" in res["error"]
    code, res = unpack(bundle, tmp_path / "d4", "--max-files", "2")
    assert code == 0 and res["files"] == 2
    code, res = unpack(tmp_path / "missing", tmp_path / "d5")
    assert code == 1 and "No such file" in res["error"]
