"""Secrets and environments, with workers written as Cloudflare's docs show them: `thaw dev`
reads .dev.vars (or .env), per environment with --env; `thaw secret put/list/delete` against a
host makes a new version; a secret's value reaches handlers only, never the top level, and
appears in no log, answer, bundle, version listing, snapshot or file of the data directory."""

from __future__ import annotations

import os

import json
import subprocess
from pathlib import Path

from thawtest import THAW_BIN, ThawServe, run_thaw, start_dev, thaw_env, write_project

VALUE = "s3cr3t-7f1c9e-value"

WORKER = """
    from workers import WorkerEntrypoint, Response, env

    MODE_AT_IMPORT = env.MODE  # a var: fine at the top level

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            key = self.env.API_KEY if "API_KEY" in self.env else "(none)"
            return Response.json({"key": key, "same": key == (env.API_KEY if "API_KEY" in env
                                                          else "(none)"),
                                  "mode": self.env.MODE, "mode_at_import": MODE_AT_IMPORT,
                                  "repr": repr(self.env)})
"""


def wrangler(root: Path, entry: str = WORKER, name: str = "sec-worker") -> Path:
    write_project(root, entry, pyproject=False)
    (root / "wrangler.toml").write_text(f'''
name = "{name}"
main = "src/entry.py"
compatibility_date = "2025-11-01"

[vars]
MODE = "production"

[env.staging]
vars = {{ MODE = "staging" }}
'''.lstrip())
    return root


def grep_tree(root: Path, needle: str) -> list[str]:
    hits = []
    # os.walk, not rglob: an instance's own directory may go while the walk runs.
    paths = (Path(d) / f for d, _, files in os.walk(root) for f in files)
    for p in paths:
        if p.is_file() and not p.is_symlink():
            try:
                if needle.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def test_dev_reads_dev_vars_and_withholds_them_from_the_top_level(tmp_path):
    project = wrangler(tmp_path / "p")
    (project / ".dev.vars").write_text(f'API_KEY="{VALUE}"\n# comment\n')
    (project / ".env").write_text("API_KEY=from-dot-env\n")  # ignored: .dev.vars exists
    dev = start_dev(project)
    try:
        dev.wait_for(r"1 secret from \.dev\.vars: API_KEY \(values hidden\)", stream="stderr")
        body = dev.get("/").json()
        assert body == {"key": VALUE, "same": True, "mode": "production",
                        "mode_at_import": "production", "repr": "<Env API_KEY, MODE>"}
        # Changing .dev.vars reloads the worker with the new value.
        (project / ".dev.vars").write_text("API_KEY=rotated\n")
        dev.get_until("/", lambda r: r.json()["key"] == "rotated", timeout=15)
        assert VALUE not in dev.output()
        assert not grep_tree(project / ".thaw", VALUE) and not grep_tree(project / ".thaw", "rotated")
    finally:
        dev.stop()


def test_dev_env_falls_back_to_dot_env_and_selects_environments(tmp_path):
    project = wrangler(tmp_path / "p")
    (project / ".env").write_text("API_KEY=from-dot-env\n")
    (project / ".dev.vars.staging").write_text("API_KEY=staging-key\n")
    dev = start_dev(project)
    try:
        assert dev.get("/").json()["key"] == "from-dot-env"
    finally:
        dev.stop()
    dev = start_dev(project, "--env", "staging")
    try:
        dev.wait_for(r"serving sec-worker-staging .*environment staging", stream="stderr")
        body = dev.get("/").json()
        assert body["key"] == "staging-key" and body["mode"] == "staging"
    finally:
        dev.stop()
    r = run_thaw("dev", project, "--env", "qa", "--port", "0", timeout=30)
    assert r.returncode != 0 and "wrangler.toml has no environment 'qa' (it has: staging)" in r.stderr


def test_reading_a_secret_at_the_top_level_is_a_clear_error(tmp_path):
    project = wrangler(tmp_path / "p", entry="""
        from workers import WorkerEntrypoint, Response, env
        KEY = env.API_KEY
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(KEY)
    """)
    (project / ".dev.vars").write_text(f"API_KEY={VALUE}\n")
    dev = start_dev(project)
    try:
        r = dev.get("/")
        assert r.status == 500
        assert "env.API_KEY is a secret" in r.text and "Read it inside a handler" in r.text
        assert "KEY = env.API_KEY" in r.text
        assert VALUE not in r.text and VALUE not in dev.output()
    finally:
        dev.stop()


def secret(host: ThawServe, *args, value: str | None = None, cwd=None):
    return subprocess.run([THAW_BIN, "secret", *args, "--host", host.control, "--token-file",
                           str(host.token_file)], input=value, cwd=cwd, env=thaw_env(),
                          capture_output=True, text=True, timeout=180)


