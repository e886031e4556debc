"""Service bindings and RPC as Cloudflare's docs show them: `await env.AUTH.fetch(request)`
reaches the other worker's fetch handler without a network hop, `await env.AUTH.add(1, 2)`
calls a method of its `WorkerEntrypoint` (the default one, or the named `entrypoint` of the
binding), values cross as the RPC encoding (JSON types, bytes, sets, datetimes), exceptions
come back with the callee's type and message, and a cycle stops at the depth limit with a
clear error. Under `thaw dev A B` and under `thaw serve` after `thaw deploy`, where a new
deployment of the callee is what the caller reaches next."""

from __future__ import annotations

import hashlib
import json

from thawtest import ThawServe, start_dev, write_project

AUTH = """
import datetime
from urllib.parse import urlparse, parse_qs
from workers import Response, WorkerEntrypoint

VERSION = "{version}"


class Denied(Exception):
    pass


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        if url.path == "/big":
            n = int(parse_qs(url.query)["n"][0])
            async def chunks():
                for _ in range(n // 65536):
                    yield b"y" * 65536
            return Response(chunks(), headers={"x-from": "auth"})
        if url.path == "/sha":
            data = await request.bytes()
            import hashlib
            return Response(f"{len(data)} {hashlib.sha256(data).hexdigest()}")
        body = await request.text()
        return Response(f"auth {VERSION} saw {request.method} {url.path}?{url.query} "
                        f"x-test={request.headers.get('x-test')} body={body}",
                        status=201, headers={"x-from": "auth"})

    async def add(self, a, b):
        return a + b

    def version(self):
        return VERSION

    async def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}

    async def when(self, moment):
        return moment + datetime.timedelta(days=1)

    async def fail(self):
        raise ValueError("no such user")

    async def deny(self):
        raise Denied("not you")

    async def ping(self, n):
        return await self.env.FRONT.count(n)

    def _secret(self):
        return "hidden"


class Admin(WorkerEntrypoint):
    async def whoami(self):
        return "admin"

    async def fetch(self, request):
        return Response("admin fetch")


class Quiet(WorkerEntrypoint):
    async def hello(self):
        return "hi"
"""

FRONT = """
import asyncio
import datetime
import json
from urllib.parse import urlparse
from workers import Request, Response, WorkerEntrypoint


async def outcome(call):
    try:
        return ["ok", await call()]
    except Exception as error:
        return [type(error).__name__, str(error)]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        env = self.env
        if path == "/fetch":
            r = await env.AUTH.fetch(Request("https://auth.example/hello?q=1", method="POST",
                                             headers={"x-test": "yes"}, body="ping"))
            return Response(f"{r.status} {r.headers.get('x-from')} | {await r.text()}")
        if path in ("/big", "/sha"):
            return await env.AUTH.fetch(request)
        if path == "/hold":
            # A response not read yet is not buffered here: its credit goes back as it is read.
            def peak_kib():
                with open("/proc/self/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1])
            before = peak_kib()
            r = await env.AUTH.fetch("https://auth/big?n=67108864")
            await asyncio.sleep(1.5)
            held = peak_kib() - before
            n = 0
            async for chunk in r.body:
                n += len(chunk)
            return Response.json({"held_kib": held, "n": n})
        if path == "/rpc":
            moment = datetime.datetime(2024, 2, 28, 12, 30, tzinfo=datetime.timezone.utc)
            sent = [None, True, 7, 2**80, 1.5, "é", b"\\x00\\xff", [1, [2]], {"k": {"n": 1}},
                    {3, 4}]
            echoed = await env.AUTH.echo(*sent, flag=False)
            out = {
                "add": await env.AUTH.add(2, 3),
                "version": await env.AUTH.version(),
                "echo_equal": echoed == {"args": sent, "kwargs": {"flag": False}},
                "when": (await env.AUTH.when(moment)).isoformat(),
                "named": await env.ADMIN.whoami(),
                "named_fetch": await (await env.ADMIN.fetch("https://x/")).text(),
                "errors": [
                    await outcome(lambda: env.AUTH.fail()),
                    await outcome(lambda: env.AUTH.deny()),
                    await outcome(lambda: env.AUTH.nope()),
                    await outcome(lambda: env.AUTH.fetch_nothing()),
                    await outcome(lambda: env.QUIET.fetch("https://x/")),
                    await outcome(lambda: env.AUTH.add(object(), 1)),
                    await outcome(lambda: env.GHOST.add(1, 2)),
                    await outcome(lambda: env.GHOST.fetch("https://x/")),
                ],
                "private": hasattr(env.AUTH, "_secret"),
            }
            return Response.json(out)
        if path == "/deep":
            return Response.json(await outcome(lambda: env.AUTH.ping(0)))
        return Response("front", status=404)

    async def count(self, n):
        # FRONT -> AUTH.ping -> FRONT.count -> ...: a cycle until the depth limit.
        try:
            return await self.env.AUTH.ping(n + 1)
        except Exception as error:
            if "Subrequest depth limit exceeded" in str(error):
                return {"hops": n + 1, "error": str(error)}
            raise
"""


