"""Plain ASGI apps used by the server tests (importable as ``tests.apps.basic:NAME``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

Scope = dict[str, Any]


async def _respond(send: Any, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _no_lifespan(scope: Scope, receive: Any) -> bool:
    if scope["type"] == "lifespan":
        raise RuntimeError("this app does not speak lifespan")
    return False


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Answers 'hello' to every request; no lifespan support."""
    await _no_lifespan(scope, receive)
    await _respond(send, b"hello")


async def slow(scope: Scope, receive: Any, send: Any) -> None:
    """Waits for the query string's number of seconds (default 1) before answering."""
    await _no_lifespan(scope, receive)
    query = scope.get("query_string", b"").decode()
    delay = float(query) if query else 1.0
    # Tests of graceful shutdown wait for this line before sending a signal.
    print("slow request started", flush=True)
    await asyncio.sleep(delay)
    await _respond(send, b"slow done")


async def env(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with the environment variable named by the path (``/NAME``)."""
    await _no_lifespan(scope, receive)
    value = os.environ.get(scope["path"].lstrip("/"), "<unset>")
    await _respond(send, value.encode())


async def state(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan sets state['greeting']; requests answer with the scope's copy of it."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hi from lifespan"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _respond(send, scope["state"]["greeting"].encode())


async def startup_fails(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan startup reports failure with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database is down"})
        return
    await _respond(send, b"should never be served")


async def startup_raises(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan startup raises: unsupported under auto, a failure under on."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("boom in startup")
    await _respond(send, b"served without lifespan")


async def startup_hangs(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan startup never completes."""
    if scope["type"] == "lifespan":
        await receive()
        print("startup is hanging", flush=True)
        await asyncio.Event().wait()
    await _respond(send, b"never served")


async def shutdown_hangs(scope: Scope, receive: Any, send: Any) -> None:
    """Lifespan shutdown never completes."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        print("shutdown is hanging", flush=True)
        await asyncio.Event().wait()
    await _respond(send, b"hello")


def factory() -> Any:
    """An app factory for ``--factory``."""
    return app


not_callable = 42
