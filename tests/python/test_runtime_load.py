import json
import os
import textwrap

import pytest
from conftest import run

import _thaw_runtime
from workers import Context, Request, Response

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def make_project(root, source, main="src/entry.py", **files):
    path = root / main
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    for name, text in files.items():
        (path.parent / name).write_text(textwrap.dedent(text))
    return root


def load(project_dir, main="src/entry.py", **config):
    config = {"name": "test", "project_dir": str(project_dir), "main": main, "vars": {},
              "dev": True, "concurrency": 8, **config}
    return json.loads(_thaw_runtime.load(json.dumps(config)))


def call(path="/", vars_loaded=True, **kwargs):
    """Call the loaded handler directly, as serve() does."""
    worker = _thaw_runtime._worker

    async def main():
        result = worker.call(Request("http://127.0.0.1:8787" + path, **kwargs), Context(),
                             worker.env)
        if hasattr(result, "__await__"):
            result = await result
        return result, await result.text()

    return run(main())


@pytest.fixture(autouse=True)
def _isolated(isolated_imports):
    yield


def test_default_entrypoint_class_is_found_and_ready_json_returned(tmp_path):
    make_project(tmp_path, """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(f"{request.method} {self.env.WHO}")
    """)
    ready = load(tmp_path, vars={"WHO": "world"}, concurrency=3)
    assert ready["concurrency"] == 3
    assert isinstance(ready["load_ms"], float) and ready["load_ms"] >= 0
    response, text = call()
    assert text == "GET world"


@pytest.mark.parametrize("signature, body", [
    ("self", "'no request'"),
    ("self, request", "request.method"),
    ("self, request, env", "request.method + ' ' + env.WHO"),
    ("self, request, env, ctx", "request.method + ' ' + env.WHO + ' ' + type(ctx).__name__"),
    ("self, *args", "str(len(args))"),
])
def test_default_fetch_gets_the_leading_arguments_it_declares(tmp_path, signature, body):
    # Cloudflare offers (request, env, ctx) and drops what the method does not declare.
    make_project(tmp_path, f"""
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch({signature}):
                return Response({body})
    """)
    load(tmp_path, vars={"WHO": "world"})
    expected = {"self": "no request", "self, request": "GET", "self, request, env": "GET world",
                "self, request, env, ctx": "GET world Context", "self, *args": "3"}[signature]
    assert call()[1] == expected


def test_on_fetch_with_request_and_env(tmp_path):
    make_project(tmp_path, """
        from workers import Response

        async def on_fetch(request, env):
            return Response(env.GREETING + " " + request.url)
    """)
    load(tmp_path, vars={"GREETING": "hi"})
    assert call("/p")[1] == "hi http://127.0.0.1:8787/p"


def test_on_fetch_with_ctx_and_sync_handler(tmp_path):
    make_project(tmp_path, """
        from workers import Context, Response

        def on_fetch(request, env, ctx):
            return Response(type(ctx).__name__)
    """)
    load(tmp_path)
    assert call()[1] == "Context"


def test_entry_module_imports_its_siblings(tmp_path):
    make_project(tmp_path, """
        from helper import greet
        from workers import Response

        async def on_fetch(request):
            return Response(greet())
    """, **{"helper.py": "def greet():\n    return 'from helper'\n"})
    load(tmp_path)
    assert call()[1] == "from helper"


def test_main_in_another_directory_is_imported_by_its_stem(tmp_path):
    make_project(tmp_path, """
        from workers import Response

        async def on_fetch(request):
            return Response(__name__)
    """, main="app/worker.py")
    load(tmp_path, main="app/worker.py")
    assert call()[1] == "worker"


def test_missing_handler_names_the_file_and_the_expected_forms(tmp_path):
    make_project(tmp_path, "x = 1\n")
    with pytest.raises(_thaw_runtime.LoadError) as info:
        load(tmp_path)
    message = str(info.value)
    assert message.startswith("src/entry.py defines no handler")
    assert "class Default(WorkerEntrypoint)" in message
    assert "async def on_fetch(request, env)" in message
    assert str(tmp_path) not in message


