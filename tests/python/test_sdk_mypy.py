"""The SDK (workers, js, pyodide, asgi, wsgi) type-checks cleanly with Debian's mypy: users who
run mypy on their worker (with `thaw types`' stub) follow its imports into the SDK, so an error
of ours would be theirs."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_workers_package_has_no_mypy_errors():
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is missing: scripts/install-deps.sh installs python3-mypy")
    r = subprocess.run(["/usr/bin/python3", "-m", "mypy", "--no-incremental",
                        "--ignore-missing-imports", "--check-untyped-defs", "workers", "js.py",
                        "pyodide", "asgi.py", "wsgi.py"],
                       cwd=ROOT / "python", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
