"""`thaw-version-override` reaches only the versions of the worker's current deployment, as
Cloudflare's version overrides do: an override naming any other version (an older one, a failed
one, garbage) is not applied, and the request is split as if it carried none. The deploy check
reaches a version before it is deployed by its own path, a per-host secret a client cannot
forge."""

from __future__ import annotations

import re

import pytest

from thawtest import ThawServe, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(self.env.VERSION)
"""


def deploy(host, root, version, *args):
    project = write_project(root, ENTRY, vars={"VERSION": version}, name="shop")
    r = host.client("deploy", project, "--no-install", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return re.search(r"^version: (\S+)$", r.stdout, re.M)[1]


def answers(host, n, headers):
    seen = {}
    for _ in range(n):
        r = host.worker_get("shop", headers=headers)
        assert r.status == 200, r
        seen[r.text] = seen.get(r.text, 0) + 1
    return seen


@pytest.fixture
def host(tmp_path):
    h = ThawServe(tmp_path / "data").wait_ready()
    yield h
    if h.alive():
        h.stop()


def test_an_override_reaches_only_the_current_deployment(tmp_path, host):
    v1 = deploy(host, tmp_path / "p", "one")
    v2 = deploy(host, tmp_path / "p", "two")
    # v1 left the deployment: by id, prefix or number, the override is not applied.
    for ref in (v1, v1[:8], "1", "#1"):
        assert answers(host, 5, {"thaw-version-override": ref}) == {"two": 5}, ref
    # Garbage is not an error either: the request is served as if it had no override.
    for ref in ("ffffffff", "#", "-1", "x" * 300, "#99999999999999999999"):
        assert answers(host, 2, {"thaw-version-override": ref}) == {"two": 2}, ref

    # v3 at 50 % beside v2: both are in the deployment, each reachable by override.
    v3 = deploy(host, tmp_path / "p", "three", "--percentage", "50")
    for ref, want in ((v2, "two"), (v2[:6], "two"), ("#2", "two"), (v3, "three"), ("3", "three")):
        assert answers(host, 8, {"thaw-version-override": ref}) == {want: 8}, ref
    # v1 is not: requests naming it are split between v2 and v3, and never reach v1.
    seen = answers(host, 40, {"thaw-version-override": v1})
    assert set(seen) <= {"two", "three"} and "one" not in seen, seen
    assert len(seen) == 2, seen  # 40 requests at 50/50 land on one side once in 5e11

    # A rollback brings v1 back into the deployment: then the override reaches it.
    r = host.client("rollback", v1, "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert answers(host, 3, {}) == {"one": 3}
    r = host.client("rollout", v3, "--percentage", "100", "--name", "shop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert answers(host, 3, {"thaw-version-override": v1}) == {"three": 3}
    assert answers(host, 3, {"thaw-version-override": v3}) == {"three": 3}


def test_a_forged_probe_header_reaches_no_other_version(tmp_path, host):
    v1 = deploy(host, tmp_path / "p", "one")
    deploy(host, tmp_path / "p", "two")
    # The deploy check's header with a secret of the right shape but not the host's: the
    # request is an ordinary one, so it cannot reach v1, which left the deployment.
    for secret in ("0" * 32, "f" * 32, "", "0" * 31, "0" * 33):
        headers = {"thaw-probe": secret, "thaw-version-override": v1}
        assert answers(host, 2, headers) == {"two": 2}, secret
    # The deploy check itself still reaches a version before it is in any deployment: a
    # deploy validates (deploy() asserts it went live).
    deploy(host, tmp_path / "p", "four")
    assert answers(host, 2, {}) == {"four": 2}
