"""The floor: the same operations on SQLite directly from Python, in one process, with the same
durability as thaw's stores (WAL, synchronous=FULL). Prints one JSON line per operation."""
import json
import sqlite3
import sys
import tempfile
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
d = tempfile.mkdtemp()
kv = sqlite3.connect(f"{d}/kv.sqlite", isolation_level=None)
db = sqlite3.connect(f"{d}/d1.sqlite", isolation_level=None)
for c in (kv, db):
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
kv.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, expiration INTEGER, metadata TEXT, value BLOB)")
kv.execute("INSERT INTO kv VALUES (?, NULL, NULL, ?)", (b"key-1", b"x" * 100))
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
db.execute("INSERT INTO t VALUES (1, ?)", ("x" * 100,))


def run(name, fn):
    samples = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    samples.sort()
    print(json.dumps({"op": name, "p50_us": samples[n // 2] * 1e6,
                      "p99_us": samples[min(n - 1, n * 99 // 100)] * 1e6, "per_s": n / total}))


run("kv_get", lambda i: kv.execute("SELECT value FROM kv WHERE key = ?", (b"key-1",)).fetchone())
run("kv_put", lambda i: kv.execute("INSERT OR REPLACE INTO kv VALUES (?, NULL, NULL, ?)",
                                   (f"k{i % 100}".encode(), b"x" * 100)))
run("d1_point", lambda i: db.execute("SELECT v FROM t WHERE id = ?", (1,)).fetchone())
