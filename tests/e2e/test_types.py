"""`thaw types` writes a stub for the worker's env that mypy (Debian's) checks code against:
vars with their value's types, secrets named in .dev.vars (never their values), the assets
binding as a Fetcher, the storage and service bindings with their classes when the SDK's
workers._bindings has them (else Any, naming the kind); --env picks an environment's vars."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from thawtest import THAW_BIN, run_thaw, thaw_env, write_project

REPO = Path(__file__).resolve().parents[2]

GOOD = """
    from typing import TYPE_CHECKING
    from workers import WorkerEntrypoint, Response
    if TYPE_CHECKING:
        from worker_env import Env

    class Default(WorkerEntrypoint):
        env: "Env"

        async def fetch(self, request):
            total: int = self.env.LIMIT + 1
            ratio: float = self.env.RATIO * 2
            name: str = self.env.GREETING.upper() + self.env.API_KEY
            flag: bool = self.env.DEBUG
            page = await self.env.ASSETS.fetch(request)
            await self.env.CACHE.put("k", "v")
            rows = await self.env.DB.prepare("select 1").all()
            await self.env.JOBS.send({"n": 1})
            stub = self.env.ROOMS.get(self.env.ROOMS.id_from_name("lobby"))
            other = await self.env.AUTH.fetch(request)
            verdict: bool = await self.env.AUTH.verify("token")  # RPC through the binding
            return Response(f"{total} {ratio} {name} {flag} {page.status} {rows} {stub} "
                            f"{other.status} {verdict} {self.env.FILES}")
"""

BAD = """
    from typing import TYPE_CHECKING
    if TYPE_CHECKING:
        from worker_env import Env

    def use(env: "Env") -> None:
        env.LIMIT + "x"
        env.NOT_CONFIGURED
