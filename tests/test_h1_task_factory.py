"""The app runs in an asyncio Task of its own; a task factory set on the loop is honoured."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes import FakeTransport, connect_h1
from tests.test_h1_coalescing import REQUEST


async def serve_one(app: Any) -> FakeTransport:
    protocol, transport, _ = connect_h1(app, access_log=False)
    # From a plain loop callback, as the transport delivers bytes (not from
    # inside this test's task).
    asyncio.get_running_loop().call_soon(protocol.data_received, REQUEST)
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


def make_app(seen: list[Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(asyncio.current_task())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_the_app_runs_in_a_task_of_its_own() -> None:
    seen: list[Any] = []
    transport = await serve_one(make_app(seen))
    assert transport.writes and transport.writes[0].endswith(b"ok")
    [task] = seen
    assert isinstance(task, asyncio.Task)
    assert task is not asyncio.current_task()


async def test_a_task_factory_on_the_loop_is_used() -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    seen: list[Any] = []
    loop.set_task_factory(factory)
    try:
        transport = await serve_one(make_app(seen))
    finally:
        loop.set_task_factory(None)
    assert transport.writes and transport.writes[0].endswith(b"ok")
    [task] = seen
    assert task in made
