"""Instances restored from a memory snapshot of the initialised worker behave like booted ones.

`thaw dev` builds the snapshot at start and after every reload; every test here waits for the
`thaw: snapshot of ...` line and then uses `--idle-timeout 0`, so that each request waits for a
freshly restored instance (Server-Timing `start;desc="snapshot"`). Those are skipped on the
sanitizer build, which never snapshots.
"""

import json
import socket
import textwrap
import threading
import time

import pytest

from thawtest import require_snapshots, write_project

# Tests of restored instances skip on builds that never snapshot; the --no-snapshot ones run.
needs_snapshots = pytest.mark.usefixtures("snapshots")


def restored(resp):
    """Assert `resp` is a 200 from a freshly restored instance; return it."""
    assert resp.status == 200, resp
    desc = resp.timing()[0]
    assert desc == "snapshot", f"expected a restored instance, got {desc!r}: {resp}"
    return resp


def post_json(d, path, data):
    return d.request("POST", path, body=json.dumps(data).encode(),
                     headers={"Content-Type": "application/json"})


# --------------------------------------------------------------------------- FastAPI


FASTAPI = """
import os

import asgi
import httpx
from fastapi import FastAPI
from pydantic import BaseModel, Field
from workers import WorkerEntrypoint

app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int = Field(gt=0)
    price: float


@app.get("/")
async def root():
    return {"hello": "from a snapshot", "pid": __import__("_thaw_runtime").host_pid()}


@app.get("/square/{n}")
async def square(n: int, label: str = "n"):
    return {label: n, "square": n * n}


@app.post("/orders")
async def order(o: Order):
    return {"item": o.item, "total": round(o.quantity * o.price, 2)}


def answer(request):
    return httpx.Response(201, json={"url": str(request.url), "method": request.method})


@app.get("/outbound")
async def outbound():
    # httpx (imported at top level) used after the restore, through a transport in memory.
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        r = await client.post("https://upstream.invalid/things?x=1", json={"a": 1})
    return {"status": r.status_code, "body": r.json()}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await asgi.fetch(app, request.js_object, self.env)
"""


@pytest.fixture(scope="module")
def fastapi_dev(tmp_path_factory, module_dev):
    require_snapshots()
    p = write_project(tmp_path_factory.mktemp("fastapi") / "p", FASTAPI)
    d = module_dev(p, "--system-site-packages", "--idle-timeout", "0")
    d.wait_snapshot()
    return d


@needs_snapshots
def test_fastapi_json_routes_from_restored_instances(fastapi_dev):
    d = fastapi_dev
    r1 = restored(d.get("/"))
    assert r1.headers["Content-Type"] == "application/json"
    assert r1.json()["hello"] == "from a snapshot"
    r2 = restored(d.get("/square/12?label=side"))
    assert r2.json() == {"side": 12, "square": 144}
    assert r1.json()["pid"] != restored(d.get("/")).json()["pid"], (
        "--idle-timeout 0: every request should get a new instance")


@needs_snapshots
def test_fastapi_pydantic_validation_after_restore(fastapi_dev):
    d = fastapi_dev
    r = restored(post_json(d, "/orders", {"item": "pen", "quantity": 3, "price": 1.5}))
    assert r.json() == {"item": "pen", "total": 4.5}
    for bad in ({"item": "pen", "quantity": 0, "price": 1.5},  # Field(gt=0)
                {"item": "pen", "quantity": "many", "price": 1.5},
                {"item": "pen"}):
        r = post_json(d, "/orders", bad)
        assert r.status == 422, (bad, r)
        assert r.timing()[0] == "snapshot"
        assert r.json()["detail"], r.text
    r = d.get("/square/not-a-number")
    assert r.status == 422, r
    assert r.json()["detail"][0]["loc"] == ["path", "n"]


@needs_snapshots
def test_fastapi_httpx_after_restore(fastapi_dev):
    r = restored(fastapi_dev.get("/outbound"))
    assert r.json() == {"status": 201, "body": {"url": "https://upstream.invalid/things?x=1",
                                                "method": "POST"}}


@needs_snapshots
def test_fastapi_unknown_route_404_after_restore(fastapi_dev):
    r = fastapi_dev.get("/no/such/route")
    assert r.status == 404, r
    assert r.timing()[0] == "snapshot"


