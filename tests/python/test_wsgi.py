import json

from conftest import run

import wsgi
from workers import Env, Request


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    reply = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]],
        "content_type": environ.get("CONTENT_TYPE"),
        "agent": environ.get("HTTP_USER_AGENT"),
        "accept": environ.get("HTTP_ACCEPT"),
        "body": body.decode(),
        "greeting": environ["workers.env"].GREETING,  # Cloudflare's key (thaw.env too)
        "same_env": environ["workers.env"] is environ["thaw.env"],
        "scheme": environ["wsgi.url_scheme"],
    }).encode()
    start_response("201 Created", [("Content-Type", "application/json"), ("X-App", "wsgi")])
    return [reply[:10], reply[10:]]


def test_wsgi_app_sees_the_request_and_returns_a_response():
    request = Request("http://example.com:8080/p%C3%A9/x?a=1", method="POST",
                      headers=[("User-Agent", "t"), ("Accept", "a"), ("Accept", "b"),
                               ("Content-Type", "text/plain")],
                      body="hello")

    async def main():
        response = await wsgi.fetch(app, request, Env({"GREETING": "hey"}))
        return response, await response.json()

    response, data = run(main())
    assert response.status == 201
    assert response.status_text == "Created"
    assert response.headers["x-app"] == "wsgi"
    assert data == {
        "method": "POST",
        "path": "/pé/x".encode().decode("latin-1"),  # PEP 3333: bytes in a latin-1 str
        "query": "a=1",
        "server": ["example.com", "8080"],
        "content_type": "text/plain",
        "agent": "t",
        "accept": "a, b",
        "body": "hello",
        "greeting": "hey",
        "same_env": True,
        "scheme": "http",
    }


def test_wsgi_write_callable_and_close_are_honoured():
    closed = []

    class Result(list):
        def close(self):
            closed.append(True)

    def legacy(environ, start_response):
        write = start_response("200 OK", [])
        write(b"written-")
        return Result([b"returned"])

    async def main():
        response = await wsgi.fetch(legacy, Request("http://h/"), Env())
        return await response.bytes()

    assert run(main()) == b"written-returned"
    assert closed == [True]
