"""Streamed response parts written within one loop iteration leave in one write."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tests.fakes import FakeTransport, connect_h1
from tests.utils import run_server

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(32):
        await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def test_parts_sent_without_yielding_leave_in_one_write() -> None:
    protocol, transport, _ = connect_h1(streaming_app, access_log=False)
    protocol.data_received(REQUEST)
    for _ in range(20):
        await asyncio.sleep(0)
    # Head, 32 chunks and the last chunk: one write (33+ without coalescing).
    assert len(transport.writes) == 1
    raw = transport.writes[0]
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.count(b"400\r\n" + b"x" * 1024 + b"\r\n") == 32
    assert raw.endswith(b"0\r\n\r\n")
    protocol.connection_lost(None)


async def test_large_parts_are_written_at_once_for_backpressure() -> None:
    async def big_stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await send({"type": "http.response.body", "body": b"y" * 40000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport, _ = connect_h1(big_stream, access_log=False)
    protocol.data_received(REQUEST)
    for _ in range(20):
        await asyncio.sleep(0)
    # Past 64 KiB held, the parts go to the transport (whose high-water mark
    # pauses send()); they are never all held until the end.
    assert len(transport.writes) >= 2
    assert b"".join(transport.writes).count(b"y" * 40000) == 4
    protocol.connection_lost(None)


def test_a_part_reaches_the_client_while_the_app_waits() -> None:
    # Server-sent events: one part, then the app waits for something the
    # client triggers; the part must not sit in the server meanwhile.
    release = asyncio.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def sse(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        loop_box.append(asyncio.get_running_loop())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"data: two\n\n"})

    with (
        run_server(sse, lifespan="off") as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(REQUEST)
        received = b""
        while b"data: one" not in received:
            chunk = sock.recv(65536)
            assert chunk, "closed before the first event"
            received += chunk
        assert b"data: two" not in received
        loop_box[0].call_soon_threadsafe(release.set)
        while not received.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "closed before the end"
            received += chunk
    assert b"data: two" in received


def big_body_app(method_body: bytes, status: int = 200, length: bool = True) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"%d" % len(method_body))] if length else []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": method_body})

    return app


async def serve_one(app: Any, request: bytes) -> FakeTransport:
    protocol, transport, _ = connect_h1(app, access_log=False)
    protocol.data_received(request)
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


async def test_a_large_complete_body_is_not_copied_into_the_head() -> None:
    body = b"z" * 200_000
    for length in (True, False):
        transport = await serve_one(big_body_app(body, length=length), REQUEST)
        assert transport.writes == []
        [(head, sent)] = transport.vectors
        assert sent is body  # the app's own object: no copy
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 200000\r\n" in head
        assert head.endswith(b"\r\n\r\n")


async def test_a_large_body_for_head_or_204_is_not_written() -> None:
    body = b"z" * 200_000
    transport = await serve_one(big_body_app(body, length=False), REQUEST.replace(b"GET", b"HEAD"))
    assert transport.vectors == []
    [head] = transport.writes
    assert b"content-length: 200000\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    transport = await serve_one(big_body_app(body, status=204, length=False), REQUEST)
    assert transport.vectors == []
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"content-length" not in head
    assert head.endswith(b"\r\n\r\n")


def test_large_bodies_end_to_end() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [] if scope["path"] == "/nolength" else [(b"content-length", b"262144")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with (
        run_server(app) as server,
        socket.create_connection((server.host, server.port), timeout=10) as sock,
    ):
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /nolength HTTP/1.1\r\nHost: a\r\n\r\n"
            b"HEAD /a HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        data = b""
        expected = 2 * len(body)
        while data.count(b"HTTP/1.1 200 OK") < 3 or len(data) < expected:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed early"
            data += chunk
            if data.count(b"HTTP/1.1 200 OK") == 3 and data.endswith(b"\r\n\r\n"):
                break
        first, rest = data.split(b"\r\n\r\n", 1)
        assert b"content-length: 262144" in first
        assert rest[: len(body)] == body
        second, rest = rest[len(body) :].split(b"\r\n\r\n", 1)
        assert b"content-length: 262144" in second
        assert rest[: len(body)] == body
        third = rest[len(body) :]
        assert third.startswith(b"HTTP/1.1 200 OK\r\n")
        assert third.endswith(b"\r\n\r\n")
        assert b"content-length: 262144" in third
