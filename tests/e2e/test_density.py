"""Density guard rails (issue 13; docs/control-api.md "Density", docs/snapshots.md "Density"):
a `thaw serve` host reports what each version holds on disk (own: its image file, working set,
bundle and unpacked files; shared: the pages its image maps from the base image, stored once)
and what each worker's instances hold in memory (PSS, own: anonymous; shared: file pages), per
version, per worker and in total, through GET /v1/density, `thaw versions list` and /metrics;
`thaw snapshot inspect` shows an image's working set and its base."""

from __future__ import annotations

import re
import sqlite3
import subprocess

from thawtest import ThawServe, require_snapshots, run_thaw, wait_until, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("{text}")
"""

SAMPLE = ["--memory-sample-seconds", "1"]


def deploy(host, root, name):
    project = write_project(root / name, ENTRY.format(text=name), name=name)
    r = host.client("deploy", project, "--no-install")
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.worker_get(name).text == name


def density(host):
    r = host.api("GET", "/v1/density")
    assert r.status == 200, r
    return r.json()


def sampled_after(host, swept):
    """The density answer once a memory sweep has ended after `swept` (unix ms) and every
    serving instance was read in it."""
    out = {}

    def done():
        d = density(host)
        out["d"] = d
        m = d["total"]["memory"]
        return (d["memory_sampling"]["sampled"] or 0) > swept and m["sampled"] == m["instances"]

    wait_until(done, timeout=15, what="a memory sample after the requests")
    return out["d"]


def metrics(host):
    r = host.api("GET", "/metrics")
    assert r.status == 200
    text = r.body.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return text, out


def test_disk_and_memory_per_version_worker_and_host(tmp_path):
    require_snapshots()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        for name in ("alpha", "beta"):
            deploy(host, tmp_path, name)
        # The first request of each recorded its image's working set.
        wait_until(lambda: all(v["disk"]["working_set"]
                               for w in density(host)["workers"] for v in w["versions"]),
                   timeout=10, what="both working sets recorded")
        before = density(host)["memory_sampling"]["sampled"] or 0
        for name in ("alpha", "beta"):
            assert host.worker_get(name).text == name
        d = sampled_after(host, before)

        # The base: listed once, the current one, under both images.
        [base] = d["bases"]
        assert base["current"] and base["versions"] == 2, base
        assert base["bytes"] > 8_000_000, base

        workers = {w["name"]: w for w in d["workers"]}
        assert sorted(workers) == ["alpha", "beta"]
        own_sum = shared_refs = 0
        for name, w in workers.items():
            [v] = w["versions"]
            disk = v["disk"]
            # A hello image owns far less than it maps from the base.
            assert 0 < disk["own"] < disk["shared"], disk
            assert disk["base"] == base["blob"], disk
            assert disk["shared"] == disk["image_base_pages"] * 4096
            assert disk["image_own_pages"] > 0 and disk["image"] >= disk["image_own_pages"] * 4096
            assert disk["working_set"] > 0 and disk["bundle"] > 0 and disk["files"] > 0, disk
            assert disk["own"] == (disk["image"] + disk["working_set"] + disk["bundle"]
                                   + disk["files"]), disk
            assert w["disk"] == {"own": disk["own"], "shared": disk["shared"]}
            own_sum += disk["own"]
            shared_refs += disk["shared"]
            # Its live instance, sampled: PSS > 0, own + shared = PSS within rounding.
            m = w["memory"]
            assert m["instances"] == 1 and m["sampled"] == 1, m
            assert m["pss"] > 1_000_000 and m["own"] > 0 and m["shared"] > 0, m
            assert abs(m["own"] + m["shared"] - m["pss"]) <= 16 * 1024, m
            assert v["memory"] == m
        total = d["total"]
        assert total["disk"]["own"] == own_sum
        assert total["disk"]["shared"] == base["bytes"]  # the base once, not per version
        assert total["disk"]["referenced"] == shared_refs
        for k in ("own", "shared", "pss", "instances", "sampled"):
            assert total["memory"][k] == sum(w["memory"][k] for w in workers.values()), k

        # The same figures in the versions list...
        api = host.api("GET", "/v1/workers/alpha/versions").json()
        [v] = api["versions"]
        assert v["disk"] == workers["alpha"]["versions"][0]["disk"]
        assert api["bases"] == d["bases"]
        r = host.client("versions", "list", "alpha")
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split()[5:8] == ["IMAGE", "BASE", "WS"], r.stdout
        row = lines[1].split()
        mb = lambda n: f"{n / 1e6:.1f}"  # noqa: E731
        assert row[6:8] == [mb(v["disk"]["image"]), "MB"], r.stdout
        assert row[8:10] == [mb(v["disk"]["shared"]), "MB"], r.stdout
        assert row[10:12] == [f"{v['disk']['working_set'] / 1e3:.1f}", "KB"], r.stdout
        assert re.search(rf"^base image {base['blob'][:8]} \(current\): {mb(base['bytes'])} MB "
                         r"on disk, shared by 2 versions", r.stdout, re.M), r.stdout

        # ... and on /metrics, which promtool accepts.
        text, m = metrics(host)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr + text
        for name, w in workers.items():
            disk = w["versions"][0]["disk"]
            lab = f'worker="{name}",version="1"'
            assert m[f'thaw_version_disk_bytes{{{lab},kind="own"}}'] == disk["own"]
            assert m[f'thaw_version_disk_bytes{{{lab},kind="shared"}}'] == disk["shared"]
            assert m[f'thaw_worker_pss_bytes{{worker="{name}",kind="own"}}'] > 0
            assert m[f'thaw_worker_pss_bytes{{worker="{name}",kind="shared"}}'] > 0
            assert m[f'thaw_worker_instances{{worker="{name}"}}'] == 1
            assert m[f'thaw_worker_instances_sampled{{worker="{name}"}}'] == 1
        assert m['thaw_disk_bytes{kind="own"}'] == own_sum
        assert m['thaw_disk_bytes{kind="shared"}'] == base["bytes"]
        assert m["thaw_base_image_bytes"] == base["bytes"]
        assert m["thaw_base_image_versions"] == 2
        assert m['thaw_pss_bytes{kind="own"}'] >= total["memory"]["own"] * 0.5
        assert m["thaw_memory_sampled_timestamp_seconds"] * 1000 >= before

        # `thaw snapshot inspect` on the stored image: its working set and its base.
        image = tmp_path / "data" / "blobs" / v["snapshot"]
        r = run_thaw("snapshot", "inspect", image)
        assert r.returncode == 0, r.stdout + r.stderr
        ws = re.search(r"^\s+working set \S+\.ws: (\d+) bytes; (\d+) pages written", r.stdout,
                       re.M)
        assert ws and int(ws[1]) == v["disk"]["working_set"] and int(ws[2]) > 0, r.stdout
        assert re.search(rf"^\s+base\s+\S+/blobs/{base['blob']} \(header hash [0-9a-f]{{16}}, "
                         rf"{base['bytes']} bytes\)", r.stdout, re.M), r.stdout
    finally:
        host.stop()


def test_figures_survive_a_restart_and_are_taken_for_images_stored_without_them(tmp_path):
    """An image stored before the figures were kept (its columns NULL) gets them when its
    version is loaded, and so does its bundle (a stat of the blob); the others come back from
    the store as they were."""
    require_snapshots()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        deploy(host, tmp_path, "alpha")
        deploy(host, tmp_path, "beta")
        wait_until(lambda: all(v["disk"]["working_set"]
                               for w in density(host)["workers"] for v in w["versions"]),
                   timeout=10, what="both working sets recorded")
        first = {w["name"]: w["versions"][0]["disk"] for w in density(host)["workers"]}
    finally:
        host.stop()
    db = sqlite3.connect(tmp_path / "data" / "thaw.db")
    db.execute("UPDATE versions SET image_own_pages = NULL, image_base_pages = NULL, "
               "image_base = NULL, ws_bytes = NULL, bundle_bytes = NULL WHERE worker = 'alpha'")
    db.commit()
    db.close()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        again = {w["name"]: w["versions"][0]["disk"] for w in density(host)["workers"]}
        assert again == first
        assert host.worker_get("alpha").text == "alpha"
    finally:
        host.stop()


def test_density_needs_the_token_and_get(tmp_path):
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        assert host.api("GET", "/v1/density", token="").status == 401
        assert host.api("POST", "/v1/density", body=b"").status == 405
        d = density(host)
        assert d["workers"] == [] and d["total"]["disk"]["own"] == 0, d
        assert d["total"]["memory"]["instances"] == 0
        r = subprocess.run([str(host.args[0]), "serve", "--memory-sample-seconds", "x"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "--memory-sample-seconds" in r.stderr, r.stderr
    finally:
        host.stop()


BIG = """
    from workers import WorkerEntrypoint, Response

    held = []

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if not held:
                b = bytearray({mib} << 20)
                for i in range(0, len(b), 4096):
                    b[i] = 1
                held.append(b)
            return Response("{text}")