# --------------------------------------------------------------------------- the standard library


STDLIB = """
import asyncio
import ctypes
import decimal
import gc
import json
import os
import sqlite3
import ssl
import sys

import _decimal  # C extensions from lib-dynload, loaded by dlopen before the snapshot
import _ssl
from workers import WorkerEntrypoint, Response

LIBM = ctypes.CDLL("libm.so.6")
LIBM.cos.restype = ctypes.c_double
LIBM.cos.argtypes = [ctypes.c_double]

DB = sqlite3.connect(":memory:")
DB.execute("create table t (x integer)")
DB.executemany("insert into t values (?)", [(i,) for i in range(10)])

CTX = ssl.create_default_context()
decimal.getcontext().prec = 40
ONE_SEVENTH = decimal.Decimal(1) / decimal.Decimal(7)
DATA = json.dumps({"list": [1, 2.5, None, "snow"]})

# Imported only in the handler, after the restore: pure Python, and C extensions (mmap,
# _codecs_jp, _zoneinfo) that are then dlopen'ed in the restored process.
LATE = ("mmap", "_codecs_jp", "zoneinfo", "fractions", "xml.dom.minidom")
LOADED_BEFORE = [m for m in LATE if m in sys.modules]


class Node:
    pass


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        out = {"pid": __import__("_thaw_runtime").host_pid(), "loaded_before": LOADED_BEFORE}
        out["json"] = json.loads(DATA)
        out["decimal"] = str(ONE_SEVENTH * 7)
        out["decimal_c"] = decimal.Decimal is _decimal.Decimal
        DB.execute("insert into t values (100)")
        out["sqlite"] = DB.execute("select sum(x) from t").fetchone()[0]
        out["ssl"] = CTX.verify_mode == ssl.CERT_REQUIRED and CTX.check_hostname
        out["ssl_c"] = issubclass(ssl.SSLContext, _ssl._SSLContext)
        out["cos"] = LIBM.cos(0.0)
        out["asyncio"] = await asyncio.gather(asyncio.sleep(0.01, "a"), asyncio.sleep(0, "b"))

        import fractions
        import mmap
        import xml.dom.minidom
        import zoneinfo
        m = mmap.mmap(-1, 4096)
        m[:4] = b"thaw"
        out["mmap"] = m[:4].decode()
        m.close()
        out["shift_jis"] = "\u30c6\u30b9\u30c8".encode("shift_jis").hex()
        out["fraction"] = str(fractions.Fraction(1, 3) + fractions.Fraction(1, 6))
        doc = xml.dom.minidom.parseString("<a><b>x</b></a>")
        out["xml"] = doc.documentElement.firstChild.tagName
        out["zoneinfo"] = zoneinfo.ZoneInfo("UTC").key
        out["loaded_after"] = [m for m in LATE if m in sys.modules]

        try:
            decimal.Decimal(1) / decimal.Decimal(0)
        except decimal.DivisionByZero as e:
            out["caught_c"] = type(e).__name__
        try:
            {}["missing"]
        except KeyError as e:
            out["caught"] = repr(e)
        import traceback
        try:
            raise ValueError("after restore")
        except ValueError:
            out["traceback"] = traceback.format_exc()

        gc.disable()  # so that only our collect() frees it
        for _ in range(1000):  # cyclic garbage only the collector can free
            a, b = Node(), Node()
            a.other, b.other = b, a
        del a, b
        out["gc_collected"] = gc.collect()
        gc.enable()
        out["gc_again"] = gc.collect()
        return Response.json(out)
"""


