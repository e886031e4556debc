"""The examples shipped in the repository run as documented."""

import html
import json
import shutil
import tomllib

import pytest

from thawtest import REPO

IGNORE = shutil.ignore_patterns(".thaw", "__pycache__", "python_modules")


def copy_example(name, tmp_path):
    src = REPO / "examples" / name
    assert (src / "pyproject.toml").is_file(), f"examples/{name} is missing"
    return shutil.copytree(src, tmp_path / name, ignore=IGNORE)


def test_hello_example(tmp_path, dev):
    d = dev(copy_example("hello", tmp_path))
    r = d.get("/")
    assert r.status == 200, r
    assert r.body == b"Hello world!"
    assert r.headers["Content-Type"] == "text/plain;charset=UTF-8"


@pytest.fixture(scope="module")
def fastapi_example(tmp_path_factory, module_dev):
    root = copy_example("fastapi", tmp_path_factory.mktemp("ex"))
    greeting = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["thaw"]["vars"][
        "GREETING"]
    return module_dev(root, "--system-site-packages", "--no-install"), greeting


def test_fastapi_root_json(fastapi_example):
    d, _ = fastapi_example
    r = d.get("/")
    assert r.status == 200, f"{r}\n{d.output()}"
    assert r.headers["Content-Type"] == "application/json"
    assert "message" in r.json()


def test_fastapi_path_and_query_parameters(fastapi_example):
    d, _ = fastapi_example
    r = d.get("/items/42?q=thaw")
    assert r.status == 200, r
    assert r.json() == {"item_id": 42, "q": "thaw"}
    r = d.get("/items/not-an-int")
    assert r.status == 422, r  # FastAPI's validation, through the adapter


def test_fastapi_post_body_validated(fastapi_example):
    d, _ = fastapi_example
    r = d.request("POST", "/items", body=json.dumps({"name": "pen", "price": 10}).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    data = r.json()
    assert data["created"]["name"] == "pen"
    assert data["price_with_tax"] == 12.0
    r = d.request("POST", "/items", body=b'{"name": "pen"}',
                  headers={"Content-Type": "application/json"})
    assert r.status == 422, r


def test_fastapi_env_from_scope(fastapi_example):
    d, greeting = fastapi_example
    r = d.get("/env")
    assert r.status == 200, r
    assert r.json() == {"greeting": greeting}


def test_fastapi_jinja2_html(fastapi_example):
    d, greeting = fastapi_example
    r = d.get("/hi/Ada")
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<h1>Hello, Ada!</h1>" in r.text
    assert greeting in html.unescape(r.text)  # Jinja2 autoescapes the apostrophe


def test_fastapi_unknown_route_404(fastapi_example):
    d, _ = fastapi_example
    assert d.get("/no/such/route").status == 404


# --- examples/cloudflare-shop: the README's "A Cloudflare project, unchanged" ---

def _readme_block(lang, containing):
    text = (REPO / "README.md").read_text()
    for block in text.split("```")[1::2]:
        if block.startswith(lang + "\n") and containing in block:
            return block[len(lang) + 1:]
    raise AssertionError(f"README has no ```{lang} block with {containing!r}")


def _jsonc(text):
    return json.loads("\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//")))


def test_readme_shows_the_cloudflare_example_as_it_is():
    root = REPO / "examples" / "cloudflare-shop"
    assert _jsonc(_readme_block("jsonc", '"triggers"')) == _jsonc(
        (root / "wrangler.jsonc").read_text())
    assert _readme_block("python", "async def scheduled") == (root / "src/entry.py").read_text()


def test_cloudflare_example_under_dev(tmp_path, dev):
    root = shutil.copytree(REPO / "examples" / "cloudflare-shop", tmp_path / "shop", ignore=IGNORE)
    d = dev(root, "--test-scheduled")
    page = d.get("/")
    assert page.status == 200 and "<h1>The shop</h1>" in page.text
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert d.get("/api/status").json() == {"greeting": "hello", "keyed": True}
    assert d.get("/__scheduled?cron=*/5+*+*+*+*").status == 200
    d.wait_for(r"refreshing \(\*/5 \* \* \* \*\)")


def test_cloudflare_example_deployed(tmp_path):
    import subprocess
    from thawtest import THAW_BIN, ThawServe, thaw_env
    root = shutil.copytree(REPO / "examples" / "cloudflare-shop", tmp_path / "shop", ignore=IGNORE)
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        r = host.client("deploy", root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "<h1>The shop</h1>" in host.worker_get("shop").text
        r = subprocess.run([THAW_BIN, "secret", "put", "API_KEY", "--name", "shop", "--host",
                            host.control, "--token-file", str(host.token_file)],
                           input="prod-key", env=thaw_env(), capture_output=True, text=True,
                           timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("shop", path="/api/x").json() == {"greeting": "hello",
                                                               "keyed": True}
        r = host.client("crons", "shop")
        assert r.returncode == 0 and 'triggers (UTC): "*/5 * * * *"' in r.stdout, r.stdout
    finally:
        host.stop()
