"""End-to-end WebSocket tests: a real hurtle server on loopback, the `websockets` library as client.

Malformed handshakes and misbehaving peers go over raw sockets.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hurtle.asgi.http import ClientDisconnected
from tests.utils import RunningServer, run_server

App = Callable[[Any, Any, Any], Awaitable[None]]


def ws_url(server: RunningServer, path: str = "/") -> str:
    return f"ws://{server.host}:{server.port}{path}"


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


class Recorder:
    """An app that accepts, records what it receives, and runs a script after accept."""

    def __init__(self, after_accept: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.after_accept = after_accept
        self.done = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        self.scopes.append(scope)
        self.received.append(await receive())
        await send({"type": "websocket.accept"})
        try:
            if self.after_accept is not None:
                await self.after_accept(send)
            while True:
                message = await receive()
                self.received.append(message)
                if message["type"] == "websocket.disconnect":
                    break
            # Sending on a closed WebSocket raises the HTTP cycle's OSError subclass.
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except ClientDisconnected as exc:
                self.errors.append(exc)
        finally:
            self.done = True


def raw_handshake(port: int, extra: bytes = b"", version: bytes = b"13") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: "
        + version
        + b"\r\n"
        + extra
        + b"\r\n"
    )
    return sock


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


# -- messages ---------------------------------------------------------------------


async def test_echo_text_and_binary() -> None:
    with run_server(echo_app) as server:
        async with connect(ws_url(server), max_size=None) as ws:
            await ws.send("hello ☃")
            assert await ws.recv() == "hello ☃"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            big = os.urandom(1 << 20)
            await ws.send(big)
            assert await ws.recv() == big


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_ten_thousand_messages_in_order(compression: str | None) -> None:
    with run_server(echo_app) as server:
        async with connect(ws_url(server), compression=compression) as ws:

            async def sender() -> None:
                for i in range(10_000):
                    await ws.send(str(i))

            task = asyncio.create_task(sender())
            for i in range(10_000):
                assert await ws.recv() == str(i)
            await task


async def test_compression_negotiated_and_declined() -> None:
    with run_server(echo_app) as server:
        async with connect(ws_url(server), compression="deflate") as ws:
            assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
            await ws.send("compressible " * 1000)
            assert await ws.recv() == "compressible " * 1000
        async with connect(ws_url(server), compression=None) as ws:
            assert "sec-websocket-extensions" not in ws.response.headers
    with run_server(echo_app, ws_per_message_deflate=False) as server:
        async with connect(ws_url(server), compression="deflate") as ws:
            assert "sec-websocket-extensions" not in ws.response.headers
            await ws.send("plain")
            assert await ws.recv() == "plain"


async def test_scope() -> None:
    app = Recorder()
    with run_server(app, root_path="/root") as server:
        async with connect(
            ws_url(server, "/chat%20room?x=1"),
            subprotocols=["one", "two"],  # type: ignore[list-item]
            additional_headers={"X-Test": "yes"},
        ):
            pass
        await eventually(lambda: app.done)
    scope = app.scopes[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/root/chat room"
    assert scope["raw_path"] == b"/root/chat%20room"
    assert scope["query_string"] == b"x=1"
    assert scope["root_path"] == "/root"
    assert scope["subprotocols"] == ["one", "two"]
    assert (b"x-test", b"yes") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert isinstance(scope["state"], dict)
    assert app.received[0] == {"type": "websocket.connect"}


async def test_subprotocol_and_headers_on_accept() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": scope["subprotocols"][-1],
                "headers": [(b"x-custom", b"value"), (b"server", b"app/1")],
            }
        )
        await send({"type": "websocket.close"})

    with run_server(app) as server:
        async with connect(ws_url(server), subprotocols=["a", "b"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "b"
            assert ws.response.headers["x-custom"] == "value"
            # The app's Server replaces the server's own (RFC 9110 5.3).
            assert ws.response.headers.get_all("server") == ["app/1"]
            assert len(ws.response.headers.get_all("date")) == 1


# -- closing -------------------------------------------------------------------------


async def test_client_close_with_code_and_reason() -> None:
    app = Recorder()
    with run_server(app) as server:
        async with connect(ws_url(server)) as ws:
            await ws.send("one")
            await ws.close(4001, "client leaves")
        await eventually(lambda: app.done)
    assert app.received[1] == {"type": "websocket.receive", "text": "one"}
    assert app.received[-1] == {
        "type": "websocket.disconnect",
        "code": 4001,
        "reason": "client leaves",
    }
    assert len(app.errors) == 1


async def test_server_close_with_code_and_reason() -> None:
    async def close(send: Any) -> None:
        await send({"type": "websocket.close", "code": 4002, "reason": "server says bye"})

    app = Recorder(close)
    with run_server(app) as server:
        async with connect(ws_url(server)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 4002
            assert info.value.rcvd.reason == "server says bye"
            # The server closes TCP after the closing handshake (RFC 6455 7.1.1).
            await asyncio.wait_for(ws.wait_closed(), 5)
        await eventually(lambda: app.done)
    assert len(app.errors) == 1


def test_close_without_code_reports_1005_and_dropped_connection_1006() -> None:
    app = Recorder()
    with run_server(app) as server:
        assert server.port is not None
        sock = raw_handshake(server.port)
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(masked(0x8, b""))
        assert sock.recv(16) == b"\x88\x00"  # the empty close echoed
        assert read_until_closed(sock) == b""  # then the server closes TCP
        sock.close()
        assert wait_sync(lambda: app.done)
        assert app.received[-1] == {"type": "websocket.disconnect", "code": 1005, "reason": ""}

        app.done = False
        sock = raw_handshake(server.port)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        sock.close()
        assert wait_sync(lambda: app.done)
        assert app.received[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def wait_sync(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def test_app_returning_closes_with_1000_and_app_error_with_1011() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        if scope["path"] == "/error":
            raise RuntimeError("boom")

    with run_server(app) as server:
        async with connect(ws_url(server)) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000
        async with connect(ws_url(server, "/error")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011


async def test_graceful_shutdown_closes_with_1001() -> None:
    app = Recorder()
    with run_server(app) as server:
        ws = await connect(ws_url(server))
        await eventually(lambda: len(app.received) == 1)
        receiver = asyncio.create_task(ws.recv())
        server.server.should_exit = True
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(receiver, 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        await eventually(lambda: app.done)
    assert app.received[-1]["type"] == "websocket.disconnect"
    assert app.received[-1]["code"] == 1001


# -- the handshake --------------------------------------------------------------------


async def test_close_before_accept_is_403() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.close"})

    with run_server(app) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(server)):
                pass
        assert info.value.response.status_code == 403


async def test_denial_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"no token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})

    with run_server(app) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(server)):
                pass
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "no token"
        assert response.body == b"go away"
        # The connection closes after a denial, and the head says so.
        assert response.headers["connection"] == "close"


async def test_app_error_before_accept_is_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            raise RuntimeError("boom")

    with run_server(app) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(server)):
                pass
        assert info.value.response.status_code == 500


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 426),
        (b"Sec-WebSocket-Version: 13\r\n", 400),
        (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n", 400),
    ],
)
def test_invalid_handshakes(request_head: bytes, status: int) -> None:
    with run_server(echo_app) as server:
        assert server.port is not None
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: keep-alive, Upgrade\r\n" + request_head + b"\r\n"
        )
        response = read_until_closed(sock)
        sock.close()
        assert response.startswith(b"HTTP/1.1 %d " % status)
        if status == 426:
            assert b"\r\nsec-websocket-version: 13\r\n" in response
        # The server goes on serving.
        assert httpx.get(server.url).text == "plain http"


def test_plain_http_is_never_mistaken_for_an_upgrade() -> None:
    with run_server(echo_app) as server:
        # Upgrade without Connection: upgrade, and Connection: upgrade to something else.
        assert httpx.get(server.url, headers={"upgrade": "websocket"}).text == "plain http"
        response = httpx.get(server.url, headers={"upgrade": "h2c", "connection": "upgrade"})
        assert response.text == "plain http"
    with run_server(echo_app, ws="none") as server:
        assert server.port is not None
        sock = raw_handshake(server.port)
        sock.settimeout(5)
        response = b""
        while b"plain http" not in response:
            chunk = sock.recv(4096)
            assert chunk
            response += chunk
        assert response.startswith(b"HTTP/1.1 200 ")
        sock.close()


# -- limits and timers ----------------------------------------------------------------


async def test_max_size_closes_with_1009() -> None:
    with run_server(echo_app, ws_max_size=1000) as server:
        async with connect(ws_url(server), compression=None) as ws:
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        # Counted after decompression: a small compressed message that inflates too far.
        async with connect(ws_url(server), compression="deflate") as ws:
            await ws.send(b"\x00" * 5000)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_ping_timeout_closes_with_1011() -> None:
    app = Recorder()
    with run_server(app, ws_ping_interval=0.2, ws_ping_timeout=0.3) as server:
        assert server.port is not None
        sock = raw_handshake(server.port)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        data = head.split(b"\r\n\r\n", 1)[1]
        started = time.monotonic()
        data += read_until_closed(sock)  # never answer the ping
        elapsed = time.monotonic() - started
        sock.close()
        assert data[:2] == b"\x89\x04"  # the server's ping
        assert b"\x88" in data[6:]
        close = data[data.index(b"\x88", 6) :]
        assert int.from_bytes(close[2:4], "big") == 1011
        assert elapsed < 5
        assert wait_sync(lambda: app.done)
        assert app.received[-1]["code"] == 1011


async def test_pings_answered_both_ways() -> None:
    with run_server(echo_app, ws_ping_interval=0.1, ws_ping_timeout=1.0) as server:
        async with connect(ws_url(server), ping_interval=None) as ws:
            pong = await ws.ping(b"client ping")
            await asyncio.wait_for(pong, 5)
            # The library answers the server's pings itself; the connection lives on.
            await asyncio.sleep(0.5)
            await ws.send("still here")
            assert await ws.recv() == "still here"


async def test_client_frames_before_accept_wait_for_it() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await asyncio.sleep(0.2)
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "got " + message["text"]})
        loop.call_soon_threadsafe(release.set)

    with run_server(app) as server:
        assert server.port is not None
        sock = raw_handshake(server.port)
        sock.sendall(masked(0x1, b"early"))  # before the 101: held until accept
        await asyncio.wait_for(release.wait(), 5)
        data = b""
        while b"got early" not in data:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 ")
        sock.close()


async def test_access_log_line_for_a_websocket(caplog: pytest.LogCaptureFixture) -> None:
    # The shared access-log line, with "WebSocket" where HTTP has its method.
    with (
        caplog.at_level(logging.INFO, logger="hurtle.access"),
        run_server(echo_app, access_log=True) as server,
    ):
        async with connect(ws_url(server, "/chat?x=%1b")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
    lines = [r.getMessage() for r in caplog.records if r.name == "hurtle.access"]
    assert any(line.endswith('"WebSocket /chat?x=%1b HTTP/1.1" 101') for line in lines), lines
