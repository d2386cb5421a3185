"""Plain ASGI 3 applications for the benchmark runner (no framework, stdlib only).

One attribute per scenario, so every server is started as ``apps:<name>``:

    plaintext  GET -> "Hello, world!" (text/plain, content-length)
    json       GET -> a small JSON object, serialised per request
    echo       POST -> the request body back (application/octet-stream, content-length)
    stream     GET -> 32 x 1 KiB body events with more_body, then an empty final one
               (no content-length, so HTTP/1.1 servers use chunked encoding)
    big        GET -> 1 MiB body in one event (content-length)
    sleep      GET -> awaits asyncio.sleep(0.01), then "Hello, world!"
    ws_echo    WebSocket: accepts and echoes every message (for the WebSocket
               scenario that comes later; see run.py)

Each app also speaks the lifespan protocol (startup/shutdown), so servers that
probe it (uvicorn, hypercorn, granian, hurtle) take the same path; daphne never
sends lifespan.

The byte constants below are what the apps send; ``raw_server.py`` builds its
responses from the same constants so the ceiling answers with the same bytes.
"""

from __future__ import annotations

import asyncio
import json as _json

PLAINTEXT_BODY = b"Hello, world!"
PLAINTEXT_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(PLAINTEXT_BODY)).encode()),
]

JSON_OBJECT = {"message": "Hello, world!"}
JSON_BODY = _json.dumps(JSON_OBJECT).encode()  # what json() sends, for raw_server and checks

ECHO_CONTENT_TYPE = b"application/octet-stream"
ECHO_REQUEST_SIZE = 4096  # the body wrk/post.lua sends

STREAM_CHUNK = b"x" * 1024
STREAM_CHUNKS = 32
STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]

BIG_BODY = b"b" * (1024 * 1024)
BIG_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"content-length", str(len(BIG_BODY)).encode()),
]

SLEEP_SECONDS = 0.01


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def plaintext(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": PLAINTEXT_HEADERS})
    await send({"type": "http.response.body", "body": PLAINTEXT_BODY})


async def json(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    body = _json.dumps(JSON_OBJECT).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def echo(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    chunks = []
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", ECHO_CONTENT_TYPE),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def stream(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    for _ in range(STREAM_CHUNKS):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def big(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": BIG_HEADERS})
    await send({"type": "http.response.body", "body": BIG_BODY})


async def sleep(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await asyncio.sleep(SLEEP_SECONDS)
    await send({"type": "http.response.start", "status": 200, "headers": PLAINTEXT_HEADERS})
    await send({"type": "http.response.body", "body": PLAINTEXT_BODY})


async def ws_echo(scope, receive, send):
    """WebSocket echo for the (future) ``ws`` scenario; plain HTTP gets plaintext."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        return await plaintext(scope, receive, send)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message.get("text") or ""})
        else:  # websocket.disconnect
            return
