# The bench's worker: /bench?op=OP&n=N times N binding calls from a warm instance, one after
# another, and answers the latencies' p50/p99 (µs) and the calls per second.
import time

from workers import WorkerEntrypoint, Response, _bindings


def summary(samples, total):
    samples.sort()
    return {"p50_us": samples[len(samples) // 2] * 1e6,
            "p99_us": samples[min(len(samples) - 1, len(samples) * 99 // 100)] * 1e6,
            "per_s": len(samples) / total}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        query = dict(p.split("=", 1) for p in request.url.split("?", 1)[1].split("&"))
        op, n = query["op"], int(query["n"])
        kv, db = self.env.KV, self.env.DB
        if op == "setup":
            await kv.put("key-1", "x" * 100)
            await db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
            await db.prepare("INSERT OR REPLACE INTO t (id, v) VALUES (1, ?)").bind("x" * 100).run()
            return Response("ok")
        samples = []
        started = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            if op == "kv_get":
                await kv.get("key-1")
            elif op == "kv_put":
                await kv.put(f"k{i % 100}", "x" * 100)
            elif op == "d1_point":
                await db.prepare("SELECT v FROM t WHERE id = ?").bind(1).first()
            elif op == "transport":
                # A call the host refuses on its loop (no such method): the round trip
                # between instance and host alone, without the executor or SQLite.
                try:
                    await _bindings.call("KV", "no-such-method", [])
                except Exception:  # refused: the error is the answer
                    pass
            samples.append(time.perf_counter() - t)
        return Response.json(summary(samples, time.perf_counter() - started))
