"""Helpers for thaw's end-to-end tests (imported by conftest.py and the test modules).

Every test talks HTTP to a real `thaw dev` process on 127.0.0.1. The helpers here:
  * write a small project (pyproject.toml + src/entry.py) into a temporary directory,
  * start `thaw dev` on port 0 and wait for its `Ready on http://IP:PORT` line,
  * collect the process's stdout and stderr continuously (tests wait for a line to appear),
  * stop it with SIGINT, asserting exit code 0 within 10 s and that no child is left behind.

Snapshots: `thaw dev` builds a memory snapshot of the worker at start and after every reload and
restores new instances from it (`--no-snapshot`: they boot). The first request right after
`Ready` races that build: it boots meanwhile. A test that needs a restored instance waits for
the `thaw: snapshot of NAME: ...` line first (ThawDev.wait_snapshot). Sanitizer builds never
snapshot (`thaw --version` says so): snapshots_supported() tells.

The binary comes from $THAW_BIN (default /work/main/build/thaw).
Run with Debian's Python: `/usr/bin/python3 -m pytest tests/e2e` from the repo root.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THAW_BIN = os.environ.get("THAW_BIN", str(REPO / "build" / "thaw"))
READY_RE = re.compile(r"Ready on http://(\S+):(\d+)")
TIMING_RE = re.compile(
    r'start;desc="(warm|boot|snapshot)";dur=([0-9.]+)\s*,\s*handler;dur=([0-9.]+)'
)

SNAPSHOT_RE = (
    r"thaw: snapshot of (?P<name>\S+): (?P<mb>[0-9.]+) MB, "
    r"written in (?P<written>[0-9]+) ms \(built in (?P<built>[0-9]+) ms\)"
)
REFUSED_RE = r"snapshot refused \((?P<reason>.*)\); rebuilding it"

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SNAPSHOT_TIMEOUT = 60.0


# --------------------------------------------------------------------------- processes


def thaw_env(extra=None):
    """The environment thaw runs in: ours without variables that would steer its Python."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "PYENV_VERSION")
    }
    env.setdefault("LANG", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def run_thaw(*args, cwd=None, timeout=60, binary=None):
    """Run a short thaw command (init, --help) and return the CompletedProcess."""
    require_binary()
    return subprocess.run(
        [binary or THAW_BIN, *map(str, args)],
        cwd=cwd,
        env=thaw_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def require_binary():
    assert os.access(THAW_BIN, os.X_OK), (
        f"thaw binary not found at {THAW_BIN} "
        "(build it with `cmake -S . -B build && cmake --build build`, or set THAW_BIN)"
    )


_VERSION = []


def thaw_version():
    """`thaw --version` (stdout and stderr), asked once."""
    if not _VERSION:
        r = run_thaw("--version", timeout=30)
        _VERSION.append(r.stdout + r.stderr)
    return _VERSION[0]


def snapshots_supported():
    """False for the sanitizer build, which never snapshots ("(sanitizer build: snapshots off)")."""
    v = thaw_version()
    return "snapshots off" not in v and "sanitizer" not in v


def require_snapshots():
    """Skip the calling test (or fixture) on a build that never snapshots."""
    if not snapshots_supported():
        pytest.skip(f"this thaw build does not snapshot ({thaw_version().strip()})")


def wait_until(predicate, timeout=30.0, what="condition"):
    """Poll predicate() until it holds; AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def proc_children(pid):
    """Pids (with their start times) of the processes whose parent is `pid`, found in /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st["ppid"] == pid:
            found.append((int(entry), st["starttime"]))
    return found


def proc_descendants(pid):
    out, todo = [], [pid]
    while todo:
        for child in proc_children(todo.pop()):
            out.append(child)
            todo.append(child[0])
    return out


def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return {"state": rest[0], "ppid": int(rest[1]), "starttime": int(rest[19])}


def proc_alive(pid, starttime):
    st = proc_stat(pid)
    return st is not None and st["starttime"] == starttime and st["state"] not in ("Z", "X")


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class OutputCollector:
    """Reads one pipe line by line in a thread and lets tests wait for text to appear."""

    def __init__(self, pipe, name, shared):
        self.name = name
        self.shared = shared  # (list of (name, line), Condition) common to stdout and stderr
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe):
        lines, cond = self.shared
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace")
            with cond:
                lines.append((self.name, line))
                cond.notify_all()
        pipe.close()


class ThawDev:
    """One running `thaw dev` process."""

    def __init__(self, project, args=(), env=None, cwd=None, binary=None):
        require_binary()
        self.project = Path(project)
        self.args = [str(binary or THAW_BIN), "dev", str(project), "--port", "0", *map(str, args)]
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=thaw_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self._collectors = [
            OutputCollector(self.proc.stdout, "stdout", (self.lines, self.cond)),
            OutputCollector(self.proc.stderr, "stderr", (self.lines, self.cond)),
        ]
        self.host = None
        self.port = None
        self.stopped = False

    # -- output

    def output(self, stream=None):
        with self.cond:
            return "".join(l for n, l in self.lines if stream is None or n == stream)

    def wait_for(self, pattern, timeout=10.0, stream=None, start=0):
        """Wait until a line (from index `start` of the combined output) matches the regex
        `pattern`; return the match. Fails with the whole output on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    name, line = self.lines[i]
                    i += 1
                    if stream is None or name == stream:
                        m = rx.search(line)
                        if m:
                            return m
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.2))
        pytest.fail(
            f"no output line matched {pattern!r} within {timeout}s; "
            f"thaw output so far:\n{self.output()}"
        )

    def mark(self):
        """An index into the output, for wait_for(start=...) to look only at what comes next."""
        with self.cond:
            return len(self.lines)

    def output_since(self, mark):
        with self.cond:
            return "".join(l for _, l in self.lines[mark:])

    # -- snapshots

    def wait_snapshot(self, start=0, timeout=SNAPSHOT_TIMEOUT):
        """Wait for `thaw: snapshot of NAME: X MB, written in N ms (built in M ms)` (from output
        index `start`); return the match. Fails early with the output if the build failed."""
        m = self.wait_for(SNAPSHOT_RE + r"|cannot load|cannot snapshot", timeout=timeout,
                          stream="stderr", start=start)
        if not m.group("name"):
            # Only to show more of the failure: nothing marks the end of the message.
            time.sleep(0.2)
            pytest.fail(f"the snapshot build failed; thaw output:\n{self.output()}")
        return m

    def snapshot_dir(self):
        return self.project / ".thaw" / "snapshots"

    def snapshot_files(self):
        """The snapshot images (*.snap) in PROJECT/.thaw/snapshots, sorted by name."""
        d = self.snapshot_dir()
        return sorted(d.glob("*.snap")) if d.is_dir() else []

    def snapshot_file(self):
        """The one current snapshot image (fails if there is not exactly one)."""
        files = self.snapshot_files()
        assert len(files) == 1, f"expected one snapshot in {self.snapshot_dir()}: {files}"
        return files[0]

    def alive(self):
        return self.proc.poll() is None

    # -- lifecycle

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        rx = READY_RE
        with self.cond:
            i = 0
            while True:
                while i < len(self.lines):
                    name, line = self.lines[i]
                    i += 1
                    m = rx.search(line)
                    if m and name == "stdout":
                        self.host, self.port = m.group(1), int(m.group(2))
                        assert self.port > 0, f"Ready line shows port 0: {line!r}"
                        return self
                if self.proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.2))
        rc = self.proc.poll()
        self.kill()
        for c in self._collectors:  # read what is left, up to EOF
            c.thread.join(2)
        pytest.fail(
            f"`{' '.join(self.args)}` did not print a `Ready on http://IP:PORT` line on stdout "
            f"within {timeout}s (exit code: {rc}); output:\n{self.output()}"
        )

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def children(self):
        return proc_descendants(self.pid)

    def stop(self, timeout=STOP_TIMEOUT, check=True):
        """SIGINT, then assert: exit code 0 within `timeout`, no child process left."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        before = self.children() if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            if check:
                pytest.fail(
                    f"thaw dev did not exit within {timeout}s of SIGINT; output:\n{self.output()}"
                )
            return None
        for c in self._collectors:
            c.thread.join(2)
        left = []
        deadline = time.monotonic() + 2.0
        while True:
            left = [p for p, start in before if proc_alive(p, start)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for p in left:  # do not leak them into later tests
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if check:
            assert rc == 0, f"thaw dev exited with {rc} after SIGINT; output:\n{self.output()}"
            assert not left, (
                f"child processes {left} of thaw dev (pid {self.pid}) still alive after it "
                f"exited; output:\n{self.output()}"
            )
        return rc

    def kill(self):
        """Hard stop (used on failure paths): thaw and everything under it."""
        kids = self.children() if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for p, start in kids:
            if proc_alive(p, start):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.stopped = True

    # -- HTTP

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection; returns a Resp (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Resp(r.status, r.headers, data)
        finally:
            conn.close()

    def get(self, path="/", **kw):
        return self.request("GET", path, **kw)

    def get_until(self, path, predicate, timeout=5.0, interval=0.1):
        """Poll GET `path` until predicate(resp) is true; return the last response and
        whether it succeeded."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.get(path, timeout=10)
                if predicate(last):
                    return last, True
            except (OSError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() > deadline:
                return last, False
            time.sleep(interval)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        import json

        return json.loads(self.body)

    def timing(self):
        """(desc, start_ms, handler_ms) from the Server-Timing header."""
        value = self.headers.get("Server-Timing")
        assert value is not None, f"no Server-Timing header in {dict(self.headers)}"
        m = TIMING_RE.search(value)
        assert m, f"Server-Timing header has an unexpected form: {value!r}"
        return m.group(1), float(m.group(2)), float(m.group(3))

    def __repr__(self):
        return f"<Resp {self.status} {dict(self.headers)} {self.body[:300]!r}>"


def start_dev(project, *args, env=None, cwd=None, timeout=READY_TIMEOUT, binary=None):
    return ThawDev(project, args, env=env, cwd=cwd, binary=binary).wait_ready(timeout)


# --------------------------------------------------------------------------- projects


def write_project(root, entry, vars=None, name="e2e-worker", main="src/entry.py", files=None,
                  pyproject=True, thaw=None):
    """Write a project into `root`: pyproject.toml ([tool.thaw] name/main/vars, plus the keys
    of `thaw`, e.g. {"allow_entropy_at_import": True}) and the entry module from `entry`
    (dedented). `files` maps relative paths to extra file contents."""
    root = Path(root)
    (root / "src").mkdir(parents=True, exist_ok=True)
    if pyproject:
        lines = [
            "[project]",
            f'name = "{name}"',
            'version = "0.1.0"',
            'requires-python = ">=3.11"',
            "dependencies = []",
            "",
            "[tool.thaw]",
            f'name = "{name}"',
            f'main = "{main}"',
        ]
        for k, v in (thaw or {}).items():
            lines.append(f"{k} = {toml_str(v)}")
        lines.append("")
        if vars:
            lines.append("[tool.thaw.vars]")
            for k, v in vars.items():
                lines.append(f"{k} = {toml_str(v)}")
        (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    if entry is not None:
        path = root / main
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(entry).lstrip("\n"))
    for rel, content in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(content).lstrip("\n"))
    return root


def toml_str(v):
    import json

    # JSON strings, numbers and booleans are valid TOML for our values.
    return json.dumps(v)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- thaw serve

TOKEN = "e2e-token-0123456789abcdef"
CONTROL_RE = re.compile(r"Control API on http://(\S+):(\d+)")


class ThawServe(ThawDev):
    """One running `thaw serve --data DATA` with its data plane and control API on port 0 and
    the control token in DATA/../token (TOKEN), given to the host with --token-file, or with
    token_in_env in $THAW_TOKEN (the file is still there for the client commands). Same output
    and lifecycle helpers as ThawDev."""

    def __init__(self, data, args=(), env=None, binary=None, token=TOKEN, token_in_env=False):
        require_binary()
        self.data = Path(data)
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.token_file = self.data.parent / "token"
        self.token_file.write_text(token + "\n")
        self.token = token
        self.project = self.data
        token_args = [] if token_in_env else ["--token-file", str(self.token_file)]
        if token_in_env:
            env = {**(env or {}), "THAW_TOKEN": token}
        self.args = [str(binary or THAW_BIN), "serve", "--data", str(data), "--port", "0",
                     "--control", "127.0.0.1:0", *token_args, *map(str, args)]
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(self.args, env=thaw_env(env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self._collectors = [
            OutputCollector(self.proc.stdout, "stdout", (self.lines, self.cond)),
            OutputCollector(self.proc.stderr, "stderr", (self.lines, self.cond)),
        ]
        self.host = None
        self.port = None
        self.control_port = None
        self.stopped = False

    def wait_ready(self, timeout=READY_TIMEOUT):
        super().wait_ready(timeout)
        m = self.wait_for(CONTROL_RE.pattern, stream="stdout", timeout=5)
        self.control_port = int(m.group(2))
        return self

    @property
    def control(self):
        return f"http://127.0.0.1:{self.control_port}"

    def api(self, method, path, body=None, token=None, headers=None, timeout=60):
        """A control API call; returns a Resp."""
        h = {"Authorization": f"Bearer {self.token if token is None else token}"}
        if token == "":
            h = {}
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def worker_get(self, name, path="/", headers=None, timeout=30):
        h = {"Host": f"{name}.localhost"}
        h.update(headers or {})
        return self.request("GET", path, headers=h, timeout=timeout)

    def client(self, *args, cwd=None, timeout=180):
        """Run a client command (`thaw deploy ...`) against this host."""
        return subprocess.run(
            [THAW_BIN, *map(str, args), "--host", self.control, "--token-file",
             str(self.token_file)],
            cwd=cwd, env=thaw_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout)


def base_blobs(host):
    """The blobs a `thaw serve` host's store names as its base images (the `bases` table,
    docs/snapshots.md "The base image"), read-only beside the running host."""
    db = sqlite3.connect(f"file:{host.data / 'thaw.db'}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT blob FROM bases")}
    finally:
        db.close()


class Gate:
    """A socket of the test's that a handler connects to and waits on for one byte."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(60)
        self.port = self.server.getsockname()[1]
        self.conn = None
        self.started = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            self.conn, _ = self.server.accept()
            self.started.set()
        except OSError:
            pass

    def wait_started(self, timeout):
        return self.started.wait(timeout)

    def go(self):
        self.conn.sendall(b"g")
        self.conn.close()
        self.server.close()


class Background:
    """One request sent on a thread; .join() gives its Resp (or raises what it raised)."""

    def __init__(self, d, path, **kw):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(d, path, kw), daemon=True)
        self.thread.start()

    def _run(self, d, path, kw):
        try:
            self.result = d.get(path, **kw)
        except BaseException as e:  # handed to join()
            self.error = e

    def join(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request did not end"
        if self.error:
            raise self.error
        return self.result