@needs_snapshots
def test_stdlib_and_dlopened_extensions_work_after_restore(project, dev):
    d = dev(project(STDLIB), "--idle-timeout", "0")
    d.wait_snapshot()
    pids = set()
    for _ in range(2):  # two instances restored from the same snapshot
        r = restored(d.get("/"))
        out = r.json()
        assert out["loaded_before"] == [], (
            f"these modules were already imported at top level, the test proves nothing "
            f"about importing after the restore: {out['loaded_before']}")
        assert out["json"] == {"list": [1, 2.5, None, "snow"]}
        assert out["decimal"] == "1.000000000000000000000000000000000000000"
        assert out["decimal_c"] is True
        # Each instance starts from the snapshot's database: 45 + its own insert of 100.
        assert out["sqlite"] == 145, "an instance saw another instance's write, or lost rows"
        assert out["ssl"] is True and out["ssl_c"] is True
        assert out["cos"] == 1.0
        assert out["asyncio"] == ["a", "b"]
        assert out["mmap"] == "thaw"
        assert out["shift_jis"] == "836583588367"
        assert out["fraction"] == "1/2"
        assert out["xml"] == "b"
        assert out["zoneinfo"] == "UTC"
        assert out["loaded_after"] == ["mmap", "_codecs_jp", "zoneinfo", "fractions",
                                       "xml.dom.minidom"]
        assert out["caught_c"] == "DivisionByZero"
        assert out["caught"] == "KeyError('missing')"
        assert "raise ValueError(\"after restore\")" in out["traceback"], out["traceback"]
        assert "src/entry.py" in out["traceback"]
        assert out["gc_collected"] >= 2000, out["gc_collected"]
        assert out["gc_again"] == 0
        pids.add(out["pid"])
    assert len(pids) == 2
    assert d.alive()
    d.stop()  # all its output is in
    assert "Traceback" not in d.output(), d.output()


# --------------------------------------------------------------------------- entropy


ENTROPY = """
import os
import random
import secrets
import uuid

from workers import WorkerEntrypoint, Response

VALUE = {call}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(str(VALUE))
"""


@needs_snapshots
@pytest.mark.parametrize("call, named", [
    ("os.urandom(8)", "os.urandom()"),
    ("uuid.uuid4()", "uuid.uuid4()"),
    ("secrets.token_hex(8)", "secrets.token_hex()"),
    ("random.SystemRandom().random()", "random.SystemRandom.random()"),
    ("random.Random().getrandbits(64)", "random.Random.getrandbits()"),
    ("random.randint(1, 6)", "random.randint()"),
])
def test_entropy_at_import_fails_the_build_with_file_and_line(project, dev, call, named):
    d = dev(project(ENTROPY.format(call=call)), "--idle-timeout", "0")
    # stderr names the call, the user's file:line and the source line, and the way out.
    m = d.wait_for(r"consumed entropy.*", stream="stderr", timeout=30)
    line = m.group(0)
    assert f"{named} at src/entry.py:8" in line, line
    assert f"VALUE = {call}" in line, line
    assert "allow_entropy_at_import" in line, line
    assert "thaw: snapshot of" not in d.output()
    # Requests (sent after the failure) get a 500 that says why.
    r = d.get("/")
    assert r.status == 500, r
    assert "consumed entropy" in r.text and "src/entry.py:8" in r.text, r.text
    assert d.get("/").status == 500
    assert d.alive()


@needs_snapshots
def test_entropy_in_an_imported_project_module_names_that_file(project, dev):
    p = project(
        """
        import helper
        from workers import WorkerEntrypoint, Response

        TOKEN = helper.make_token()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(TOKEN)
        """,
        files={"src/helper.py": """
            import uuid


            def make_token():
                return str(uuid.uuid4())
            """},
    )
    d = dev(p)
    line = d.wait_for(r"consumed entropy.*", stream="stderr", timeout=30).group(0)
    assert "uuid.uuid4() at src/helper.py:5" in line, line


@needs_snapshots
def test_allow_entropy_at_import_serves(tmp_path, dev):
    p = write_project(tmp_path / "p", ENTROPY.format(call="os.urandom(8).hex()"),
                      thaw={"allow_entropy_at_import": True})
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    # Accepted, but still said: the value is shared by every restored instance.
    d.wait_for(r"entropy drawn at import", timeout=5)
    a, b = restored(d.get("/")), restored(d.get("/"))
    assert len(a.text) == 16
    assert a.text == b.text, "the value drawn at import should be the snapshot's, in every instance"


def test_entropy_at_import_is_fine_without_snapshots(project, dev):
    d = dev(project(ENTROPY.format(call="os.urandom(8).hex()")), "--no-snapshot")
    r = d.get("/")
    assert r.status == 200 and len(r.text) == 16, r
    d.stop()  # all its output is in
    assert "consumed entropy" not in d.output()


