"""pyodide.ffi for thaw: conversions, proxies, jsnull, missing names and run_sync."""

import asyncio
import dis
import threading

import pytest
from conftest import run

import js
import wsgi
from pyodide import ffi
from pyodide.ffi import (JsArray, JsException, JsMap, JsProxy, create_once_callable,
                         create_proxy, jsnull, run_sync, to_js, to_py)
from workers import Env, Request

# --------------------------------------------------------------------------- to_js / to_py


def test_to_js_makes_a_map_of_a_dict_by_default_and_an_object_with_from_entries():
    data = {"name": "thaw", "tags": ["a", "b"], "nested": {"n": 1}}
    as_map = to_js(data)
    assert isinstance(as_map, JsMap) and isinstance(as_map, JsProxy)
    assert as_map.get("name") == "thaw" and as_map.size == 3 and as_map.has("tags")
    assert isinstance(as_map["tags"], JsArray) and as_map["tags"].length == 2

    obj = to_js(data, dict_converter=js.Object.fromEntries)
    assert obj.name == "thaw" and obj["name"] == "thaw"
    assert list(obj.tags) == ["a", "b"]
    assert obj.nested.n == 1  # the converter applies at every level
    assert js.JSON.stringify(obj) == '{"name":"thaw","tags":["a","b"],"nested":{"n":1}}'
    with pytest.raises(AttributeError):
        obj.missing


def test_to_js_passes_entries_to_a_python_dict_converter_and_honours_depth():
    seen = []

    def converter(entries):
        seen.append([list(e) for e in entries])
        return dict(entries)

    assert to_js({"a": 1}, dict_converter=converter) == {"a": 1}
    assert seen == [[["a", 1]]]
    shallow = to_js([[1, [2]]], depth=1)
    assert isinstance(shallow, JsArray) and type(shallow[0]) is list


def test_to_js_keeps_scalars_and_uses_default_converter_for_other_objects():
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    assert to_js("s") == "s" and to_js(3) == 3 and to_js(None) is None and to_js(jsnull) is jsnull
    assert to_js(bytearray(b"ab")) == b"ab"
    point = Point(1, 2)
    assert to_js(point) is point  # a proxy of the Python object
    converted = to_js([point], default_converter=lambda v, convert, cache: convert([v.x, v.y]))
    assert converted == [[1, 2]]


def test_to_js_survives_a_list_that_contains_itself():
    loop_list = [1]
    loop_list.append(loop_list)
    converted = to_js(loop_list)
    assert converted[1] is converted


def test_to_py_converts_objects_arrays_maps_and_null_deeply():
    value = js.JSON.parse('{"a": [1, null, {"b": "c"}], "d": null}')
    assert to_py(value) == {"a": [1, None, {"b": "c"}], "d": None}
    assert value.to_py() == to_py(value)
    assert to_py(to_js({"k": (1, 2)})) == {"k": [1, 2]}
    assert to_py(jsnull) is None
    assert to_py({"x": js.JSON.parse("[true]")}) == {"x": [True]}
    assert to_py(value, depth=1)["a"] is value.a


# --------------------------------------------------------------------------- values


def test_jsnull_is_a_falsy_singleton_distinct_from_none():
    assert not jsnull and jsnull is not None
    assert type(jsnull)() is jsnull
    assert repr(jsnull) == "jsnull"
    assert js.JSON.stringify([jsnull, None]) == "[null,null]"
    assert js.JSON.stringify({"a": jsnull, "b": None}) == '{"a":null}'  # None is undefined


def test_js_exception_is_raisable_and_carries_name_and_message():
    with pytest.raises(JsException) as caught:
        raise js.Error.new("boom")
    assert caught.value.name == "Error" and caught.value.message == "boom"
    assert str(caught.value) == "Error: boom"
    assert isinstance(caught.value, JsProxy)
    assert js.TypeError.new("t").name == "TypeError"
    assert js.RangeError.new("r").name == "RangeError"


def test_create_proxy_forwards_until_destroyed():
    calls = []

    class Handler:
        label = "h"

        def element(self, value):
            calls.append(value)

    proxy = create_proxy(Handler())
    proxy.element(1)
    assert proxy.label == "h" and calls == [1]
    function = create_proxy(lambda x: x * 2)
    assert function(4) == 8 and function(5) == 10
    assert function.unwrap()(1) == 2
    function.destroy()
    assert function.destroyed
    with pytest.raises(JsException, match="destroyed"):
        function(1)


def test_create_once_callable_may_be_called_once():
    once = create_once_callable(lambda: "done")
    assert once() == "done"
    with pytest.raises(JsException, match="only once"):
        once()
    with pytest.raises(TypeError):
        create_once_callable(42)