"""


def sweeps(host):
    return density(host)["memory_sampling"]["sweeps"]


def wait_sweeps(host, n, what):
    """The density answer once n more sweeps have ended (the first of them may have begun
    before the call: the second began after it)."""
    start = sweeps(host)
    wait_until(lambda: sweeps(host) >= start + n, timeout=30, what=what)
    return density(host)


def test_the_loop_is_not_blocked_while_instances_holding_much_memory_are_sampled(tmp_path):
    """The kernel's cost of reading smaps_rollup grows with the process's resident memory
    (~12 ms at 512 MiB, ~40 ms at 1-2 GiB): three instances holding 1 GiB each cost it
    ~60 ms per batch (measured), which the loop spent itself before the reads went to the sampler's
    thread (107-195 ms per sweep with four instances of 2 GiB). The loop's longest iteration
    stays well under that, with a sweep every second; without sampling it is ~7 ms here."""
    require_snapshots()
    mib = 1024
    host = ThawServe(tmp_path / "data",
                     args=SAMPLE + ["--max-limit", "memory_mb=4096", "--max-memory", "8000"]
                     ).wait_ready()
    try:
        names = [f"big{k}" for k in range(3)]
        for name in names:
            project = write_project(tmp_path / name, BIG.format(mib=mib, text=name), name=name)
            with open(project / "pyproject.toml", "a") as f:
                f.write(f"\n[tool.thaw.limits]\nmemory_mb = {mib + 300}\n")
            r = host.client("deploy", project, "--no-install")
            assert r.returncode == 0, r.stdout + r.stderr
            assert host.worker_get(name).text == name
        d = wait_sweeps(host, 3, "three sweeps over the big instances")
        for w in d["workers"]:
            m = w["memory"]
            assert m["instances"] == 1 and m["sampled"] == 1, w
            assert m["pss"] > mib << 20, w  # each read while it held its memory
        _, metrics_now = metrics(host)
        longest = metrics_now["thaw_loop_iteration_max_seconds"]
        print(f"the loop's longest iteration: {longest * 1000:.1f} ms")
        assert longest < 0.03, f"the loop was busy {longest * 1000:.1f} ms in one iteration"
        assert "the host's loop was busy" not in host.output()
    finally:
        host.stop()


def test_a_sweep_reads_every_instance_in_batches_of_eight(tmp_path):
    """Nine serving instances: a sweep hands the sampler eight, then the one left; a sweep
    ends only when each has been read."""
    require_snapshots()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        names = [f"w{k}" for k in range(9)]
        for name in names:
            deploy(host, tmp_path, name)
        d = wait_sweeps(host, 2, "a sweep over the nine instances")
        total = d["total"]["memory"]
        assert total["instances"] == 9 and total["sampled"] == 9, total
        for w in d["workers"]:
            m = w["memory"]
            assert m["sampled"] == 1 and m["pss"] > 1_000_000 and m["own"] > 0, w
        _, m = metrics(host)
        assert sum(m[f'thaw_worker_instances{{worker="{n}"}}'] for n in names) == 9
        assert sum(m[f'thaw_worker_instances_sampled{{worker="{n}"}}'] for n in names) == 9
    finally:
        host.stop()


def test_version_disk_series_are_only_for_versions_served_or_deployed(tmp_path):
    """/metrics has a disk series for a version that is loaded or in its worker's current or
    previous deployment, not for every version kept (`--keep-versions all` keeps them all);
    /v1/density lists them all, and the host's total counts them all."""
    require_snapshots()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        for _ in range(3):
            deploy(host, tmp_path, "alpha")
    finally:
        host.stop()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        assert host.worker_get("alpha").text == "alpha"
        d = density(host)
        [w] = d["workers"]
        assert [v["number"] for v in w["versions"]] == [1, 2, 3]
        _, m = metrics(host)
        series = {k for k in m if k.startswith("thaw_version_disk_bytes{")}
        assert series == {f'thaw_version_disk_bytes{{worker="alpha",version="{n}",kind="{k}"}}'
                          for n in (2, 3) for k in ("own", "shared")}, series
        assert m['thaw_disk_bytes{kind="own"}'] == d["total"]["disk"]["own"] == \
            sum(v["disk"]["own"] for v in w["versions"])
    finally:
        host.stop()


