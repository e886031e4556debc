"""Popular packages survive a snapshot: each case of cases.py is its own worker on one
`thaw serve` host, deployed with `thaw deploy` (so its snapshot is built, validated by a restore
and stored), and then checked in freshly restored instances (`--idle-timeout 0`: every request
waits for a new instance restored from the snapshot; Server-Timing says so).

A case passes when its deploy goes live, `check()` in two restored instances gives the answer a
plain interpreter gives (plain.py), and, where it draws randomness, `draw()` differs between two
restored instances.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cases import CASES
from thawtest import ThawServe, require_snapshots, write_project

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
DEPLOYS_AT_ONCE = 3

ENTRY = """
import inspect

from workers import Response, WorkerEntrypoint

import case  # the package under test is imported here, at top level: it is in the snapshot


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        function = case.draw if request.url.endswith("/draw") else case.check
        value = function()
        if inspect.isawaitable(value):
            value = await value
        return Response(str(value))
"""


def worker_name(case):
    return "fid-" + case.name.replace("_", "-")


def write_case(root, case):
    """A project for ``case``: src/entry.py (ENTRY) and src/case.py (the case's source)."""
    return write_project(root / case.name, ENTRY, name=worker_name(case),
                         files={"src/case.py": case.source})


def restored(resp):
    assert resp.status == 200, f"{resp.status}: {resp.text}"
    assert resp.timing()[0] == "snapshot", f"not a restored instance: {resp!r}"
    return resp.text


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Every case's answer in a plain interpreter, by name."""
    out = tmp_path_factory.mktemp("plain") / "answers.json"
    subprocess.run([PYTHON, str(HERE / "plain.py"), str(out)], check=True, timeout=600,
                   cwd=out.parent)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """One host with every case deployed; yields (host, {name: deploy result})."""
    require_snapshots()
    root = tmp_path_factory.mktemp("fidelity")
    h = ThawServe(root / "host" / "data",
                  args=["--system-site-packages", "--server-timing", "--idle-timeout", "0",
                        "--max-instances", "2"])
    try:
        h.wait_ready()
        projects = {case.name: write_case(root / "projects", case) for case in CASES}

        def deploy(case):
            return case.name, h.client("deploy", projects[case.name], "--no-install",
                                       timeout=300)

        with ThreadPoolExecutor(DEPLOYS_AT_ONCE) as pool:
            deployed = dict(pool.map(deploy, CASES))
        yield h, deployed
    finally:
        if h.alive():
            h.stop()  # exit 0 asserted: no child left, no sanitizer report


def test_the_corpus_is_large_and_varied():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)
    assert len({case.debian for case in CASES}) >= 40
    assert {case.kind for case in CASES} >= {"web", "data", "parsing", "crypto", "clients",
                                               "templating"}
    assert sum(case.draws for case in CASES) >= 10
    # Each case's package is installed by the project's own script.
    script = (HERE.parent.parent / "scripts" / "install-deps.sh").read_text()
    missing = [case.debian for case in CASES if f" {case.debian}" not in script]
    assert not missing, f"scripts/install-deps.sh does not install {missing}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_restored_instances_work_like_a_fresh_interpreter(case, host, plain):
    h, deployed = host
    result = deployed[case.name]
    assert result.returncode == 0, f"deploy failed:\n{result.stdout}\n{result.stderr}"
    expected = plain[case.name]
    assert expected["ok"], f"the case fails in a plain interpreter:\n{expected['answer']}"
    name = worker_name(case)
    for _ in range(2):
        answer = restored(h.worker_get(name, "/check"))
        assert answer == expected["answer"]
    if case.draws:
        first = restored(h.worker_get(name, "/draw"))
        second = restored(h.worker_get(name, "/draw"))
        assert first != second, f"two restored instances drew the same value: {first}"