@needs_snapshots
def test_entropy_in_the_handler_is_fine(project, dev):
    p = project(
        """
        import os
        import uuid
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(os.urandom(4).hex() + str(uuid.uuid4()))
        """
    )
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    assert restored(d.get("/")).text != restored(d.get("/")).text


RANDOM = """
import os
import random
import ssl
import uuid

from workers import WorkerEntrypoint, Response

AT_IMPORT = random.Random(3).random()  # the user's seed: the same everywhere, by design
RNG = random.Random()  # seeded from the kernel at import: reseeded after every restore
ssl.RAND_bytes(16)  # OpenSSL's generator is initialised in the snapshot


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json({
            "pid": __import__("_thaw_runtime").host_pid(),
            "at_import": AT_IMPORT,
            "random": [random.random() for _ in range(5)],
            "bits": random.getrandbits(64),
            "choice": random.sample(range(1000), 5),
            "instance": random.Random().random(),
            "module_rng": [RNG.random() for _ in range(3)],
            "openssl": ssl.RAND_bytes(16).hex(),
            "uuid": str(uuid.uuid4()),
        })
"""


@needs_snapshots
def test_two_restored_instances_have_different_random_sequences(project, dev):
    d = dev(project(RANDOM), "--idle-timeout", "0")
    d.wait_snapshot()
    a, b = restored(d.get("/")).json(), restored(d.get("/")).json()
    assert a["pid"] != b["pid"]
    assert a["at_import"] == b["at_import"], "both instances start from the same snapshot"
    for key in ("random", "bits", "choice", "instance", "module_rng", "openssl", "uuid"):
        assert a[key] != b[key], f"two restored instances produced the same {key}: {a[key]}"


# --------------------------------------------------------------------------- hooks


HOOKS = """
import asyncio
import os
from urllib.parse import urlparse, parse_qs

from workers import Response, WorkerEntrypoint, register_after_restore, register_before_snapshot

CALLS = []


@register_before_snapshot
def before_one():
    CALLS.append("before-1")


def before_two(tag):
    CALLS.append(f"before-2:{tag}")


register_before_snapshot(before_two, "plain-call")


@register_after_restore
def after_one():
    CALLS.append("after-1")


async def after_two(tag, *, n):
    await asyncio.sleep(0)
    CALLS.append(f"after-2:{tag}:{n}")


register_after_restore(after_two, "kw", n=3)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = parse_qs(urlparse(request.url).query)
        sleep = float(q.get("sleep", ["0"])[0])
        if sleep:
            print(f"holding the instance for {sleep} s", flush=True)
        await asyncio.sleep(sleep)
        return Response.json({"pid": __import__("_thaw_runtime").host_pid(), "calls": CALLS})
"""

EXPECTED_HOOKS = ["before-2:plain-call", "before-1", "after-1", "after-2:kw:3"]


@needs_snapshots
def test_hooks_order_and_rerun_in_each_restored_instance(project, dev):
    # One request per instance: a long one keeps the first instance busy, so the second
    # request needs a second instance, restored from the same snapshot.
    d = dev(project(HOOKS), "--concurrency", "1", "--max-instances", "2")
    d.wait_snapshot()
    first = d.get("/")
    assert first.status == 200, first
    assert first.timing()[0] in ("snapshot", "warm"), first  # the restore that validates it
    assert first.json()["calls"] == EXPECTED_HOOKS, (
        "before_snapshot hooks run in reverse order of registration at build, after_restore "
        "hooks in order after the restore")
    held = {}
    t = threading.Thread(target=lambda: held.setdefault("r", d.get("/?sleep=1.5")))
    mark = d.mark()
    t.start()
    d.wait_for(r"holding the instance", start=mark)  # the long request is in the first one
    second = restored(d.get("/"))
    t.join(30)
    assert held["r"].status == 200
    assert held["r"].json()["pid"] == first.json()["pid"], "the long request went elsewhere"
    assert second.json()["pid"] != first.json()["pid"]
    assert second.json()["calls"] == EXPECTED_HOOKS, "the second instance ran its hooks wrong"
    # The first instance did not run its after_restore hooks again.
    assert held["r"].json()["calls"] == EXPECTED_HOOKS