def test_the_current_base_is_listed_first_and_counts_on_disk_only_once_a_version_uses_it(
        tmp_path):
    """Versions built on another base than the current one (here, the store says so): the
    current base is listed first, with no versions, and is not in the host's shared disk, which
    counts the bases versions are built on."""
    require_snapshots()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        deploy(host, tmp_path, "alpha")
        [current] = density(host)["bases"]
        assert current["current"] and current["versions"] == 1, current
    finally:
        host.stop()
    other = "ab" * 32  # no such blob
    db = sqlite3.connect(tmp_path / "data" / "thaw.db")
    db.execute("UPDATE versions SET image_base = ? WHERE worker = 'alpha'", (other,))
    db.commit()
    db.close()
    host = ThawServe(tmp_path / "data", args=SAMPLE).wait_ready()
    try:
        assert host.worker_get("alpha").text == "alpha"
        d = density(host)
        assert d["bases"] == [
            {"blob": current["blob"], "bytes": current["bytes"], "versions": 0, "current": True},
            {"blob": other, "bytes": None, "versions": 1, "current": False},
        ], d["bases"]
        assert d["total"]["disk"]["shared"] == 0, d["total"]
        assert host.api("GET", "/v1/workers/alpha/versions").json()["bases"] == d["bases"]
        _, m = metrics(host)
        assert m['thaw_disk_bytes{kind="shared"}'] == 0
        assert m["thaw_base_image_bytes"] == current["bytes"]
        assert m["thaw_base_image_versions"] == 0
    finally:
        host.stop()
