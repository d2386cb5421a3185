"""Apps for the worker, reload and bind tests (``tests.apps.ops:NAME``).

``app`` answers ``pid=<worker pid>`` so a test can tell the workers apart;
``/block?SECONDS`` blocks the event loop (a hung worker); ``/sleep?SECONDS``
waits without blocking. ``failing_startup`` fails lifespan startup;
``hanging_startup`` never finishes it while the file named by
``$OPS_HANG_MARKER`` exists (always, when the variable is unset).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

Scope = dict[str, Any]


async def _lifespan(receive: Any, send: Any, fail: bool = False) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if fail:
                await send({"type": "lifespan.startup.failed", "message": "refusing to start"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    query = scope.get("query_string", b"").decode()
    if scope["path"] == "/block":
        time.sleep(float(query or 60))  # noqa: ASYNC251 - a hung worker: no heartbeat
    elif scope["path"] == "/sleep":
        print(f"request in flight in [{os.getpid()}]", flush=True)  # for tests to wait on
        await asyncio.sleep(float(query or 1))
    body = f"pid={os.getpid()}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, fail=True)
        return
    await app(scope, receive, send)


async def hanging_startup(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        marker = os.environ.get("OPS_HANG_MARKER")
        if marker is None or os.path.exists(marker):  # noqa: ASYNC240 - once, at startup
            await receive()
            await asyncio.Event().wait()  # a startup that never completes
        await _lifespan(receive, send)
        return
    await app(scope, receive, send)
