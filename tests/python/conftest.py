"""Tests of the Python SDK (python/): run with `/usr/bin/python3 -m pytest tests/python`."""

import asyncio
import os
import sys

import pytest

SDK = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "python"))
if SDK not in sys.path:
    sys.path.insert(0, SDK)


def run(coroutine):
    """Run a coroutine on a fresh event loop."""
    return asyncio.run(coroutine)


@pytest.fixture
def isolated_imports():
    """Undo what loading a worker does to sys.path and sys.modules."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        del sys.modules[name]
