"""Faults from outside the worker: the disk filling up under `thaw serve`, and an instance stopped.

Disk full: the host's data directory is a small tmpfs mounted for the test (root only; the test
is skipped with the reason when it cannot be mounted). v1 is deployed and serving; the file
system is then filled, leaving room for v2's bundle but not for its snapshot image (the
builder's write of the image hits ENOSPC), for its upload but not for its unpacked files, or no
room at all (the upload's write hits it). Each way the deploy of v2 fails saying "No space left on device", v1 answers every
request throughout and after, nothing half-written is left in the data directory (no temporary
file, no partial image or blob, no row naming a file that is missing or not what its name says),
and once space is freed the next deploy goes live.

Stopped instance (SIGSTOP, found by the worker's `_thaw_runtime.host_pid()`): the host hears of
it (SIGCHLD with WUNTRACED) and gives it no more requests: what it holds times out (504 with the
time-limit message), the next request is served by a new instance, and the stopped process is
killed and reaped. A stopped spare is replaced before it can swallow a cold start.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import http.client

import pytest

from thawtest import (ThawServe, base_blobs, proc_children, proc_stat, require_snapshots,
                      snapshots_supported, wait_until, write_project)

ENTRY = """
    import asyncio
    from workers import WorkerEntrypoint, Response

    # 12 MiB of the worker's own: an image built on the base holds little more than what the
    # worker's top level makes, and the disk-full test needs one that cannot fit in 4 MB.
    BALLAST = b"thaw" * (3 << 20)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/hold"):
                print("hold-marker: the request is in the instance", flush=True)
                await asyncio.sleep(60)
            if request.url.endswith("/trickle"):
                async def body():
                    yield b"first\\n"
                    await asyncio.sleep(60)
                    yield b"never\\n"
                return Response(body(), headers={"content-type": "text/plain"})
            return Response(f"{self.env.VERSION} {__import__('_thaw_runtime').host_pid()}")