def projects(root, version="v1"):
    auth = write_project(root / "auth", AUTH.replace("{version}", version), name="auth",
                         files={"wrangler.jsonc": json.dumps({
                             "services": [{"binding": "FRONT", "service": "front"}]})})
    front = write_project(root / "front", FRONT, name="front", files={"wrangler.jsonc": json.dumps({
        "services": [
            {"binding": "AUTH", "service": "auth"},
            {"binding": "ADMIN", "service": "auth", "entrypoint": "Admin"},
            {"binding": "QUIET", "service": "auth", "entrypoint": "Quiet"},
            {"binding": "GHOST", "service": "ghost"},
        ]})})
    return auth, front


def check_rpc(r, version="v1"):
    assert r.status == 200, r.text
    out = r.json()
    assert out["add"] == 5
    assert out["version"] == version
    assert out["echo_equal"] is True
    assert out["when"] == "2024-02-29T12:30:00+00:00"
    assert out["named"] == "admin"
    assert out["named_fetch"] == "admin fetch"
    errors = out["errors"]
    assert errors[0] == ["ValueError", "no such user"]
    assert errors[1] == ["RpcError", "Denied: not you"]
    assert errors[2] == ["TypeError", 'The RPC receiver does not implement the method "nope".']
    assert errors[3][0] == "TypeError" and "fetch_nothing" in errors[3][1]
    assert errors[4] == ["TypeError", "Handler does not export a fetch() function."]
    assert errors[5][0] == "TypeError" and "cannot be passed over RPC" in errors[5][1]
    for error in errors[6:]:
        assert error[0] == "BindingError" and "'ghost'" in error[1], error
    assert out["private"] is False


def check_depth(r):
    assert r.status == 200, r.text
    status, value = r.json()
    assert status == "ok", value
    # The client's request is at depth 0 and FRONT.count(n) runs at depth 2n + 2: its call
    # to AUTH would be hop 33 when n = 15, and fails in FRONT, which sees an exception.
    assert value["hops"] == 16
    assert value["error"].startswith("Subrequest depth limit exceeded.")


def test_dev_serves_service_fetch_rpc_named_entrypoints_and_errors(tmp_path):
    auth, front = projects(tmp_path)
    # One instance for the whole host: the caller holds it while it calls, and the callee still
    # starts (a call from another worker goes past the host's room, else neither could go on).
    dev = start_dev(front, auth, "--max-instances", "1")
    try:
        r = dev.get("/fetch")
        assert r.status == 200, r.text
        assert r.text == ("201 auth | auth v1 saw POST /hello?q=1 x-test=yes body=ping")
        check_rpc(dev.get("/rpc"))
        # A large response streams through (bounded by the stream window on the host).
        r = dev.get("/big?n=8388608")
        assert r.status == 200 and len(r.body) == 8388608 and r.headers["x-from"] == "auth"
        # The caller holds about a stream window of a response it has not read yet, not 64 MiB.
        out = dev.get("/hold").json()
        assert out["n"] == 67108864 and out["held_kib"] < 16384, out
        body = bytes(range(256)) * 12288  # 3 MiB: more than one stream window
        r = dev.request("POST", "/sha", body=body)
        assert r.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
        check_depth(dev.get("/deep"))
        assert dev.get("/fetch").status == 200  # and it goes on serving
    finally:
        dev.stop()


def test_dev_alone_names_the_service_it_does_not_serve(tmp_path):
    _, front = projects(tmp_path)
    dev = start_dev(front)
    try:
        r = dev.get("/fetch")
        assert r.status == 500
        assert "'auth'" in r.text and "thaw dev does not serve" in r.text
    finally:
        dev.stop()


