"""``state.tasks`` holds exactly the running app tasks of HTTP/1.1 connections.

The cycle takes its own task out of the set when the app returns (no done
callback per request); a task cancelled before its first step never runs the
cycle, so the connection covers that case itself.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from hurtle.io.h1 import H1Protocol
from hurtle.io.state import ServerState
from tests.fakes import FakeTransport, connect_h1

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b"hi"})


def connect(app: Any) -> tuple[H1Protocol, FakeTransport, ServerState]:
    return connect_h1(app)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_tasks_leave_the_set_when_the_app_returns() -> None:
    protocol, transport, state = connect(hello)
    for _ in range(3):
        protocol.data_received(REQUEST)
        assert len(state.tasks) <= 1
        await settle()
        assert not state.tasks
    assert transport.written.count(b"HTTP/1.1 200 OK") == 3
    protocol.connection_lost(None)


async def test_failing_and_cancelled_apps_leave_the_set() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    protocol, transport, state = connect(failing)
    protocol.data_received(REQUEST)
    await settle()
    assert not state.tasks
    assert b"500 Internal Server Error" in transport.written

    async def waiting(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(3600)

    protocol, transport, state = connect(waiting)
    protocol.data_received(REQUEST)
    await settle()
    assert len(state.tasks) == 1
    protocol.force_close()
    await settle()
    assert not state.tasks


async def test_a_task_cancelled_before_its_first_step_leaves_the_set() -> None:
    if sys.version_info >= (3, 12):
        # Tasks start eagerly there unless the loop has a task factory of its
        # own (honoured): one that makes lazy tasks brings the case back.
        def lazy(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop = asyncio.get_running_loop()
        loop.set_task_factory(lazy)
        try:
            await cancelled_before_the_first_step()
        finally:
            loop.set_task_factory(None)
    else:
        await cancelled_before_the_first_step()


async def cancelled_before_the_first_step() -> None:
    for close in ("force_close", "connection_lost"):
        protocol, _, state = connect(hello)
        protocol.data_received(REQUEST)
        assert len(state.tasks) == 1
        if close == "force_close":
            protocol.force_close()
        else:
            protocol.connection_lost(None)
            for task in list(state.tasks):
                task.cancel()
        await settle()
        assert not state.tasks, close
