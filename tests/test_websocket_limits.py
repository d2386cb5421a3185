"""``--limit-concurrency`` applies to WebSocket upgrades: 503 instead of the upgrade."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.utils import run_server

pytestmark = pytest.mark.timeout(60)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


async def test_upgrade_over_the_limit_is_503() -> None:
    with run_server(echo_app, limit_concurrency=1) as srv:
        url = f"ws://{srv.host}:{srv.port}/"
        async with connect(url) as first:
            await first.send("a")
            assert await first.recv() == "a"
            with pytest.raises(InvalidStatus) as info:
                async with connect(url):
                    pass
            assert info.value.response.status_code == 503
            # The open WebSocket is untouched.
            await first.send("b")
            assert await first.recv() == "b"
        # Below the limit again once the server has let the first one go.
        state = srv.server.state
        await eventually(lambda: not state.connections and not state.tasks)
        async with connect(url) as again:
            await again.send("c")
            assert await again.recv() == "c"
