"""`GET /metrics` on the control address: the Prometheus text format, behind the control token,
with the host's loop iteration histogram (docs/control-api.md "Metrics")."""

from __future__ import annotations

import math

from thawtest import ThawServe, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("hi")
"""


def samples(text):
    """{(name, labels): value} from the text format; every line a comment or a sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")) or not line, line
            continue
        key, value = line.rsplit(" ", 1)
        name, _, labels = key.partition("{")
        out[(name, labels.rstrip("}"))] = float(value)
    return out


def loop_buckets(s):
    b = [(float(lab.split('"')[1]), v) for (name, lab), v in s.items()
         if name == "thaw_loop_iteration_seconds_bucket"]
    return sorted(b)


def test_metrics_need_the_token_and_count_the_loops_iterations(tmp_path):
    host = ThawServe(tmp_path / "data").wait_ready()
    try:
        assert host.api("GET", "/metrics", token="").status == 401
        assert host.api("GET", "/metrics", token="wrong").status == 401
        assert host.api("POST", "/metrics", body=b"").status == 405

        r = host.api("GET", "/metrics")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        first = samples(r.body.decode())
        assert first[("thaw_build_info", 'version="0.1.0"')] == 1
        buckets = loop_buckets(first)
        assert buckets[-1][0] == math.inf and len(buckets) == 15
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets  # cumulative
        assert counts[-1] == first[("thaw_loop_iteration_seconds_count", "")] > 0
        assert first[("thaw_loop_iteration_seconds_sum", "")] > 0
        assert 0 < first[("thaw_loop_iteration_max_seconds", "")] <= \
            first[("thaw_loop_iteration_seconds_sum", "")]

        # Work on the loop shows: a deploy and requests are many more iterations.
        project = write_project(tmp_path / "p", ENTRY, name="tally")
        d = host.client("deploy", project, "--no-install")
        assert d.returncode == 0, d.stdout + d.stderr
        for _ in range(20):
            assert host.worker_get("tally").text == "hi"
        later = samples(host.api("GET", "/metrics").body.decode())
        grown = later[("thaw_loop_iteration_seconds_count", "")] - counts[-1]
        assert grown >= 40, grown  # each request is at least its read and its answer
        assert later[("thaw_loop_iteration_seconds_sum", "")] > \
            first[("thaw_loop_iteration_seconds_sum", "")]
    finally:
        host.stop()
