"""WebSocket over HTTP/2 (RFC 8441) end to end: a hand-driven `h2` client does the
extended CONNECT and speaks RFC 6455 frames in DATA frames, over cleartext prior
knowledge and over TLS.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import h2.errors
import h2.events
import h2.settings
import pytest

from tests.h2_helpers import Certs, RawH2, Response
from tests.utils import run_server, wait_for

pytestmark = pytest.mark.timeout(60)

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


# -- RFC 6455 frames, client side --------------------------------------------------------


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, masked frame (section 5.2)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def parse_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Server frames (unmasked, final) in `data`, and the incomplete rest."""
    frames = []
    while len(data) >= 2:
        opcode = data[0] & 0x0F
        size = data[1] & 0x7F
        offset = 2
        if size == 126:
            if len(data) < 4:
                break
            size, offset = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            if len(data) < 10:
                break
            size, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + size:
            break
        frames.append((opcode, data[offset : offset + size]))
        data = data[offset + size :]
    return frames, data


class WSClient:
    """One WebSocket on a stream of a `RawH2` connection."""

    def __init__(self, client: RawH2, sid: int) -> None:
        self.client = client
        self.sid = sid
        self.read = 0
        self.frames: list[tuple[int, bytes]] = []

    @property
    def response(self) -> Response:
        return self.client.responses[self.sid]

    def send(self, opcode: int, payload: bytes = b"", end: bool = False) -> None:
        self.client.send_body(self.sid, client_frame(opcode, payload), end)

    def _parse(self) -> None:
        body = self.response.body
        frames, rest = parse_frames(body[self.read :])
        self.frames.extend(frames)
        self.read = len(body) - len(rest)

    def next_frame(self) -> tuple[int, bytes]:
        def ready() -> bool:
            self._parse()
            return bool(self.frames) or self.response.ended or self.response.reset is not None

        self.client.pump(ready)
        assert self.frames, "the stream ended without another frame"
        return self.frames.pop(0)

    def wait_end(self) -> Response:
        response = self.response
        self.client.pump(lambda: response.ended or response.reset is not None)
        return response


def open_client(port: int, certs: Certs | None = None) -> RawH2:
    client = RawH2(port, tls=certs.client_context(["h2"]) if certs else None)
    client.pump(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in client.events))
    return client


def connect(
    client: RawH2,
    path: str = "/echo",
    headers: list[tuple[str, str]] | None = None,
    scheme: str = "http",
) -> WSClient:
    """The extended CONNECT (RFC 8441 section 4); returns once the response head came."""
    sid = client.conn.get_next_available_stream_id()
    client.responses[sid] = Response()
    client.conn.send_headers(
        sid,
        [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", scheme),
            (":path", path),
            (":authority", "localhost"),
            ("sec-websocket-version", "13"),
            *(headers or []),
        ],
    )
    client.flush()
    ws = WSClient(client, sid)
    response = ws.response
    client.pump(lambda: response.status != 0 or response.reset is not None or response.ended)
    return ws


# -- the app ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.disconnects: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()


