"""Resource limits per instance ([tool.thaw.limits], docs/limits.md), end to end.

Each test runs a worker past one limit and asserts the specific refusal, then that the host
goes on serving:
  * memory_mb: 10 GiB touched in chunks (the cgroup's OOM kill) or asked for at once
    (RLIMIT_DATA's MemoryError) -> 503 "Worker exceeded its memory limit (128 MiB)." and the
    log names the limit; another instance answers meanwhile, the worker serves after;
  * cpu_ms: a busy loop -> 503 "Worker exceeded CPU time limit."; a handler that sleeps far
    longer than cpu_ms passes (wall time is not CPU time);
  * pids: a fork bomb gets EAGAIN (BlockingIOError) inside the handler; once its instance is
    replaced no process of the bomb is left, nor the instance's cgroup;
  * open_files, file_size_mb: EMFILE and EFBIG inside the handler;
  * subrequests: the 4th fetch() of a request raises "Too many subrequests.";
  * configuration: a value of the wrong type, or over the host's cap, is refused naming it;
    thaw serve refuses such a deploy, and serves its other workers while one runs out of
    memory.
Tests that need a cgroup controller skip, saying so, where the host has none (not root).
"""

from __future__ import annotations

import errno
import http.server
import os
import threading
import time

import pytest

from thawtest import Background, Gate, ThawServe, run_thaw, snapshots_supported

ENTRY = """
import asyncio
import json
import os
import tempfile
import threading
import time
import urllib.parse

from workers import Response, WorkerEntrypoint, fetch


def query(request):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))


def fork_bomb():
    pids, error = [], None
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError as e:
            error = e
            break
        if pid == 0:
            try:
                time.sleep(600)
            finally:
                os._exit(0)
        pids.append(pid)
    return {"made": len(pids), "error": type(error).__name__ if error else None,
            "errno": error.errno if error else None, "pids": pids}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urllib.parse.urlsplit(request.url).path
        q = query(request)
        if path == "/ok":
            return Response("ok")
        if path == "/alloc":
            # Say it started, wait for the test's go (a socket of the test's: an instance sees
            # none of its files), then touch 10 GiB, 16 MiB at a time.
            reader, writer = await asyncio.open_connection("127.0.0.1", int(q["gate"]))
            await reader.read(1)
            writer.close()
            held = []
            for _ in range(640):
                chunk = bytearray(16 << 20)
                chunk[::4096] = b"\\x01" * len(range(0, 16 << 20, 4096))
                held.append(chunk)
            return Response(f"allocated {len(held) * 16} MiB")
        if path == "/alloc-once":
            if "gate" in q:
                reader, writer = await asyncio.open_connection("127.0.0.1", int(q["gate"]))
                await reader.read(1)
                writer.close()
            block = bytearray(10 << 30)
            return Response(f"allocated {len(block)} bytes")
        if path == "/spin":
            end = time.monotonic() + 10
            while time.monotonic() < end:
                pass
            return Response("spun for 10 s")
        if path == "/spin-after":
            # A thread left spinning once the response is sent.
            def spin():
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    pass
            threading.Thread(target=spin, daemon=True).start()
            return Response("spinning")
        if path == "/sleep":
            await asyncio.sleep(0.5)
            return Response("slept")
        if path == "/bomb":
            return Response(json.dumps(fork_bomb()))
        if path == "/files":
            fds, error = [], None
            try:
                for _ in range(100):
                    fds.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as e:
                error = e.errno
            opened = len(fds)
            for fd in fds:
                os.close(fd)
            return Response(json.dumps({"opened": opened, "errno": error}))
        if path == "/big":
            target = os.path.join(tempfile.gettempdir(), f"thaw-e2e-big-{os.getpid()}")
            written, error = 0, None
            try:
                with open(target, "wb", buffering=0) as f:
                    while written < 2 << 20:
                        written += f.write(b"x" * 65536)
            except OSError as e:
                error = e.errno
            finally:
                os.unlink(target)
            return Response(json.dumps({"written": written, "errno": error}))
        if path == "/sub":
            done = 0
            try:
                for _ in range(4):
                    await fetch(q["url"])
                    done += 1
            except RuntimeError as e:
                return Response(f"{done} ok; {type(e).__name__}: {e}")
            return Response(f"{done} ok")
        return Response("not found", status=404)
"""

MEMORY_503 = "Worker exceeded its memory limit (128 MiB).\n"
CPU_503 = "Worker exceeded CPU time limit.\n"


def limits_project(project, limits, name="e2e-worker", entry=ENTRY):
    """A project of ENTRY with [tool.thaw.limits] = limits (values written as TOML)."""
    root = project(entry, name=name)
    text = (root / "pyproject.toml").read_text()
    text += "[tool.thaw.limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    (root / "pyproject.toml").write_text(text)
    return root


def enforcement(d):
    """The host's one line saying how each limit is enforced (printed at start)."""
    return d.wait_for(r"limits: memory by .*", stream="stderr", timeout=10).group(0)


