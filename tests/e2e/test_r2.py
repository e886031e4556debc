"""The R2 binding, used the way Cloudflare's docs show it, under `thaw dev` and under `thaw serve`
after `thaw deploy`: objects are the worker's (kept across a host restart, a redeploy and a
rollback), stored as files by content address; get answers ranges and only_if conditions; list
delimits; multipart uploads complete; hostile arguments get Cloudflare's errors and the host keeps
serving; and a 1 GiB object goes in and out through a worker without the host's memory growing."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

import pytest

from thawtest import ThawServe, proc_status_kb, snapshots_supported, start_dev, write_project

WORKER = """
    import asyncio, hashlib, json
    from workers import WorkerEntrypoint, Response, Headers

    def describe(obj):
        if obj is None:
            return None
        return {"key": obj.key, "size": obj.size, "etag": obj.etag, "http_etag": obj.http_etag,
                "version": obj.version, "uploaded": obj.uploaded.isoformat(),
                "content_type": obj.http_metadata.content_type if obj.http_metadata else None,
                "custom": dict(obj.custom_metadata or {}), "checksums": dict(obj.checksums),
                "range": dict(obj.range) if obj.range else None}

    async def error_of(coro):
        try:
            await coro
            return "no error"
        except Exception as error:
            return f"{type(error).__name__}: {error}"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            url = request.url.split("/", 3)[3]
            path, _, query = url.partition("?")
            bucket = self.env.FILES
            if path == "put":
                obj = await bucket.put("notes/a.txt", "hello, world",
                                       http_metadata={"contentType": "text/plain"},
                                       custom_metadata={"owner": "ana"})
                await bucket.put("notes/b.bin", b"\\x00\\x01\\xff")
                await bucket.put("notes/deep/c.txt", "c")
                await bucket.put("top.txt", "top")
                return Response.json(describe(obj))
            if path == "get":
                obj = await bucket.get("notes/a.txt")
                headers = Headers()
                obj.write_http_metadata(headers)
                headers.set("etag", obj.http_etag)
                return Response(obj.body, headers=headers)
            if path == "read":
                obj = await bucket.get("notes/a.txt")
                raw = await bucket.get("notes/b.bin")
                head = await bucket.head("notes/a.txt")
                return Response.json({"text": await obj.text(), "raw": list(await raw.bytes()),
                                      "head": describe(head),
                                      "missing": await bucket.get("nope"),
                                      "missing_head": await bucket.head("nope"),
                                      "version": self.env.VERSION})
            if path == "range":
                a = await bucket.get("notes/a.txt", range={"offset": 7, "length": 5})
                b = await bucket.get("notes/a.txt", range={"suffix": 5})
                c = await bucket.get("notes/a.txt", range=Headers({"range": "bytes=0-4"}))
                return Response.json({"a": await a.text(), "a_range": dict(a.range),
                                      "b": await b.text(), "c": await c.text()})
            if path == "cond":
                head = await bucket.head("notes/a.txt")
                hit = await bucket.get("notes/a.txt", only_if={"etagMatches": head.etag})
                miss = await bucket.get("notes/a.txt", onlyIf={"etagDoesNotMatch": head.etag})
                by_header = await bucket.get("notes/a.txt",
                                             only_if=Headers({"if-none-match": head.http_etag}))
                refused = await bucket.put("notes/a.txt", "overwritten",
                                           only_if={"etagMatches": "0" * 32})
                created = await bucket.put("cond/new.txt", "new",
                                           only_if={"etagDoesNotMatch": "*"})
                again = await bucket.put("cond/new.txt", "again",
                                         only_if={"etagDoesNotMatch": "*"})
                return Response.json({
                    "hit": await hit.text(),
                    "miss_has_body": type(miss).__name__ == "R2ObjectBody",
                    "miss_etag": miss.etag,
                    "header_has_body": type(by_header).__name__ == "R2ObjectBody",
                    "refused": refused, "created": created is not None, "again": again,
                    "still": await (await bucket.get("notes/a.txt")).text()})
            if path == "list":
                top = await bucket.list(delimiter="/")
                notes = await bucket.list(prefix="notes/", delimiter="/",
                                          include=["httpMetadata", "customMetadata"])
                pages, cursor = [], None
                while True:
                    page = await bucket.list(limit=2, cursor=cursor)
                    pages.append([o.key for o in page.objects])
                    if not page.truncated:
                        break
                    cursor = page.cursor
                after = await bucket.list(start_after="notes/b.bin")
                return Response.json({
                    "top": [o.key for o in top.objects], "top_prefixes": top.delimited_prefixes,
                    "notes": [o.key for o in notes.objects],
                    "notes_prefixes": notes.delimitedPrefixes,
                    "owner": notes.objects[0].custom_metadata["owner"],
                    "type": notes.objects[0].http_metadata.contentType,
                    "pages": pages, "after": [o.key for o in after.objects]})
            if path == "delete":
                await bucket.delete("top.txt")
                await bucket.delete(["notes/deep/c.txt", "cond/new.txt", "never-there"])
                return Response.json([o.key for o in (await bucket.list()).objects])
            if path == "multipart":
                upload = await bucket.create_multipart_upload(
                    "big/multi.bin", http_metadata={"contentType": "application/x-test"})
                part = b"a" * (5 << 20)
                p2 = await upload.upload_part(2, b"tail")
                resumed = bucket.resume_multipart_upload("big/multi.bin", upload.upload_id)
                p1 = await resumed.upload_part(1, part)
                obj = await upload.complete([p1, p2])
                got = await bucket.get("big/multi.bin")
                data = await got.bytes()
                # A part too small before the last, and an aborted upload.
                small = await bucket.create_multipart_upload("big/small.bin")
                s1 = await small.upload_part(1, b"x")
                s2 = await small.upload_part(2, b"y")
                too_small = await error_of(small.complete([s1, s2]))
                await small.abort()
                gone = await error_of(small.upload_part(3, b"z"))
                return Response.json({
                    "etag": obj.etag, "size": obj.size, "part_etag": p1["etag"],
                    "part_number": p2.part_number, "type": got.http_metadata.content_type,
                    "sha": hashlib.sha256(data).hexdigest(), "too_small": too_small,
                    "gone": gone, "small_listed": await bucket.head("big/small.bin")})
            if path == "stream":
                async def chunks():
                    for i in range(100):
                        yield bytes([i]) * 10000
                obj = await bucket.put("streamed.bin", chunks(), sha256=hashlib.sha256(
                    b"".join(bytes([i]) * 10000 for i in range(100))).hexdigest())
                got = await bucket.get("streamed.bin")
                sizes = [len(c) async for c in got.body]
                return Response.json({"size": obj.size, "read": sum(sizes),
                                      "chunks": len(sizes), "largest": max(sizes)})
            if path == "spools":
                # Four uploads of unknown length hold their spool files; a fifth is refused
                # until one ends.
                gate = asyncio.Event()
                async def held():
                    yield b"x" * 1000
                    await gate.wait()
                    yield b"y"
                puts = [asyncio.ensure_future(bucket.put(f"held/{i}", held()))
                        for i in range(4)]
                await asyncio.sleep(0.3)  # their CALLs reach the host first
                fifth = await error_of(bucket.put("held/4", b"fifth"))
                part = await error_of(
                    bucket.resume_multipart_upload("x", "f" * 32).upload_part(1, b"p"))
                gate.set()
                sizes = [o.size for o in await asyncio.gather(*puts)]
                after = await bucket.put("held/5", b"after")
                return Response.json({"fifth": fifth, "part": part, "sizes": sizes,
                                      "after": after.size})
            if path == "too_large":
                # What the SDK would send for a part of 6 GiB, without sending it: the host
                # refuses the call on its declared length.
                from workers import _bindings
                async def declared(method, **args):
                    pairs = [(b":body", str(6 << 30).encode())]
                    pairs += [(k.encode(), v.encode()) for k, v in args.items()]
                    return await error_of(_bindings.call("FILES", method, pairs))
                return Response.json({
                    "put": await declared("put", key="big"),
                    "part": await declared("upload_part", key="big", upload_id="f" * 32,
                                           part_number="1")})
            if path == "floor":
                small = await error_of(bucket.put("floor/a", b"a" * 100))
                async def streamed():
                    yield b"b" * 100
                stream = await error_of(bucket.put("floor/b", streamed()))
                empty = await bucket.put("floor/empty", b"")  # no body: nothing spooled
                return Response.json({"small": small, "stream": stream, "empty": empty.size,
                                      "listed": [o.key for o in
                                                 (await bucket.list(prefix="floor/")).objects]})
            if path == "hostile":
                out = {}
                out["long_key"] = await error_of(bucket.put("k" * 1025, "x"))
                out["empty_key"] = await error_of(bucket.get(""))
                out["metadata"] = await error_of(bucket.put("m", "x",
                                                            custom_metadata={"a": "b" * 2100},
                                                            http_metadata={
                                                                "contentType": "t" * 6100}))
                out["range"] = await error_of(bucket.get("notes/a.txt",
                                                         range={"offset": 100}))
                out["suffix"] = await error_of(bucket.get("notes/a.txt", range={"suffix": 0}))
                out["limit"] = await error_of(bucket.list(limit=1001))
                out["cursor"] = await error_of(bucket.list(cursor="zz"))
                out["digest"] = await error_of(bucket.put("d", "x", md5="0" * 32))
                out["condition"] = await error_of(bucket.get("notes/a.txt",
                                                             only_if={"etagMatches": 5}))
                out["upload"] = await error_of(
                    bucket.resume_multipart_upload("x", "f" * 32).upload_part(1, b"x"))
                out["parts"] = await error_of(
                    bucket.resume_multipart_upload("x", "f" * 32).complete([{"x": 1}]))
                return Response.json(out)
            if path == "big/put":
                size = int(query)
                chunk = bytes(range(256)) * 1024  # 256 KiB
                async def body():
                    for _ in range(size // len(chunk)):
                        yield chunk
                obj = await bucket.put("big.bin", body())
                return Response.json({"size": obj.size, "etag": obj.etag})
            if path == "big/get":
                obj = await bucket.get("big.bin")
                return Response(obj.body, headers={"content-length": str(obj.size)})
            return Response("?", status=404)
"""


def project(root: Path, version: str = "1") -> Path:
    write_project(root, WORKER, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "files", "main": "src/entry.py", "compatibility_date": "2025-11-01",
        "vars": {"VERSION": version},
        "r2_buckets": [{"binding": "FILES", "bucket_name": "my-files"}],
    }, indent=2))
    return root


def check_fresh_state(get):
    put = get("put")
    assert put.status == 200, put.text
    obj = put.json()
    assert obj["key"] == "notes/a.txt" and obj["size"] == 12
    assert obj["etag"] == hashlib.md5(b"hello, world").hexdigest()
    assert obj["http_etag"] == '"' + obj["etag"] + '"' and len(obj["version"]) == 32
    assert obj["content_type"] == "text/plain" and obj["custom"] == {"owner": "ana"}
    assert obj["checksums"] == {"md5": obj["etag"]}
    r = get("get")
    assert r.body == b"hello, world" and r.headers["content-type"] == "text/plain"
    assert r.headers["etag"] == obj["http_etag"]
    read = get("read").json()
    assert read["text"] == "hello, world" and read["raw"] == [0, 1, 255]
    assert read["head"]["etag"] == obj["etag"] and read["head"]["size"] == 12
    assert read["missing"] is None and read["missing_head"] is None
    rng = get("range").json()
    assert rng == {"a": "world", "a_range": {"offset": 7, "length": 5}, "b": "world",
                   "c": "hello"}, rng
    cond = get("cond").json()
    assert cond == {"hit": "hello, world", "miss_has_body": False, "miss_etag": obj["etag"],
                    "header_has_body": False, "refused": None, "created": True,
                    "again": None, "still": "hello, world"}, cond
    listed = get("list").json()
    assert listed["top"] == ["top.txt"] and listed["top_prefixes"] == ["cond/", "notes/"]
    assert listed["notes"] == ["notes/a.txt", "notes/b.bin"]
    assert listed["notes_prefixes"] == ["notes/deep/"]
    assert listed["owner"] == "ana" and listed["type"] == "text/plain"
    assert listed["pages"] == [["cond/new.txt", "notes/a.txt"], ["notes/b.bin",
                               "notes/deep/c.txt"], ["top.txt"]], listed["pages"]
    assert listed["after"] == ["notes/deep/c.txt", "top.txt"]
    assert get("delete").json() == ["notes/a.txt", "notes/b.bin"]


def check_more(get):
    multi = get("multipart").json()
    md5s = [hashlib.md5(b"a" * (5 << 20)).digest(), hashlib.md5(b"tail").digest()]
    assert multi["etag"] == hashlib.md5(b"".join(md5s)).hexdigest() + "-2", multi
    assert multi["size"] == (5 << 20) + 4 and multi["type"] == "application/x-test"
    assert multi["part_etag"] == md5s[0].hex() and multi["part_number"] == 2
    assert multi["sha"] == hashlib.sha256(b"a" * (5 << 20) + b"tail").hexdigest()
    assert multi["too_small"] == ("R2Error: completeMultipartUpload: Your proposed upload is "
                                  "smaller than the minimum allowed object size. (10011)")
    assert multi["gone"] == ("R2Error: uploadPart: The specified multipart upload does not "
                             "exist. (10024)")
    assert multi["small_listed"] is None
    stream = get("stream").json()
    # Read back as a stream of CALL_BODY frames (at most 64 KiB each), never whole.
    assert stream["size"] == 1000000 and stream["read"] == 1000000, stream
    assert stream["chunks"] >= 1000000 // 65536 and stream["largest"] <= 65536, stream
    bad = get("hostile").json()
    assert bad == {
        "long_key": "R2Error: put: The specified object name is not valid. (10020)",
        "empty_key": "R2Error: get: The specified object name is not valid. (10020)",
        "metadata": "R2Error: put: Your metadata headers exceed the maximum allowed metadata "
                    "size. (10012)",
        "range": "R2Error: get: The requested range is not satisfiable (10039)",
        "suffix": "R2Error: get: The requested range is not satisfiable (10039)",
        "limit": "R2Error: list: MaxKeys params must be positive integer <= 1000. (10022)",
        "cursor": "R2Error: list: The cursor is not valid. (10029)",
        "digest": "R2Error: put: The MD5 checksum you specified did not match what we "
                  "received. (10037)",
        "condition": "R2Error: get: onlyIf.etagMatches is not an etag or a list of etags "
                     "(10029)",
        "upload": "R2Error: uploadPart: The specified multipart upload does not exist. (10024)",
        "parts": "R2Error: completeMultipartUpload: One or more of the specified parts could "
                 "not be found. (10025)",
    }, bad
    assert get("read").json()["text"] == "hello, world"  # still serving


def blobs(state: Path) -> set[str]:
    return {p.name for p in (state / "r2" / "my-files" / "blobs").glob("*/*")}


def test_r2_under_dev_stores_objects_by_content_address(tmp_path):
    root = project(tmp_path / "files")
    dev = start_dev(root)
    try:
        check_fresh_state(dev.get)
        check_more(dev.get)
    finally:
        dev.stop()
    state = root / ".thaw" / "state"
    assert (state / "r2" / "my-files.sqlite").exists()
    names = blobs(state)
    assert hashlib.sha256(b"hello, world").hexdigest() in names
    # Deleted and replaced objects' blobs are gone; multipart parts are not kept.
    assert hashlib.sha256(b"top").hexdigest() not in names
    assert hashlib.sha256(b"a" * (5 << 20)).hexdigest() not in names
    assert not any((state / "r2" / "my-files" / "tmp").iterdir())
    dev = start_dev(root)
    try:
        assert dev.get("read").json()["text"] == "hello, world"  # kept across restarts
    finally:
        dev.stop()


def test_r2_on_a_host_survives_restart_redeploy_and_rollback(tmp_path):
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    get = lambda path: host.worker_get("files", path="/" + path)  # noqa: E731
    try:
        r = host.client("deploy", project(tmp_path / "v1", "1"))
        assert r.returncode == 0, r.stdout + r.stderr
        check_fresh_state(get)
    finally:
        host.stop()
    host = ThawServe(data).wait_ready()  # restarted
    try:
        read = get("read").json()
        assert read["text"] == "hello, world" and read["version"] == "1"
        r = host.client("deploy", project(tmp_path / "v2", "2"))
        assert r.returncode == 0, r.stdout + r.stderr
        read = get("read").json()
        assert read["version"] == "2" and read["raw"] == [0, 1, 255]  # the same data
        r = host.client("rollback", "--name", "files")
        assert r.returncode == 0, r.stdout + r.stderr
        read = get("read").json()
        assert read["version"] == "1" and read["text"] == "hello, world"
        check_more(get)
    finally:
        host.stop()
    assert (data / "state" / "files" / "r2" / "my-files.sqlite").exists()


def test_r2_refuses_a_fifth_upload_in_flight_per_instance(tmp_path):
    dev = start_dev(project(tmp_path / "files"))
    try:
        r = dev.get("spools", timeout=60)
        assert r.status == 200, r.text
        busy = ("R2Error: {}: Too many uploads in flight from this worker instance (at most 4); "
                "await one before starting another. (10001)")
        assert r.json() == {"fifth": busy.format("put"), "part": busy.format("uploadPart"),
                            "sizes": [1001] * 4, "after": 5}, r.json()
    finally:
        dev.stop()


def test_r2_names_the_action_of_an_oversized_upload(tmp_path):
    dev = start_dev(project(tmp_path / "files"))
    try:
        r = dev.get("too_large")
        assert r.status == 200, r.text
        big = ("R2Error: {}: Your proposed upload exceeds the maximum allowed object size. "
               "(100100)")
        assert r.json() == {"put": big.format("put"), "part": big.format("uploadPart")}, r.json()
    finally:
        dev.stop()


def test_r2_refuses_uploads_that_would_leave_the_disk_under_its_floor(tmp_path):
    root = project(tmp_path / "files")
    dev = start_dev(root, env={"THAW_SPOOL_MIN_FREE_BYTES": str(1 << 62)})
    try:
        r = dev.get("floor")
        assert r.status == 200, r.text
        full = ("R2Error: put: We encountered an internal error: the host's disk is nearly "
                "full. Please try again later. (10001)")
        assert r.json() == {"small": full, "stream": full, "empty": 0,
                            "listed": ["floor/empty"]}, r.json()
        dev.wait_for(r"refused a call to FILES\.put: .*THAW_SPOOL_MIN_FREE_BYTES")
    finally:
        dev.stop()
    assert not any((root / ".thaw" / "state" / "r2" / "my-files" / "tmp").iterdir())


def rss_kb(pid: int) -> tuple[int, int]:
    return proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")


@pytest.mark.slow
def test_a_1_gib_object_goes_in_and_out_with_the_hosts_memory_flat(tmp_path):
    size = 1 << 30
    root = project(tmp_path / "files")
    dev = start_dev(root, "--timeout", "600")
    try:
        if snapshots_supported():
            dev.wait_snapshot()  # the build's memory is the host's, not the upload's
        assert dev.get("read").status in (200, 500)  # warm: an instance and the store exist
        _, hwm_before = rss_kb(dev.pid)
        r = dev.get(f"big/put?{size}", timeout=600)
        assert r.status == 200, r.text
        assert r.json()["size"] == size
        conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=600)
        digest, total = hashlib.md5(), 0
        try:
            conn.request("GET", "/big/get")
            resp = conn.getresponse()
            assert resp.status == 200
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
        finally:
            conn.close()
        rss_after, hwm_after = rss_kb(dev.pid)
    finally:
        dev.stop()
    assert total == size and digest.hexdigest() == r.json()["etag"]
    growth_mib = (hwm_after - hwm_before) / 1024
    print(f"host VmHWM before {hwm_before} kB, after {hwm_after} kB (+{growth_mib:.1f} MiB); "
          f"VmRSS after {rss_after} kB")
    assert growth_mib < 64, growth_mib


def test_thaw_types_types_the_bucket_as_r2bucket(tmp_path):
    from thawtest import run_thaw

    root = project(tmp_path / "files")
    r = run_thaw("types", root)
    assert r.returncode == 0, r.stderr
    text = (root / "src" / "worker_env.pyi").read_text()
    assert "from workers._bindings import R2Bucket" in text
    assert "    FILES: R2Bucket  # R2 bucket my-files" in text, text
