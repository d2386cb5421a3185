"""What an HTTP/1.1 connection learns from its transport, and what it leaves behind.

`H1Protocol.connection_made` decides TLS and socket access once per transport
class, and leaves TCP_NODELAY to the event loop; these tests hold both loops to
that, over real sockets, for TCP, TLS and Unix sockets served by one process.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hurtle.config import Config
from hurtle.io.h1 import H1Protocol
from hurtle.io.h2 import H2Protocol
from hurtle.io.state import ServerState
from tests.apps.http_apps import RawConnection, request
from tests.fakes import FakeTransport
from tests.h2_helpers import Certs, RawH2
from tests.utils import run_server

pytestmark = pytest.mark.timeout(60)

LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")),
]


def scope_app(scopes: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _check_loop(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")


@pytest.mark.parametrize("loop", LOOPS)
def test_accepted_tcp_connections_have_nodelay(loop: str) -> None:
    # hurtle does not set TCP_NODELAY itself: both loops' TCP transports do.
    _check_loop(loop)
    with (
        run_server(scope_app([]), loop=loop, access_log=False) as srv,
        RawConnection(srv.port) as conn,
    ):
        conn.send(request("GET", "/"))
        assert conn.read_response().body == b"ok"
        (protocol,) = list(srv.server.state.connections)
        sock = protocol.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.parametrize("loop", LOOPS)
def test_scope_follows_each_transport_kind(loop: str, certs: Certs, tmp_path: Path) -> None:
    # Plain TCP, TLS and a Unix socket in one process: what is decided once per
    # transport class must not leak from one kind of connection to another.
    _check_loop(loop)
    scopes: list[dict[str, Any]] = []
    app = scope_app(scopes)
    tls = {"ssl_certfile": certs.certfile, "ssl_keyfile": certs.keyfile}
    for options in ({}, tls, {}, tls):
        with run_server(app, loop=loop, access_log=False, http="h1", **options) as srv:
            scheme = "https" if options else "http"
            verify = certs.client_context(["http/1.1"]) if options else True
            with httpx.Client(verify=verify) as client:
                assert client.get(f"{scheme}://127.0.0.1:{srv.port}/").text == "ok"
        scope = scopes.pop()
        assert scope["scheme"] == scheme
        assert scope["server"] == ("127.0.0.1", srv.port)
        extensions = scope["extensions"]
        assert "http.response.pathsend" in extensions
        assert "http.response.early_hint" in extensions
        if options:
            assert extensions["tls"]["tls_version"] in (0x0303, 0x0304)
            # os.sendfile cannot encrypt: no zerocopysend over TLS.
            assert "http.response.zerocopysend" not in extensions
        else:
            assert "tls" not in extensions
            assert "http.response.zerocopysend" in extensions
    if os.name == "posix":
        path = str(tmp_path / "hurtle.sock")
        with run_server(app, loop=loop, access_log=False, uds=path):
            transport = httpx.HTTPTransport(uds=path)
            with httpx.Client(transport=transport) as client:
                assert client.get("http://localhost/").text == "ok"
        scope = scopes.pop()
        assert scope["scheme"] == "http"
        assert scope["server"] == (path, None)
        assert scope["client"] is None
        assert "http.response.zerocopysend" in scope["extensions"]


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  # closed after the response
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # keep-alive, then the client goes
        b"GET / HTTP/1.1\r\nHost",  # gone in the middle of a head
        b"",  # gone before a byte
    ],
)
async def test_a_closed_connection_is_freed_by_reference_counting(head: bytes) -> None:
    # No reference cycle may outlive connection_lost: at tens of thousands of
    # connections a second, each one left to the cyclic GC costs more than
    # its whole set-up (parser, cycle, scope, task, timer).
    config = Config(hello, access_log=False)
    state = ServerState(config)
    for _ in range(2):  # the first connection warms caches up (imports, class lookups)
        gc.collect()
        gc.disable()
        try:
            protocol = H1Protocol(config, hello, state)
            transport = FakeTransport()
            protocol.connection_made(transport)  # type: ignore[arg-type]
            if head:
                protocol.data_received(head)
            for _ in range(5):
                await asyncio.sleep(0)
            assert transport.written.endswith(b"hi") == head.endswith(b"\r\n\r\n")
            protocol.connection_lost(None)
            del protocol, transport
            for _ in range(3):
                await asyncio.sleep(0)
            assert gc.collect() == 0
        finally:
            gc.enable()
    assert not state.connections and not state.tasks


@pytest.mark.parametrize("loop", LOOPS)
def test_http2_connections_have_nodelay(loop: str) -> None:
    # HTTP/2 (here with prior knowledge) leaves TCP_NODELAY to the loop too.
    _check_loop(loop)
    with run_server(scope_app([]), loop=loop, access_log=False) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            assert client.get("/").status == 200
            (protocol,) = list(srv.server.state.connections)
            assert isinstance(protocol, H2Protocol)
            assert protocol.transport is not None
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_connections_are_served_on_the_loop_the_state_names(loop: str) -> None:
    # The server records its loop in its state when it starts serving;
    # protocols read it there (a lookup costs a getpid() call on 3.11).
    _check_loop(loop)
    seen: list[asyncio.AbstractEventLoop] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(asyncio.get_running_loop())
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    with run_server(app, loop=loop, access_log=False) as srv:
        assert httpx.get(srv.url).text == "ok"
        assert seen == [srv.server.state.loop]


@pytest.mark.parametrize("protocol_class", [H1Protocol, H2Protocol])
def test_protocols_take_the_loop_from_the_state(
    monkeypatch: pytest.MonkeyPatch, protocol_class: Any
) -> None:
    config = Config(hello, access_log=False)
    state = ServerState(config)
    loop = asyncio.new_event_loop()
    try:
        state.loop = loop

        def no_lookup() -> asyncio.AbstractEventLoop:
            raise AssertionError("the protocol looked its loop up")

        monkeypatch.setattr(asyncio, "get_event_loop", no_lookup)
        assert protocol_class(config, hello, state).loop is loop
    finally:
        loop.close()
