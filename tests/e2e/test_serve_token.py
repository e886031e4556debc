"""The control token given to `thaw serve` in $THAW_TOKEN is not readable from
/proc/PID/environ once the host has read it (unsetenv alone would leave its bytes there, in the
block the kernel shows), nor from its instances' environments, and it still opens the control
API."""

from __future__ import annotations

import re

from thawtest import ThawServe, proc_descendants, write_project

ENTRY = """
    from workers import WorkerEntrypoint, Response

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("hello")
"""

SECRET = "env-token-3f9a1c7e5b2d4086-never-in-proc"


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read()


def test_the_token_from_the_environment_is_wiped_from_proc_environ(tmp_path):
    host = ThawServe(tmp_path / "data", token=SECRET, token_in_env=True).wait_ready()
    try:
        assert "--token-file" not in host.args
        block = environ(host.pid)
        assert SECRET.encode() not in block
        # The host's other variables are still there, as they were.
        assert b"\0LANG=C.UTF-8\0" in b"\0" + block

        # The token opens the control API; another does not.
        assert host.api("GET", "/v1/workers").status == 200
        assert host.api("GET", "/v1/workers", token="x" * len(SECRET)).status == 401
        project = write_project(tmp_path / "p", ENTRY, name="shop")
        r = host.client("deploy", project, "--no-install")
        assert r.returncode == 0, r.stdout + r.stderr
        assert host.worker_get("shop").text == "hello"

        # Nor does any instance (spares, the one serving) have it; all have one environment,
        # which a snapshot restored in one of them needs to be its builder's.
        kids = [pid for pid, _ in proc_descendants(host.pid)]
        envs = []
        for pid in kids:
            try:
                env, cmd = environ(pid), open(f"/proc/{pid}/cmdline", "rb").read()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile
            assert SECRET.encode() not in env, cmd
            if cmd.split(b"\0")[1:2] == [b"worker"]:
                envs.append(env)
        assert envs, kids
        assert all(e == envs[0] for e in envs)
        assert not any(re.search(rb"(^|\0)THAW_TOKEN=", e) for e in envs)
        assert SECRET.encode() not in environ(host.pid)
    finally:
        host.stop()
