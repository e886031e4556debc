import asyncio

import pytest
from conftest import run

from workers import Context, Env, WorkerEntrypoint


def test_attribute_and_key_access():
    env = Env({"API_KEY": "secret", "LIMIT": 5})
    assert env.API_KEY == "secret"
    assert env["LIMIT"] == 5
    assert "API_KEY" in env
    assert "OTHER" not in env
    assert env.get("OTHER") is None
    assert env.get("OTHER", "d") == "d"
    assert sorted(env) == ["API_KEY", "LIMIT"]


def test_missing_attribute_names_the_variable_and_what_is_defined():
    env = Env({"A": "1"})
    with pytest.raises(AttributeError, match=r"'MISSING'.*defined: A.*\[tool.thaw\] vars"):
        env.MISSING
    assert getattr(env, "MISSING", "fallback") == "fallback"
    assert not hasattr(env, "MISSING")
    with pytest.raises(KeyError):
        env["MISSING"]


def test_env_is_read_only_and_repr_hides_values():
    env = Env({"TOKEN": "hunter2"})
    with pytest.raises(AttributeError):
        env.TOKEN = "x"
    assert "hunter2" not in repr(env)
    assert "TOKEN" in repr(env)


def test_entrypoint_receives_ctx_and_env():
    ctx, env = Context(), Env({"A": "1"})
    entry = WorkerEntrypoint(ctx, env)
    assert entry.ctx is ctx
    assert entry.env.A == "1"


def test_wait_until_keeps_running_after_the_caller_returns():
    finished = []

    async def later():
        await asyncio.sleep(0.01)
        finished.append(True)

    async def main():
        Context().wait_until(later())
        assert finished == []
        await asyncio.sleep(0.05)

    run(main())
    assert finished == [True]


def test_wait_until_logs_exceptions(capsys):
    async def failing():
        raise RuntimeError("background failure")

    async def main():
        Context().waitUntil(failing())
        await asyncio.sleep(0.01)

    run(main())
    err = capsys.readouterr().err
    assert "wait_until" in err
    assert "RuntimeError: background failure" in err


def test_wait_until_rejects_non_awaitables():
    with pytest.raises(TypeError):
        Context().wait_until(42)
