"""HTTP/2 end to end: real servers on loopback, `httpx` (http2=True), the `h2` library
as a raw client, and curl when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.errors
import h2.events
import httpx
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame

from hurtle.asgi.http import ClientDisconnected
from tests.h2_helpers import Certs, RawH2
from tests.utils import run_server, wait_for

pytestmark = pytest.mark.timeout(60)

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


class Recorder:
    """What the app saw, shared with the test thread."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.calls = 0
        self.messages: list[Any] = []
        self.errors: list[BaseException] = []
        self.started = threading.Event()
        self.release = threading.Event()


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def make_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        rec.calls += 1
        rec.scopes.append(scope)
        path = scope["path"]
        if path == "/echo":
            body = await read_body(receive)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif path.startswith("/big/"):
            size = int(path.rsplit("/", 1)[1])
            chunk = b"x" * 65536
            await send({"type": "http.response.start", "status": 200, "headers": []})
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                sent += len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": sent < size})
        elif path == "/slow":
            rec.started.set()
            await asyncio.get_running_loop().run_in_executor(None, rec.release.wait, 10)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"slow done"})
        elif path == "/wait-disconnect":
            rec.started.set()
            message = await receive()
            while message["type"] != "http.disconnect":
                message = await receive()
            rec.messages.append(message)
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"late"})
            except OSError as exc:
                rec.errors.append(exc)
        elif path == "/trailers":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"data"})
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
        elif path == "/early":
            await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"after hints"})
        elif path == "/file":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": scope["query_string"].decode()})
        elif path == "/error":
            raise RuntimeError("boom")
        else:
            body = await read_body(receive)
            text = f"{scope['http_version']} {scope['scheme']} {scope['method']} {len(body)}"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
                }
            )
            await send({"type": "http.response.body", "body": text.encode()})

    return app


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.release.set()


# -- negotiation -------------------------------------------------------------------------


def test_httpx_http2_over_tls(certs: Certs, rec: Recorder) -> None:
    with run_server(make_app(rec), ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile) as srv:
        url = f"https://127.0.0.1:{srv.port}"
        with httpx.Client(http2=True, verify=certs.client_context()) as client:
            response = client.get(url + "/x?q=1", headers={"cookie": "a=1"})
            assert response.http_version == "HTTP/2"
            assert response.text == "2 https GET 0"
            # Connection-specific headers never reach an HTTP/2 response.
            assert "connection" not in response.headers
            assert response.headers["server"] == "hurtle"
            assert response.headers["content-length"] == "13"
            echo = client.post(url + "/echo", content=b"a" * 300_000)
            assert echo.content == b"a" * 300_000
    scope = rec.scopes[0]
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "https"
    assert scope["query_string"] == b"q=1"
    assert scope["headers"][0] == (b"host", f"127.0.0.1:{srv.port}".encode())
    assert not any(name.startswith(b":") for name, _ in scope["headers"])
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert "http.response.trailers" in scope["extensions"]


def test_tls_alpn_http11_still_served(certs: Certs, rec: Recorder) -> None:
    context = certs.client_context(["http/1.1"])
    with (
        run_server(make_app(rec), ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile) as srv,
        httpx.Client(http2=False, verify=context) as client,
    ):
        response = client.get(f"https://127.0.0.1:{srv.port}/")
    assert response.http_version == "HTTP/1.1"
    assert response.text == "1.1 https GET 0"


def test_prior_knowledge_many_streams_one_connection(rec: Recorder) -> None:
    async def main(url: str) -> list[str]:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            responses = await asyncio.gather(
                *(client.post(url + "/", content=b"b" * i) for i in range(60))
            )
            return [r.text for r in responses]

    with run_server(make_app(rec)) as srv:
        texts = asyncio.run(main(srv.url))
    assert texts == [f"2 http POST {i}" for i in range(60)]


def test_h2c_upgrade_with_body(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port, upgrade=True)
        head = (
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            f"Upgrade: h2c\r\nHTTP2-Settings: {client.upgrade_settings.decode()}\r\n"
            "Content-Length: 11\r\n\r\n"
        )
        client.send_raw(head.encode() + b"hello")
        time.sleep(0.05)
        # The rest of the body comes later, still in HTTP/1.1 framing.
        client.send_raw(b" world")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += client.sock.recv(4096)
        head_bytes, _, rest = answer.partition(b"\r\n\r\n")
        assert head_bytes.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: h2c" in head_bytes.lower()
        client.flush()  # the client preface
        if rest:
            client.handle(client.conn.receive_data(rest))
        response = client.response(1)
        assert response.status == 200
        assert response.body == b"hello world"
        # The connection goes on as HTTP/2.
        assert client.get("/").body == b"2 http GET 0"
        client.close()


