"""The storage and service bindings' configuration (kv_namespaces, d1_databases, r2_buckets,
durable_objects + migrations, queues, services) as `thaw dev` and `thaw deploy` read it, through
the real config reader (tomllib for TOML): a bad entry stops them with the file and the key path,
a good one is read (unknown keys inside an entry are notes) and the worker is served."""

from __future__ import annotations

import json
from pathlib import Path

from thawtest import run_thaw, start_dev, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("configured")
"""

EVERY_KIND = {
    "name": "stateful",
    "main": "src/entry.py",
    "compatibility_date": "2025-11-01",
    "vars": {"GREETING": "hello"},
    "kv_namespaces": [{"binding": "KV", "id": "0f2ac74b498b48028cb68387c421e279",
                       "remote": True}],
    "d1_databases": [{"binding": "DB", "database_name": "stateful-db",
                      "migrations_dir": "./db/migrations/"}],
    "r2_buckets": [{"binding": "FILES", "bucket_name": "stateful-files"}],
    "durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
    "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}],
    "queues": {"producers": [{"binding": "JOBS", "queue": "jobs"}],
               "consumers": [{"queue": "jobs", "max_batch_size": 25}]},
    "services": [{"binding": "AUTH", "service": "auth", "entrypoint": "Verifier"}],
}


def wrangler_project(root: Path, config: dict) -> Path:
    write_project(root, ENTRY, pyproject=False)
    (root / "wrangler.jsonc").write_text(json.dumps(config, indent=2) + "\n")
    return root


def refused(project: Path, tmp_path: Path):
    """`thaw dev` and `thaw deploy` of project: both must refuse before anything starts."""
    dev = run_thaw("dev", project, "--port", "0", "--no-install", timeout=30)
    assert dev.returncode != 0, dev.stdout + dev.stderr
    assert "Ready on" not in dev.stdout + dev.stderr
    token = tmp_path / "token"
    token.write_text("t\n")
    deploy = run_thaw("deploy", project, "--host", "http://127.0.0.1:9", "--token-file", token,
                      "--no-install", timeout=30)
    assert deploy.returncode != 0
    return dev.stderr, deploy.stderr


def test_dev_and_deploy_refuse_a_binding_named_like_a_var(tmp_path):
    config = dict(EVERY_KIND, vars={"CACHE": "x"},
                  kv_namespaces=[{"binding": "KV"}, {"binding": "CACHE"}])
    dev, deploy = refused(wrangler_project(tmp_path / "p", config), tmp_path)
    want = ("wrangler.jsonc: kv_namespaces[1].binding 'CACHE' has the name of a var (vars.CACHE): "
            "rename one of them")
    assert want in dev, dev
    assert want in deploy, deploy


def test_dev_refuses_bad_entries_from_toml_naming_file_and_key(tmp_path):
    # wrangler.toml through the reader's real TOML parser.
    p = tmp_path / "toml"
    write_project(p, ENTRY, pyproject=False)
    (p / "wrangler.toml").write_text(
        'name = "q"\nmain = "src/entry.py"\n\n'
        '[[queues.consumers]]\nqueue = "jobs"\nmax_batch_size = 500\n')
    dev, _ = refused(p, tmp_path)
    assert ("wrangler.toml: queues.consumers[0].max_batch_size must be a whole number from 1 "
            "to 100") in dev, dev

    # [tool.thaw] in pyproject.toml, over a wrangler file that is fine.
    p = wrangler_project(tmp_path / "pyproject", EVERY_KIND)
    (p / "pyproject.toml").write_text(
        '[project]\nname = "stateful"\nversion = "0"\n\n'
        '[[tool.thaw.d1_databases]]\nbinding = "DB"\ndatabase_name = "db"\n'
        'migrations_dir = "../outside"\n')
    dev, _ = refused(p, tmp_path)
    assert ("pyproject.toml [tool.thaw]: d1_databases[0].migrations_dir '../outside' must be a "
            "folder inside the project") in dev, dev

    # Durable Object migrations that cannot apply in their order.
    config = dict(EVERY_KIND, migrations=[
        {"tag": "v1", "new_sqlite_classes": ["Room"]},
        {"tag": "v2", "deleted_classes": ["Lobby"]},
    ])
    dev, _ = refused(wrangler_project(tmp_path / "migrations", config), tmp_path)
    assert ("wrangler.jsonc: migrations[1] (tag 'v2') deletes class 'Lobby', which no earlier "
            "migration created") in dev, dev


def test_dev_reads_every_binding_kind_and_serves(tmp_path):
    project = wrangler_project(tmp_path / "p", EVERY_KIND)
    types = run_thaw("types", project)
    assert types.returncode == 0, types.stderr
    assert "Wrote" in types.stdout and "(7 members of Env)" in types.stdout, types.stdout
    dev = start_dev(project, "--no-install")
    try:
        assert dev.get("/").text == "configured"
        out = dev.output()
        # Read, so no longer "not supported"; an unknown key inside an entry is a note.
        for key in ("kv_namespaces", "d1_databases", "r2_buckets", "durable_objects",
                    "migrations", "queues", "services"):
            assert f"'{key}' is not supported" not in out, out
        assert "'kv_namespaces[0].remote' is not used by this version of thaw" in out, out
    finally:
        dev.stop()
