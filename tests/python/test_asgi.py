import asyncio
import json

import pytest
from conftest import run

pytest.importorskip("fastapi")
from fastapi import FastAPI, Request as FastAPIRequest  # noqa: E402
from fastapi.responses import StreamingResponse  # noqa: E402
from pydantic import BaseModel  # noqa: E402

import asgi  # noqa: E402
from workers import BodyStream, Env, Headers, Request, Response, WorkerEntrypoint  # noqa: E402

startups = []
app = FastAPI()


@app.on_event("startup")
async def startup():
    startups.append(True)


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
async def root():
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create(item: Item):
    return {"name": item.name, "double": item.price * 2}


@app.get("/env")
async def env_route(request: FastAPIRequest):
    return {"greeting": request.scope["env"].GREETING}


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(3):
            yield f"part{i};"
            await asyncio.sleep(0)

    return StreamingResponse(parts(), media_type="text/plain")


@app.post("/length")
async def length(request: FastAPIRequest):
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return {"length": total}


@app.get("/fail")
async def fail():
    raise RuntimeError("broken route")


def serve(request, env=None):
    return run(_serve(request, env))


async def _serve(request, env):
    response = await asgi.fetch(app, request, env or Env({"GREETING": "hi"}))
    return response, await response.bytes()


def test_json_route():
    response, body = serve(Request("http://127.0.0.1:8787/"))
    assert isinstance(response, Response)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "world"}


def test_lifespan_startup_runs_before_the_first_request():
    serve(Request("http://127.0.0.1:8787/"))
    assert startups


def test_path_and_query_parameters():
    response, body = serve(Request("http://127.0.0.1:8787/items/5?q=abc"))
    assert json.loads(body) == {"item_id": 5, "q": "abc"}
    response, body = serve(Request("http://127.0.0.1:8787/items/five"))
    assert response.status == 422


def test_post_body_is_validated_by_pydantic():
    request = Request("http://127.0.0.1:8787/items", method="POST",
                      headers={"content-type": "application/json"},
                      body=json.dumps({"name": "pen", "price": 1.5}))
    response, body = serve(request)
    assert response.status == 200
    assert json.loads(body) == {"name": "pen", "double": 3.0}


def test_env_is_in_the_scope():
    _, body = serve(Request("http://127.0.0.1:8787/env"), Env({"GREETING": "hello there"}))
    assert json.loads(body) == {"greeting": "hello there"}


def test_scope_fields():
    scopes = []

    async def raw_app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan here")
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    env = Env({"A": "1"})
    request = Request("https://example.com:8443/a%20b/c%C3%A9?x=1&y=%20",
                      headers={"Host": "example.com:8443", "X-Custom": "V"})
    response = run(asgi.fetch(raw_app, request, env))
    assert response.status == 204
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/a b/cé"
    assert scope["raw_path"] == b"/a%20b/c%C3%A9"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["server"] == ("example.com", 8443)
    assert scope["client"] == ("127.0.0.1", 0)
    assert scope["scheme"] == "https"
    assert scope["http_version"] == "1.1"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["headers"] == [(b"host", b"example.com:8443"), (b"x-custom", b"V")]
    assert scope["env"] is env


def test_streaming_response_streams_chunks():
    async def main():
        response = await asgi.fetch(app, Request("http://127.0.0.1:8787/stream"), Env())
        assert response.headers["content-type"].startswith("text/plain")
        return [chunk async for chunk in response.body]

    assert run(main()) == [b"part0;", b"part1;", b"part2;"]


def test_streamed_request_body_reaches_the_app():
    async def main():
        body = BodyStream()
        request = Request._incoming("POST", "http://127.0.0.1:8787/length", Headers(), body)

        async def produce():
            for _ in range(4):
                body.push(b"x" * 1000)
                await asyncio.sleep(0)
            body.end()

        producer = asyncio.ensure_future(produce())
        response = await asgi.fetch(app, request, Env())
        await producer
        return json.loads(await response.bytes())

    assert run(main()) == {"length": 4000}


def test_exception_before_the_response_propagates():
    async def raw_app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan here")
        raise LookupError("before start")

    with pytest.raises(LookupError, match="before start"):
        run(asgi.fetch(raw_app, Request("http://h/"), Env()))


def test_fastapi_route_error_is_a_500_and_the_traceback_is_logged(capsys):
    async def main():
        response = await asgi.fetch(app, Request("http://127.0.0.1:8787/fail"), Env())
        await response.bytes()
        await asyncio.sleep(0.01)  # the app raises after its response is complete
        return response

    assert run(main()).status == 500  # Starlette answers, then re-raises
    err = capsys.readouterr().err
    assert "RuntimeError: broken route" in err


def test_exception_mid_stream_reaches_the_body_reader():
    async def raw_app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        raise KeyError("mid-stream")

    async def main():
        response = await asgi.fetch(raw_app, Request("http://h/"), Env())
        chunks = []
        with pytest.raises(KeyError):
            async for chunk in response.body:
                chunks.append(chunk)
        return chunks

    assert run(main()) == [b"first"]


def test_app_without_lifespan_support_and_disconnect_after_response():
    messages = []

    async def raw_app(scope, receive, send):
        assert scope["type"] == "http", "lifespan not supported"
        messages.append(await receive())
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"x-raw", b"1")]})
        await send({"type": "http.response.body", "body": b"done"})
        messages.append(await receive())

    async def main():
        response = await asgi.fetch(raw_app, Request("http://h/", method="PUT", body=b"in"), Env())
        body = await response.bytes()
        await asyncio.sleep(0.01)
        return response, body

    response, body = run(main())
    assert (response.status, response.headers["x-raw"], body) == (201, "1", b"done")
    assert messages == [{"type": "http.request", "body": b"in", "more_body": False},
                        {"type": "http.disconnect"}]


def test_entrypoint_helper_builds_a_default_class():
    Default = asgi.entrypoint(app)
    assert issubclass(Default, WorkerEntrypoint)

    async def main():
        from workers import Context
        response = await Default(Context(), Env({"GREETING": "via entrypoint"})).fetch(
            Request("http://h/env"))
        return await response.json()

    assert run(main()) == {"greeting": "via entrypoint"}


def test_workers_asgi_is_the_same_module_api():
    from workers import asgi as workers_asgi
    assert workers_asgi.fetch is asgi.fetch
