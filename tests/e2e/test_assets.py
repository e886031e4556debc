"""Static assets (issue 10, item 5): a project laid out as Cloudflare's docs show it (a
wrangler.jsonc with `assets`, a `public/` directory, a Python worker) served by `thaw dev`
and `thaw serve`: files from the host without an instance, Cloudflare's content types,
ETag/304, Range, HEAD, index.html for `/`, html_handling, the SPA and 404-page fallbacks,
run_worker_first patterns, env.ASSETS.fetch from the worker, hostile paths, and a rollout
that switches the assets with the code."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from thawtest import ThawDev, ThawServe, run_thaw, start_dev

WORKER = '''
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = "/" + request.url.split("/", 3)[3] if request.url.count("/") >= 3 else "/"
        if path.startswith("/via-binding"):
            target = path[len("/via-binding"):] or "/"
            asset = await self.env.ASSETS.fetch(request.url.split("/via-binding")[0] + target,
                                                headers=request.headers)
            body = await asset.bytes()
            headers = {"x-asset-status": str(asset.status),
                       "x-asset-type": asset.headers.get("content-type") or "",
                       "x-asset-etag": asset.headers.get("etag") or "",
                       "x-asset-range": asset.headers.get("content-range") or ""}
            return Response(body, headers=headers)
        if path == "/via-binding-object":
            asset = await self.env.ASSETS.fetch(request)
            return Response(await asset.text(), status=asset.status)
        return Response(f"worker {self.env.VERSION}: {request.method} {path}")
'''

BIG = bytes(range(256)) * (3 * 4096 + 17)  # ~3 MiB: several frames through the binding


def cloudflare_project(root: Path, version="v1", assets=None, vars=None):
    """A project as Cloudflare's docs lay it out: wrangler.jsonc, public/, src/entry.py."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "$schema": "node_modules/wrangler/config-schema.json",
        "name": "shop",
        "main": "src/entry.py",
        "compatibility_date": "2025-06-01",
        "compatibility_flags": ["python_workers"],
        "vars": {"VERSION": version, **(vars or {})},
        "assets": assets or {
            "directory": "./public/",
            "binding": "ASSETS",
            "not_found_handling": "single-page-application",
            "run_worker_first": ["/api/*", "!/api/docs/*"],
        },
    }
    (root / "wrangler.jsonc").write_text(
        "// Cloudflare's layout\n" + json.dumps(config, indent=2) + "\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "entry.py").write_text(textwrap.dedent(WORKER).lstrip())
    pub = root / "public"
    (pub / "blog").mkdir(parents=True, exist_ok=True)
    (pub / "api" / "docs").mkdir(parents=True, exist_ok=True)
    (pub / "index.html").write_text(f"<h1>home {version}</h1>\n")
    (pub / "about.html").write_text("about\n")
    (pub / "blog" / "index.html").write_text("blog\n")
    (pub / "app.js").write_text("console.log(1)\n")
    (pub / "style.css").write_text("body{}\n")
    (pub / "favicon.ico").write_bytes(b"\0\0\1\0")
    (pub / "version.txt").write_text(version + "\n")
    (pub / "api" / "docs" / "index.html").write_text("api docs\n")
    (pub / "big.bin").write_bytes(BIG)
    (pub / "404.html").write_text("custom not found\n")
    (root / "secret.txt").write_text("TOP-SECRET\n")
    return root


def raw_get(port, target, headers=None, method="GET"):
    """A request with the target sent exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path):
    project = cloudflare_project(tmp_path / "shop")
    d = ThawDev(project, ["--no-snapshot", "-v"]).wait_ready()
    yield d
    d.stop()


def test_files_types_index_and_head(site):
    r = site.get("/")
    assert r.status == 200 and r.text == "<h1>home v1</h1>\n"
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Server-Timing" in r.headers and 'desc="none"' in r.headers["Server-Timing"]
    for path, ctype in [("/app.js", "text/javascript; charset=utf-8"),
                        ("/style.css", "text/css; charset=utf-8"),
                        ("/favicon.ico", "image/vnd.microsoft.icon"),
                        ("/version.txt", "text/plain; charset=utf-8"),
                        ("/big.bin", "application/octet-stream")]:
        r = site.get(path)
        assert r.status == 200, (path, r)
        assert r.headers["Content-Type"] == ctype, path
        assert r.headers["Cache-Control"] == "public, max-age=0, must-revalidate"
        assert r.headers["Accept-Ranges"] == "bytes"
    assert site.get("/big.bin").body == BIG
    h = site.request("HEAD", "/style.css")
    assert h.status == 200 and h.body == b""
    assert h.headers["Content-Length"] == str(len("body{}\n"))
    assert h.headers["ETag"] == site.get("/style.css").headers["ETag"]
    # html_handling auto-trailing-slash: /about serves about.html, /about.html redirects.
    assert site.get("/about").text == "about\n"
    r = site.get("/about.html?x=1")
    assert r.status == 307 and r.headers["Location"] == "/about?x=1"
    r = site.get("/blog")
    assert r.status == 307 and r.headers["Location"] == "/blog/"
    assert site.get("/blog/").text == "blog\n"


def test_etag_304_and_ranges(site):
    r = site.get("/style.css")
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag)
    r = site.get("/style.css", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.headers["ETag"] == etag
    r = site.get("/style.css", headers={"If-None-Match": f'W/"nope", {etag}'})
    assert r.status == 304
    assert site.get("/style.css", headers={"If-None-Match": '"other"'}).status == 200
    r = site.get("/big.bin", headers={"Range": "bytes=1000-1999"})
    assert r.status == 206 and r.body == BIG[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(BIG)}"
    r = site.get("/big.bin", headers={"Range": "bytes=-10"})
    assert r.status == 206 and r.body == BIG[-10:]
    r = site.get("/big.bin", headers={"Range": f"bytes={len(BIG)}-"})
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(BIG)}"
    r = site.get("/big.bin", headers={"Range": "bytes=0-1,5-6"})  # several: the whole file
    assert r.status == 200 and r.body == BIG
    # A rewritten file gets a new ETag, and the old one no longer matches.
    (Path(site.project) / "public" / "style.css").write_text("body{color:red}\n")
    r2 = site.get("/style.css", headers={"If-None-Match": etag})
    assert r2.status == 200 and r2.text == "body{color:red}\n" and r2.headers["ETag"] != etag


def test_run_worker_first_patterns_and_spa_fallback(site):
    r = site.get("/api/users")
    assert r.text == "worker v1: GET /api/users"
    r = site.get("/api/docs/")
    assert r.text == "api docs\n"  # "!/api/docs/*" keeps it with the assets
    assert site.request("POST", "/style.css", body=b"x").text == "worker v1: POST /style.css"
    # Not an asset: a navigation gets the SPA's index.html, anything else the worker.
    r = site.get("/dashboard/settings", headers={"Sec-Fetch-Mode": "navigate"})
    assert r.status == 200 and r.text == "<h1>home v1</h1>\n"
    assert site.get("/dashboard/settings").text == "worker v1: GET /dashboard/settings"


def test_404_page(tmp_path):
    project = cloudflare_project(tmp_path / "p", assets={
        "directory": "public", "not_found_handling": "404-page",
        "html_handling": "drop-trailing-slash"})
    with_dev = start_dev(project, "--no-snapshot")
    try:
        r = with_dev.get("/missing/page", headers={"Sec-Fetch-Mode": "navigate"})
        assert r.status == 404 and r.text == "custom not found\n"
        assert with_dev.get("/missing/page").text == "worker v1: GET /missing/page"
        r = with_dev.get("/blog/")
        assert r.status == 307 and r.headers["Location"] == "/blog"
        assert with_dev.get("/blog").text == "blog\n"
    finally:
        with_dev.stop()


def test_hostile_paths_never_leave_the_directory(site):
    os.symlink(Path(site.project) / "secret.txt", Path(site.project) / "public" / "link.txt")
    for target in ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
                   "/..%2fsecret.txt", "/..%2Fsecret.txt", "/blog/..%2f..%2fsecret.txt",
                   "/..\\secret.txt", "/%5c..%5csecret.txt", "/secret.txt%00.css",
                   "/link.txt", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                   "/via-binding/../secret.txt", "/via-binding/%2e%2e/secret.txt",
                   "/via-binding/link.txt"]:
        status, headers, body = raw_get(site.port, target)
        assert b"TOP-SECRET" not in body and b"root:" not in body, (target, status, body)
        assert headers.get("ETag") is None, target  # never answered as an asset
    # The host keeps serving.
    assert site.get("/style.css").status == 200


def test_env_assets_fetch_from_the_worker(site):
    r = site.get("/via-binding/style.css")
    assert r.status == 200 and r.text == "body{}\n"
    assert r.headers["x-asset-status"] == "200"
    assert r.headers["x-asset-type"] == "text/css; charset=utf-8"
    assert r.headers["x-asset-etag"] == site.get("/style.css").headers["ETag"]
    # Larger than a frame: streamed in CALL_BODY frames under flow control.
    r = site.get("/via-binding/big.bin")
    assert r.status == 200 and r.body == BIG
    r = site.get("/via-binding/big.bin", headers={"Range": "bytes=10-19"})
    assert r.body == BIG[10:20] and r.headers["x-asset-status"] == "206"
    assert r.headers["x-asset-range"] == f"bytes 10-19/{len(BIG)}"
    # not_found_handling applies to the binding for any request (SPA: index.html).
    r = site.get("/via-binding/no/such/page")
    assert r.headers["x-asset-status"] == "200" and r.text == "<h1>home v1</h1>\n"
    # Many at once: concurrent calls on one instance.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: site.get("/via-binding/big.bin").body, range(16)))
    assert all(b == BIG for b in bodies)


def test_ten_thousand_asset_requests_start_no_instance(site):
    site.wait_for(r"instance \d+: pid \d+ booting", timeout=30)
    site.get("/api/warm")  # the prewarmed instance serves; nothing else starts
    starts_before = len(re.findall(r"instance \d+: pid \d+ (?:booting|restoring)",
                                   site.output()))

    def batch(n):
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
        ok = 0
        try:
            for i in range(n):
                conn.request("GET", "/style.css" if i % 2 else "/app.js")
                r = conn.getresponse()
                r.read()
                ok += r.status == 200
        finally:
            conn.close()
        return ok

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(batch, [625] * 16)) == 10000
    starts_after = len(re.findall(r"instance \d+: pid \d+ (?:booting|restoring)",
                                  site.output()))
    assert starts_after == starts_before == 1


def test_config_errors(tmp_path):
    p = cloudflare_project(tmp_path / "a", vars={"ASSETS": "a var"})
    r = run_thaw("dev", p, "--port", "0")
    assert r.returncode == 1 and "the assets binding 'ASSETS' has the name of a var" in r.stderr
    p = cloudflare_project(tmp_path / "b", assets={"directory": "../outside"})
    (tmp_path / "outside").mkdir()
    r = run_thaw("dev", p, "--port", "0")
    assert r.returncode == 1 and "must be a folder inside the project" in r.stderr
    p = cloudflare_project(tmp_path / "c", assets={"directory": "public",
                                                     "html_handling": "auto"})
    r = run_thaw("dev", p, "--port", "0")
    assert r.returncode == 1 and "html_handling 'auto' is not one of" in r.stderr
    p = cloudflare_project(tmp_path / "d", assets={"directory": "public",
                                                     "run_worker_first": ["!/x/*"]})
    r = run_thaw("dev", p, "--port", "0")
    assert r.returncode == 1 and "only '!' patterns" in r.stderr


# --------------------------------------------------------------------------- thaw serve


def deploy(host: ThawServe, project: Path, *args):
    r = host.client("deploy", project, "--no-install", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return re.search(r"^version: (\S+)$", r.stdout, re.M)[1]


def test_serve_assets_switch_with_the_version(tmp_path):
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        project = cloudflare_project(tmp_path / "shop")
        v1 = deploy(host, project)
        r = host.worker_get("shop", "/version.txt")
        assert r.status == 200 and r.text == "v1\n"
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert host.worker_get("shop", "/").text == "<h1>home v1</h1>\n"
        assert host.worker_get("shop", "/api/x").text == "worker v1: GET /api/x"
        r = host.worker_get("shop", "/big.bin", headers={"Range": "bytes=5-9"})
        assert r.status == 206 and r.body == BIG[5:10]
        etag = host.worker_get("shop", "/style.css").headers["ETag"]
        assert host.worker_get("shop", "/style.css",
                               headers={"If-None-Match": etag}).status == 304
        assert host.worker_get("shop", "/via-binding/version.txt").text == "v1\n"

        cloudflare_project(project, version="v2")
        v2 = deploy(host, project)
        assert v2 != v1
        assert host.worker_get("shop", "/version.txt").text == "v2\n"
        assert host.worker_get("shop", "/api/x").text == "worker v2: GET /api/x"
        assert host.worker_get("shop", "/via-binding/version.txt").text == "v2\n"
        # The old version still has its own assets, with its own code (an override reaches
        # a version of the deployment only: v1 comes back at 0.01 %).
        r = host.api("POST", "/v1/workers/shop/rollout",
                     json.dumps({"version": v1, "percentage": 0.01}))
        assert r.status == 200, r
        old = {"thaw-version-override": v1}
        assert host.worker_get("shop", "/version.txt", headers=old).text == "v1\n"
        assert host.worker_get("shop", "/api/x", headers=old).text == "worker v1: GET /api/x"
        for target in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"]:
            status, _, body = raw_get(host.port, target, headers={"Host": "shop.localhost"})
            assert b"TOP-SECRET" not in body, target
    finally:
        host.stop()
