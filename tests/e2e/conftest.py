"""pytest fixtures for thaw's end-to-end tests; the machinery lives in thawtest.py."""

import pytest

from thawtest import ThawDev, require_snapshots, write_project


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: heavy test (large bodies, long waits); left out of the ASan run"
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def snapshots():
    """Skips the test on a build that never snapshots (the sanitizer build)."""
    require_snapshots()


class StartMode:
    """How `thaw dev` gets new instances: restored from a snapshot (the default) or booted
    (`--no-snapshot`). Tests that must hold for both take the `start_mode` fixture."""

    def __init__(self, snapshot):
        self.snapshot = snapshot
        self.name = "snapshot" if snapshot else "no-snapshot"
        self.flags = () if snapshot else ("--no-snapshot",)
        # Server-Timing desc of a request that waited for a new instance, once settled.
        self.cold = "snapshot" if snapshot else "boot"

    def settle(self, d):
        """With snapshots: wait until the first snapshot is written, so that new instances
        restore (before that they boot). Returns `d`.

        Right after the snapshot the host restores one instance to validate it; it stays warm
        (unless --idle-timeout 0), so the next request may find it "warm" or wait for it
        ("snapshot")."""
        if self.snapshot:
            d.wait_snapshot()
        return d

    def first_descs(self):
        """What the first request after settle() may be told."""
        return {"snapshot", "warm"} if self.snapshot else {"boot"}

    def __repr__(self):
        return self.name


@pytest.fixture(params=[True, False], ids=["snapshot", "no-snapshot"])
def start_mode(request):
    if request.param:
        require_snapshots()
    return StartMode(request.param)



@pytest.fixture
def project(tmp_path):
    """project(entry_source, vars=None, **kw) -> Path of a fresh project under tmp_path."""
    counter = [0]

    def make(entry, **kw):
        counter[0] += 1
        return write_project(tmp_path / f"proj{counter[0]}", entry, **kw)

    return make


@pytest.fixture
def dev():
    """dev(project_dir, *flags, binary=None, env=None) -> a ready ThawDev; stopped (SIGINT, exit 0
    asserted) at the end of the test. Ready is not settled: the snapshot is still being built
    and a request sent now boots an instance (ThawDev.wait_snapshot / StartMode.settle)."""
    started = []

    def start(project_dir, *args, **kw):
        d = ThawDev(project_dir, args, **kw)
        started.append(d)
        return d.wait_ready()

    yield start
    errors = []
    for d in started:
        if d.stopped:
            continue
        try:
            d.stop()
        except BaseException as e:  # report every failure, stop every process
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def module_dev():
    """Like `dev`, for servers shared by a module's tests."""
    started = []

    def start(project_dir, *args, **kw):
        d = ThawDev(project_dir, args, **kw)
        started.append(d)
        return d.wait_ready()

    yield start
    for d in started:
        if not d.stopped:
            d.stop()
