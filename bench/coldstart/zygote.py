"""Zygote baseline for bench/coldstart: one Python process imports the same
worker (FastAPI + pydantic + httpx, app built), then forks a child for every
connection; the child answers one request through the ASGI app and exits.
This is the best a fork-per-request server can do: the child inherits the
initialised interpreter, like a restored snapshot, but fork copies the page
tables of the whole parent on the request path."""
import asyncio
import os
import signal
import socket
import sys

sys.path[:0] = [sys.argv[2], os.path.join(sys.argv[2], "..", "..", "..", "..", "python")]
from entry import app  # noqa: E402  (the same app thaw serves)


async def serve_one(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers = [tuple(l.split(b": ", 1)) for l in lines[1:] if b": " in l]
    headers = [(k.lower(), v) for k, v in headers]
    length = int(dict(headers).get(b"content-length", b"0"))
    while len(body) < length:
        body += conn.recv(65536)
    path, _, query = target.partition(b"?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method.decode(), "scheme": "http", "path": path.decode(),
             "raw_path": path, "query_string": query, "root_path": "", "headers": headers,
             "server": ("127.0.0.1", 0), "client": ("127.0.0.1", 0)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg):
        sent.append(msg)

    await app(scope, receive, send)
    start = sent[0]
    out = b"".join(m.get("body", b"") for m in sent[1:])
    resp = [b"HTTP/1.1 %d OK" % start["status"]]
    resp += [k + b": " + v for k, v in start["headers"] if k.lower() != b"content-length"]
    resp += [b"content-length: %d" % len(out), b"connection: close", b"", b""]
    conn.sendall(b"\r\n".join(resp) + out)


def main() -> None:
    port = int(sys.argv[1])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        if os.fork() == 0:
            srv.close()
            asyncio.run(serve_one(conn))
            conn.close()
            os._exit(0)
        conn.close()


main()
