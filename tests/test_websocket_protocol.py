"""The WebSocket protocol adapter with a fake transport: flow control, queue limit, timers.

The HTTP/1.1 protocol receives the upgrade request and hands the transport
over, as on a real connection; the fake records writes, pauses and closes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import hurtle.io.ws as ws_module
from hurtle.config import Config
from hurtle.io.h1 import H1Protocol
from hurtle.io.state import ServerState
from hurtle.io.ws import WSProtocol
from tests.fakes import FakeTransport

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


async def connect(app: Any, **options: Any) -> tuple[FakeTransport, WSProtocol, ServerState]:
    config = Config(app, **options)
    state = ServerState(config)
    h1 = H1Protocol(config, app, state)
    transport = FakeTransport()
    h1.connection_made(transport)  # type: ignore[arg-type]
    h1.data_received(UPGRADE)
    ws = transport.protocol
    assert isinstance(ws, WSProtocol)
    assert h1 not in state.connections and ws in state.connections
    for _ in range(10):
        await asyncio.sleep(0)
    return transport, ws, state


async def test_reading_pauses_at_max_queue_and_resumes_when_the_app_catches_up() -> None:
    go = asyncio.Event()
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "websocket.disconnect":
                return

    transport, ws, _ = await connect(app, ws_max_queue=4)
    assert transport.written.startswith(b"HTTP/1.1 101 ")
    ws.data_received(b"".join(frame(0x1, b"m%d" % i) for i in range(3)))
    assert transport.reading
    ws.data_received(frame(0x1, b"m3"))
    assert not transport.reading  # four unread messages: stop reading the socket
    go.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.reading
    assert [m["text"] for m in received] == ["m0", "m1", "m2", "m3"]
    ws.connection_lost(None)
    for _ in range(5):
        await asyncio.sleep(0)
    assert received[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


async def test_send_waits_while_the_transport_is_paused_for_writing() -> None:
    sent: list[int] = []
    go = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        for i in range(3):
            await send({"type": "websocket.send", "text": str(i)})
            sent.append(i)

    transport, ws, _ = await connect(app)
    ws.pause_writing()
    go.set()
    for _ in range(10):
        await asyncio.sleep(0)
    # The first send wrote its frame, then waits for the transport to drain.
    assert sent == []
    assert transport.written.endswith(b"\x81\x010")
    ws.resume_writing()
    for _ in range(10):
        await asyncio.sleep(0)
    assert sent == [0, 1, 2]


async def test_shutdown_before_accept_closes_with_1001_after_accept() -> None:
    go = asyncio.Event()
    messages: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await go.wait()
        await send({"type": "websocket.accept"})
        messages.append(await receive())

    transport, ws, _ = await connect(app)
    ws.shutdown()
    go.set()
    for _ in range(10):
        await asyncio.sleep(0)
    head, _, rest = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert rest[:1] == b"\x88" and int.from_bytes(rest[2:4], "big") == 1001
    assert messages == [
        {"type": "websocket.disconnect", "code": 1001, "reason": "Server shutting down"}
    ]
    ws.data_received(frame(0x8, (1001).to_bytes(2, "big")))
    assert transport.closed


async def test_force_close_cancels_the_app() -> None:
    cancelled = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    transport, ws, state = await connect(app)
    ws.force_close()
    await asyncio.wait_for(cancelled.wait(), 5)
    assert transport.aborted
    ws.connection_lost(None)
    assert ws not in state.connections


async def test_peer_that_never_answers_the_close_is_dropped() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    saved = ws_module.CLOSE_TIMEOUT
    ws_module.CLOSE_TIMEOUT = 0.05
    try:
        transport, _, _ = await connect(app)
        await asyncio.sleep(0.2)
    finally:
        ws_module.CLOSE_TIMEOUT = saved
    assert transport.aborted