"""


def project(root: Path) -> Path:
    write_project(root, GOOD, pyproject=False, files={"public/index.html": "<h1>hi</h1>\n"})
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "typed", "main": "src/entry.py",
        "vars": {"GREETING": "hello", "LIMIT": 10, "RATIO": 0.5, "DEBUG": False},
        "assets": {"directory": "./public", "binding": "ASSETS"},
        "kv_namespaces": [{"binding": "CACHE", "id": "0f2ac74b498b48028cb68387c421e279"}],
        "d1_databases": [{"binding": "DB", "database_name": "typed-db"}],
        "r2_buckets": [{"binding": "FILES", "bucket_name": "typed-files"}],
        "durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Room"]}],
        "queues": {"producers": [{"binding": "JOBS", "queue": "jobs"}]},
        "services": [{"binding": "AUTH", "service": "auth"}],
        "env": {"staging": {"vars": {"GREETING": "hi", "STAGE_ONLY": [1, 2]}}},
    }))
    (root / ".dev.vars").write_text("API_KEY=never-in-the-stub-42\n")
    return root


def mypy(*files: Path, cwd: Path):
    return subprocess.run(["/usr/bin/python3", "-m", "mypy", "--no-incremental",
                           "--ignore-missing-imports", "--check-untyped-defs", "--no-error-summary",
                           *map(str, files)],
                          cwd=cwd, env={"MYPYPATH": f"{cwd / 'src'}:{REPO / 'python'}",
                                        "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_types_stub_is_checked_by_mypy(tmp_path):
    p = project(tmp_path / "p")
    r = run_thaw("types", p)
    assert r.returncode == 0, r.stderr
    stub = p / "src" / "worker_env.pyi"
    assert f"Wrote {stub} (12 members of Env)" in r.stdout
    text = stub.read_text()
    assert "never-in-the-stub-42" not in text
    for member in ("GREETING: str", "LIMIT: int", "RATIO: float", "DEBUG: bool",
                   "API_KEY: str  # secret (.dev.vars)", "ASSETS: Fetcher",
                   "AUTH: _ServiceBinding  # service binding (Fetcher + RPC): worker auth"):
        assert member in text, text
    # Classes this SDK does not define yet are Any, with the kind named.
    for member, kind in (("CACHE", "KVNamespace"), ("DB", "D1Database"), ("FILES", "R2Bucket"),
                         ("ROOMS", "DurableObjectNamespace"), ("JOBS", "Queue")):
        if f"class {kind}" not in (REPO / "python/workers/_bindings.py").read_text():
            assert f"{member}: Any  # " in text and f"({kind}: not in this thaw's" in text, text
    ok = mypy(p / "src" / "entry.py", cwd=p)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (p / "src" / "bad.py").write_text(BAD.replace("\n    ", "\n").lstrip())
    bad = mypy(p / "src" / "bad.py", cwd=p)
    assert bad.returncode != 0
    assert 'Unsupported operand types for + ("int" and "str")' in bad.stdout, bad.stdout
    assert '"Env" has no attribute "NOT_CONFIGURED"' in bad.stdout, bad.stdout


def test_types_for_an_environment_and_to_a_chosen_file(tmp_path):
    p = project(tmp_path / "p")
    out = tmp_path / "env_staging.pyi"
    r = run_thaw("types", p, "--env", "staging", "-o", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "STAGE_ONLY: list[Any]" in text and "GREETING: str  # var: hi" in text
    assert "LIMIT" not in text  # vars are not inherited by an environment
    assert "CACHE" not in text and "AUTH" not in text  # nor are bindings
    r = run_thaw("types", p, "--env", "nope")
    assert r.returncode != 0 and "no environment 'nope'" in r.stderr
    # -o -: the stub on standard output, no file named "-".
    r = run_thaw("types", p, "--env", "staging", "-o", "-", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == text, r.stderr
    assert not (tmp_path / "-").exists()


def test_types_stub_is_valid_utf8_and_skips_names_that_env_methods_shadow(tmp_path):
    # A var's text is cut for its comment: never inside a UTF-8 character (mypy refuses a
    # file it cannot decode). A var named like a method of Env (get, keys) is not reachable
    # as env.NAME at run time, and redefining it in the stub is an error for mypy.
    p = tmp_path / "p"
    write_project(p, "async def on_fetch(request):\n    pass\n", pyproject=False)
    (p / "wrangler.jsonc").write_text(json.dumps({
        "name": "typed", "main": "src/entry.py",
        "vars": {"MOTTO": "a" + "é" * 40, "get": 1, "keys": "k"},
    }))
    r = run_thaw("types", p)
    assert r.returncode == 0, r.stderr
    stub = p / "src" / "worker_env.pyi"
    text = stub.read_bytes().decode("utf-8")  # raises on a cut character
    assert "MOTTO: str  # var: a" + "é" * 29 + "..." in text, text
    assert "get: int" not in text and "keys: str" not in text, text
    assert "var 'get'" in r.stderr and "var 'keys'" in r.stderr
    checked = mypy(stub, cwd=p)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_types_imports_the_binding_classes_the_sdk_defines(tmp_path):
    # The SDK's workers._bindings defines KVNamespace: the stub imports it and types the
    # member with it, and mypy checks calls against it.
    sdk = REPO / "python"
    p = project(tmp_path / "p")
    r = subprocess.run([THAW_BIN, "types", str(p)], env=thaw_env({"THAW_SDK_DIR": str(sdk)}),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = (p / "src" / "worker_env.pyi").read_text()
    imported = next(line for line in text.splitlines()
                    if line.startswith("from workers._bindings import "))
    assert {"KVNamespace", "D1Database", "Fetcher"} <= set(imported.split("import ")[1]
                                                          .split(", ")), text
    assert "CACHE: KVNamespace  # KV namespace (id 0f2ac74b498b48028cb68387c421e279)" in text, text
    (p / "src" / "kv.py").write_text(
        "from worker_env import Env\n\n"
        "async def use(env: Env) -> None:\n"
        "    await env.CACHE.get(1)\n")
    checked = subprocess.run(
        ["/usr/bin/python3", "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
         "--no-error-summary", str(p / "src" / "kv.py")],
        cwd=p, env={"MYPYPATH": f"{p / 'src'}:{sdk}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300)
    assert checked.returncode != 0
    assert 'Argument 1 to "get" of "KVNamespace" has incompatible type "int"' in checked.stdout, \
        checked.stdout
