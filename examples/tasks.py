"""A small in-memory JSON tasks API, written as a plain ASGI 3 application.

No framework: one coroutine gets ``(scope, receive, send)`` and answers. Serve it
from the repository root with::

    hurtle examples.tasks:app

then::

    curl localhost:8000/tasks
    curl -X POST localhost:8000/tasks -H 'content-type: application/json' -d '{"title": "Works"}'
    curl localhost:8000/tasks/1

Routes: ``GET /`` (a hello text), ``GET /tasks`` (the list), ``POST /tasks`` (JSON
``{"title": str}``, answers 201 with the new task), ``GET /tasks/{id}`` (200 or
404). Wrong methods answer 405 with an ``allow`` header, unknown paths 404, bad
JSON or a missing title 400, a body over `MAX_BODY` 413.

The store is made at lifespan startup and kept in the lifespan ``state``, which
the server copies into every request scope; a server run with ``--lifespan off``
falls back to one module-level store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A task is a few words; a megabyte is far more than any honest request needs and
# bounds what one client can make the app buffer.
MAX_BODY = 1 << 20

# hurtle's own server logger, so these lines show in its log with no logging set-up
# in the app (the way apps served by Uvicorn log to "uvicorn.error").
logger = logging.getLogger("hurtle.error")


class TaskStore:
    """Tasks by id, ids counting up from 1."""

    __slots__ = ("next_id", "tasks")

    def __init__(self) -> None:
        self.next_id = 1
        self.tasks: dict[int, dict[str, Any]] = {}

    def add(self, title: str) -> dict[str, Any]:
        task: dict[str, Any] = {"id": self.next_id, "title": title, "done": False}
        self.tasks[self.next_id] = task
        self.next_id += 1
        return task


_fallback_store = TaskStore()


class _ClientGone(Exception):
    """The client disconnected before its request body was read."""


class _TooLarge(Exception):
    """The request body is larger than `MAX_BODY`."""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI 3 entry point: lifespan and HTTP; other scope types are refused."""
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        # Closing before accepting makes the server answer 403.
        await send({"type": "websocket.close", "code": 1000})


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            store = TaskStore()
            if "state" in scope:
                scope["state"]["tasks"] = store
            logger.info("Tasks API ready: GET /tasks, POST /tasks, GET /tasks/{id}")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            stored = scope.get("state", {}).get("tasks", _fallback_store)
            logger.info("Tasks API stopping with %d task(s)", len(stored.tasks))
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    store: TaskStore = scope.get("state", {}).get("tasks", _fallback_store)
    method: str = scope["method"]
    path: str = scope["path"]

    if path == "/":
        if method not in ("GET", "HEAD"):
            await _not_allowed(send, "GET, HEAD")
            return
        await _respond(send, 200, b"Hello from hurtle. Try GET /tasks.\n", b"text/plain")
        return

    if path == "/tasks":
        if method in ("GET", "HEAD"):
            await _json(send, 200, list(store.tasks.values()))
        elif method == "POST":
            await _create(scope, receive, send, store)
        else:
            await _not_allowed(send, "GET, HEAD, POST")
        return

    prefix, _, task_id = path.rpartition("/")
    if prefix == "/tasks" and task_id.isascii() and task_id.isdigit():
        if method not in ("GET", "HEAD"):
            await _not_allowed(send, "GET, HEAD")
            return
        task = store.tasks.get(int(task_id))
        if task is None:
            await _json(send, 404, {"error": f"no task {int(task_id)}"})
        else:
            await _json(send, 200, task)
        return

    await _json(send, 404, {"error": "not found"})


async def _create(scope: Scope, receive: Receive, send: Send, store: TaskStore) -> None:
    try:
        body = await _read_body(scope, receive)
    except _ClientGone:
        return  # nobody to answer
    except _TooLarge:
        await _json(send, 413, {"error": f"body larger than {MAX_BODY} bytes"})
        return
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        await _json(send, 400, {"error": "body is not valid JSON"})
        return
    title = data.get("title") if isinstance(data, dict) else None
    if not isinstance(title, str) or not title.strip():
        await _json(send, 400, {"error": 'expected a JSON object {"title": "..."}'})
        return
    await _json(send, 201, store.add(title))


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole request body, read piece by piece; raise `_TooLarge` past `MAX_BODY`."""
    for name, value in scope["headers"]:
        # Refuse a declared oversize body before reading any of it.
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    await _respond(send, status, body, b"application/json")


async def _not_allowed(send: Send, allow: str) -> None:
    await _respond(
        send,
        405,
        b'{"error":"method not allowed"}\n',
        b"application/json",
        [(b"allow", allow.encode())],
    )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
