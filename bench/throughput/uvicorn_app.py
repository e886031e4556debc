"""The hello worker's handler as a plain ASGI app, for uvicorn: same bytes out."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain;charset=UTF-8")],
    })
    await send({"type": "http.response.body", "body": b"Hello world!"})