# --------------------------------------------------------------------------- missing names


def test_a_missing_ffi_name_raises_not_implemented_naming_it():
    with pytest.raises(NotImplementedError, match=r"pyodide\.ffi\.register_js_module"):
        from pyodide.ffi import register_js_module  # noqa: F401
    assert not hasattr(ffi, "JsBuffer")
    assert ffi._IMPORT_FROM == dis.opmap["IMPORT_FROM"]


# --------------------------------------------------------------------------- run_sync


async def _value_later(value, delay=0.01):
    await asyncio.sleep(delay)
    return value


def test_run_sync_without_a_loop_runs_a_private_one():
    assert run_sync(_value_later(7)) == 7
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # nothing left running


def test_run_sync_refuses_what_is_not_awaitable():
    with pytest.raises(TypeError, match="awaitable"):
        run_sync(42)


def test_run_sync_in_sync_code_on_the_loop_keeps_the_loop_serving():
    """The coroutine waits for an event only another task sets: the loop must keep running
    other tasks while the sync caller waits (blocking the thread would deadlock)."""

    async def main():
        ready = asyncio.Event()
        order = []

        async def setter():
            await asyncio.sleep(0.01)
            order.append("setter ran")
            ready.set()

        async def wait_for_it():
            await ready.wait()
            return "woken"

        def sync_helper():
            return run_sync(wait_for_it())

        async def handler():
            result = sync_helper()
            order.append(result)
            assert asyncio.current_task() is me[0]
            return result

        me = [None]
        asyncio.get_running_loop().create_task(setter())
        task = asyncio.get_running_loop().create_task(handler())
        me[0] = task
        return await task, order

    result, order = run(main())
    assert result == "woken" and order == ["setter ran", "woken"]


def test_run_sync_on_the_loop_with_many_callbacks_ready_at_once():
    """Several handlers start in the same loop iteration, each waiting in run_sync: every one
    finishes and the loop reports no error (the iteration that ran the first one continues
    after it returns)."""
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))

        async def handler(i):
            return run_sync(_value_later(i, 0.001 * (5 - i))) * 10

        results = await asyncio.gather(*(handler(i) for i in range(5)))
        await asyncio.sleep(0)
        return results

    assert run(main()) == [0, 10, 20, 30, 40]
    assert errors == []


def test_run_sync_nests_and_propagates_exceptions():
    async def inner():
        await asyncio.sleep(0)
        raise ValueError("from inner")

    async def outer():
        try:
            run_sync(inner())
        except ValueError as error:
            return f"caught {error}"

    async def main():
        return run_sync(outer())

    assert run(main()) == "caught from inner"


def test_run_sync_cancelled_with_its_request():
    """Cancelling the task that waits in run_sync cancels the coroutine it waits for."""

    async def main():
        stopped = asyncio.Event()

        async def forever():
            try:
                await asyncio.sleep(3600)
            finally:
                stopped.set()

        async def handler():
            return run_sync(forever())

        task = asyncio.get_running_loop().create_task(handler())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stopped.is_set()

    assert run(main()) is True


def test_run_sync_from_a_wsgi_view_runs_on_the_serving_loop():
    """A Flask-style view (a thread) waits for a coroutine that needs the request's own loop:
    an asyncio.Event of that loop, set by a task on it."""

    async def main():
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        threads = {}

        async def on_loop():
            threads["coroutine"] = threading.get_ident()
            await event.wait()
            return "from the loop"

        def app(environ, start_response):
            threads["view"] = threading.get_ident()
            loop.call_soon_threadsafe(event.set)
            text = run_sync(on_loop())
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [text.encode()]

        response = await wsgi.fetch(app, Request("http://x/"), Env({}))
        return await response.text(), threads, threading.get_ident()

    text, threads, loop_thread = run(main())
    assert text == "from the loop"
    assert threads["coroutine"] == loop_thread != threads["view"]


def test_the_private_asyncio_details_run_sync_relies_on_exist():
    loop = asyncio.new_event_loop()
    try:
        assert callable(loop._run_once) and hasattr(loop._ready, "popleft")
        assert isinstance(asyncio.tasks._current_tasks, dict)
    finally:
        loop.close()


def test_run_sync_on_the_loop_leaves_no_work_behind():
    """Many waits in one step of a handler: the loop's ready queue is as it was (each wait
    costs the same; an earlier version grew it by one skipped callback per call)."""

    async def noop():
        return 1

    async def main():
        ready = asyncio.get_running_loop()._ready
        before = len(ready)
        total = sum(run_sync(noop()) for _ in range(200))
        return total, len(ready) - before

    assert run(main()) == (200, 0)
