"""`thaw install` puts a project's dependencies into python_modules/ (uv when it is on PATH, else
pip), pinned by uv.lock / pylock.toml, replacing python_modules/ only on success; `thaw dev` runs it
when python_modules/ is missing or stale, unless --no-install.

Fully offline: the wheels are built here by hand (a zip with pkg/__init__.py and a dist-info) into a
wheelhouse, and every install runs with --no-index --find-links WHEELHOUSE (or PIP_NO_INDEX /
PIP_FIND_LINKS for `thaw dev`)."""

import base64
import hashlib
import json
import os
import stat
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from thawtest import THAW_BIN, require_binary, thaw_env, write_project

PKG = "thawdemo"

ENTRY = """
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import thawdemo
        return Response("thawdemo " + thawdemo.VERSION)
"""


def build_wheel(wheelhouse, name, version, modules=None):
    """A pure-Python wheel NAME-VERSION-py3-none-any.whl whose NAME.VERSION is VERSION (or
    holding ``modules``, {path: text}, instead)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        **(modules or {f"{name}/__init__.py": f'VERSION = "{version}"\n'}),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: thaw-tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    path = wheelhouse / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


@pytest.fixture
def wheelhouse(tmp_path):
    wh = tmp_path / "wheelhouse"
    build_wheel(wh, PKG, "1.0")
    build_wheel(wh, PKG, "2.0")
    return wh


def path_without_uv():
    """PATH minus the directories that hold a `uv`, so the pip path is the one tested."""
    dirs = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
            if d and not os.access(os.path.join(d, "uv"), os.X_OK)]
    return ":".join(dirs)


def install_env(extra=None):
    """thaw's environment without pip/uv index settings of this machine, and without uv."""
    env = {k: v for k, v in thaw_env().items()
           if not k.startswith(("PIP_FIND_LINKS", "PIP_INDEX", "PIP_EXTRA_INDEX", "PIP_NO_INDEX",
                                "UV_"))}
    env["PATH"] = path_without_uv()
    env.update(extra or {})
    return env