@needs_snapshots
def test_hooks_with_idle_timeout_zero(project, dev):
    d = dev(project(HOOKS), "--idle-timeout", "0")
    d.wait_snapshot()
    for _ in range(3):
        assert restored(d.get("/")).json()["calls"] == EXPECTED_HOOKS


def test_hooks_without_snapshot_after_hooks_run_once(project, dev):
    d = dev(project(HOOKS), "--no-snapshot")
    r = d.get("/")
    assert r.status == 200 and r.timing()[0] == "boot", r
    assert r.json()["calls"] == ["after-1", "after-2:kw:3"]
    assert d.get("/").json()["calls"] == ["after-1", "after-2:kw:3"]


# --------------------------------------------------------------------------- many restores


HELLO = """
import os
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"hello {__import__('_thaw_runtime').host_pid()}")
"""


@needs_snapshots
@pytest.mark.slow
def test_200_restores_in_a_row(project, dev):
    d = dev(project(HELLO), "--idle-timeout", "0")
    d.wait_snapshot()
    mark = d.mark()
    failures, pids = [], set()
    for i in range(200):
        try:
            r = d.get("/", timeout=30)
        except Exception as e:  # a reset connection counts as a failure too
            failures.append((i, repr(e)))
            continue
        if r.status != 200 or not r.text.startswith("hello ") or r.timing()[0] != "snapshot":
            failures.append((i, r))
        else:
            pids.add(r.text)
    assert not failures, (f"{len(failures)} of 200 restores failed, first: {failures[:3]}\n"
                          f"{d.output_since(mark)[-3000:]}")
    assert len(pids) == 200, "--idle-timeout 0: each request should be a new instance"
    assert d.alive()
    d.stop()  # all its output is in
    since = d.output_since(mark)
    assert "refused" not in since and "rebuilding" not in since, since[-3000:]


# --------------------------------------------------------------------------- refusals


@needs_snapshots
@pytest.mark.parametrize("kind", ["daemon", "non-daemon"])
def test_thread_alive_at_top_level_refuses_the_snapshot(project, dev, kind):
    p = project(f"""
        import threading
        import time
        from workers import WorkerEntrypoint, Response

        STOP = threading.Event()
        threading.Thread(target=STOP.wait, args=(30,), name="ticker",
                         daemon={kind == "daemon"}).start()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
        """)
    d = dev(p, "--idle-timeout", "0")
    line = d.wait_for(r"started a thread.*", stream="stderr", timeout=30).group(0)
    assert "ticker" in line and "after_restore hook" in line, line
    r = d.get("/")
    assert r.status == 500, r
    assert "started a thread" in r.text and "after_restore" in r.text, r.text
    assert "thaw: snapshot of" not in d.output()
    assert d.alive()


@needs_snapshots
def test_thread_finished_at_top_level_is_fine(project, dev):
    p = project("""
        import threading
        from workers import WorkerEntrypoint, Response

        RESULT = []
        t = threading.Thread(target=RESULT.append, args=("done",))
        t.start()
        t.join()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(RESULT[0])
        """)
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    assert restored(d.get("/")).text == "done"


@needs_snapshots
@pytest.mark.parametrize("what, opener, shown", [
    ("file", "HANDLE = open(__file__)", "src/entry.py"),
    ("socket", "HANDLE = socket.socket()\nHANDLE.bind(('127.0.0.1', 0))", "socket"),
])
def test_open_file_or_socket_at_top_level_refuses_the_snapshot(project, dev, what, opener, shown):
    entry = textwrap.dedent("""
        import socket
        from workers import WorkerEntrypoint, Response

        {opener}

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
        """).format(opener=opener)
    d = dev(project(entry), "--idle-timeout", "0")
    line = d.wait_for(r"left a file or socket open.*", stream="stderr", timeout=30).group(0)
    assert shown in line, line
    assert "open it in the handler or an after_restore hook" in line, line
    r = d.get("/")
    assert r.status == 500, r
    assert "left a file or socket open" in r.text, r.text
    assert d.alive()


@needs_snapshots
def test_file_closed_at_top_level_is_fine(project, dev):
    p = project("""
        from workers import WorkerEntrypoint, Response

        with open(__file__) as f:
            FIRST = f.readline().strip()

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(FIRST)
        """)
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    assert restored(d.get("/")).text == "from workers import WorkerEntrypoint, Response"


