"""The host's base image (docs/snapshots.md, "The base image"): every worker's snapshot is built
on it and saves only its own pages; instances of different workers share the base's pages
through the page cache; a base that is missing, changed or of another build is refused before
anything is mapped, the worker serves by booting, and both are made again."""

from __future__ import annotations

import os
import re

import pytest

from thawtest import (REFUSED_RE, ThawServe, base_blobs, proc_descendants, require_snapshots,
                      run_thaw, start_dev, wait_until, write_project)

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("{text}")
"""

BASE_LINE = r"thaw: base image: [0-9.]+ MB"


def inspect(path):
    r = run_thaw("snapshot", "inspect", path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def inspected_base(path):
    """(the base's path, own pages, pages from the base) of an image, from `thaw snapshot
    inspect`; (None, own, 0) for an image without one."""
    text = inspect(path)
    m = re.search(r"^\s+base\s+(/\S+)", text, re.M)
    pages = re.search(r"^\s+pages\s+(\d+) own .*?(\d+) from the base", text, re.M)
    saved = re.search(r"^\s+pages\s+(\d+) own", text, re.M)
    assert saved, text
    return (m.group(1) if m else None, int(saved.group(1)),
            int(pages.group(2)) if pages else 0)


def version(host, name):
    [v] = host.api("GET", f"/v1/workers/{name}/versions").json()["versions"]
    return v


def deploy(host, root, name, text):
    project = write_project(root / name, ENTRY.format(text=text), name=name)
    r = host.client("deploy", project, "--no-install")
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.worker_get(name).text == text


def instance_pid(host, name):
    """The pid of the one serving instance of worker name (its comm is thaw:NAME)."""
    pids = []
    for pid, _ in proc_descendants(host.pid):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if comm == f"thaw:{name}"[:15] and cmd[1:2] == [b"worker"]:
            pids.append(pid)
    assert len(pids) == 1, (name, pids)
    return pids[0]


def smaps_by_path(pid):
    """{path: {field: kB summed over its mappings}} from /proc/PID/smaps."""
    out, path = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                path = head[5] if len(head) > 5 else ""
                out.setdefault(path, {})
            elif path is not None and len(head) == 3 and head[2] == "kB":
                field = head[0].rstrip(":")
                out[path][field] = out[path].get(field, 0) + int(head[1])
    return out


@pytest.fixture
def host(tmp_path):
    require_snapshots()
    h = ThawServe(tmp_path / "data").wait_ready()
    yield h
    if h.alive():
        h.stop()


def test_two_workers_built_on_the_base_share_its_pages(tmp_path, host):
    deploy(host, tmp_path, "alpha", "alpha says hi")
    deploy(host, tmp_path, "beta", "beta says hi")
    [base_hex] = base_blobs(host)
    base = str(host.data / "blobs" / base_hex)
    base_own = inspected_base(base)
    assert base_own[0] is None, base_own  # the base itself has none

    maps = {}
    for name in ("alpha", "beta"):
        image = str(host.data / "blobs" / version(host, name)["snapshot"])
        named, own, from_base = inspected_base(image)
        assert named == base, (name, named, base)
        # A hello worker's own pages are a small part of what it maps from the base.
        assert own * 3 < from_base, (name, own, from_base)
        assert own * 3 < base_own[1], (name, own, base_own)
        smaps = smaps_by_path(instance_pid(host, name))
        assert base in smaps and image in smaps, (name, sorted(smaps))
        maps[name] = (smaps[base], smaps[image])
    for name, (b, own) in maps.items():
        # Most of the image pages the instance has in memory come from the base's file ...
        assert b["Rss"] > 2 * own["Rss"], (name, b, own)
    # ... and both instances have the same pages of it: shared through the page cache.
    assert maps["alpha"][0]["Shared_Clean"] > 1024 and maps["beta"][0]["Shared_Clean"] > 1024, maps
    assert host.worker_get("alpha").text == "alpha says hi"
    assert host.worker_get("beta").text == "beta says hi"


@pytest.mark.parametrize("how, reason", [
    ("removed", r"its base image \S+ is missing"),
    ("changed", r"its base image \S+ has changed since the image was built on it"),
])
def test_a_base_gone_or_changed_is_refused_the_worker_boots_and_both_are_made_again(
        tmp_path, how, reason):
    require_snapshots()
    host = ThawServe(tmp_path / "data").wait_ready()
    deploy(host, tmp_path, "alpha", "alpha")
    [old_hex] = base_blobs(host)
    old = host.data / "blobs" / old_hex
    host.stop()
    if how == "removed":
        os.unlink(old)
    else:
        with open(old, "r+b") as f:  # in place: same size, same inode, a new mtime
            f.seek(os.path.getsize(old) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))

    host = ThawServe(tmp_path / "data").wait_ready()
    try:
        # Refused at the version's start, before anything is mapped: it boots meanwhile.
        m = host.wait_for(r"alpha@\S+: stored snapshot unusable \((?P<why>.*)\): booting",
                          stream="stderr", timeout=30)
        assert re.search(reason, m.group("why")), m.group("why")
        r = host.worker_get("alpha")
        assert r.status == 200 and r.text == "alpha", r
        # The base is made again, then the worker's image on it.
        host.wait_for(BASE_LINE, stream="stderr", timeout=60)
        host.wait_for(r"thaw: snapshot of alpha@", stream="stderr", timeout=60)
        [new_hex] = base_blobs(host)
        assert new_hex != old_hex
        new = str(host.data / "blobs" / new_hex)
        wait_until(lambda: version(host, "alpha")["snapshot"], what="alpha's new image")
        image = str(host.data / "blobs" / version(host, "alpha")["snapshot"])
        assert inspected_base(image)[0] == new
        # The new image serves restored: the instance maps the new base.
        os.kill(instance_pid(host, "alpha"), 9)
        wait_until(lambda: host.worker_get("alpha").text == "alpha", what="alpha again")
        assert new in smaps_by_path(instance_pid(host, "alpha"))
        if how == "removed":
            assert not old.exists()
    finally:
        host.stop()


def test_thaw_dev_builds_on_a_base_and_makes_it_again_when_it_goes(tmp_path):
    require_snapshots()
    project = write_project(tmp_path / "p", ENTRY.format(text="dev says hi"), name="devbase")
    d = start_dev(project, "--idle-timeout", "0")
    try:
        d.wait_for(BASE_LINE, stream="stderr", timeout=60)
        d.wait_snapshot()
        [base] = (project / ".thaw" / "snapshots" / "base").glob("*.snap")
        assert inspected_base(d.snapshot_file())[0] == str(base)
        r = d.get("/")
        assert r.status == 200 and r.timing()[0] == "snapshot", r
        mark = d.mark()
        os.unlink(base)
        # Its image is refused (the base is missing) and the request boots; the base and then
        # the image are made again, and instances restore again.
        r = d.get("/")
        assert r.status == 200 and r.text == "dev says hi" and r.timing()[0] == "boot", r
        m = d.wait_for(REFUSED_RE, start=mark, timeout=10)
        assert re.search(r"its base image \S+ is missing", m.group("reason")), m.group("reason")
        d.wait_for(BASE_LINE, start=mark, stream="stderr", timeout=60)
        d.wait_snapshot(start=mark)
        [base2] = (project / ".thaw" / "snapshots" / "base").glob("*.snap")
        assert inspected_base(d.snapshot_file())[0] == str(base2)
        r = d.get("/")
        assert r.status == 200 and r.timing()[0] == "snapshot", r
    finally:
        d.stop()


def test_no_base_image_builds_whole_images(tmp_path):
    require_snapshots()
    project = write_project(tmp_path / "p", ENTRY.format(text="whole"), name="whole")
    d = start_dev(project, "--no-base-image")
    try:
        d.wait_snapshot()
        assert inspected_base(d.snapshot_file())[0] is None
        # (not rglob: the host makes and removes instances' own directories beside it)
        base_dir = project / ".thaw" / "snapshots" / "base"
        assert not base_dir.exists() or not list(base_dir.glob("*.snap"))
        assert not re.search(BASE_LINE, d.output())
        assert d.get("/").text == "whole"
    finally:
        d.stop()


def test_a_workers_own_limits_neither_fail_nor_drop_the_base(tmp_path):
    # Its builder restores the base under a restore's rlimits (the worker's own come after),
    # and the host's base builder is not held to a worker's limits or --max-snapshot-mb: with
    # 16 open files and 8 MB images, the base (~16 MB) is made and the worker is built on it.
    require_snapshots()
    project = write_project(tmp_path / "p", ENTRY.format(text="limited"), name="limited")
    d = start_dev(project, "--limit", "open_files=16", "--max-snapshot-mb", "8")
    try:
        d.wait_for(BASE_LINE, stream="stderr", timeout=60)
        d.wait_snapshot()
        [base] = (project / ".thaw" / "snapshots" / "base").glob("*.snap")
        assert inspected_base(d.snapshot_file())[0] == str(base)
        assert d.get("/").text == "limited"
        out = d.output()
        assert "refused" not in out and "could not be made" not in out, out
    finally:
        d.stop()


RESTORED_RE = (r"instance \d+ restored in (?P<total>[0-9.]+) ms: INIT in transit (?P<a>[0-9.]+), "
               r"setup (?P<b>[0-9.]+), checks (?P<c>[0-9.]+), mapping (?P<d>[0-9.]+) "
               r"\((?P<maps>\d+) mappings, (?P<copied>\d+) pages read in\), populating "
               r"(?P<e>[0-9.]+) \((?P<pages>\d+) pages\), Python (?P<f>[0-9.]+), READY in transit "
               r"(?P<g>[0-9.]+)")


def test_a_restore_says_where_its_time_went_and_reads_its_write_set_in(tmp_path):
    """thaw dev -v logs each restore's milliseconds by step; once the first restore recorded its
    working set, the own runs a restore would write anyway are read into place, not mapped: it
    makes fewer mappings than the image has regions and runs."""
    require_snapshots()
    project = write_project(tmp_path / "p", ENTRY.format(text="timed"), name="timed")
    d = start_dev(project, "--idle-timeout", "0", "-v")
    try:
        d.wait_snapshot()
        image = d.snapshot_file()
        # The first restore records the working set (IMAGE.ws) after its first request.
        assert d.get("/").text == "timed"
        wait_until(lambda: os.path.exists(str(image) + ".ws"), what="the working set")
        listed = int(re.search(r"mappings\s+(\d+) at restore", inspect(image)).group(1))
        mark = d.mark()
        r = d.get("/")
        assert r.status == 200 and r.text == "timed" and r.timing()[0] == "snapshot", r
        m = d.wait_for(RESTORED_RE, start=mark, stream="stderr", timeout=10)
        steps = [float(m.group(k)) for k in "abcdefg"]
        # The steps cover the whole restore, INIT sent to READY received (each printed to
        # 0.01 ms), and none is negative.
        assert abs(sum(steps) - float(m.group("total"))) <= 0.05, m.group(0)
        assert int(m.group("pages")) > 100, m.group(0)  # the write set was populated
        copied, maps = int(m.group("copied")), int(m.group("maps"))
        assert copied > 50, m.group(0)
        assert 0 < maps < listed * 2 // 3, (m.group(0), listed)
    finally:
        d.stop()


@pytest.mark.parametrize("sandbox", [[], ["--no-sandbox"]], ids=["sandbox", "no-sandbox"])
def test_a_working_set_that_is_not_a_regular_file_is_ignored(tmp_path, sandbox):
    """IMAGE.ws replaced by a FIFO (nothing ever writes to it): a restore must not wait on it;
    it restores without populating ahead."""
    require_snapshots()
    project = write_project(tmp_path / "p", ENTRY.format(text="fifo"), name="fifo")
    d = start_dev(project, "--idle-timeout", "0", "-v", *sandbox)
    try:
        d.wait_snapshot()
        image = str(d.snapshot_file())
        assert d.get("/").text == "fifo"
        wait_until(lambda: os.path.exists(image + ".ws"), what="the working set")
        os.unlink(image + ".ws")
        os.mkfifo(image + ".ws")
        mark = d.mark()
        r = d.get("/", timeout=10)
        assert r.status == 200 and r.text == "fifo" and r.timing()[0] == "snapshot", r
        m = d.wait_for(RESTORED_RE, start=mark, stream="stderr", timeout=10)
        assert int(m.group("pages")) == 0 and int(m.group("copied")) == 0, m.group(0)
    finally:
        d.stop()