"""

FS_MB = 64  # the data directory's file system: room for the base (~16 MB) and v1 (~15 MB), and
            # a v2 that fails
NO_SPACE = "No space left on device"


def make(root, version):
    return write_project(root, ENTRY, vars={"VERSION": version}, name="shop")


def deploy(host, project):
    r = host.client("deploy", project, "--no-install")
    return r, r.stdout + r.stderr


def answer(host, path="/"):
    """(version, host pid) of the instance that answered GET path (asserting a 200)."""
    r = host.worker_get("shop", path)
    assert r.status == 200, r
    version, pid = r.text.split()
    return version, int(pid)


def versions(host):
    return {v["number"]: v for v in host.api("GET", "/v1/workers/shop/versions").json()["versions"]}


# --------------------------------------------------------------------------- a small data dir


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of FS_MB MB mounted on tmp_path/mnt, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data directory needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_MB}m,mode=0700", "tmpfs",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs on {mnt}: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_host(small_fs):
    """Start `thaw serve` with its data directory on small_fs; stopped (exit 0, no child left)
    before the file system is unmounted."""
    hosts = []

    def start(*args):
        h = ThawServe(small_fs / "data", args).wait_ready()
        hosts.append(h)
        return h

    yield start
    for h in hosts:
        if h.alive():
            h.stop()


def free_bytes(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill(mnt, leave):
    """Fill the file system on mnt with mnt/filler until `leave` bytes are free (0: until a
    write fails with ENOSPC)."""
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    chunk = b"\0" * (1 << 20)
    try:
        while True:
            want = free_bytes(mnt) - leave
            if leave and want <= 0:
                break
            try:
                os.write(fd, chunk[: max(4096, min(len(chunk), want))] if leave else chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)
    assert free_bytes(mnt) <= leave, (free_bytes(mnt), leave)


class Hammer:
    """GET / on the worker, one request after another on a thread, until stopped: every answer
    must be a 200 from `version`."""

    def __init__(self, host, version):
        self.host, self.version = host, version
        self.count, self.bad = 0, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                r = self.host.worker_get("shop", "/")
                ok = r.status == 200 and r.text.split()[0] == self.version
                if not ok:
                    self.bad.append(r)
            except (OSError, http.client.HTTPException) as e:
                self.bad.append(e)
            self.count += 1

    def stop(self):
        self.done.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.count > 0
        assert not self.bad, f"v1 failed {len(self.bad)} of {self.count} requests: {self.bad[:3]}"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def assert_nothing_half_written(host):
    """DATA/tmp is empty, no image is being written anywhere, and DATA/blobs holds exactly the
    files the store names (bundles and images, an image's working set beside it), each
    complete (its SHA-256 is its name)."""
    data = host.data
    assert os.listdir(data / "tmp") == [], os.listdir(data / "tmp")
    stray = []
    for dirpath, _, files in os.walk(data):
        rel = os.path.relpath(dirpath, data)
        if rel == "versions" or rel.startswith("versions" + os.sep):
            continue  # unpacked bundles of stored versions
        for name in files:
            if name.endswith((".tmp", ".snap")) or name.startswith(("blob-", "unpack-")):
                stray.append(os.path.join(rel, name))
    assert not stray, f"half-written files left in {data}: {stray}"
    named, images = set(), set()
    for v in versions(host).values():
        named.add(v["bundle"])
        if v["snapshot"]:
            named.add(v["snapshot"])
            images.add(v["snapshot"])
    named |= base_blobs(host)  # the host's base image (docs/snapshots.md)
    on_disk = set(os.listdir(data / "blobs"))
    unnamed = {n for n in on_disk if n not in named and not (n.endswith(".ws") and n[:-3] in images)}
    assert not unnamed, f"blobs no version names: {unnamed}"
    for hexdigest in named:
        assert hexdigest in on_disk, f"a version names blob {hexdigest}, which is missing"
        assert sha256(data / "blobs" / hexdigest) == hexdigest, f"blob {hexdigest} is partial"


def deploy_v1(host, tmp_path):
    r, out = deploy(host, make(tmp_path / "v1", "v1"))
    assert r.returncode == 0, out
    version, _ = answer(host)
    assert version == "v1"
    if snapshots_supported():
        # v1's first restored instance records its working set: wait for it to be stored, so
        # that nothing of v1 is still being written when the disk fills.
        snap = versions(host)[1]["snapshot"]
        wait_until(lambda: (host.data / "blobs" / f"{snap}.ws").exists(),
                   what="v1's working set in DATA/blobs")


def test_disk_full_during_the_snapshot_write_fails_the_deploy_and_v1_serves_on(small_fs,
                                                                               small_host,
                                                                               tmp_path):
    require_snapshots()
    host = small_host()
    deploy_v1(host, tmp_path)
    image_bytes = versions(host)[1]["snapshot_bytes"]
    # Room for v2's bundle, its unpacked files and the store's rows, not for its image.
    leave = 4 << 20
    assert image_bytes > 2 * leave, f"an image of {image_bytes} bytes would fit in {leave}"
    fill(small_fs, leave)

    hammer = Hammer(host, "v1")
    mark = host.mark()
    r, out = deploy(host, make(tmp_path / "v2", "v2"))
    hammer.stop()
    assert r.returncode != 0, out
    assert "stored version 2" in out, f"the bundle should have fit: {out}"
    assert f"cannot write the image: {NO_SPACE}" in out, out
    host.wait_for(rf"deploy failed: .*{NO_SPACE}", start=mark)
    v2 = versions(host)[2]
    assert v2["state"] == "failed" and NO_SPACE in v2["error"], v2
    r = host.client("versions", "list", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    row = re.search(r"^\s+2\s+\S+.*\bfailed\b.*\n\s+error: (.*)$", r.stdout, re.M)
    assert row and NO_SPACE in row[1], r.stdout
    assert answer(host)[0] == "v1"
    assert_nothing_half_written(host)

    os.unlink(small_fs / "filler")
    r, out = deploy(host, make(tmp_path / "v3", "v3"))
    assert r.returncode == 0, out
    assert answer(host)[0] == "v3"
    assert_nothing_half_written(host)


@pytest.mark.parametrize("room, answer_re", [
    # Nothing free: the upload's own write fails.
    (0, rf"cannot store the upload: writing \S+/tmp/blob-\S+: {NO_SPACE} \(HTTP 500\)"),
    # One page: the upload (half a KB) fits, its unpacking does not; the host's disk is at
    # fault, not the bundle ("refused", 422, would say otherwise).
    (os.sysconf("SC_PAGE_SIZE"), rf"cannot unpack the bundle: \S+: writing: {NO_SPACE} \(HTTP 507\)"),
], ids=["upload", "unpack"])
def test_disk_full_while_storing_the_bundle_fails_the_deploy_and_v1_serves_on(small_fs,
                                                                              small_host,
                                                                              tmp_path, room,
                                                                              answer_re):
    host = small_host()
    deploy_v1(host, tmp_path)
    fill(small_fs, room)

    hammer = Hammer(host, "v1")
    r, out = deploy(host, make(tmp_path / "v2", "v2"))
    hammer.stop()
    assert r.returncode != 0, out
    assert re.search(answer_re, out), out
    assert set(versions(host)) == {1}, "a bundle that could not be stored made a version"
    assert answer(host)[0] == "v1"
    assert_nothing_half_written(host)

    os.unlink(small_fs / "filler")
    r, out = deploy(host, make(tmp_path / "v2", "v2"))
    assert r.returncode == 0, out
    assert answer(host)[0] == "v2"
    assert_nothing_half_written(host)


# --------------------------------------------------------------------------- a stopped instance

TIMEOUT_S = 4  # the hosts' --timeout: a held request answers 504 after it


@pytest.fixture
def host(tmp_path):
    hosts = []

    def start(*args):
        h = ThawServe(tmp_path / "data", ("--timeout", TIMEOUT_S, *args)).wait_ready()
        hosts.append(h)
        r, out = deploy(h, make(tmp_path / "shop", "v1"))
        assert r.returncode == 0, out
        return h

    yield start
    for h in hosts:
        if h.alive():
            h.stop()


def gone(pid, starttime):
    """The process is no more: not running, not a zombie (its parent reaped it)."""
    st = proc_stat(pid)
    return st is None or st["starttime"] != starttime


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def test_a_stopped_instance_times_out_what_it_holds_and_is_replaced(host):
    h = host()
    _, pid = answer(h)
    start = proc_stat(pid)["starttime"]
    held = {}

    def hold():
        t0 = time.monotonic()
        held["resp"] = h.worker_get("shop", "/hold", timeout=60)
        held["s"] = time.monotonic() - t0

    mark = h.mark()
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    h.wait_for("hold-marker", start=mark)  # the request is in the instance
    os.kill(pid, signal.SIGSTOP)
    h.wait_for(rf"instance \d+ \(pid {pid}\) was stopped by signal {int(signal.SIGSTOP)}",
               start=mark)

    # It takes no more work: the next request is served by a new instance at once.
    version, new_pid = answer(h)
    assert version == "v1" and new_pid != pid
    t.join(TIMEOUT_S + 30)
    r = held["resp"]
    assert r.status == 504, r
    assert "did not answer within the time limit" in r.text, r.text
    assert held["s"] >= TIMEOUT_S - 0.5, held
    # Killed and reaped: gone from /proc, not a zombie.
    wait_until(lambda: gone(pid, start), timeout=10, what=f"the stopped instance {pid} to go")
    version, pid3 = answer(h)
    assert pid3 != pid


def test_a_stopped_instance_streaming_a_response_is_killed_at_the_time_limit(host):
    # Its response's head went out, so the request has no time limit of its own left: the
    # stopped process must still not hold it (and its memory) for ever.
    h = host()
    _, pid = answer(h)
    start = proc_stat(pid)["starttime"]
    sock = socket.create_connection(("127.0.0.1", h.port), timeout=60)
    sock.sendall(b"GET /trickle HTTP/1.1\r\nHost: shop.localhost\r\n\r\n")
    got = b""
    while b"first" not in got:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got
    mark = h.mark()
    os.kill(pid, signal.SIGSTOP)
    h.wait_for(rf"instance \d+ \(pid {pid}\) was stopped", start=mark)
    t0 = time.monotonic()
    try:
        while chunk := sock.recv(65536):  # until the host ends the connection
            got += chunk
    except (socket.timeout, OSError):
        pass
    took = time.monotonic() - t0
    sock.close()
    assert b"never" not in got, got
    assert took < TIMEOUT_S + 10, f"the stream was held {took:.1f} s by a stopped instance"
    wait_until(lambda: gone(pid, start), timeout=10, what=f"the stopped instance {pid} to go")
    version, new_pid = answer(h)
    assert new_pid != pid


def test_a_stopped_idle_instance_is_replaced_at_once(host):
    h = host()
    _, pid = answer(h)
    start = proc_stat(pid)["starttime"]
    mark = h.mark()
    os.kill(pid, signal.SIGSTOP)
    h.wait_for(rf"instance \d+ \(pid {pid}\) was stopped", start=mark)
    wait_until(lambda: gone(pid, start), timeout=10, what=f"the stopped instance {pid} to go")
    t0 = time.monotonic()
    version, new_pid = answer(h)
    assert new_pid != pid
    assert time.monotonic() - t0 < TIMEOUT_S, "the request waited on the stopped instance"


def test_stopped_spares_are_replaced_and_never_swallow_a_cold_start(host):
    # --idle-timeout 0: every request takes a spare for a new instance.
    h = host("--idle-timeout", "0")

    def spares():
        return [(p, st) for p, st in proc_children(h.pid) if comm(p) == "thaw-spare"]

    wait_until(lambda: len(spares()) == 2, what="two spares")
    stopped = spares()
    for p, _ in stopped:
        os.kill(p, signal.SIGSTOP)
    wait_until(lambda: all(gone(p, st) for p, st in stopped), timeout=10,
               what="the stopped spares to be killed and reaped")
    for _ in range(3):
        t0 = time.monotonic()
        version, pid = answer(h)
        assert version == "v1" and pid not in {p for p, _ in stopped}
        assert time.monotonic() - t0 < TIMEOUT_S
    wait_until(lambda: len(spares()) == 2, what="the spares topped up again")
