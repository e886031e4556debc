"""Old versions go, and their files with them, but never what something still uses.

`thaw versions delete VERSION` (DELETE /v1/workers/NAME/versions/VERSION) removes a version that
is not in the current deployment; `thaw serve --keep-versions N` removes, after each deploy, the
versions beyond the newest N except those of the current deployment and of the one before it
(where `thaw rollback` returns). Blobs are counted by the versions that name them: a bundle or an
image another version uses stays, and so does the bundle of a refused deploy when an earlier
version uses it. A version still serving a request when it is deleted keeps its files until it
is unloaded. Files a crash left unnamed are removed at the next start.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import uuid

import pytest

from thawtest import ThawServe, base_blobs, run_thaw, wait_until, write_project

ENTRY = """
    import asyncio, os
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/hold"):
                # Held until the test's socket says go (instances see none of its files).
                reader, writer = await asyncio.open_connection("127.0.0.1", int(self.env.FLAG))
                print("holding", flush=True)
                await reader.read(1)
                writer.close()
            if self.env.VERSION == "broken":
                return Response("broken", status=500)
            return Response(self.env.VERSION)
"""


def make(root, version, flag=0, name="shop"):
    return write_project(root, ENTRY, vars={"VERSION": version, "FLAG": str(flag)}, name=name)


def deploy(host, project, *args, ok=True):
    r = host.client("deploy", project, "--no-install", *args)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^version: (\S+)$", r.stdout, re.M)
    return m[1] if m else r


def versions(host):
    j = host.api("GET", "/v1/workers/shop/versions").json()
    return {v["number"]: v for v in j["versions"]}


def blob(host, hexdigest):
    return host.data / "blobs" / hexdigest if hexdigest else None


def blob_families(host):
    """The images and bundles in DATA/blobs, an image's working set (HEX.ws, HEX.ws.tmp) counted
    with it."""
    return {n[:64] for n in os.listdir(host.data / "blobs")}


def gone(path):
    return lambda: not path.exists()


@pytest.fixture
def hosts(tmp_path):
    started = []

    def start(*args, data=None):
        h = ThawServe(data or tmp_path / "data", args).wait_ready()
        started.append(h)
        return h

    yield start
    for h in started:
        if h.alive():
            h.stop()


def test_versions_delete_removes_a_version_and_only_the_files_no_other_version_uses(
        tmp_path, hosts):
    host = hosts()
    p = make(tmp_path / "p", "one")
    v1 = deploy(host, p)
    v2 = deploy(host, p)  # the same bundle again: a second version naming the same blob
    v3 = deploy(host, make(tmp_path / "p", "three"))
    vs = versions(host)
    assert vs[1]["bundle"] == vs[2]["bundle"] != vs[3]["bundle"]
    bundle12 = blob(host, vs[1]["bundle"])
    snap1 = blob(host, vs[1]["snapshot"])
    assert bundle12.is_file() and (host.data / "versions" / v1).is_dir()

    r = host.client("versions", "delete", "1", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"deleted version 1 of shop ({v1})" in r.stdout
    assert sorted(versions(host)) == [2, 3]
    wait_until(gone(host.data / "versions" / v1), what="v1's directory to go")
    # v2 names the same bundle: it stays.
    assert bundle12.is_file()
    assert (host.data / "versions" / v2).is_dir()
    assert host.worker_get("shop").text == "three"

    # The current deployment's version is refused, with the reason, and stays.
    r = host.client("versions", "delete", v3[:8], "--name", "shop")
    assert r.returncode == 1 and "current deployment" in r.stderr, r.stdout + r.stderr
    a = host.api("DELETE", f"/v1/workers/shop/versions/{v3}")
    assert a.status == 409 and "current deployment" in a.json()["error"], a
    assert 3 in versions(host) and host.worker_get("shop").text == "three"

    # Refusals: no such version, not a version reference, another verb.
    assert host.api("DELETE", "/v1/workers/shop/versions/99").status == 404
    assert host.api("DELETE", f"/v1/workers/shop/versions/{uuid.uuid4()}").status == 404
    assert host.api("DELETE", "/v1/workers/shop/versions/zz%21").status == 400
    assert host.api("DELETE", "/v1/workers/shop/versions/" + "a" * 40).status == 400
    assert host.api("DELETE", "/v1/workers/shop/versions/" + "a" * 300).status == 404
    assert host.api("DELETE", "/v1/workers/shop/versions/a/b").status == 404
    assert host.api("GET", "/v1/workers/shop/versions/2").status == 405
    assert host.api("DELETE", "/v1/workers/shop/versions/2", token="wrong-token-000000").status == 401
    r = host.client("versions", "delete", "../../x", "--name", "shop")
    assert r.returncode == 2

    # The last version naming the bundle goes: so does the bundle.
    a = host.api("DELETE", "/v1/workers/shop/versions/%232")
    assert a.status == 200 and a.json()["deleted"]["id"] == v2, a
    wait_until(gone(bundle12), what="the shared bundle to go with its last version")
    wait_until(gone(host.data / "versions" / v2), what="v2's directory to go")
    if snap1 is not None and vs[1]["snapshot"] != vs[2]["snapshot"]:
        wait_until(gone(snap1), what="v1's image to go")

    # Numbers are never given twice, and the host restarts serving v3 with nothing left over.
    v4 = deploy(host, make(tmp_path / "p", "four"))
    assert versions(host)[4]["id"] == v4
    host.stop()
    host = hosts(data=host.data)
    assert host.worker_get("shop").text == "four"
    named = {v[k] for v in versions(host).values() for k in ("bundle", "snapshot") if v.get(k)}
    named |= base_blobs(host)  # the host's base image, named by the store's bases table
    on_disk = blob_families(host)
    assert on_disk == named, (on_disk, named)
    assert sorted(os.listdir(host.data / "versions")) == sorted([v3, v4])


def test_a_refused_deploy_never_removes_a_blob_an_earlier_version_uses(tmp_path, hosts):
    host = hosts()
    v1 = deploy(host, make(tmp_path / "p", "one"))
    hexdigest = versions(host)[1]["bundle"]
    bundle = blob(host, hexdigest).read_bytes()

    # The very same bytes, refused after they were stored (an environment the project does
    # not have): the blob is version 1's too, so it stays.
    r = host.api("POST", "/v1/workers/shop/versions?env=nosuch", body=bundle)
    assert r.status == 422 and "nosuch" in r.text, r
    assert blob(host, hexdigest).is_file()
    assert host.worker_get("shop").text == "one"

    # Another worker's bundle, sent again to a third name and refused: "other" names it, so
    # it stays.
    other = deploy(host, make(tmp_path / "q", "other", name="other"))
    other_hex = host.api("GET", "/v1/workers/other/versions").json()["versions"][0]["bundle"]
    r = host.api("POST", "/v1/workers/third/versions?env=nosuch",
                 body=blob(host, other_hex).read_bytes())
    assert r.status == 422, r
    assert blob(host, other_hex).is_file()
    assert host.worker_get("other").text == "other" and other

    # A bundle no version names, refused the same way, is removed: only named blobs are left.
    packed = tmp_path / "fresh.tar.zst"
    r = run_thaw("pack", make(tmp_path / "r", "fresh"), packed)
    assert r.returncode == 0, r.stdout + r.stderr
    r = host.api("POST", "/v1/workers/shop/versions?env=nosuch", body=packed.read_bytes())
    assert r.status == 422, r
    named = set()
    for w in ("shop", "other"):
        for v in host.api("GET", f"/v1/workers/{w}/versions").json()["versions"]:
            named |= {v["bundle"]} | ({v["snapshot"]} if v["snapshot"] else set())
    named |= base_blobs(host)
    wait_until(lambda: blob_families(host) == named, what="the refused bundle's blob to go")

    # After a restart, version 1 still starts from its bundle and image.
    host.stop()
    host = hosts(data=host.data)
    assert host.worker_get("shop").text == "one"
    assert blob(host, hexdigest).is_file()
    assert versions(host)[1]["id"] == v1


def test_keep_versions_keeps_the_newest_and_what_a_rollback_needs(tmp_path, hosts):
    host = hosts("--keep-versions", "1")
    p = tmp_path / "p"
    v1 = deploy(host, make(p, "one"))
    v2 = deploy(host, make(p, "two"))
    # v1 is beyond the newest one, but a rollback returns to it: kept.
    assert sorted(versions(host)) == [1, 2]
    v3 = deploy(host, make(p, "three"))
    assert sorted(versions(host)) == [2, 3]
    wait_until(gone(host.data / "versions" / v1), what="v1's directory to go")
    assert "version 1 (" in host.output() and "--keep-versions" in host.output()

    # A gradual deployment: both of its versions, and the previous one's, are kept.
    v4 = deploy(host, make(p, "four"), "--percentage", "50")
    assert sorted(versions(host)) == [3, 4]
    # A failed deploy records a version; the newest is kept, deployed ones too.
    r = deploy(host, make(p, "broken"), ok=False)
    assert r.returncode != 0
    assert sorted(versions(host)) == [3, 4, 5] and versions(host)[5]["state"] == "failed"
    v6 = deploy(host, make(p, "six"))
    # 5 went (beyond the newest, in no deployment); 4 and 3 are the previous deployment.
    assert sorted(versions(host)) == [3, 4, 6]
    assert host.worker_get("shop").text == "six"
    r = host.client("rollback", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    # The previous deployment's main version (the larger share; the new one on a tie).
    assert host.worker_get("shop").text == "four"
    wait_until(gone(host.data / "versions" / v2), what="v2's directory to go")
    assert (host.data / "versions" / v6).is_dir() and (host.data / "versions" / v4).is_dir()

    # A restart applies the policy at once, sparing the deployments: now 4 (current) and 6
    # (previous); 3 is in neither any more.
    host.stop()
    host = hosts("--keep-versions", "0", data=host.data)
    assert sorted(versions(host)) == [4, 6]
    host.stop()
    host = hosts("--keep-versions", "all", data=host.data)
    assert host.client("rollout", v6, "--percentage", "100", "--name", "shop").returncode == 0
    v7 = deploy(host, make(p, "seven"))
    v8 = deploy(host, make(p, "eight"))
    assert sorted(versions(host)) == [4, 6, 7, 8] and v7 and v8


def test_bad_keep_versions_is_refused(tmp_path):
    for bad in ("-1", "x", "10000001", ""):
        h = ThawServe(tmp_path / "data", ("--keep-versions", bad))
        assert h.proc.wait(timeout=10) == 2
        h.wait_for(r"--keep-versions")  # the reader thread may not have it yet


def test_a_deleted_version_keeps_its_files_while_it_serves(tmp_path, hosts):
    host = hosts()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    flag = server.getsockname()[1]
    v1 = deploy(host, make(tmp_path / "p", "one", flag))
    result = {}
    t = threading.Thread(target=lambda: result.update(r=host.worker_get("shop", "/hold")))
    mark = host.mark()
    t.start()
    conn, _ = server.accept()
    host.wait_for("holding", start=mark)  # the request is in v1's instance
    deploy(host, make(tmp_path / "p", "two", flag))
    r = host.client("versions", "delete", v1, "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert 1 not in versions(host)
    # Its request is still running: its files stay until it is unloaded.
    assert (host.data / "versions" / v1).is_dir()
    conn.sendall(b"g")
    conn.close()
    server.close()
    t.join(30)
    assert result["r"].status == 200 and result["r"].text == "one", result
    host.wait_for(rf"shop@{v1[:8]}: unloaded", start=mark, timeout=30)
    wait_until(gone(host.data / "versions" / v1), what="v1's directory to go once unloaded")
    assert host.worker_get("shop").text == "two"


def test_files_a_crash_left_unnamed_are_removed_at_start(tmp_path, hosts):
    host = hosts()
    v1 = deploy(host, make(tmp_path / "p", "one"))
    host.stop()
    blobs = host.data / "blobs"
    stray = "ab" * 32
    (blobs / stray).write_bytes(b"a blob whose row was deleted")
    (blobs / f"{stray}.ws").write_bytes(b"its working set")
    (blobs / "notes.txt").write_text("not ours: left alone\n")
    orphan_dir = host.data / "versions" / str(uuid.uuid4())
    (orphan_dir / "src").mkdir(parents=True)
    host = hosts(data=host.data)
    wait_until(gone(blobs / stray), what="the stray blob to go")
    wait_until(gone(orphan_dir), what="the stray version directory to go")
    assert not (blobs / f"{stray}.ws").exists()
    assert (blobs / "notes.txt").is_file()
    vs = versions(host)
    named = {vs[1]["bundle"]} | ({vs[1]["snapshot"]} if vs[1]["snapshot"] else set())
    assert all((blobs / h).is_file() for h in named)
    assert (host.data / "versions" / v1).is_dir()
    assert host.worker_get("shop").text == "one"
