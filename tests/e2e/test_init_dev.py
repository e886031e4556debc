"""`thaw init` writes a working project; `thaw dev` serves it and stops cleanly on Ctrl-C."""

import signal
import time
import tomllib

from thawtest import proc_alive, run_thaw, start_dev, write_project


def test_help_lists_commands_and_dev_flags():
    r = run_thaw("--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for word in ("init", "dev", "snapshot inspect"):
        assert word in text, text
    r = run_thaw("dev", "--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for flag in ("--port", "--ip", "--idle-timeout", "--timeout", "--max-body-bytes",
                 "--max-header-bytes", "--max-instances", "--system-site-packages",
                 "--no-snapshot", "--max-snapshot-mb"):
        assert flag in text, f"`thaw dev --help` does not mention {flag}:\n{text}"


def test_init_writes_project_files(tmp_path):
    p = tmp_path / "p"
    r = run_thaw("init", p)
    assert r.returncode == 0, r.stdout + r.stderr
    for rel in ("pyproject.toml", "src/entry.py", ".gitignore"):
        assert (p / rel).is_file(), f"thaw init did not write {rel}"
    conf = tomllib.loads((p / "pyproject.toml").read_text())
    assert "project" in conf
    thaw = conf["tool"]["thaw"]
    assert thaw["name"]
    assert thaw.get("main", "src/entry.py") == "src/entry.py"
    assert isinstance(thaw.get("vars", {}), dict)
    assert ".thaw" in (p / ".gitignore").read_text()
    assert ".dev.vars" in (p / ".gitignore").read_text()  # local secrets stay out of git


def test_init_then_dev_answers_hello_world(tmp_path, dev):
    p = tmp_path / "p"
    r = run_thaw("init", p)
    assert r.returncode == 0, r.stdout + r.stderr
    d = dev(p, "--ip", "127.0.0.1")
    assert d.host == "127.0.0.1"
    resp = d.get("/")
    assert resp.status == 200, resp
    assert resp.body == b"Hello world!"
    assert resp.headers["Content-Type"] == "text/plain;charset=UTF-8"


def test_init_fastapi_template_serves_fastapi_app(tmp_path, dev):
    p = tmp_path / "api"
    r = run_thaw("init", p, "--template", "fastapi")
    assert r.returncode == 0, r.stdout + r.stderr
    entry = (p / "src" / "entry.py").read_text()
    assert "fastapi" in entry.lower() and "asgi" in entry, entry
    d = dev(p, "--system-site-packages", "--no-install")  # fastapi from the system, offline
    resp = d.get("/")
    assert resp.status == 200, f"{resp}\n{d.output()}"
    # Served by FastAPI itself: its generated OpenAPI document is there.
    resp = d.get("/openapi.json")
    assert resp.status == 200, resp
    assert "openapi" in resp.json()


def test_init_refuses_existing_project(tmp_path):
    p = tmp_path / "p"
    assert run_thaw("init", p).returncode == 0
    (p / "pyproject.toml").write_text("# mine\n")
    r = run_thaw("init", p)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (r.stdout + r.stderr).strip(), "thaw init refused silently"
    assert "pyproject.toml" in r.stdout + r.stderr or "exists" in r.stdout + r.stderr
    assert (p / "pyproject.toml").read_text() == "# mine\n"


def test_init_unknown_template_fails(tmp_path):
    r = run_thaw("init", tmp_path / "p", "--template", "no-such-template")
    assert r.returncode != 0
    assert not (tmp_path / "p" / "pyproject.toml").exists()


def test_sigint_exits_zero_and_leaves_no_child(project):
    p = project(
        """
        from workers import WorkerEntrypoint, Response
        import os

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(str(__import__("_thaw_runtime").host_pid()))
        """
    )
    d = start_dev(p)
    try:
        resp = d.get("/")
        assert resp.status == 200, resp
        worker_pid = int(resp.text)
        kids = d.children()
        assert worker_pid in [pid for pid, _ in kids], (
            f"the worker pid {worker_pid} is not a descendant of thaw dev ({kids})")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        rc = d.proc.wait(10)
        assert rc == 0, d.output()
        assert time.monotonic() - t0 < 10
        # thaw dev reaps its instances before it exits: none may be left, not even briefly.
        still = [pid for pid, start in kids if proc_alive(pid, start)]
        assert not still, f"processes {still} outlived thaw dev"
    finally:
        d.kill()


def test_dev_missing_project_dir_fails_clearly(tmp_path):
    r = run_thaw("dev", tmp_path / "nope", "--port", "0", timeout=30)
    assert r.returncode != 0
    assert "nope" in r.stdout + r.stderr


def test_vars_keep_their_toml_types(tmp_path, dev):
    # As on Cloudflare: a number var is a number, a boolean a boolean.
    p = write_project(tmp_path / "p", """
        from workers import Response, WorkerEntrypoint, env

        class Default(WorkerEntrypoint):
            async def fetch(self):
                return Response(repr((env.N + 1, env.F * 2, env.B is True, env.S)))
        """, vars={"N": 41, "F": 1.25, "B": True, "S": "text"})
    resp = dev(p).get("/")
    assert resp.status == 200 and resp.text == "(42, 2.5, True, 'text')", resp