@needs_snapshots
def test_snapshot_over_max_snapshot_mb_is_refused(project, dev):
    p = project("""
        import asgi
        import fastapi
        from workers import WorkerEntrypoint

        app = fastapi.FastAPI()

        @app.get("/")
        async def root():
            return {"ok": True}

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await asgi.fetch(app, request.js_object, self.env)
        """)
    d = dev(p, "--system-site-packages", "--max-snapshot-mb", "1", "--idle-timeout", "0")
    line = d.wait_for(r"cannot snapshot.*", stream="stderr", timeout=60).group(0)
    assert "--max-snapshot-mb" in line and "1048576" in line, line
    r = d.get("/")
    assert r.status == 500, r
    assert "max-snapshot-mb" in r.text, r.text
    assert not d.snapshot_files(), "a refused image was left in .thaw/snapshots"
    assert d.alive()


# --------------------------------------------------------------------------- reload


VERSIONED = """
import os
from workers import WorkerEntrypoint, Response

ANSWER = {answer!r}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(ANSWER)
"""


@needs_snapshots
def test_reload_builds_a_new_snapshot(project, dev):
    p = project(VERSIONED.format(answer="version one"))
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    assert restored(d.get("/")).text == "version one"
    old = {(f.name, f.stat().st_ino) for f in d.snapshot_files()}
    mark = d.mark()
    (p / "src" / "entry.py").write_text(
        textwrap.dedent(VERSIONED.format(answer="version two")))
    d.wait_snapshot(start=mark, timeout=30)
    r = restored(d.get("/"))
    assert r.text == "version two", f"{r}\n{d.output()}"
    assert restored(d.get("/")).text == "version two"
    new = {(f.name, f.stat().st_ino) for f in d.snapshot_files()}
    assert new and not (new & old), (
        f"the reload's snapshot must be a new file, not the old one rewritten: {old} -> {new}")


@needs_snapshots
def test_reload_into_a_failing_build_then_fixed(project, dev):
    p = project(VERSIONED.format(answer="good"))
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    entry = p / "src" / "entry.py"
    mark = d.mark()
    entry.write_text(textwrap.dedent(VERSIONED.format(answer="bad")).replace(
        "ANSWER = 'bad'", "ANSWER = os.urandom(4).hex()"))
    d.wait_for(r"consumed entropy", start=mark, timeout=30)
    r = d.get("/")
    assert r.status == 500 and "consumed entropy" in r.text, r
    mark = d.mark()
    entry.write_text(textwrap.dedent(VERSIONED.format(answer="fixed")))
    d.wait_snapshot(start=mark, timeout=30)
    assert restored(d.get("/")).text == "fixed"


# --------------------------------------------------------------------------- a racing request


@needs_snapshots
def test_build_failure_is_shown_even_if_a_request_raced_the_build(project, dev, tmp_path):
    # The first process to run the top level (the snapshot builder, started with `thaw dev`)
    # leaves a marker and takes 3 s; the request is sent once the marker is there, so the
    # instance it boots (which skips the wait) is ready while the build still runs.
    # Instances share no writable file (each has a private /tmp), so the top level asks a
    # socket of the test's whether it is the first to run: the first is told to take 3 s.
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    p = project(f"""
        import os
        import socket
        import time
        from workers import WorkerEntrypoint, Response

        with socket.create_connection(("127.0.0.1", {server.getsockname()[1]})) as s:
            first = s.recv(1) == b"1"
        if first:
            time.sleep(3)
        TOKEN = os.urandom(8)

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(TOKEN.hex())
        """)

    def answer():
        n = 0
        try:
            while True:
                conn, _ = server.accept()
                conn.sendall(b"1" if n == 0 else b"0")
                conn.close()
                n += 1
                if n == 1:
                    started.set()
        except OSError:
            pass

    started = threading.Event()
    threading.Thread(target=answer, daemon=True).start()
    d = dev(p)
    assert started.wait(30), "the snapshot builder never ran the top level"
    r = d.get("/")  # boots while the snapshot is being built
    assert r.status == 200 and r.timing()[0] == "boot", r
    d.wait_for(r"consumed entropy", stream="stderr", timeout=30)
    r = d.get("/")
    assert r.status == 500, f"the build failed, yet the worker still answers: {r}"
    server.close()