def test_serve_reaches_the_callee_deployment_after_deploy(tmp_path):
    auth, front = projects(tmp_path)
    host = ThawServe(tmp_path / "data").wait_ready()
    try:
        for project in (auth, front):
            r = host.client("deploy", project)
            assert r.returncode == 0, r.stderr
        r = host.worker_get("front", "/fetch")
        assert r.status == 200, r.text
        assert r.text == "201 auth | auth v1 saw POST /hello?q=1 x-test=yes body=ping"
        check_rpc(host.worker_get("front", "/rpc"))
        check_depth(host.worker_get("front", "/deep"))
        # A new deployment of the callee is what the caller reaches next.
        projects(tmp_path, "v2")
        r = host.client("deploy", auth)
        assert r.returncode == 0, r.stderr
        r = host.worker_get("front", "/fetch")
        assert r.text.startswith("201 auth | auth v2 saw"), r.text
        check_rpc(host.worker_get("front", "/rpc"), "v2")
    finally:
        host.stop()


SELFISH = """
import asyncio
from urllib.parse import urlparse
from workers import Response, WorkerEntrypoint

# {edit}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/start":
            self.ctx.wait_until(self.env.SELF.fetch("/slow"))
            return Response("started")
        if path == "/slow":
            await asyncio.sleep(3)
            return Response("slow")
        return Response("selfish")
"""


def test_dev_stops_cleanly_while_a_draining_instance_serves_its_own_call(tmp_path):
    # The callee's request ends inside the instance's close (it drains after an edit): the
    # call it answered is gone by then, and its end must not reach the freed call (an ASan
    # build aborts on that use after free).
    project = write_project(tmp_path / "selfish", SELFISH.replace("{edit}", "v1"),
                            name="selfish", files={"wrangler.jsonc": json.dumps({
                                "services": [{"binding": "SELF", "service": "selfish"}]})})
    dev = start_dev(project)
    try:
        r = dev.get("/start")
        assert r.status == 200 and r.text == "started", r.text
        write_project(project, SELFISH.replace("{edit}", "v2"), name="selfish")
        import time
        time.sleep(1.0)
        r = dev.get("/")
        assert r.text == "selfish"
    finally:
        dev.stop()


LOOPER = """
import asyncio
from urllib.parse import urlparse, parse_qs
from workers import Response, WorkerEntrypoint
from workers import _service


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        if url.path == "/pingpong":
            return Response.json(await self.env.SELF.hop(_service.current_stream.get(), 0))
        if url.path == "/chain":
            n = int(parse_qs(url.query)["n"][0])
            print(f"chain hop {n}", flush=True)
            if n < 60:
                self.ctx.wait_until(self.later(n + 1))
            return Response("ok")
        return Response("looper")

    async def later(self, n):
        await asyncio.sleep(0.05)  # after the response: the request has left the instance
        try:
            await self.env.SELF.fetch(f"/chain?n={n}")
        except Exception as error:
            print(f"chain stopped at {n}: {error}", flush=True)

    async def hop(self, root, n):
        # Names the client's request (depth 0, alive in this instance) as the one it calls
        # for: a forged name must not reset the count.
        _service.current_stream.set(root)
        if n >= 60:
            return {"hops": n, "error": "no limit"}
        try:
            return await self.env.SELF.hop(root, n + 1)
        except Exception as error:
            return {"hops": n + 1, "error": str(error)}
"""


def looper_project(tmp_path):
    return write_project(tmp_path / "looper", LOOPER, name="looper",
                         files={"wrangler.jsonc": json.dumps({
                             "services": [{"binding": "SELF", "service": "looper"}]})})


def test_depth_counts_from_the_host_records_not_the_worker_named_stream(tmp_path):
    dev = start_dev(looper_project(tmp_path), "--max-instances", "1")
    try:
        r = dev.get("/pingpong")
        assert r.status == 200, r.text
        out = r.json()
        assert out["hops"] == 32, out
        assert out["error"].startswith("Subrequest depth limit exceeded."), out
    finally:
        dev.stop()


def test_depth_counts_calls_made_after_the_response_by_wait_until(tmp_path):
    import time

    dev = start_dev(looper_project(tmp_path), "--max-instances", "1")
    try:
        assert dev.get("/chain?n=0").status == 200
        deadline = time.time() + 30
        while time.time() < deadline and "chain stopped at" not in dev.output():
            time.sleep(0.2)
        output = dev.output()
        assert "chain stopped at 33: Subrequest depth limit exceeded." in output, output[-3000:]
        assert "chain hop 33" not in output
    finally:
        dev.stop()