def test_http_h2_only_refuses_http11(rec: Recorder) -> None:
    with run_server(make_app(rec), http="h2") as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        assert client.get("/").status == 200
        client.close()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert not data.startswith(b"HTTP/1.1 200")


def test_http_h1_does_not_take_the_preface(rec: Recorder) -> None:
    with run_server(make_app(rec), http="h1") as srv:
        assert srv.port is not None
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data = sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 505 ")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("mode", ["--http2-prior-knowledge", "--http2", "tls"])
def test_curl(mode: str, certs: Certs, rec: Recorder) -> None:
    options: dict[str, Any] = {}
    if mode == "tls":
        options = {"ssl_certfile": certs.certfile, "ssl_keyfile": certs.keyfile}
    with run_server(make_app(rec), **options) as srv:
        if mode == "tls":
            args = ["--http2", "--cacert", certs.cafile, f"https://localhost:{srv.port}/echo"]
        else:
            args = [mode, f"{srv.url}/echo"]
        result = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_version}", "--data-binary", "curl body", *args],
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"curl body\n2"


# -- flow control --------------------------------------------------------------------------


def test_large_download_and_upload(rec: Recorder) -> None:
    size = 16 * 1024 * 1024
    with (
        run_server(make_app(rec)) as srv,
        httpx.Client(http1=False, http2=True, timeout=30) as client,
    ):
        start = time.monotonic()
        response = client.get(f"{srv.url}/big/{size}")
        elapsed = time.monotonic() - start
        assert len(response.content) == size
        echo = client.post(f"{srv.url}/echo", content=os.urandom(4 * 1024 * 1024))
        assert len(echo.content) == 4 * 1024 * 1024
    # Bounded only by the client's windows and the machine; generous for CI.
    assert elapsed < 20