def needs(d, what):
    line = enforcement(d)
    if what == "pids" and "no pids cgroup" in line:
        pytest.skip(f"this host has no pids cgroup it may use: {line}")
    if what == "memory" and "no memory cgroup" in line:
        pytest.skip(f"this host has no memory cgroup it may use: {line}")
    return line


def poll(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def cgroup_dirs(host_pid):
    """The cgroup directories a host made (thaw-PID), wherever the hierarchies are mounted."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for name in list(dirs):
            if name == f"thaw-{host_pid}":
                found.append(os.path.join(root, name))
        # Deep enough for the session's own groups, not the whole tree.
        if root.count("/") > 6:
            dirs[:] = []
    return found


# --------------------------------------------------------------------------- memory


def test_memory_over_the_limit_is_a_503_and_the_host_serves_throughout(project, dev, start_mode,
                                                                        tmp_path):
    root = limits_project(project, {"memory_mb": 128})
    # One request per instance: the request sent while the first allocates gets another one.
    d = start_mode.settle(dev(root, "--concurrency", "1", *start_mode.flags))
    line = enforcement(d)
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r
    # An instance restored (or booted) under the limit serves.
    assert r.timing()[0] in start_mode.first_descs() | {"warm"}

    gate = Gate()
    hog = Background(d, f"/alloc?gate={gate.port}")
    assert gate.wait_started(30), d.output()
    # Meanwhile another instance answers.
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r
    mark = d.mark()
    gate.go()
    r = hog.join()
    assert r.status == 503, r
    assert r.text == MEMORY_503, r
    if "no memory cgroup" in line:
        d.wait_for(r"exceeded its memory limit \(128 MiB, RLIMIT_DATA", start=mark)
    else:
        d.wait_for(r"exceeded its memory limit \(128 MiB, cgroup v[12] memory\.(max|limit_in_bytes):"
                   r" killed by the kernel\)", start=mark)
    # And after: a new instance.
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r

    # All at once: RLIMIT_DATA refuses it, the runtime answers 503 and the instance goes (a
    # sanitizer build sets no RLIMIT_DATA: its cgroup stops it as the pages are touched).
    mark = d.mark()
    r = d.get("/alloc-once")
    assert r.status == 503 and r.text == MEMORY_503, r
    how = r"RLIMIT_DATA: a MemoryError it did not survive\)"
    if not snapshots_supported():
        how = f"({how}|cgroup)"
    d.wait_for(r"exceeded its memory limit \(128 MiB, " + how, start=mark)
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r


def test_a_memory_error_loses_no_request_waiting_for_its_instance(project, dev):
    root = limits_project(project, {"memory_mb": 128})
    # One instance, one request at a time: the others wait for the one that fails.
    d = dev(root, "--concurrency", "1", "--max-instances", "1", "--no-snapshot")
    gate = Gate()
    hog = Background(d, f"/alloc-once?gate={gate.port}")
    assert gate.wait_started(30), d.output()
    waiting = [Background(d, "/ok") for _ in range(3)]
    time.sleep(0.3)
    gate.go()
    r = hog.join()
    assert r.status == 503 and r.text == MEMORY_503, r
    # They were not given to the instance on its way out: another one serves them.
    for w in waiting:
        r = w.join()
        assert r.status == 200 and r.text == "ok", r
    assert "connection failed" not in d.output()


# --------------------------------------------------------------------------- CPU


def test_cpu_ms_stops_a_busy_loop_but_not_a_handler_that_waits(project, dev, start_mode):
    root = limits_project(project, {"cpu_ms": 50})
    d = start_mode.settle(dev(root, *start_mode.flags))
    # Half a second of wall time, almost no CPU: passes.
    r = d.get("/sleep")
    assert r.status == 200 and r.text == "slept", r
    assert r.timing()[2] >= 500
    mark = d.mark()
    t0 = time.monotonic()
    r = d.get("/spin")
    elapsed = time.monotonic() - t0
    assert r.status == 503, r
    assert r.text == CPU_503, r
    assert elapsed < 5, f"the busy loop ran {elapsed:.1f} s before it was stopped"
    m = d.wait_for(r"GET /spin used (\d+) ms of CPU time, over its limit of 50 ms \(cpu_ms\); "
                   r"replacing instance", start=mark)
    assert 50 <= int(m.group(1)) < 1000, m.group(0)
    # The worker serves on, from a new instance.
    r = d.get("/sleep")
    assert r.status == 200 and r.text == "slept", r


def test_cpu_ms_stops_what_a_request_left_running(project, dev):
    root = limits_project(project, {"cpu_ms": 50})
    d = dev(root, "--no-snapshot")
    mark = d.mark()
    r = d.get("/spin-after")
    assert r.status == 200 and r.text == "spinning", r
    m = d.wait_for(r"instance (\d+) used (\d+) ms of CPU time while it held no request .*"
                   r"over its limit of 50 ms \(cpu_ms\); replacing it", start=mark, timeout=5)
    assert 50 <= int(m.group(2)) < 1000, m.group(0)
    # The next request is not charged the thread's CPU: a new instance serves it.
    r = d.get("/sleep")
    assert r.status == 200 and r.text == "slept", r


# --------------------------------------------------------------------------- processes


def test_a_fork_bomb_gets_eagain_and_leaves_nothing_behind(project, dev):
    root = limits_project(project, {"pids": 32})
    # Idle timeout 0: each instance is closed after its request, so the bomb's goes at once.
    d = dev(root, "--idle-timeout", "0")
    needs(d, "pids")
    r = d.get("/bomb")
    assert r.status == 200, r
    bomb = r.json()
    assert bomb["error"] == "BlockingIOError" and bomb["errno"] == errno.EAGAIN, bomb
    assert 8 <= bomb["made"] < 32, bomb
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r

    def bomb_left():
        left = []
        for pid in bomb["pids"]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            state = stat[stat.rindex(")") + 2]
            if state not in "ZX" and "(thaw:" in stat:
                left.append(pid)
        return left

    assert poll(lambda: not bomb_left(), timeout=10), f"still alive: {bomb_left()}"
    assert d.alive()
    host = d.pid
    d.stop()
    assert cgroup_dirs(host) == []


# --------------------------------------------------------------------------- files


def test_open_files_and_file_size_limits_are_errors_in_the_handler(project, dev):
    root = limits_project(project, {"open_files": 64, "file_size_mb": 1})
    d = dev(root)
    r = d.get("/files")
    assert r.status == 200, r
    files = r.json()
    assert files["errno"] == errno.EMFILE, files
    assert 40 <= files["opened"] < 64, files
    r = d.get("/big")
    assert r.status == 200, r
    big = r.json()
    # SIGXFSZ is ignored: the write past 1 MiB fails with EFBIG instead of killing.
    assert big == {"written": 1 << 20, "errno": errno.EFBIG}, big
    r = d.get("/ok")
    assert r.status == 200 and r.text == "ok", r


# --------------------------------------------------------------------------- subrequests


@pytest.fixture
def origin():
    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-length", "4")
            self.end_headers()
            self.wfile.write(b"pong")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pong)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_the_fourth_subrequest_of_a_request_raises(project, dev, origin):
    root = limits_project(project, {"subrequests": 3})
    d = dev(root)
    for _ in range(2):  # each request has its own three
        r = d.get(f"/sub?url={origin}")
        assert r.status == 200, r
        assert r.text == "3 ok; RuntimeError: Too many subrequests.", r


# --------------------------------------------------------------------------- configuration


def test_bad_limits_are_refused_naming_the_field(project):
    root = limits_project(project, {"memory_mb": '"lots"'})
    r = run_thaw("dev", root, "--port", "0", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("pyproject.toml [tool.thaw]: limits.memory_mb must be a whole number from 32 to "
            "1048576") in r.stderr, r.stderr

    root = limits_project(project, {"cpu_ms": 1000, "memory_mb": 512})
    r = run_thaw("dev", root, "--port", "0", "--max-limit", "memory_mb=256", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "limits.memory_mb = 512 is over this host's cap of 256" in r.stderr, r.stderr

    r = run_thaw("dev", root, "--port", "0", "--limit", "pids=lots", timeout=60)
    assert r.returncode == 2 and "--limit: pids must be a whole number" in r.stderr, r.stderr
    r = run_thaw("dev", root, "--port", "0", "--limit", "pids=100", "--max-limit", "pids=80",
                 timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "the default pids=100 is over its cap of 80" in r.stderr, r.stderr


# --------------------------------------------------------------------------- thaw serve


def deploy(host, root):
    r = host.client("deploy", root, "--no-install")
    return r, r.stdout + r.stderr


def test_serve_refuses_a_deploy_over_its_caps_and_serves_others_while_one_runs_out(
        tmp_path, project):
    host = ThawServe(tmp_path / "host" / "data", ["--max-limit", "memory_mb=768"]).wait_ready()
    try:
        greedy = limits_project(project, {"memory_mb": 1024}, name="greedy")
        r, out = deploy(host, greedy)
        assert r.returncode != 0, out
        assert "limits.memory_mb = 1024 is over this host's cap of 768" in out, out

        hog = limits_project(project, {"memory_mb": 128}, name="hog")
        calm = limits_project(project, {}, name="calm")
        for root in (hog, calm):
            r, out = deploy(host, root)
            assert r.returncode == 0, out
        gate = Gate()
        req = Background(host, f"/alloc?gate={gate.port}", headers={"Host": "hog.localhost"})
        assert gate.wait_started(30), host.output()
        assert host.worker_get("calm", "/ok").text == "ok"
        gate.go()
        r = req.join()
        assert r.status == 503 and r.text == MEMORY_503, r
        assert host.worker_get("calm", "/ok").text == "ok"
        assert host.worker_get("hog", "/ok").text == "ok"
    finally:
        host.stop()