def make_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain"})
            return
        if scope["type"] != "websocket":
            return  # lifespan
        rec.scopes.append(scope)
        try:
            assert await receive() == {"type": "websocket.connect"}
            path = scope["path"]
            if path == "/deny":
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")],
                    }
                )
                await send(
                    {"type": "websocket.http.response.body", "body": b"no ", "more_body": True}
                )
                await send({"type": "websocket.http.response.body", "body": b"entry"})
                return
            if path == "/reject":
                await send({"type": "websocket.close"})
                return
            subprotocols = scope["subprotocols"]
            await send(
                {
                    "type": "websocket.accept",
                    "subprotocol": subprotocols[0] if subprotocols else None,
                    "headers": [(b"x-accepted", b"yes"), (b"server", b"app/1")],
                }
            )
            if path == "/close":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    rec.disconnects.append(message)
                    return
                if message.get("text") is not None:
                    await send({"type": "websocket.send", "text": message["text"]})
                else:
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
        except BaseException as exc:
            rec.errors.append(exc)
            raise
        finally:
            rec.done.set()

    return app


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "tls"])
def test_echo_text_binary_ping_and_client_close(certs: Certs, rec: Recorder, tls: bool) -> None:
    options: dict[str, Any] = (
        {"ssl_certfile": certs.certfile, "ssl_keyfile": certs.keyfile} if tls else {}
    )
    with run_server(make_app(rec), **options) as srv:
        assert srv.port is not None
        client = open_client(srv.port, certs if tls else None)
        assert client.conn.remote_settings.enable_connect_protocol == 1
        ws = connect(client, "/echo?x=1", scheme="https" if tls else "http")
        assert ws.response.status == 200
        headers = dict(ws.response.headers)
        assert headers[b"x-accepted"] == b"yes"
        assert b"sec-websocket-accept" not in headers
        ws.send(TEXT, "héllo".encode())
        assert ws.next_frame() == (TEXT, "héllo".encode())
        ws.send(BINARY, bytes(range(256)) * 4)
        assert ws.next_frame() == (BINARY, bytes(range(256)) * 4)
        ws.send(PING, b"pp")
        assert ws.next_frame() == (PONG, b"pp")
        ws.send(CLOSE, close_payload(1000, "done"))
        assert ws.next_frame() == (CLOSE, close_payload(1000))  # the code, echoed
        assert ws.wait_end().ended  # END_STREAM follows the close handshake
        assert rec.done.wait(10)
        assert rec.disconnects == [{"type": "websocket.disconnect", "code": 1000, "reason": "done"}]
        scope = rec.scopes[0]
        assert scope["http_version"] == "2"
        assert scope["scheme"] == ("wss" if tls else "ws")
        assert scope["path"] == "/echo" and scope["query_string"] == b"x=1"
        assert (b"host", b"localhost") in scope["headers"]
        assert (b"sec-websocket-version", b"13") in scope["headers"]
        assert not rec.errors
        # The connection goes on serving.
        assert client.get("/plain").status == 200
        client.close()


