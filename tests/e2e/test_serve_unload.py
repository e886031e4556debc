"""`thaw serve` frees a version once it has left the deployment and its last instance is gone, so
a host that lives through many deploys does not grow with each; the version still loads again
from the store when a rollback brings it back."""

from __future__ import annotations

import re

from thawtest import ThawServe, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("{text}")
"""


def deploy(host, project):
    r = host.client("deploy", project)
    assert r.returncode == 0, r.stdout + r.stderr
    return re.search(r"^version: (\S+)$", r.stdout, re.M)[1]


def test_a_version_that_left_the_deployment_is_unloaded(tmp_path):
    # --idle-timeout 0: an instance closes as soon as it has nothing to do.
    host = ThawServe(tmp_path / "data", ("--idle-timeout", "0"))
    host.wait_ready()
    try:
        one = deploy(host, write_project(tmp_path / "one", ENTRY.format(text="one"), name="shop"))
        assert host.worker_get("shop").text == "one"
        mark = host.mark()
        two = deploy(host, write_project(tmp_path / "two", ENTRY.format(text="two"), name="shop"))
        assert one != two
        host.wait_for(rf"shop@{one[:8]}: unloaded \(not deployed, no instance left\)",
                      timeout=30, start=mark)
        assert host.worker_get("shop").text == "two"
        # The deployed version is never unloaded.
        assert f"shop@{two[:8]}: unloaded" not in host.output_since(mark)
        # Gone from memory, not from the store: a rollback loads it again.
        r = host.client("rollback", one, "--name", "shop")
        assert r.returncode == 0, r.stdout + r.stderr
        r = host.worker_get("shop")
        assert r.status == 200 and r.text == "one", r
    finally:
        host.stop()
