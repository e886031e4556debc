"""`thaw dev` of workers whose top level imports the packages that failed to snapshot before
(a shared mapping: lxml and what loads it; entropy: sympy's and aiohttp's module-level
generators): each builds its snapshot, restores, answers like a plain interpreter, and draws
differently in two restored instances.
"""

import pytest

from cases import CASES
from test_corpus import plain, restored, write_case  # noqa: F401 (plain is a fixture)
from thawtest import ThawDev, require_snapshots

NAMED = ["pandas", "lxml", "bs4", "regex", "sympy", "aiohttp"]


@pytest.mark.parametrize("name", NAMED)
def test_thaw_dev_builds_restores_and_answers(name, tmp_path, plain):  # noqa: F811
    require_snapshots()
    case = next(c for c in CASES if c.name == name)
    project = write_case(tmp_path, case)
    d = ThawDev(project, ["--system-site-packages", "--idle-timeout", "0"])
    try:
        d.wait_ready()
        d.wait_snapshot()
        for _ in range(2):
            assert restored(d.get("/check")) == plain[name]["answer"]
        if case.draws:
            assert restored(d.get("/draw")) != restored(d.get("/draw"))
    finally:
        d.stop()
