"""`thaw serve` frees a version once it has left the deployment and its last instance is gone, so
a host that lives through many deploys does not grow with each; the version still loads again
from the store when a rollback brings it back. Many deploys in a row leave the host's
descriptors, children and data directory bounded."""

from __future__ import annotations

import os
import re

from thawtest import ThawServe, base_blobs, proc_descendants, wait_until, write_project

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


def test_many_deploys_in_a_row_leave_the_host_bounded(tmp_path):
    """Each deploy replaces the last: the versions that leave are unloaded (their pools,
    instances and images let go) and, past --keep-versions, deleted with their files. After 25
    deploys the host holds as many descriptors and child processes as after the first, and
    the data directory holds only the kept versions."""
    keep = 3
    host = ThawServe(tmp_path / "data", ("--keep-versions", keep))
    host.wait_ready()
    try:
        def fds():
            return len(os.listdir(f"/proc/{host.pid}/fd"))

        def kids():
            return len(proc_descendants(host.pid))

        project = tmp_path / "p"
        first = deploy(host, write_project(project, ENTRY.format(text="v1"), name="shop"))
        assert host.worker_get("shop").text == "v1"
        # Settled: the spares topped up, the deploy's children gone.
        wait_until(lambda: kids() == 3, what="two spares and one instance")
        base_fds = fds()
        mark = host.mark()
        n = 25
        for i in range(2, n + 1):
            deploy(host, write_project(project, ENTRY.format(text=f"v{i}"), name="shop"))
            assert host.worker_get("shop").text == f"v{i}"
        # Every version but the last is unloaded once its instance is gone.
        wait_until(lambda: len(re.findall(r"shop@\S+: unloaded", host.output_since(mark)))
                   >= n - 1, what=f"{n - 1} versions unloaded")
        assert f"shop@{first[:8]}: unloaded" in host.output_since(mark)
        wait_until(lambda: kids() == 3, what="two spares and one instance again")
        wait_until(lambda: fds() <= base_fds + 2, what=f"descriptors back near {base_fds}")
        # On disk: the newest `keep` versions plus the previous deployment's (within them).
        listed = host.api("GET", "/v1/workers/shop/versions").json()["versions"]
        assert [v["number"] for v in listed] == list(range(n, n - keep, -1))
        wait_until(lambda: len(os.listdir(host.data / "versions")) == keep,
                   what="old version directories removed")
        named = {h for v in listed for h in (v["bundle"], v["snapshot"]) if h}
        named |= base_blobs(host)  # the host's base image stays
        # An image's working set (HEX.ws, HEX.ws.tmp) belongs to it.
        wait_until(lambda: {b[:64] for b in os.listdir(host.data / "blobs")} == named,
                   what="old blobs removed")
    finally:
        host.stop()