def test_default_without_fetch_is_explained(tmp_path):
    make_project(tmp_path, """
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetchh(self, request):
                pass
    """)
    with pytest.raises(_thaw_runtime.LoadError, match="src/entry.py: class Default has no fetch"):
        load(tmp_path)


def test_an_rpc_only_default_with_a_method_named_like_a_handler_loads(tmp_path):
    # `requeue` is close to `queue`, but `add` makes this an RPC entrypoint, not a typo.
    make_project(tmp_path, """
        from workers import WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def add(self, a, b):
                return a + b

            async def requeue(self, item):
                return item
    """)
    load(tmp_path)  # no LoadError


def test_missing_main_file_is_explained(tmp_path):
    with pytest.raises(_thaw_runtime.LoadError, match="src/nope.py: no such file"):
        load(tmp_path, main="src/nope.py")


def test_syntax_error_propagates_with_its_location(tmp_path):
    make_project(tmp_path, "def broken(:\n    pass\n")
    with pytest.raises(SyntaxError) as info:
        load(tmp_path)
    assert info.value.filename.endswith(os.path.join("src", "entry.py"))
    assert info.value.lineno == 1


def test_import_error_propagates(tmp_path):
    make_project(tmp_path, "import module_that_does_not_exist_anywhere\n")
    with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist_anywhere"):
        load(tmp_path)


def test_entry_named_like_a_loaded_module_is_refused(tmp_path):
    make_project(tmp_path, "async def on_fetch(request):\n    pass\n", main="src/json.py")
    with pytest.raises(_thaw_runtime.LoadError, match="module name 'json' is already taken"):
        load(tmp_path, main="src/json.py")


def test_load_starts_no_threads_and_leaves_no_event_loop(tmp_path):
    import asyncio
    import threading

    make_project(tmp_path, """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("ok")
    """)
    before = threading.active_count()
    load(tmp_path)
    assert threading.active_count() == before
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_hello_example(tmp_path):
    load(os.path.abspath(os.path.join(EXAMPLES, "hello")))
    response, text = call()
    assert (response.status, text) == (200, "Hello world!")
    assert response.headers["content-type"] == "text/plain;charset=UTF-8"


def test_fastapi_example():
    pytest.importorskip("fastapi")
    pytest.importorskip("jinja2")
    load(os.path.abspath(os.path.join(EXAMPLES, "fastapi")), vars={"GREETING": "hello env"})
    response, text = call("/items/3?q=z")
    assert json.loads(text) == {"item_id": 3, "q": "z"}
    assert json.loads(call("/env")[1]) == {"greeting": "hello env"}
    response, text = call("/items", method="POST", headers={"content-type": "application/json"},
                          body='{"name": "cup", "price": 10}')
    assert json.loads(text)["created"]["name"] == "cup"
    response, text = call("/hi/ada", headers={"host": "127.0.0.1:8787"})
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Hello, ada!</h1>" in text and "hello env" in text
    assert isinstance(response, Response)


def test_module_level_env_and_wait_until(tmp_path):
    make_project(tmp_path, """
        import asyncio
        from workers import Response, WorkerEntrypoint, env, wait_until

        PREFIX = env.PREFIX + ":"  # configuration at top level, from the worker's vars
        DONE = []

        async def later():
            await asyncio.sleep(0)
            DONE.append(env.PREFIX)

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                wait_until(later())
                await asyncio.sleep(0.01)
                return Response(f"{PREFIX} {self.env is env} {env.COUNT + 1} {DONE}")
    """)
    load(tmp_path, vars={"PREFIX": "p", "COUNT": 41})
    assert call()[1] == "p: True 42 ['p']"
