"""Durable Objects, used the way Cloudflare's docs show them, under `thaw dev` and under `thaw
serve` after `thaw deploy`: one live instance per object id (200 concurrent increments from
many instances end at exactly 200), ids independent, ctx.storage's key-value API and SQL on
the object's own file, stub.fetch, alarms (fired once, also across a host restart), and no
confirmed write lost when the instance holding an object is killed."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from thawtest import ThawServe, start_dev, write_project

WORKER = """
    import os
    import time
    from urllib.parse import parse_qs, urlparse

    from workers import DurableObject, Response, WorkerEntrypoint


    MADE = {}  # objects made in this instance, by id


    class Counter(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            self.made_in = __import__("_thaw_runtime").host_pid()
            MADE[str(ctx.id)] = MADE.get(str(ctx.id), 0) + 1
            # Cloudflare's pattern: the schema made in the constructor (sql.exec waits).
            ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS c (k INTEGER PRIMARY KEY, v INTEGER)")

        async def increment(self, by=1, pad=None):
            value = (await self.ctx.storage.get("n") or 0) + by
            await self.ctx.storage.put("n", value)
            return value

        async def sql_increment(self):
            rows = self.ctx.storage.sql.exec("SELECT v FROM c WHERE k = 1").to_array()
            value = (rows[0].v if rows else 0) + 1
            self.ctx.storage.sql.exec("INSERT OR REPLACE INTO c (k, v) VALUES (1, ?)", value)
            return value

        async def state(self):
            return {"n": await self.ctx.storage.get("n") or 0, "pid": __import__("_thaw_runtime").host_pid(),
                    "made": MADE.get(str(self.ctx.id)),
                    "made_in": self.made_in, "id": str(self.ctx.id),
                    "alarm": await self.ctx.storage.get_alarm(),
                    "alarms": await self.ctx.storage.get("alarms") or 0,
                    "version": self.env.VERSION}

        async def kv(self):
            s = self.ctx.storage
            await s.put({"a": 1, "b": [2, "x"], "c": b"\\x00\\xff"})
            got = await s.get(["a", "b", "c", "zz"])
            listed = await s.list(prefix="", limit=2)
            deleted = await s.delete(["a", "nope"])

            async def txn(t):
                await t.put("t1", "one")
                return await t.get("t1")
            in_txn = await s.transaction(txn)
            return {"got": {k: (list(v) if isinstance(v, bytes) else v) for k, v in got.items()},
                    "listed": list(listed), "deleted": deleted, "in_txn": in_txn,
                    "after": await s.get("a"), "t1": await s.get("t1")}

        async def sql(self):
            sql = self.ctx.storage.sql
            sql.exec("CREATE TABLE IF NOT EXISTS msgs (id INTEGER PRIMARY KEY, text TEXT)")
            sql.exec("INSERT INTO msgs (text) VALUES (?), (?)", "hi", "there")
            cursor = sql.exec("SELECT id, text FROM msgs ORDER BY id")
            rows = cursor.to_array()
            try:
                sql.exec("SELECT * FROM __cf_kv")
                hidden = "readable"
            except Exception as error:
                hidden = type(error).__name__
            return {"rows": rows, "columns": cursor.column_names, "hidden": hidden}

        async def hang_alarm(self):
            await self.ctx.storage.put("hang", True)

        async def alarm_in(self, ms):
            await self.ctx.storage.put("alarms", 0)
            await self.ctx.storage.set_alarm(int(time.time() * 1000) + ms)

        async def alarm(self):
            if self.ctx.id.name == "hang" or await self.ctx.storage.get("hang"):
                import asyncio
                await asyncio.sleep(600)  # an alarm() that never ends
            fired = await self.ctx.storage.get("alarms") or 0
            await self.ctx.storage.put("alarms", fired + 1)

        async def fetch(self, request):
            return Response(f"object {len(str(self.ctx.id))} saw {request.method} {request.url}")


    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            url = urlparse(request.url)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            ns = self.env.COUNTER
            stub = ns.get(ns.id_from_name(q.get("name", "a")))
            if url.path == "/inc":
                value = await stub.increment()
                return Response(str(value), headers={"x-pid": str(__import__("_thaw_runtime").host_pid())})
            if url.path == "/inc-big":  # arguments larger than a stream window
                return Response(str(await stub.increment(pad="x" * 300000)))
            if url.path == "/many":  # calls one after another, not nested
                for _ in range(int(q["n"])):
                    value = await stub.increment()
                return Response(str(value))
            if url.path == "/inc-sql":
                return Response(str(await stub.sql_increment()))
            if url.path == "/state":
                return Response.json(await stub.state())
            if url.path == "/kv":
                return Response.json(await stub.kv())
            if url.path == "/sql":
                return Response.json(await stub.sql())
            if url.path == "/alarm":
                if q.get("hang"):
                    await stub.hang_alarm()
                await stub.alarm_in(int(q["ms"]))
                return Response("set")
            if url.path == "/fetch":
                response = await stub.fetch("http://object/hello", method="PUT")
                return Response(await response.text())
            if url.path == "/bad-id":
                try:
                    ns.id_from_string("nope")
                except TypeError as error:
                    return Response(str(error))
            return Response("?", status=404)
"""


def project(root: Path, version: str = "1") -> Path:
    write_project(root, WORKER, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "counters", "main": "src/entry.py", "compatibility_date": "2025-11-01",
        "vars": {"VERSION": version},
        "durable_objects": {"bindings": [{"name": "COUNTER", "class_name": "Counter"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Counter"]}],
    }, indent=2))
    return root


def hammer(get, n=200, workers=40):
    """n increments of object "a" from `workers` client threads at once: the values they
    got back and the worker processes that served the requests."""
    def one(_):
        r = get("/inc?name=a")
        assert r.status == 200, (r.status, r.text)
        return int(r.text), r.headers.get("x-pid")
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(n)))
    return sorted(v for v, _ in results), {p for _, p in results}


def wait_until(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_durable_objects_under_dev(tmp_path):
    root = project(tmp_path / "counters")
    # At most 8 requests per instance: 40 clients at once need several instances.
    dev = start_dev(root, "--max-instances", "4", "--concurrency", "8")
    try:
        values, pids = hammer(dev.get)
        # Serialised through one object: every value 1..200 handed out exactly once, to
        # requests served by several instances.
        assert values == list(range(1, 201)), values[:10]
        assert len(pids) >= 2, pids
        state = dev.get("/state?name=a").json()
        assert state["n"] == 200 and state["made_in"] == state["pid"]
        assert state["id"] == dev.get("/state?name=a").json()["id"]
        assert len(state["id"]) == 64
        # Another id is another object, with its own storage.
        assert dev.get("/inc?name=b").text == "1"
        assert dev.get("/state?name=a").json()["n"] == 200
        kv = dev.get("/kv?name=c").json()
        assert kv["got"] == {"a": 1, "b": [2, "x"], "c": [0, 255]}, kv
        assert kv["listed"] == ["a", "b"] and kv["deleted"] == 1 and kv["after"] is None
        assert kv["in_txn"] == "one" and kv["t1"] == "one"
        sql = dev.get("/sql?name=c").json()
        assert sql["rows"] == [{"id": 1, "text": "hi"}, {"id": 2, "text": "there"}], sql
        assert sql["columns"] == ["id", "text"] and sql["hidden"] != "readable"
        assert dev.get("/fetch?name=d").text == "object 64 saw PUT http://object/hello"
        assert "64 hex digits" in dev.get("/bad-id").text
        # An alarm 2 s ahead fires once, and is gone after.
        assert dev.get("/alarm?name=e&ms=2000").text == "set"
        assert dev.get("/state?name=e").json()["alarm"] is not None
        state = wait_until(lambda: (s := dev.get("/state?name=e").json())["alarms"] == 1 and s,
                           what="the alarm")
        assert state["alarm"] is None
    finally:
        dev.stop()
    files = sorted(p.name for p in (root / ".thaw" / "state" / "do" / "Counter").iterdir())
    assert len([f for f in files if f.endswith(".sqlite")]) == 5  # a, b, c, d, e


def test_durable_objects_on_a_host_survive_restart_kill_and_redeploy(tmp_path):
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    try:
        r = host.client("deploy", project(tmp_path / "v1", "1"))
        assert r.returncode == 0, r.stdout + r.stderr
        get = lambda path: host.worker_get("counters", path=path)  # noqa: E731
        values, _ = hammer(get, n=100, workers=20)
        assert values == list(range(1, 101))
        # kill -9 the instance that holds the object: no confirmed write is lost.
        pid = get("/state?name=a").json()["pid"]
        os.kill(pid, signal.SIGKILL)
        # (A call that reaches the dying instance before the host has reaped it fails.)
        wait_until(lambda: (r := get("/state?name=a")).status == 200 and r.json()["pid"] != pid,
                   what="a new holder")
        assert get("/state?name=a").json()["n"] == 100
        # An alarm 3 s ahead, then the host restarts before it is due.
        assert get("/alarm?name=z&ms=3000").text == "set"
    finally:
        host.stop()
    host = ThawServe(data).wait_ready()
    try:
        get = lambda path: host.worker_get("counters", path=path)  # noqa: E731
        state = wait_until(lambda: (s := get("/state?name=z").json())["alarms"] == 1 and s,
                           what="the alarm after a restart")
        assert state["alarm"] is None
        assert get("/state?name=a").json()["n"] == 100
        r = host.client("deploy", project(tmp_path / "v2", "2"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert get("/inc?name=a").text == "101"  # the new version, the same object's data
        assert get("/state?name=a").json()["version"] == "2"
        r = host.client("rollback", "--name", "counters")
        assert r.returncode == 0, r.stdout + r.stderr
        # Back on version 1 (its instances hold the object from now on), the same data.
        wait_until(lambda: (s := get("/state?name=a").json())["version"] == "1" and s,
                   what="the rolled-back version to hold the object")
        assert get("/inc?name=a").text == "102"
    finally:
        host.stop()


RENAMED = WORKER.replace("class Counter(DurableObject):", "class Tally(DurableObject):")


def migrated_project(root: Path, stage: int) -> Path:
    """Stage 1: class Counter; 2: renamed to Tally (renamed_classes); 3: deleted."""
    write_project(root, WORKER if stage == 1 else RENAMED, pyproject=False)
    migrations = [{"tag": "v1", "new_sqlite_classes": ["Counter"]}]
    config = {"name": "counters", "main": "src/entry.py", "compatibility_date": "2025-11-01",
              "vars": {"VERSION": str(stage)}}
    if stage >= 2:
        migrations.append({"tag": "v2", "renamed_classes": [{"from": "Counter", "to": "Tally"}]})
    if stage >= 3:
        migrations.append({"tag": "v3", "deleted_classes": ["Tally"]})
    else:
        config["durable_objects"] = {"bindings": [{"name": "COUNTER",
                                                   "class_name": "Counter" if stage == 1
                                                   else "Tally"}]}
    config["migrations"] = migrations
    (root / "wrangler.jsonc").write_text(json.dumps(config, indent=2))
    return root


def test_migrations_rename_then_delete_a_class_s_storage(tmp_path):
    root = tmp_path / "counters"
    state = root / ".thaw" / "state" / "do"
    dev = start_dev(migrated_project(root, 1))
    try:
        assert [dev.get("/inc?name=a").text for _ in range(3)] == ["1", "2", "3"]
    finally:
        dev.stop()
    assert (state / "Counter").is_dir()
    dev = start_dev(migrated_project(root, 2))  # the class renamed: its objects keep their data
    try:
        assert dev.get("/inc?name=a").text == "4"
    finally:
        dev.stop()
    assert (state / "Tally").is_dir() and not (state / "Counter").exists()
    dev = start_dev(migrated_project(root, 3))  # deleted: its storage goes
    try:
        wait_until(lambda: not (state / "Tally").exists(), what="the deleted class's storage")
    finally:
        dev.stop()
    assert json.loads((state / "migrations.json").read_text()) == ["v1", "v2", "v3"]


def host_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_gates_hold_for_big_arguments_sql_and_a_waiting_constructor(tmp_path):
    root = project(tmp_path / "counters")
    dev = start_dev(root, "--max-instances", "1")
    try:
        def many(path, n=60):
            with ThreadPoolExecutor(20) as pool:
                got = list(pool.map(lambda _: dev.get(path), range(n)))
            assert all(r.status == 200 for r in got), [r.text for r in got if r.status != 200][:2]
            return sorted(int(r.text) for r in got)
        # The first calls of a fresh object race its constructor, which waits on sql.exec:
        # still one object; and calls whose arguments take several windows still count.
        assert many("/inc-big?name=p") == list(range(1, 61))
        assert dev.get("/state?name=p").json()["made"] == 1
        # Sequential calls from one request into objects of the same worker (its own
        # instances) are not nested: more than the depth limit's 32 of them succeed.
        r = dev.get("/many?name=seq&n=45")
        assert r.status == 200 and r.text == "45", r.text[-500:]
        # sql.exec (synchronous, waiting with run_sync) holds the gate too.
        assert many("/inc-sql?name=q") == list(range(1, 61))
        assert dev.get("/state?name=q").json()["made"] == 1
        # An alarm() that never returns does not hold up another object's alarm.
        assert dev.get("/alarm?name=stuck&ms=500&hang=1").text == "set"
        assert dev.get("/alarm?name=fine&ms=1500").text == "set"
        wait_until(lambda: dev.get("/state?name=fine").json()["alarms"] == 1, timeout=20,
                   what="an alarm while another object's alarm() hangs")
        # An alarm decades ahead neither fires nor keeps the host busy.
        r = dev.get("/alarm?name=far&ms=" + str(10**15))
        assert r.text == "set"
        pid = dev.proc.pid
        before = host_cpu_seconds(pid)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            time.sleep(0.1)
        assert host_cpu_seconds(pid) - before < 0.5
        assert dev.get("/state?name=far").json()["alarms"] == 0
    finally:
        dev.stop()


def test_an_idle_object_is_evicted_and_made_again_from_its_storage(tmp_path):
    root = project(tmp_path / "counters")
    dev = start_dev(root, "--max-instances", "1", env={"THAW_DO_IDLE_MS": "400"})
    try:
        assert [dev.get("/inc?name=idle").text for _ in range(3)] == ["1", "2", "3"]
        first = dev.get("/state?name=idle").json()
        assert first["made"] == 1
        mark = dev.mark()
        dev.wait_for(r"Durable Object Counter/[0-9a-f]{16}… evicted", timeout=20, start=mark)
        # Made again (its constructor runs a second time), with its data.
        again = dev.get("/state?name=idle").json()
        assert again["made"] == 2 and again["n"] == 3, again
        assert dev.get("/inc?name=idle").text == "4"
    finally:
        dev.stop()