def test_subprotocol_and_permessage_deflate_headers(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(
            client,
            headers=[
                ("sec-websocket-protocol", "chat, superchat"),
                ("sec-websocket-extensions", "permessage-deflate"),
            ],
        )
        assert ws.response.status == 200
        headers = ws.response.headers
        assert [v for n, v in headers if n == b"sec-websocket-protocol"] == [b"chat"]
        extensions = [v for n, v in headers if n == b"sec-websocket-extensions"]
        assert len(extensions) == 1 and extensions[0].startswith(b"permessage-deflate")
        # The app's Server replaces the server's own (RFC 9110 5.3).
        assert [v for n, v in headers if n == b"server"] == [b"app/1"]
        assert len([v for n, v in headers if n == b"date"]) == 1
        assert rec.scopes[0]["subprotocols"] == ["chat", "superchat"]
        ws.send(CLOSE, close_payload(1000))
        assert ws.next_frame()[0] == CLOSE
        client.close()


def test_server_close_with_code(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client, "/close")
        assert ws.response.status == 200
        assert ws.next_frame() == (CLOSE, close_payload(4000, "bye"))
        ws.send(CLOSE, close_payload(4000, "bye"), end=True)
        response = ws.wait_end()
        assert response.ended or response.reset == h2.errors.ErrorCodes.NO_ERROR
        assert rec.done.wait(10)
        assert rec.disconnects[0]["code"] == 4000
        client.close()


def test_denial_response(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client, "/deny")
        response = ws.wait_end()
        assert response.status == 401
        assert (b"x-why", b"token") in response.headers
        assert response.body == b"no entry"
        assert client.get("/plain").status == 200
        client.close()


def test_close_before_accept_is_403(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client, "/reject")
        response = ws.wait_end()
        assert response.status == 403
        assert response.body == b""
        client.close()


def test_client_reset_is_disconnect_1006(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client)
        ws.send(TEXT, b"one")
        assert ws.next_frame() == (TEXT, b"one")
        client.conn.reset_stream(ws.sid, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        assert rec.done.wait(10)
        assert rec.disconnects == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
        assert client.get("/plain").status == 200
        client.close()


def test_message_over_max_size_closes_1009(rec: Recorder) -> None:
    with run_server(make_app(rec), ws_max_size=1000) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client)
        ws.send(BINARY, b"x" * 1000)
        assert ws.next_frame() == (BINARY, b"x" * 1000)
        ws.send(BINARY, b"x" * 1001)
        opcode, payload = ws.next_frame()
        assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == 1009
        assert ws.wait_end().ended or ws.response.reset is not None
        assert rec.done.wait(10)
        assert rec.disconnects[0]["code"] == 1009
        client.close()


def test_large_messages_respect_a_small_client_window(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        # A 1 KiB stream window: the server must wait for WINDOW_UPDATEs.
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
        client.flush()
        ws = connect(client)
        payload = os.urandom(300_000)
        ws.send(BINARY, payload)
        assert ws.next_frame() == (BINARY, payload)
        ws.send(CLOSE, close_payload(1000))
        assert ws.next_frame()[0] == CLOSE
        client.close()


def test_plain_connect_is_refused(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        sid = client.conn.get_next_available_stream_id()
        client.responses[sid] = Response()
        client.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")])
        client.flush()
        assert client.response(sid).status == 501
        ws = connect(client, headers=[])
        assert ws.response.status == 200  # the connection is fine
        client.close()


def test_unknown_protocol_is_refused(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        sid = client.conn.get_next_available_stream_id()
        client.responses[sid] = Response()
        client.conn.send_headers(
            sid,
            [
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "localhost"),
            ],
        )
        client.flush()
        assert client.response(sid).status == 501
        client.close()


def test_protocol_without_the_setting_is_refused(rec: Recorder) -> None:
    with run_server(make_app(rec), ws="none") as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        assert client.conn.remote_settings.enable_connect_protocol == 0
        ws = connect(client)
        assert ws.response.reset == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert ws.response.status == 0
        assert not rec.scopes
        assert client.get("/plain").status == 200
        client.close()


def test_wrong_version_is_400(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        sid = client.conn.get_next_available_stream_id()
        client.responses[sid] = Response()
        client.conn.send_headers(
            sid,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "localhost"),
                ("sec-websocket-version", "8"),
            ],
        )
        client.flush()
        response = client.response(sid)
        assert response.status == 400
        assert (b"sec-websocket-version", b"13") in response.headers
        assert not rec.scopes
        client.close()


def test_limit_concurrency_answers_503(rec: Recorder) -> None:
    with run_server(make_app(rec), limit_concurrency=1) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        first = connect(client)
        assert first.response.status == 200
        second = connect(client)
        assert second.wait_end().status == 503
        client.close()


def test_graceful_shutdown_closes_1001_then_goaway(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client)
        ws.send(TEXT, b"hi")
        assert ws.next_frame() == (TEXT, b"hi")
        srv.server.should_exit = True
        opcode, payload = ws.next_frame()
        assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == 1001
        client.pump(lambda: client.goaway is not None)
        assert client.goaway is not None
        assert client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        ws.send(CLOSE, close_payload(1001), end=True)
        client.pump(lambda: client.closed)
        assert wait_for(rec.done.is_set)
        assert rec.disconnects[0]["code"] == 1001
        client.close()


def test_slow_app_pauses_reading_then_catches_up() -> None:
    release = threading.Event()
    got: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.to_thread(release.wait, 30)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            got.append(message["bytes"])
            await send({"type": "websocket.send", "bytes": message["bytes"]})

    with run_server(app, ws_max_queue=2) as srv:
        assert srv.port is not None
        client = open_client(srv.port)
        ws = connect(client)
        for i in range(6):
            ws.send(BINARY, bytes([i]) * 100)
        release.set()
        for i in range(6):
            assert ws.next_frame() == (BINARY, bytes([i]) * 100)
        assert got == [bytes([i]) * 100 for i in range(6)]
        client.close()