def test_send_waits_for_the_client_window(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        # Do not acknowledge: the server may send one default window, then waits.
        sid = client.request("/big/1000000")
        original = client.conn.acknowledge_received_data
        client.conn.acknowledge_received_data = lambda *a, **k: None  # type: ignore[method-assign]
        received = client.responses[sid]
        client.pump(lambda: len(received.body) >= 65535)
        time.sleep(0.3)
        client.pump(lambda: True)
        assert len(received.body) == 65535
        assert not received.ended
        client.conn.acknowledge_received_data = original  # type: ignore[method-assign]
        original(len(received.body), sid)
        client.conn.increment_flow_control_window(1 << 24)
        client.conn.increment_flow_control_window(1 << 24, sid)
        client.flush()
        response = client.response(sid)
        assert len(response.body) == 1000000
        client.close()


# -- resets, errors, extensions ------------------------------------------------------------


def test_client_reset_disconnects_that_stream_only(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        waiting = client.request("/wait-disconnect", end=False)
        assert rec.started.wait(5)
        other = client.request("/echo", body=b"still here")
        client.conn.reset_stream(waiting, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        assert client.response(other).body == b"still here"
        assert wait_for(lambda: rec.errors, 5)
        client.close()
    assert rec.messages == [{"type": "http.disconnect"}]
    assert isinstance(rec.errors[0], ClientDisconnected)
    assert isinstance(rec.errors[0], OSError)


def test_app_error_answers_500_and_the_connection_goes_on(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        assert client.get("/error").status == 500
        assert client.get("/").status == 200
        client.close()


def test_trailers_early_hints_and_pathsend(rec: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    content = os.urandom(300_000)
    path.write_bytes(content)
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        trailers = client.get("/trailers")
        assert trailers.body == b"data"
        assert trailers.trailers == [(b"x-checksum", b"abc")]
        early = client.get("/early")
        assert early.informational == [103]
        assert early.body == b"after hints"
        sent = client.get(f"/file?{path}")
        assert sent.body == content
        assert (b"content-length", str(len(content)).encode()) in sent.headers
        head = client.get("/", method="HEAD")
        assert head.status == 200 and head.body == b""
        client.close()


def test_expect_100_continue(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        sid = client.request("/echo", headers=[("expect", "100-continue")], end=False)
        client.pump(lambda: client.responses[sid].informational == [100])
        client.send_body(sid, b"after continue")
        assert client.response(sid).body == b"after continue"
        client.close()


def test_request_body_limit(rec: Recorder) -> None:
    with run_server(make_app(rec), limit_request_body=1000) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        declared = client.get("/echo", body=b"x" * 2000, headers=[("content-length", "2000")])
        assert declared.status == 413
        streamed = client.response(client.request("/echo", body=b"y" * 5000))
        assert streamed.status == 413 or streamed.reset is not None
        assert client.get("/").status == 200
        client.close()


# -- shutdown and timeouts -----------------------------------------------------------------


def test_graceful_shutdown_sends_goaway_and_finishes_streams(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        sid = client.request("/slow")
        assert rec.started.wait(5)
        srv.server.should_exit = True
        client.pump(lambda: client.goaway is not None)
        assert client.goaway is not None
        assert client.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        assert client.goaway.last_stream_id == sid
        rec.release.set()
        response = client.response(sid)
        assert response.body == b"slow done"
        client.pump(lambda: client.closed)
        client.close()


def test_idle_connection_closed(rec: Recorder) -> None:
    with run_server(make_app(rec), timeout_keep_alive=0.3) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        assert client.get("/").status == 200
        start = time.monotonic()
        client.pump(lambda: client.closed, timeout=5)
        assert client.goaway is not None
        assert time.monotonic() - start < 3
        client.close()


# -- limits and attacks --------------------------------------------------------------------


def test_max_concurrent_streams_refuses_the_excess_stream_only(rec: Recorder) -> None:
    with run_server(make_app(rec), h2_max_concurrent_streams=2) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        first = client.request("/slow")
        second = client.request("/slow")
        third = client.request("/slow")
        client.pump(lambda: client.responses[third].reset is not None)
        assert client.responses[third].reset == h2.errors.ErrorCodes.REFUSED_STREAM
        rec.release.set()
        assert client.response(first).body == b"slow done"
        assert client.response(second).body == b"slow done"
        assert client.get("/").status == 200
        client.close()


def test_rapid_reset_goaway_and_no_app_task(rec: Recorder) -> None:
    with run_server(make_app(rec), h2_max_resets=100) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        for _ in range(150):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                sid,
                [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")],
            )
            client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            # HEADERS and RST_STREAM in one write: one read on the server.
            try:
                client.flush()
            except OSError:
                break
        client.pump(lambda: client.goaway is not None or client.closed)
        assert client.goaway is not None and client.goaway.error_code == CALM
        client.close()
        assert rec.calls == 0
        # The server goes on serving others.
        other = RawH2(srv.port)
        assert other.get("/").status == 200
        other.close()


def test_ping_flood(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        flood = b"".join(PingFrame(0, opaque_data=b"%08d" % i).serialize() for i in range(2000))
        client.send_raw(flood)
        client.pump(lambda: client.goaway is not None or client.closed)
        assert client.goaway is not None and client.goaway.error_code == CALM
        client.close()


def test_continuation_flood(rec: Recorder) -> None:
    with run_server(make_app(rec)) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        frames = [HeadersFrame(1, data=b"").serialize()]
        frames += [ContinuationFrame(1, data=b"\x00" * 10).serialize() for _ in range(500)]
        with contextlib.suppress(OSError):
            client.send_raw(b"".join(frames))
        client.pump(lambda: client.closed or client.goaway is not None)
        client.close()
        assert rec.calls == 0


def test_header_list_too_large(rec: Recorder) -> None:
    with run_server(make_app(rec), h2_max_header_list_size=4096) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        client.pump(lambda: client.conn.remote_settings.max_header_list_size == 4096)
        sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            sid,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "x"),
                (":path", "/"),
                ("x-big", "v" * 8000),
            ],
            end_stream=True,
        )
        client.flush()
        client.pump(lambda: client.goaway is not None or client.closed)
        assert client.goaway is not None and client.goaway.error_code == CALM
        client.close()
        assert rec.calls == 0


def test_reset_frame_flood_of_closed_streams(rec: Recorder) -> None:
    # RST_STREAM on streams already closed: no work, but counted.
    with run_server(make_app(rec), h2_max_resets=50) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        assert client.get("/").status == 200
        client.send_raw(b"".join(RstStreamFrame(1).serialize() for _ in range(10)))
        assert client.get("/").status == 200
        client.close()
