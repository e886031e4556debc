"""pytest fixtures for thaw's end-to-end tests; the machinery lives in thawtest.py."""

import pytest

from thawtest import ThawDev, write_project


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: heavy test (large bodies, long waits); left out of the ASan run"
    )


# --------------------------------------------------------------------------- fixtures


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
    """dev(project_dir, *flags) -> a ready ThawDev; stopped (SIGINT, exit 0 asserted) at the
    end of the test."""
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