# --------------------------------------------------------------------------- shared mappings

MAPPING = """
import ctypes
import os
from workers import WorkerEntrypoint, Response

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
PROT_READ, PROT_WRITE, MAP_SHARED = 1, 2, 1
PATH = os.path.join(os.path.dirname(__file__), "data.bin")
{setup}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        with open("/proc/self/maps") as maps:
            shared = sorted(line.split()[-1] for line in maps if line.split()[1].endswith("s"))
        return Response(ctypes.string_at(ADDR, 11).decode() + " " + " ".join(shared))
"""

READ_ONLY = """
fd = os.open(PATH, os.O_RDONLY)
ADDR = libc.mmap(None, 4096, PROT_READ, MAP_SHARED, fd, 0)
os.close(fd)
# glibc's iconv maps its module cache this way (libxml2 and locale-aware code call it).
libc.iconv_open.restype = ctypes.c_void_p
libc.iconv_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.iconv_close.argtypes = [ctypes.c_void_p]
libc.iconv_close(libc.iconv_open(b"UTF-16LE", b"UTF-8"))
"""


@needs_snapshots
def test_read_only_shared_file_mappings_are_carried_into_restored_instances(project, dev):
    p = project(MAPPING.format(setup=READ_ONLY), files={"src/data.bin": "hello-share" * 400})
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    text = restored(d.get("/")).text
    value, *shared = text.split(" ")
    assert value == "hello-share"
    assert str(p / "src" / "data.bin") in shared, text
    assert any(path.endswith("/gconv-modules.cache") for path in shared), text


@needs_snapshots
@pytest.mark.parametrize("setup, named", [
    # A writable copy in the instance's private /tmp: the project is read-only to it.
    ("import shutil\nshutil.copy(PATH, '/tmp/data.bin')\n"
     "fd = os.open('/tmp/data.bin', os.O_RDWR)\n"
     "ADDR = libc.mmap(None, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)\n"
     "os.close(fd)\n"
     "ctypes.memmove(ADDR, b'changed', 7)\n",
     "a writable shared mapping of /tmp/data.bin (MAP_SHARED with PROT_WRITE"),
    ("import mmap\nM = mmap.mmap(-1, 4096)\nM.write(b'x')\nADDR = 0\n",
     "an anonymous shared mapping (MAP_SHARED|MAP_ANONYMOUS"),
    ("libc.shmat.restype = ctypes.c_void_p\n"
     "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n"
     "SHM = libc.shmget(0, 4096, 0o1600)\n"
     "ADDR = libc.shmat(SHM, None, 0)\n"
     "libc.shmctl(SHM, 0, None)\n",
     "a System V shared memory segment"),
], ids=["writable-file", "anonymous", "sysv"])
def test_writable_or_anonymous_shared_memory_refuses_the_snapshot_naming_it(project, dev, setup,
                                                                           named):
    p = project(MAPPING.format(setup=setup), files={"src/data.bin": "hello-share" * 400})
    d = dev(p, "--idle-timeout", "0")
    named = named.format(data=p / "src" / "data.bin")
    line = d.wait_for(r"cannot snapshot src/entry.py: .*", stream="stderr", timeout=30).group(0)
    assert named in line, line
    assert "after_restore hook" in line, line
    r = d.get("/")
    assert r.status == 500 and named in r.text, r
    assert d.alive()


# --------------------------------------------------------------------------- like a fork

@needs_snapshots
def test_a_restore_runs_the_after_fork_hooks_and_threading_sees_the_new_process(project, dev):
    p = project("""
        import os
        import threading
        from workers import WorkerEntrypoint, Response

        SEEN = []
        os.register_at_fork(after_in_child=lambda: SEEN.append(os.getpid()))

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                me = threading.current_thread()
                return Response(f"{SEEN == [os.getpid()]} {me.native_id == threading.get_native_id()}")
        """)
    d = dev(p, "--idle-timeout", "0")
    d.wait_snapshot()
    assert restored(d.get("/")).text == "True True"
    assert restored(d.get("/")).text == "True True"
