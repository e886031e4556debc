"""`thaw serve`: deployments end to end, against the real host and the real client commands.

init -> install from a local wheelhouse -> deploy -> request -> deploy v2 at 10 % -> ~10 % of
1,000 requests answer v2 -> version keys pin -> override -> rollout 100 -> rollback; kill -9
during an upload and during a snapshot build; hostile bundles; the control API's token; tail;
a restart on another binary (snapshots rebuilt, boot meanwhile).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from thawtest import (THAW_BIN, TOKEN, ThawServe, proc_alive, run_thaw, snapshots_supported,
                      write_project)

# Without snapshots (the sanitizer build) deploys validate with a booted instance; the tests
# that are about snapshots themselves ask for the `snapshots` fixture.

WORKER = """
    from workers import WorkerEntrypoint, Response
    import tinypkg

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            print(f"handling {request.url}")
            return Response(f"{self.env.VERSION} {tinypkg.VALUE}")
"""


def make_wheel(wheelhouse: Path, name: str, version: str, value: str) -> Path:
    """A pure-Python wheel `name` whose module defines VALUE = value."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    path = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
        z.writestr(f"{dist}/RECORD", record)
    return path


def make_project(root: Path, version: str, entry: str = WORKER, deps=("tinypkg",), thaw=None):
    write_project(root, entry, vars={"VERSION": version}, name="shop", thaw=thaw)
    text = (root / "pyproject.toml").read_text()
    text = text.replace("dependencies = []", "dependencies = [%s]" % ", ".join(f'"{d}"' for d in deps))
    (root / "pyproject.toml").write_text(text)
    (root / ".gitignore").write_text("python_modules/\n*.log\n")
    (root / "debug.log").write_text("not shipped\n")
    return root


def deploy(host: ThawServe, project: Path, *args):
    r = host.client("deploy", project, *args)
    return r, (re.search(r"^version: (\S+)$", r.stdout, re.M) or [None, None])[1]


def tally(host, n, headers=None):
    """Answers of n requests on one keep-alive connection: {body: count}."""
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    counts = {}
    try:
        for _ in range(n):
            conn.request("GET", "/", headers={"Host": "shop.localhost", **(headers or {})})
            r = conn.getresponse()
            body = r.read().decode()
            assert r.status == 200, body
            counts[body] = counts.get(body, 0) + 1
    finally:
        conn.close()
    return counts


@pytest.fixture
def serve(tmp_path):
    hosts = []

    def start(data=None, **kw):
        h = ThawServe(data or tmp_path / "host" / "data", **kw)
        hosts.append(h)
        return h.wait_ready()

    yield start
    for h in hosts:
        if h.alive():
            h.stop()  # exit code 0: no sanitizer report, no leak, no child left