def test_serve_secret_put_list_delete_make_versions_and_leak_nowhere(tmp_path):
    project = wrangler(tmp_path / "p")
    data = tmp_path / "host" / "data"
    host = ThawServe(data).wait_ready()
    tail = None
    try:
        r = host.client("deploy", project)
        assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("sec-worker").json()["key"] == "(none)"
        tail = subprocess.Popen([THAW_BIN, "tail", "sec-worker", "--json", "--host", host.control,
                                 "--token-file", host.token_file], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        r = secret(host, "put", "API_KEY", value=VALUE + "\n", cwd=project)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Secret API_KEY stored on sec-worker" in r.stdout
        assert "Deployed version 2 with the new secrets" in r.stdout
        body = host.worker_get("sec-worker").json()
        assert body["key"] == VALUE and body["same"] and body["mode"] == "production"
        r = secret(host, "list", "--name", "sec-worker")
        assert r.returncode == 0 and r.stdout == "API_KEY\n"
        versions = host.client("versions", "list", "sec-worker", "--json")
        assert versions.returncode == 0 and VALUE not in versions.stdout
        assert "secret API_KEY set" in versions.stdout
        api = host.api("GET", "/v1/workers/sec-worker/secrets")
        assert api.json() == {"secrets": ["API_KEY"]}
        # Bad input is refused with a reason, and nothing changes.
        bad = host.api("POST", "/v1/workers/sec-worker/secrets",
                       body=json.dumps({"name": "9X", "value": "v"}))
        assert bad.status == 400 and "name" in bad.json()["error"]
        r = secret(host, "delete", "API_KEY", "--name", "sec-worker")
        assert r.returncode == 0 and "Deployed version 3" in r.stdout, r.stdout + r.stderr
        assert host.worker_get("sec-worker").json()["key"] == "(none)"
        r = secret(host, "delete", "API_KEY", "--name", "sec-worker")
        assert r.returncode != 0 and "no such secret" in r.stderr
        # A rollback to version 2 brings its secrets back with its code.
        r = host.client("rollback", "2", "--name", "sec-worker")
        assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("sec-worker").json()["key"] == VALUE
    finally:
        if tail:
            tail.kill()
            out, err = tail.communicate()
            assert VALUE not in out and VALUE not in err
        host.stop()
    assert VALUE not in host.output()
    hits = grep_tree(data, VALUE)
    assert not hits, f"the secret's value is in {hits}"
    assert (data / "secrets.key").stat().st_mode & 0o777 == 0o600


def test_serve_secret_read_at_top_level_fails_the_new_version_only(tmp_path):
    project = wrangler(tmp_path / "p", entry="""
        from workers import WorkerEntrypoint, Response, env
        KEY = env.API_KEY if "API_KEY" in env else None
        LEN = len(KEY) if KEY else 0
        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(f"len={LEN}")
    """)
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        assert host.client("deploy", project).returncode == 0
        r = secret(host, "put", "API_KEY", value=VALUE, cwd=project)
        assert r.returncode != 0
        assert "version 2 failed" in r.stderr and "env.API_KEY is a secret" in r.stderr
        assert host.worker_get("sec-worker").text == "len=0"  # version 1 still serves
    finally:
        host.stop()


def test_deploy_env_makes_the_environment_worker(tmp_path):
    project = wrangler(tmp_path / "p")
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        r = host.client("deploy", project, "--env", "staging")
        assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("sec-worker-staging").json()["mode"] == "staging"
        r = secret(host, "put", "API_KEY", "--name", "sec-worker-staging", value="st")
        assert r.returncode == 0, r.stdout + r.stderr
        body = host.worker_get("sec-worker-staging").json()
        assert body["key"] == "st" and body["mode"] == "staging"  # the environment is kept
        assert host.worker_get("sec-worker").status == 404
    finally:
        host.stop()


def test_secret_prompt_interrupted_gives_the_terminal_its_echo_back(tmp_path):
    # `thaw secret put` turns echo off for its prompt; interrupted there (Ctrl-C), it must
    # turn it on again, or the user's shell is left typing blind.
    import os
    import signal
    import termios
    import time

    master, slave = os.openpty()
    try:
        assert termios.tcgetattr(slave)[3] & termios.ECHO
        proc = subprocess.Popen([THAW_BIN, "secret", "put", "API_KEY", "--name", "w",
                                 "--host", "http://127.0.0.1:9"],
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=thaw_env(), cwd=tmp_path)
        deadline = time.monotonic() + 10
        while termios.tcgetattr(slave)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.02)  # the prompt is up once echo is off
        assert not termios.tcgetattr(slave)[3] & termios.ECHO, "the prompt never turned echo off"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode != 0
        assert termios.tcgetattr(slave)[3] & termios.ECHO, err
    finally:
        os.close(master)
        os.close(slave)


def test_a_malformed_secret_body_is_refused_without_echoing_the_value(tmp_path):
    # jansson's parse errors quote the text near the error: for a secret, that is the value.
    host = ThawServe(tmp_path / "host" / "data").wait_ready()
    try:
        bad = host.api("POST", "/v1/workers/w/secrets",
                       body='{"name": "API_KEY", "value": "' + VALUE + '\x01"}')
        assert bad.status == 400
        assert "JSON object" in bad.json()["error"]
        assert "s3cr3t" not in bad.text, bad.text
    finally:
        host.stop()
    assert "s3cr3t" not in host.output()
