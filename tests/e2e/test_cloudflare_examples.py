"""Workers written exactly as Cloudflare's Python Workers docs show them, one per feature of
issue 10, each run under `thaw dev` and deployed to `thaw serve`: a fetch handler that takes
fewer parameters, `from workers import env` at the top level and in a handler, a scheduled
handler with its cron, a Flask app reading `environ["workers.env"]`, and a project that lists
`workers-runtime-sdk` in its dependencies (installed from a local wheelhouse).

Features with their own files: assets (test_assets.py), secrets and .dev.vars
(test_secrets.py), cron runs (test_cron.py), js / pyodide.ffi (test_js_ffi.py), the API
details (test_cf_api.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from test_install import build_wheel
from thawtest import THAW_BIN, ThawServe, start_dev, thaw_env, write_project


def wrangler(root: Path, entry: str, extra: dict | None = None, name: str = "cf-example",
             deps: list[str] | None = None) -> Path:
    write_project(root, entry, pyproject=False)
    config = {"name": name, "main": "src/entry.py", "compatibility_date": "2025-11-01",
              "compatibility_flags": ["python_workers"], **(extra or {})}
    (root / "wrangler.jsonc").write_text("// as `pywrangler init` writes it\n" +
                                         json.dumps(config, indent=2) + "\n")
    if deps is not None:
        (root / "pyproject.toml").write_text(
            '[project]\nname = "%s"\nversion = "0.1.0"\nrequires-python = ">=3.12"\n'
            "dependencies = %s\n" % (name, json.dumps(deps)))
    return root


class Target:
    """A running worker under `thaw dev` or deployed to `thaw serve`."""

    def __init__(self, kind, project, tmp_path, args=(), deploy_args=(), dev_args=()):
        self.kind = kind
        self.name = json.loads((project / "wrangler.jsonc").read_text().split("\n", 1)[1])["name"]
        if kind == "dev":
            self.proc = start_dev(project, *args, *dev_args)
        else:
            self.proc = ThawServe(tmp_path / "host" / "data", args=args).wait_ready()
            r = self.proc.client("deploy", project, *deploy_args)
            assert r.returncode == 0, r.stdout + r.stderr

    def get(self, path="/", **kw):
        if self.kind == "dev":
            return self.proc.get(path, **kw)
        return self.proc.worker_get(self.name, path=path, **kw)

    def stop(self):
        self.proc.stop()


@pytest.fixture(params=["dev", "serve"])
def target(request, tmp_path):
    made = []

    def start(project, args=(), deploy_args=(), dev_args=()):
        t = Target(request.param, project, tmp_path, args, deploy_args, dev_args)
        made.append(t)
        return t

    yield start
    for t in made:
        t.stop()


def test_fetch_declared_with_fewer_parameters(tmp_path, target):
    project = wrangler(tmp_path / "p", """
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def fetch(self):
                return Response("no request needed")
    """)
    r = target(project).get("/anything")
    assert r.status == 200 and r.text == "no request needed"


def test_module_level_env_at_top_level_and_in_handlers(tmp_path, target):
    project = wrangler(tmp_path / "p", """
        from workers import WorkerEntrypoint, Response, env

        GREETING = env.GREETING.upper()  # configuration read once, at the top level

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response.json({"top": GREETING, "handler": env.GREETING,
                                      "limit": env.LIMIT, "same": env is self.env})
    """, extra={"vars": {"GREETING": "hello", "LIMIT": 10}})
    body = target(project).get("/").json()
    assert body == {"top": "HELLO", "handler": "hello", "limit": 10, "same": True}


def test_scheduled_handler_with_a_cron_deployed(tmp_path):
    project = wrangler(tmp_path / "p", """
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")

            async def scheduled(self, controller, env, ctx):
                print(f"cron fired: {controller.cron}")
    """, extra={"triggers": {"crons": ["*/15 * * * *"]}})
    t = Target("serve", project, tmp_path)
    try:
        crons = t.proc.api("GET", "/v1/workers/cf-example/crons").json()
        assert crons["triggers"] == ["*/15 * * * *"] and crons["running"] == []
        assert t.get("/").text == "ok"
    finally:
        t.stop()


def test_scheduled_by_hand_in_dev(tmp_path):
    project = wrangler(tmp_path / "p", """
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def scheduled(self, controller, env, ctx):
                print(f"cron fired: {controller.cron}")
    """, extra={"triggers": {"crons": ["*/15 * * * *"]}})
    dev = start_dev(project, "--test-scheduled")
    try:
        assert dev.get("/__scheduled?cron=*/15+*+*+*+*").text == "Ran scheduled event\n"
        dev.wait_for(r"cron fired: \*/15 \* \* \* \*")
    finally:
        dev.stop()


def test_flask_app_reads_workers_env(tmp_path, target):
    project = wrangler(tmp_path / "p", """
        from flask import Flask, request
        from workers import WorkerEntrypoint
        import asgi  # noqa: F401 - Cloudflare's examples import their adapters the same way
        import wsgi

        app = Flask(__name__)

        @app.route("/hello")
        def hello():
            env = request.environ["workers.env"]
            return {"greeting": env.GREETING, "who": request.args.get("who", "world")}

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return await wsgi.fetch(app, request, self.env)
    """, extra={"vars": {"GREETING": "hi from flask"}})
    t = target(project, args=("--system-site-packages",))
    r = t.get("/hello?who=thaw")
    assert r.status == 200, r.text
    assert r.json() == {"greeting": "hi from flask", "who": "thaw"}


def test_project_depending_on_workers_runtime_sdk(tmp_path, target):
    wheelhouse = tmp_path / "wheelhouse"
    build_wheel(wheelhouse, "workers_runtime_sdk", "1.0",
                modules={"workers/__init__.py": "import js  # Cloudflare's SDK needs Pyodide\n"})
    build_wheel(wheelhouse, "tinydep", "1.0")
    project = wrangler(tmp_path / "p", """
        from workers import WorkerEntrypoint, Response
        import tinydep

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("tinydep " + tinydep.VERSION)
    """, deps=["workers-runtime-sdk", "tinydep"])
    r = subprocess.run([THAW_BIN, "install", str(project), "--no-index", "--find-links",
                        str(wheelhouse)], env=thaw_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipping workers-runtime-sdk" in r.stdout + r.stderr
    t = target(project, dev_args=("--no-install",), deploy_args=("--no-install",))
    r = t.get("/")
    assert r.status == 200 and r.text == "tinydep 1.0", r.text