def test_deploy_versions_rollout_rollback(tmp_path, serve):
    wheelhouse = tmp_path / "wheels"
    make_wheel(wheelhouse, "tinypkg", "1.0", "pkg-1.0")
    project = make_project(tmp_path / "shop", "v1")
    host = serve()

    r, v1 = deploy(host, project, "--no-index", "--find-links", wheelhouse, "--message", "first")
    assert r.returncode == 0, r.stdout + r.stderr
    assert v1, r.stdout
    assert (project / "python_modules" / "tinypkg" / "__init__.py").is_file(), "installed"
    out = r.stdout + r.stderr
    stages = ("stored", "snapshot", "validated", "live") if snapshots_supported() else (
        "stored", "validated", "live")
    for stage in stages:
        assert stage in out, f"no {stage!r} progress line in:\n{out}"
    resp = host.worker_get("shop")
    assert resp.status == 200 and resp.text == "v1 pkg-1.0", resp
    assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["cf-ray"])
    # .gitignore'd files are not shipped, python_modules is.
    vdir = host.data / "versions" / v1
    assert (vdir / "src" / "entry.py").is_file() and not (vdir / "debug.log").exists()
    assert (vdir / "python_modules" / "tinypkg").is_dir()

    make_project(project, "v2")
    r, v2 = deploy(host, project, "--percentage", "10", "--no-install")
    assert r.returncode == 0, r.stdout + r.stderr
    assert v2 and v2 != v1

    counts = tally(host, 1000)
    assert set(counts) == {"v1 pkg-1.0", "v2 pkg-1.0"}, counts
    # Binomial(1000, 0.1): mean 100, sd 9.5; this bound fails by chance about once in 10^5.
    assert 55 <= counts["v2 pkg-1.0"] <= 150, counts

    # The same version key always gets the same version; some keys get v2.
    seen = set()
    for k in range(300):
        c = tally(host, 3, {"thaw-version-key": f"user-{k}"})
        assert len(c) == 1, (k, c)
        seen |= set(c)
    assert seen == {"v1 pkg-1.0", "v2 pkg-1.0"}

    assert tally(host, 20, {"thaw-version-override": v2}) == {"v2 pkg-1.0": 20}
    assert tally(host, 20, {"thaw-version-override": "1"}) == {"v1 pkg-1.0": 20}
    # An override naming no version of the deployment is not applied, as on Cloudflare: the
    # request is split like any other.
    bad = host.worker_get("shop", headers={"thaw-version-override": "ffffffff"})
    assert bad.status == 200 and bad.text in ("v1 pkg-1.0", "v2 pkg-1.0"), bad

    listing = host.client("versions", "list", "--name", "shop")
    assert listing.returncode == 0, listing.stderr
    assert v1[:8] in listing.stdout and v2[:8] in listing.stdout and "first" in listing.stdout

    r = host.client("rollout", v2[:8], "--percentage", "100", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert tally(host, 30) == {"v2 pkg-1.0": 30}

    r = host.client("rollback", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert tally(host, 30) == {"v1 pkg-1.0": 30}

    # v2's instances drained once it left the deployment.
    api = host.api("GET", "/v1/workers/shop/versions").json()
    assert [v["percentage"] for v in api["deployment"]["versions"]] == [100]
    assert api["deployment"]["versions"][0]["id"] == v1

    # A restart serves the same deployment, from the stored snapshot.
    host.stop()
    host2 = serve(host.data)
    assert host2.worker_get("shop").text == "v1 pkg-1.0"
    host2.stop()  # its whole output is in: a warning cannot arrive after the check
    assert "unusable" not in host2.output()


def test_failed_build_never_takes_traffic(tmp_path, serve, snapshots):
    host = serve()
    project = make_project(tmp_path / "shop", "v1", deps=())
    project_entry = project / "src" / "entry.py"
    project_entry.write_text(project_entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 'x'\n"))
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr

    bad = project_entry.read_text().replace("class Default", "import os\nSEED = os.urandom(8)\n\nclass Default")
    project_entry.write_text(bad)
    r, v2 = deploy(host, project)
    assert r.returncode == 1
    assert "entropy" in (r.stdout + r.stderr) and "entry.py" in (r.stdout + r.stderr)
    assert tally(host, 50) == {"v1 x": 50}
    versions = host.api("GET", "/v1/workers/shop/versions").json()["versions"]
    assert versions[0]["state"] == "failed" and "entropy" in versions[0]["error"]
    # Not in the deployment: an override of it is not applied.
    assert tally(host, 10, {"thaw-version-override": versions[0]["id"]}) == {"v1 x": 10}


def test_control_api_token(tmp_path, serve):
    host = serve(args=("-v",))
    for token in ("", "wrong-token-000000000000"):
        r = host.api("GET", "/v1/workers", token=token)
        assert r.status == 401, r
        assert "error" in r.json()
        r = host.api("POST", "/v1/workers/shop/versions", body=b"x" * 1000, token=token)
        assert r.status == 401
    assert host.api("GET", "/v1/workers").status == 200
    # A bad token on the client side is reported, not printed.
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token-at-all\n")
    r = subprocess.run([THAW_BIN, "versions", "list", "--name", "shop", "--host", host.control,
                        "--token-file", bad], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "not-the-token-at-all" not in r.stdout + r.stderr
    # The token never reaches a worker's environment nor the host's log.
    entry = """
        import os
        from workers import WorkerEntrypoint, Response
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(repr(os.environ.get("THAW_TOKEN")))
    """
    project = make_project(tmp_path / "shop", "v1", entry=entry, deps=())
    env_host = serve(tmp_path / "h2" / "data", env={"THAW_TOKEN": TOKEN})
    r, _ = deploy(env_host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert env_host.worker_get("shop").text == "None"
    # Stopped, their whole output is in (the collectors have read to EOF): nothing can come
    # after this check.
    host.stop()
    env_host.stop()
    assert TOKEN not in host.output() and TOKEN not in env_host.output()


def tar_zst(entries):
    """A tar+zstd bundle from (TarInfo, bytes|None) pairs."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=raw.getvalue(), capture_output=True,
                          check=True).stdout


def file_entry(name, data=b"x = 1\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_hostile_bundles_refused(tmp_path, serve):
    host = serve()
    project = make_project(tmp_path / "shop", "v1", deps=())
    entry = project / "src" / "entry.py"
    entry.write_text(entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 'ok'\n"))
    r, _ = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr

    base = [file_entry("pyproject.toml", (project / "pyproject.toml").read_bytes()),
            file_entry("src/entry.py", entry.read_bytes())]
    link = tarfile.TarInfo("src/escape")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../../etc/passwd"
    bomb = tarfile.TarInfo("src/zeros.bin")
    bomb.size = 200 << 20
    cases = {
        "traversal": (base + [file_entry("../evil.py")], r"\.\."),
        "absolute": (base + [file_entry("/tmp/evil.py")], r"absolute"),
        "symlink": (base + [(link, None)], r"link"),
        "many files": (base + [file_entry(f"src/m/f{i}.py") for i in range(10000)], r"too many"),
        "bomb": (base + [(bomb, b"\0" * (200 << 20))], r"ratio|bomb"),
    }
    for name, (entries, why) in cases.items():
        body = tar_zst(entries)
        r = host.api("POST", "/v1/workers/shop/versions", body=body)
        assert r.status in (413, 422), (name, r)
        err = r.json()["error"]
        assert "bundle refused" in err and re.search(why, err), (name, err)
        assert host.worker_get("shop").text == "v1 ok", name
    r = host.api("POST", "/v1/workers/shop/versions", body=b"not a bundle at all")
    assert r.status == 422 and "bundle refused" in r.json()["error"]
    listing = host.api("GET", "/v1/workers/shop/versions").json()["versions"]
    assert len(listing) == 1, listing  # nothing refused was recorded
    assert not any((host.data / "tmp").iterdir()), "refusals leave nothing behind"


def test_tail_shows_prints_with_version_and_request(tmp_path, serve):
    host = serve()
    project = make_project(tmp_path / "shop", "v1", deps=())
    entry = project / "src" / "entry.py"
    entry.write_text(entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 't'\n"))
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    tail = subprocess.Popen([THAW_BIN, "tail", "shop", "--json", "--host", host.control,
                             "--token-file", host.token_file], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        host.wait_for(r"tail of shop opened", stream="stderr")
        resp = host.worker_get("shop", path="/hello?x=1")
        rid = resp.headers["cf-ray"]
        deadline = time.monotonic() + 10
        line = None
        while time.monotonic() < deadline:
            text = tail.stdout.readline()
            if text.strip():
                line = json.loads(text)
                break
        assert line, tail.stderr.read() if tail.poll() is not None else "no tail line"
        assert line["message"] == "handling http://shop.localhost/hello?x=1"
        assert line["version"] == v1 and line["request_id"] == rid and line["stream"] == "stdout"
    finally:
        tail.kill()
        tail.wait()


def slow_upload_then_kill(host, body):
    """Send the head and half a bundle, then kill -9 the host mid-upload."""
    s = socket.create_connection(("127.0.0.1", host.control_port))
    s.sendall((f"POST /v1/workers/shop/versions HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {host.token}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
    s.sendall(body[: len(body) // 2])
    # Killed once the host has stored part of it (a file in DATA/tmp with bytes in it).
    tmp = host.data / "tmp"
    deadline = time.monotonic() + 10
    while not any(f.stat().st_size > 0 for f in tmp.glob("blob-*")):
        assert time.monotonic() < deadline, "the host stored nothing of the upload"
        time.sleep(0.01)
    os.kill(host.pid, signal.SIGKILL)
    host.proc.wait(10)
    s.close()


def test_kill9_during_upload_and_build(tmp_path, serve, snapshots):
    host = serve()
    project = make_project(tmp_path / "shop", "v1", deps=())
    entry = project / "src" / "entry.py"
    entry.write_text(entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 'k'\n"))
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr

    make_project(project, "v2", deps=())
    entry.write_text(entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 'k'\n"))
    bundle = tmp_path / "b.tar.zst"
    assert run_thaw("pack", project, bundle).returncode == 0
    data = bundle.read_bytes() + b""
    slow_upload_then_kill(host, data)

    host = serve(host.data)
    assert host.worker_get("shop").text == "v1 k"
    versions = host.api("GET", "/v1/workers/shop/versions").json()["versions"]
    assert [v["id"] for v in versions] == [v1]
    assert not any((host.data / "tmp").iterdir())

    # A build that takes a while (sleep at import), killed while it runs.
    slow = entry.read_text().replace(
        "class Default",
        "import time\nprint('builder-marker', flush=True)\ntime.sleep(30)\n\nclass Default")
    entry.write_text(slow)
    proc = subprocess.Popen([THAW_BIN, "deploy", project, "--host", host.control,
                             "--token-file", host.token_file, "--no-install"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    host.wait_for(r"building its snapshot", timeout=30)
    host.wait_for(r"builder-marker", timeout=30)  # the builder runs the 30 s top level
    kids = host.children()
    os.kill(host.pid, signal.SIGKILL)
    host.proc.wait(10)
    proc.wait(30)
    assert proc.returncode != 0
    # The builder dies with its host (parent-death signal); restart once it is gone.
    deadline = time.monotonic() + 10
    while [p for p, start in kids if proc_alive(p, start)]:
        assert time.monotonic() < deadline, f"children of the killed host left: {kids}"
        time.sleep(0.02)

    host = serve(host.data)
    assert tally(host, 20) == {"v1 k": 20}
    versions = host.api("GET", "/v1/workers/shop/versions").json()["versions"]
    assert len(versions) == 2 and versions[0]["state"] == "failed"
    assert "interrupted" in versions[0]["error"]
    dep = host.api("GET", "/v1/workers/shop/deployment").json()["deployment"]
    assert [v["id"] for v in dep["versions"]] == [v1]


def test_restart_on_another_binary_rebuilds_snapshots(tmp_path, serve, snapshots):
    host = serve()
    project = make_project(tmp_path / "shop", "v1", deps=())
    entry = project / "src" / "entry.py"
    entry.write_text(entry.read_text().replace("import tinypkg\n", "class tinypkg:\n    VALUE = 'u'\n"))
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    host.stop()
    # "Upgrade": the same build, as another file (another identity).
    other = tmp_path / "bin" / "thaw"
    other.parent.mkdir()
    shutil.copy2(THAW_BIN, other)
    host2 = serve(host.data, binary=other)
    assert host2.worker_get("shop").text == "v1 u"  # served at once (booting meanwhile)
    host2.wait_for(r"stored snapshot unusable", stream="stderr", timeout=10)
    host2.wait_for(r"thaw: snapshot of shop@", stream="stderr", timeout=60)
    assert "snapshot refused" not in host2.output()


def test_requests_in_flight_finish_when_their_version_leaves(tmp_path, serve):
    entry = """
        import asyncio
        from workers import WorkerEntrypoint, Response
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/slow"):
                    print("slow-marker", flush=True)
                    await asyncio.sleep(3)
                return Response(self.env.VERSION)
    """
    host = serve()
    project = make_project(tmp_path / "shop", "v1", entry=entry, deps=())
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    result = {}
    t = threading.Thread(target=lambda: result.update(r=host.worker_get("shop", "/slow")))
    mark = host.mark()
    t.start()
    host.wait_for(r"slow-marker", start=mark)  # the request is in v1's instance
    make_project(project, "v2", entry=entry, deps=())
    r, v2 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.worker_get("shop").text == "v2"
    t.join(20)
    assert result["r"].status == 200 and result["r"].text == "v1"


def test_deploy_check_is_private_and_reaches_the_new_version(tmp_path, serve):
    """The deploy's health request carries a secret that lets it reach a version that is not
    ready yet: the worker must never see it (else it could force traffic onto failed
    versions), and the route table must not send that request to another worker (whose
    404 would then "validate" a version that answers 500)."""
    entry = """
        from workers import WorkerEntrypoint, Response
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                print(f"probe header: {request.headers.get('thaw-probe')!r} for {request.url}")
                if self.env.VERSION == "broken":
                    return Response("broken", status=500)
                return Response(self.env.VERSION)
    """
    host = serve(args=("--route", "shop.localhost=frontdoor", "--path-routing"))
    project = make_project(tmp_path / "shop", "v1", entry=entry, deps=())
    r, v1 = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    # A request of ours after the deploy: once its line is in, so is every line the deploy's
    # health request printed before it.
    mark = host.mark()
    assert host.request("GET", "/shop/after-deploy", headers={"Host": "example.test"}).text == "v1"
    host.wait_for(r"probe header: .* for \S*/after-deploy", start=mark)
    out = host.output().split("/after-deploy")[0]
    assert "probe header: None" in out, out
    assert not re.search(r"probe header: '[0-9a-f]{32}'", out), out

    make_project(project, "broken", entry=entry, deps=())
    r, _ = deploy(host, project)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "500" in r.stdout + r.stderr
    resp = host.request("GET", "/shop/", headers={"Host": "example.test"})
    assert resp.status == 200 and resp.text == "v1", resp


def test_tail_lines_from_threads_and_long_lines_stay_whole(tmp_path, serve):
    """print() from several threads at once gives whole lines (print writes the text and the
    newline separately), and a line longer than a LOG frame is cut between characters, so
    no piece of it is lost as "not UTF-8"."""
    entry = """
        import sys, threading
        from workers import WorkerEntrypoint, Response
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/marker"):
                    print("end-marker")
                    return Response("marker")
                if request.url.endswith("/long"):
                    print("\\u20ac" * 20000)
                    return Response("long")
                if not request.url.endswith("/threads"):
                    return Response("ok")  # the deploy's health request
                def spam(i):
                    for k in range(500):
                        print(f"thread {i} line {k} " + "y" * 50)
                old = sys.getswitchinterval()
                sys.setswitchinterval(1e-6)
                try:
                    threads = [threading.Thread(target=spam, args=(i,)) for i in range(4)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                finally:
                    sys.setswitchinterval(old)
                return Response("threads")
    """
    host = serve()
    project = make_project(tmp_path / "shop", "v1", entry=entry, deps=())
    r, _ = deploy(host, project)
    assert r.returncode == 0, r.stdout + r.stderr
    tail = subprocess.Popen([THAW_BIN, "tail", "shop", "--json", "--host", host.control,
                             "--token-file", host.token_file], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        host.wait_for(r"tail of shop opened", stream="stderr")
        assert host.worker_get("shop", path="/long").text == "long"
        pieces = []
        reader = threading.Thread(target=lambda: pieces.extend(
            json.loads(text)["message"] for text in tail.stdout if text.strip()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len("".join(pieces)) < 20000:
            time.sleep(0.1)
        assert "".join(pieces) == "\u20ac" * 20000, [p[:30] for p in pieces]
    finally:
        tail.kill()
        tail.wait()

    assert host.worker_get("shop", path="/threads", timeout=60).text == "threads"
    # Printed after every thread line, on the same stream: once it is in, they all are.
    mark = host.mark()
    assert host.worker_get("shop", path="/marker").text == "marker"
    host.wait_for(r"end-marker", start=mark)
    lines = [line for line in host.output().splitlines() if "thread " in line]
    bad = [line for line in lines if not re.fullmatch(r"\[shop@\w+\] thread \d line \d+ y{50}", line)]
    assert not bad, bad[:5]
    assert len(lines) == 2000


@pytest.mark.parametrize("how, why", [
    ("os._exit(0)", "exited with status 0"),
    # A crash: the builder runs as PID 2 under a PID 1 that only waits for it and exits with
    # 128 + the signal (PID 1 cannot die of a signal it sends itself), so the host sees that
    # exit when it reaps before it reads the socket's end.
    ("__import__('ctypes').string_at(0)", "was killed by signal 11|exited with status 139"),
])
def test_a_snapshot_builder_that_dies_fails_the_deploy_and_says_so(tmp_path, serve, how, why):
    if not snapshots_supported():
        pytest.skip("this build never snapshots")
    host = serve()
    project = write_project(tmp_path / "p", f"""
        import os
        import signal
        from workers import Response, register_before_snapshot

        @register_before_snapshot
        def die():
            {how}

        async def on_fetch(request, env):
            return Response("never")
        """, name="dies")
    r = host.client("deploy", project, "--no-install", timeout=60)
    assert r.returncode != 0, r.stdout
    assert "the snapshot build failed" in r.stderr, r.stderr
    # Its end is seen either as the exit (reaped first) or as its socket closing (read first).
    assert re.search(rf"the snapshot builder \(pid \d+\) ({why}|closed its connection) before "
                     "it wrote the image", r.stderr), r.stderr
    assert host.worker_get("dies").status == 404
    assert host.alive()