def thaw_install(project, *args, env=None, timeout=120):
    require_binary()
    return subprocess.run([THAW_BIN, "install", str(project), *map(str, args)],
                          env=env or install_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def make_project(root, deps, entry=ENTRY, name="e2e-worker"):
    p = write_project(root, entry, name=name)
    text = (p / "pyproject.toml").read_text()
    text = text.replace("dependencies = []", "dependencies = " + json.dumps(deps))
    (p / "pyproject.toml").write_text(text)
    return p


def installed_version(project):
    dist = sorted(d.name for d in (project / "python_modules").glob(f"{PKG}-*.dist-info"))
    assert len(dist) == 1, f"expected one {PKG} dist-info in python_modules: {dist}"
    return dist[0][len(PKG) + 1:-len(".dist-info")]


def test_help_mentions_install_and_its_options():
    require_binary()
    r = subprocess.run([THAW_BIN, "--help"], capture_output=True, text=True, env=thaw_env())
    assert "install" in r.stdout + r.stderr
    r = subprocess.run([THAW_BIN, "install", "--help"], capture_output=True, text=True,
                       env=thaw_env())
    assert r.returncode == 0
    for flag in ("--index-url", "--extra-index-url", "--find-links", "--no-index", "-q"):
        assert flag in r.stdout, f"`thaw install --help` does not mention {flag}:\n{r.stdout}"
    r = subprocess.run([THAW_BIN, "dev", "--help"], capture_output=True, text=True,
                       env=thaw_env())
    assert "--no-install" in r.stdout


def test_install_from_wheelhouse_then_dev_serves_the_package(tmp_path, wheelhouse, dev):
    p = make_project(tmp_path / "p", [PKG])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert (p / "python_modules" / PKG / "__init__.py").is_file(), out
    assert installed_version(p) == "2.0"
    # Progress: what runs, and the installer's own output.
    assert "pip install --target" in out, out
    assert "Successfully installed" in out, out
    assert not (p / ".python_modules.tmp").exists()

    d = dev(p, env={"PATH": path_without_uv()})
    resp = d.get("/")
    assert resp.status == 200, f"{resp}\n{d.output()}"
    assert resp.text == "thawdemo 2.0"
    # python_modules/ is newer than pyproject.toml: dev did not install again. (Stopped first,
    # so that all its output is in: the check cannot run before the line would arrive.)
    d.stop()
    assert "running thaw install" not in d.output(), d.output()


def test_missing_dependency_fails_and_keeps_old_python_modules(tmp_path, wheelhouse):
    p = make_project(tmp_path / "p", [PKG])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    assert r.returncode == 0, r.stdout + r.stderr

    make_project(p, [PKG, "thaw-no-such-package"])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "No matching distribution" in out, out
    assert "thaw-no-such-package" in out, out
    assert (p / "python_modules" / PKG / "__init__.py").is_file(), "the old install was lost"
    assert installed_version(p) == "2.0"
    assert not (p / ".python_modules.tmp").exists(), "the failed attempt was left behind"


def test_no_dependencies_creates_empty_python_modules(tmp_path):
    p = make_project(tmp_path / "p", [])
    (p / "python_modules").mkdir()
    (p / "python_modules" / "stale.py").write_text("")
    r = thaw_install(p)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "no dependencies" in out, out
    assert (p / "python_modules").is_dir()
    assert list((p / "python_modules").iterdir()) == []


@pytest.mark.parametrize("dep", ["-e .", "--index-url=http://127.0.0.1:9/simple", "--target=/tmp"])
def test_dependency_that_looks_like_an_option_is_refused(tmp_path, dep):
    p = make_project(tmp_path / "p", [dep])
    r = thaw_install(p, "--no-index")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "'-'" in out, out
    assert "pip install" not in out, "the installer ran"
    assert not (p / "python_modules").exists()


def test_option_value_that_looks_like_an_option_is_refused(tmp_path):
    p = make_project(tmp_path / "p", [PKG])
    r = thaw_install(p, "--find-links=--target=/tmp/x")
    assert r.returncode == 2, r.stdout + r.stderr
    assert not (p / "python_modules").exists()


UV_LOCK = """
version = 1
requires-python = ">=3.11"

[[package]]
name = "e2e-worker"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "thawdemo" },
    { name = "thaw-windows-only", marker = "sys_platform == 'win32'" },
]

[package.dev-dependencies]
dev = [{ name = "thaw-dev-tool" }]

[[package]]
name = "thaw-dev-tool"
version = "9.9"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "thaw-windows-only"
version = "1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "thawdemo"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
"""


def test_uv_lock_pins_the_locked_version(tmp_path, wheelhouse):
    p = make_project(tmp_path / "p", [PKG])
    (p / "uv.lock").write_text(UV_LOCK)
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # The lock pins 1.0 although 2.0 is in the wheelhouse; the Windows-only package (marker) and
    # the dev group (not in the wheelhouse either) are not installed; nor is the project itself.
    assert installed_version(p) == "1.0", out
    assert "thawdemo==1.0" in out, out
    assert "thaw-dev-tool" not in out, out
    assert "e2e-worker" not in out.split("$", 1)[1], out


def test_uv_lock_with_a_hostile_entry_is_refused(tmp_path, wheelhouse):
    p = make_project(tmp_path / "p", [PKG])
    (p / "uv.lock").write_text(UV_LOCK.replace('version = "1.0"\nsource = { registry',
                                               'version = "1.0 --target=/tmp"\nsource = { registry'))
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "uv.lock" in out and "version" in out, out
    assert not (p / "python_modules").exists()


def test_pylock_pins_the_locked_version(tmp_path, wheelhouse):
    p = make_project(tmp_path / "p", [PKG])
    (p / "pylock.toml").write_text(textwrap.dedent("""
        lock-version = "1.0"
        created-by = "thaw-tests"

        [[packages]]
        name = "thawdemo"
        version = "1.0"

        [[packages]]
        name = "thaw-windows-only"
        version = "1.0"
        marker = "sys_platform == 'win32'"
        """))
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert installed_version(p) == "1.0", out


def test_dev_installs_when_python_modules_is_missing(tmp_path, wheelhouse, dev):
    p = make_project(tmp_path / "p", [PKG])
    env = {"PATH": path_without_uv(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    d = dev(p, env=env)
    assert "running thaw install" in d.output(), d.output()
    assert (p / "python_modules" / PKG / "__init__.py").is_file(), d.output()
    resp = d.get("/")
    assert resp.status == 200, f"{resp}\n{d.output()}"
    assert resp.text == "thawdemo 2.0"
    # "Ready" on stdout stays the first thing there: the installer's output went to stderr.
    d.stop()  # all of both streams is in
    assert "Successfully installed" in d.output("stderr")
    assert "Successfully installed" not in d.output("stdout")


def test_dev_installs_again_when_pyproject_is_newer(tmp_path, wheelhouse, dev):
    p = make_project(tmp_path / "p", [PKG])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    assert r.returncode == 0, r.stdout + r.stderr
    old = (p / "python_modules").stat().st_mtime
    os.utime(p / "pyproject.toml", (old + 10, old + 10))
    env = {"PATH": path_without_uv(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    d = dev(p, env=env)
    assert "running thaw install" in d.output(), d.output()


def test_dev_no_install_skips_it(tmp_path, wheelhouse, dev):
    p = make_project(tmp_path / "p", [PKG])
    env = {"PATH": path_without_uv(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    d = dev(p, "--no-install", env=env)
    d.stop()  # all its output is in
    assert "running thaw install" not in d.output(), d.output()
    assert not (p / "python_modules").exists()


def test_dev_serves_on_when_the_install_fails(tmp_path, wheelhouse, dev):
    """Offline with a stale python_modules/: the resolver's message is shown, python_modules/ is
    kept, and dev serves what it has."""
    p = make_project(tmp_path / "p", [PKG])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    assert r.returncode == 0, r.stdout + r.stderr
    make_project(p, [PKG, "thaw-no-such-package"])
    old = (p / "python_modules").stat().st_mtime
    os.utime(p / "pyproject.toml", (old + 10, old + 10))
    env = {"PATH": path_without_uv(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    d = dev(p, env=env)
    out = d.output("stderr")
    assert "No matching distribution" in out, out
    assert "the install failed" in out and "--no-install" in out, out
    resp = d.get("/")
    assert resp.status == 200, f"{resp}\n{d.output()}"
    assert resp.text == "thawdemo 2.0"


FAKE_UV = """#!/usr/bin/python3
# Records its argv, then does what `uv pip install --python PY ...` asks with PY's pip.
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "w") as f:
    json.dump(args, f)
assert args[:2] == ["pip", "install"], args
rest = args[2:]
i = rest.index("--python")
python = rest[i + 1]
del rest[i:i + 2]
os.execv(python, [python, "-m", "pip", "install", *rest])
"""


def test_uv_on_path_is_used(tmp_path, wheelhouse):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "uv-argv.json"
    uv = bindir / "uv"
    uv.write_text(FAKE_UV.format(log=str(log)))
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    p = make_project(tmp_path / "p", [PKG])
    env = install_env({"PATH": f"{bindir}:{path_without_uv()}"})
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    argv = json.loads(log.read_text())
    assert argv[:3] == ["pip", "install", "--target"], argv
    target = Path(argv[3])
    assert target.parent == p.resolve(), argv  # a sibling of python_modules, swapped in after
    assert argv[argv.index("--python") + 1] == "/usr/bin/python3", argv
    assert "--no-index" in argv and str(wheelhouse) in argv and PKG in argv, argv
    assert installed_version(p) == "2.0"


# Cloudflare's own SDK package, as a project that follows Cloudflare's docs lists it: its
# `workers` needs Cloudflare's runtime.
SHADOW = 'raise ImportError("No module named \'js\' (Cloudflare\'s workers package)")\n'


def test_cloudflares_sdk_packages_are_skipped_at_install(tmp_path, wheelhouse, dev):
    build_wheel(wheelhouse, "workers_runtime_sdk", "1.0",
                modules={"workers/__init__.py": SHADOW})
    p = make_project(tmp_path / "p", ["workers-runtime-sdk>=0.1", PKG])
    r = thaw_install(p, "--no-index", "--find-links", wheelhouse)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "skipping workers-runtime-sdk: thaw provides the workers SDK itself" in out, out
    assert not (p / "python_modules" / "workers").exists(), out
    assert installed_version(p) == "2.0"
    resp = dev(p, "--no-install").get("/")
    assert resp.status == 200 and resp.text == "thawdemo 2.0", resp


def test_a_workers_package_in_python_modules_does_not_replace_thaws(tmp_path, dev):
    # As when Cloudflare's SDK arrives as another package's dependency.
    p = write_project(tmp_path / "p", """
        from workers import Response

        async def on_fetch(request, env):
            return Response("thaw's workers")
        """)
    (p / "python_modules" / "workers").mkdir(parents=True)
    (p / "python_modules" / "workers" / "__init__.py").write_text(SHADOW)
    resp = dev(p, "--no-install").get("/")
    assert resp.status == 200 and resp.text == "thaw's workers", resp
