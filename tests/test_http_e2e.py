"""HTTP/1.x end to end: a real hurtle server on loopback, `httpx` and raw sockets as clients.

The router app in `tests.apps.http_apps` gives each behaviour its own path;
apps that must report back to the test (100-continue, disconnects) are built
per test around a `Probe`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import socket
import struct
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.apps.http_apps import (
    IncompleteResponse,
    Probe,
    RawConnection,
    app,
    chunked,
    make_disconnect_watcher,
    make_gated_echo,
    pattern_body,
    pattern_chunk,
    request,
)
from tests.utils import RunningServer, run_server, wait_for

TIMEOUT = httpx.Timeout(15.0)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, access_log=False) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def raw(server: RunningServer, **kwargs: Any) -> RawConnection:
    assert server.port is not None
    return RawConnection(server.port, **kwargs)


def assert_served(server: RunningServer) -> None:
    """A fresh connection gets a normal answer."""
    with raw(server) as conn:
        conn.send(request("GET", "/hello"))
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"hello"


# -- basics ---------------------------------------------------------------------------


def test_get(client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-length"] == "5"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["server"] == "hurtle"
    assert "date" in response.headers
    assert response.http_version == "HTTP/1.1"


def test_post_echo(client: httpx.Client) -> None:
    body = bytes(range(256)) * 100
    response = client.post("/echo", content=body)
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["x-method"] == "POST"


def test_post_chunked_from_httpx(client: httpx.Client) -> None:
    def gen() -> Iterator[bytes]:
        yield b"first,"
        yield b""
        yield b"second"

    response = client.post("/echo", content=gen())
    assert response.content == b"first,second"


def test_head(server: RunningServer, client: httpx.Client) -> None:
    response = client.head("/head-body")
    assert response.status_code == 200
    assert response.headers["content-length"] == "10"
    assert response.content == b""
    # On the wire: no body bytes, and the connection stays usable.
    with raw(server) as conn:
        conn.send(request("HEAD", "/head-body") + request("GET", "/head-body"))
        head = conn.read_response(method=b"HEAD")
        assert head.get(b"content-length") == b"10"
        get = conn.read_response()
        assert get.body == b"0123456789"


def test_head_of_a_streamed_response(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("HEAD", "/stream?n=3&size=5") + request("GET", "/hello"))
        head = conn.read_response(method=b"HEAD")
        assert head.status == 200
        after = conn.read_response()
        assert after.body == b"hello"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses_on_the_wire(server: RunningServer, code: int) -> None:
    with raw(server) as conn:
        conn.send(request("GET", f"/status?code={code}") + request("GET", "/hello"))
        first = conn.read_response()
        assert first.status == code
        assert first.get(b"transfer-encoding") is None
        second = conn.read_response()
        # Had the body leaked, it would show up as the start of this response.
        assert second.status == 200
        assert second.body == b"hello"


def test_not_found(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404


# -- keep-alive and pipelining ------------------------------------------------------------


def test_keep_alive_reuses_one_connection(server: RunningServer) -> None:
    with raw(server) as conn:
        ports = set()
        for i in range(5):
            conn.send(request("GET", f"/scope?i={i}"))
            response = conn.read_response()
            assert response.status == 200
            scope = json.loads(response.body)
            assert scope["query_string"] == f"i={i}"
            ports.add(scope["client"][1])
        assert ports == {conn.sock.getsockname()[1]}
        assert not conn.closed_by_server(timeout=0.2)


def test_httpx_keep_alive(client: httpx.Client) -> None:
    ports = {json.loads(client.get("/scope").content)["client"][1] for _ in range(4)}
    assert len(ports) == 1


def test_pipelining_three_requests_in_one_send(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request("POST", "/echo", body=b"first body")
            + request("GET", "/scope?second")
            + request("GET", "/sleep?s=0.05")
            + request("GET", "/hello")
        )
        first = conn.read_response()
        second = conn.read_response()
        third = conn.read_response()
        fourth = conn.read_response()
    assert first.body == b"first body"
    assert json.loads(second.body)["query_string"] == "second"
    assert third.body == b"slept"
    assert fourth.body == b"hello"


def test_pipelined_requests_with_chunked_bodies(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request("POST", "/echo", [("Transfer-Encoding", "chunked")])
            + chunked(b"a", b"bc")
            + request("POST", "/echo", [("Transfer-Encoding", "chunked")])
            + chunked(b"def")
        )
        assert conn.read_response().body == b"abc"
        assert conn.read_response().body == b"def"


def test_request_connection_close(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/hello", [("Connection", "close")]))
        response = conn.read_response()
        assert response.get(b"connection") == b"close"
        assert conn.closed_by_server()


def test_app_connection_close(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/connection-close"))
        response = conn.read_response()
        assert response.body == b"bye"
        assert [v.lower() for v in response.get_all(b"connection")] == [b"close"]
        assert conn.closed_by_server()


def test_http10_closes_by_default(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/hello", version="1.0"))
        response = conn.read_response()
        assert response.body == b"hello"
        assert response.get(b"connection") == b"close"
        assert conn.closed_by_server()


def test_http10_keep_alive(server: RunningServer) -> None:
    with raw(server) as conn:
        for _ in range(2):
            conn.send(request("GET", "/scope", [("Connection", "keep-alive")], version="1.0"))
            response = conn.read_response()
            assert response.get(b"connection") == b"keep-alive"
            assert json.loads(response.body)["http_version"] == "1.0"


# -- request bodies -------------------------------------------------------------------------


def test_chunked_request_body_with_extensions_and_trailers(server: RunningServer) -> None:
    body = chunked(b"hello ", b"chunked ", b"world", extensions=b';ext="v"', trailers=b"X-T: 1\r\n")
    with raw(server) as conn:
        conn.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + body)
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"hello chunked world"


def test_chunked_request_split_at_odd_boundaries(server: RunningServer) -> None:
    pieces = [pattern_chunk(i, size) for i, size in enumerate((1, 7, 300, 16, 4097))]
    data = request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + chunked(
        *pieces, trailers=b"Trailer-A: x\r\n"
    )
    with raw(server) as conn:
        conn.send_slowly(data, [1, 2, 3, 5, 8, 13, 701], pause=0.002)
        response = conn.read_response()
        assert response.body == b"".join(pieces)
        # The connection is still in sync for the next request.
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


def test_content_length_body_split(server: RunningServer) -> None:
    body = pattern_body(10_000, 777)
    with raw(server) as conn:
        conn.send_slowly(request("POST", "/echo", body=body), [3, 1000, 1, 4096], pause=0.002)
        assert conn.read_response().body == body


# -- streaming responses -------------------------------------------------------------------


def test_streaming_response_is_chunked_on_11(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/stream?n=4&size=10"))
        response = conn.read_response()
        assert response.chunked
        assert response.get(b"content-length") is None
        assert response.chunk_sizes == [10, 10, 10, 10]
        assert response.body == b"".join(pattern_chunk(i, 10) for i in range(4))
        assert response.raw.endswith(b"0\r\n\r\n")
        # Keep-alive after a chunked response.
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


def test_streaming_response_is_close_delimited_on_10(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request("GET", "/stream?n=4&size=10", [("Connection", "keep-alive")], version="1.0")
        )
        response = conn.read_response()
        assert response.get(b"transfer-encoding") is None
        assert response.get(b"content-length") is None
        assert response.get(b"connection") == b"close"
        assert response.body == b"".join(pattern_chunk(i, 10) for i in range(4))
        assert conn.eof


def test_streaming_response_with_httpx(client: httpx.Client) -> None:
    with client.stream("GET", "/stream?n=20&size=1000") as response:
        data = b"".join(response.iter_bytes())
    assert data == b"".join(pattern_chunk(i, 1000) for i in range(20))


# -- 100-continue ---------------------------------------------------------------------------


def test_100_continue_only_after_receive() -> None:
    probe = Probe()
    with run_server(make_gated_echo(probe), access_log=False) as srv, raw(srv) as conn:
        conn.send(request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "11")]))
        assert probe.started.wait(10)
        # The app has not asked for the body: no 100 yet.
        assert conn.nothing_within(0.3)
        probe.release.set()
        interim = conn.read_response(interim=True)
        assert interim.status == 100
        assert interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert probe.receiving.is_set()
        conn.send(b"hello world")
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"hello world"
        # Still in sync for another request.
        conn.send(request("POST", "/", body=b"again"))
        probe.release.set()
        assert conn.read_response().body == b"again"


def test_100_continue_with_httpx_style_body_sent_anyway() -> None:
    # Many clients send the body after a short wait without a 100: it must work.
    probe = Probe()
    probe.release.set()
    with run_server(make_gated_echo(probe), access_log=False) as srv, raw(srv) as conn:
        conn.send(request("POST", "/", [("Expect", "100-continue")], body=b"eager"))
        response = conn.read_response()
        assert response.body == b"eager"


def test_no_100_continue_for_http10() -> None:
    # RFC 9110 10.1.1: a 1.0 client does not know 100 Continue.
    probe = Probe()
    probe.release.set()
    with run_server(make_gated_echo(probe), access_log=False) as srv, raw(srv) as conn:
        conn.send(
            request(
                "POST", "/", [("Expect", "100-continue"), ("Content-Length", "4")], version="1.0"
            )
        )
        assert probe.receiving.wait(10)
        assert conn.nothing_within(0.3)
        conn.send(b"body")
        response = conn.read_response(interim=True)
        assert response.status == 200
        assert response.body == b"body"


def test_no_100_when_the_app_answers_without_reading(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request("POST", "/no-read", [("Expect", "100-continue"), ("Content-Length", "5")])
        )
        first = conn.read_response(interim=True)
        assert first.status == 200, "no 100 Continue may come before the final response"
        assert first.body == b"answered without reading"
        # The body was never sent; the server either closed or still reads the
        # next bytes as a body, never as a new request.
        try:
            conn.send(b"hello" + request("GET", "/hello"))
        except OSError:
            return
        rest = conn.read_all() if conn.closed_by_server(2) else b""
        if rest:
            assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"hello" in rest
            assert b"400" not in rest.split(b"\r\n", 1)[0]


# -- disconnects -----------------------------------------------------------------------------


def test_disconnect_while_app_waits_for_body() -> None:
    probe = Probe()
    with run_server(make_disconnect_watcher(probe), access_log=False) as srv:
        with raw(srv) as conn:
            conn.send(request("POST", "/", [("Content-Length", "100")]) + b"part")
            assert wait_for(lambda: len(probe.messages) >= 1, 10)
        assert probe.disconnected.wait(10)
        assert probe.done.wait(10)
    assert probe.messages[0] == {"type": "http.request", "body": b"part", "more_body": True}
    assert probe.messages[-1] == {"type": "http.disconnect"}
    assert len(probe.errors) == 1
    assert isinstance(probe.errors[0], OSError)


def test_disconnect_detected_while_the_app_runs() -> None:
    # The request is complete; the app keeps calling receive() while "working".
    probe = Probe()
    with run_server(make_disconnect_watcher(probe), access_log=False) as srv:
        with raw(srv) as conn:
            conn.send(request("GET", "/"))
            assert wait_for(lambda: len(probe.messages) >= 1, 10)
            assert not probe.disconnected.is_set()
        assert probe.disconnected.wait(10)
        assert probe.messages[0] == {"type": "http.request", "body": b"", "more_body": False}
        assert probe.messages[1:] == [{"type": "http.disconnect"}]
        assert probe.done.wait(10)
        assert probe.errors and isinstance(probe.errors[0], OSError)
        # The server goes on serving.
        with raw(srv) as conn:
            conn.send(request("GET", "/"))
            assert wait_for(lambda: len(probe.messages) >= 3, 10)


# -- app errors ------------------------------------------------------------------------------


def test_app_exception_gives_500_and_the_connection_goes_on(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/error"))
        response = conn.read_response()
        assert response.status == 500
        assert response.body
        assert response.get(b"content-length") == str(len(response.body)).encode()
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"
    assert_served(server)


def test_app_exception_after_body_started_closes(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/error-after-body"))
        status, _, _, _ = conn.read_head()
        assert status == 200
        rest = conn.read_all()
        assert conn.eof
        # The body is cut short: no last chunk, so no client takes it as whole.
        assert b"partial" in rest
        assert not rest.endswith(b"0\r\n\r\n")
    assert_served(server)


def test_app_exception_after_body_with_httpx(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/error-after-body")
    assert client.get("/hello").text == "hello"


def test_app_without_response_gives_500(client: httpx.Client) -> None:
    assert client.get("/no-response").status_code == 500
    assert client.get("/hello").status_code == 200


def test_content_length_mismatch_closes(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/short-body"))
        rest = conn.read_all()
        assert conn.eof
    # Either nothing of the response went out, or its head with a short body:
    # never a complete-looking response.
    if rest:
        head, _, body = rest.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            assert b"content-length: 10" in head.lower()
            assert len(body) < 10
        else:
            assert head.startswith(b"HTTP/1.1 500")
    assert_served(server)


@pytest.mark.parametrize("kind", ["crlf", "lf", "nul", "name", "name-crlf"])
def test_invalid_response_header_gives_500(server: RunningServer, kind: str) -> None:
    with raw(server) as conn:
        conn.send(request("GET", f"/bad-header?kind={kind}"))
        response = conn.read_response()
        assert response.status == 500
        assert b"x-injected" not in response.raw
        assert b"x-bad" not in response.raw.lower()
        assert b"must never be sent" not in response.raw
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


@pytest.mark.parametrize("kind", ["crlf", "nul", "name"])
def test_invalid_response_header_raises_in_send(server: RunningServer, kind: str) -> None:
    with raw(server) as conn:
        conn.send(request("GET", f"/bad-header-caught?kind={kind}"))
        response = conn.read_response()
    assert response.status == 200
    assert response.body in (b"RuntimeError", b"ValueError", b"TypeError")
    assert b"x-injected" not in response.raw


# -- headers the server adds -------------------------------------------------------------------


def test_extra_headers_and_no_server_or_date() -> None:
    with (
        run_server(
            app,
            access_log=False,
            headers=[("x-a", "b"), ("X-Other", "c d")],
            server_header=False,
            date_header=False,
        ) as srv,
        raw(srv) as conn,
    ):
        conn.send(request("GET", "/hello"))
        response = conn.read_response()
    assert response.get(b"x-a") == b"b"
    assert response.get(b"x-other") == b"c d"
    assert response.get(b"server") is None
    assert response.get(b"date") is None
    assert response.body == b"hello"


def test_default_server_and_date_headers(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/hello"))
        response = conn.read_response()
    assert response.get_all(b"server") == [b"hurtle"]
    dates = response.get_all(b"date")
    assert len(dates) == 1
    assert dates[0].endswith(b" GMT")
    parsed = parsedate_to_datetime(dates[0].decode())
    assert abs(parsed.timestamp() - time.time()) < 60


async def _own_server_and_date(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] in ("/server", "/both"):
        headers.append((b"Server", b"upstream/1.0"))
    if scope["path"] in ("/date", "/both"):
        headers.append((b"date", b"Mon, 01 Jan 2024 00:00:00 GMT"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def test_app_server_and_date_headers_replace_the_servers() -> None:
    # RFC 9110 5.3: one line each (aiohttp rejects two Server lines). Every path
    # twice on one connection: the second response may be a remembered head.
    app_date = b"Mon, 01 Jan 2024 00:00:00 GMT"
    with run_server(_own_server_and_date, access_log=False) as srv, raw(srv) as conn:
        for path in ("/server", "/server", "/date", "/date", "/both", "/both", "/", "/"):
            conn.send(request("GET", path))
            response = conn.read_response()
            assert response.status == 200, path
            assert response.body == b"ok"
            servers = response.get_all(b"server")
            dates = response.get_all(b"date")
            assert servers == ([b"upstream/1.0"] if path in ("/server", "/both") else [b"hurtle"])
            assert len(dates) == 1
            assert (dates[0] == app_date) == (path in ("/date", "/both")), path


def test_header_option_replaces_the_default_server_header() -> None:
    with (
        run_server(app, access_log=False, headers=[("Server", "edge")]) as srv,
        raw(srv) as conn,
    ):
        conn.send(request("GET", "/hello"))
        response = conn.read_response()
    assert response.get_all(b"server") == [b"edge"]
    assert len(response.get_all(b"date")) == 1


def test_server_headers_on_error_responses(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        response = conn.read_response()
    assert response.status == 400
    assert response.get(b"server") == b"hurtle"


# -- the scope -----------------------------------------------------------------------------


def test_scope_fields(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request(
                "GET",
                "/scope/caf%C3%A9%20x%2Fy?a=1&b=%20",
                [("X-Dup", "1"), ("Accept", "*/*"), ("x-dup", "2"), ("X-Case", "VaLuE")],
            )
        )
        scope = json.loads(conn.read_response().body)
        local = conn.sock.getsockname()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café x/y"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x%2Fy"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        ["host", "test"],
        ["x-dup", "1"],
        ["accept", "*/*"],
        ["x-dup", "2"],
        ["x-case", "VaLuE"],
    ]
    assert scope["types"] == {"raw_path": "bytes", "query_string": "bytes", "headers": ["tuple"]}
    assert scope["client"] == ["127.0.0.1", local[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"greeting": "hello from lifespan"}
    assert "http.response.pathsend" in scope["extensions"]
    assert "http.response.early_hint" in scope["extensions"]
    assert "http.response.zerocopysend" in scope["extensions"]
    assert "http.response.trailers" not in scope["extensions"]


def test_scope_trailers_extension_only_with_te_trailers(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/scope", [("TE", "trailers")]))
        assert "http.response.trailers" in json.loads(conn.read_response().body)["extensions"]
        conn.send(
            request(
                "GET", "/scope", [("TE", "trailers"), ("Connection", "keep-alive")], version="1.0"
            )
        )
        assert "http.response.trailers" not in json.loads(conn.read_response().body)["extensions"]


def test_scope_absolute_form_and_options(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "http://example.com/scope?q=1"))
        scope = json.loads(conn.read_response().body)
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "q=1"


def test_scope_http10_and_post(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("POST", "/scope", body=b"x", version="1.0"))
        scope = json.loads(conn.read_response().body)
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "POST"


def test_root_path() -> None:
    with run_server(app, access_log=False, root_path="/api") as srv, raw(srv) as conn:
        conn.send(request("GET", "/scope/x?y"))
        scope = json.loads(conn.read_response().body)
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope/x"
    assert scope["raw_path"] == "/api/scope/x"
    assert scope["query_string"] == "y"


# -- extensions ------------------------------------------------------------------------------


def test_trailers_on_the_wire(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/trailers", [("TE", "trailers")]))
        response = conn.read_response()
        assert response.chunked
        assert response.get(b"content-length") is None
        assert response.body == b"abcdef"
        assert response.trailers == [(b"x-checksum", b"sum-abcdef")]
        assert response.raw.endswith(b"0\r\nx-checksum: sum-abcdef\r\n\r\n")
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


def test_trailers_promised_without_te_trailers(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/trailers?force=1"))
        response = conn.read_response()
        assert response.body == b"abcdef"
        assert response.trailers == []
        assert b"sum-abcdef" not in response.raw
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


def test_pathsend(client: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    content = pattern_body(200_000, 1000)
    path.write_bytes(content)
    response = client.get(f"/pathsend?path={quote(str(path))}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["content-type"] == "x/file"
    assert response.content == content
    assert client.get("/hello").text == "hello"


def test_pathsend_head(server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1000)
    with raw(server) as conn:
        conn.send(request("HEAD", f"/pathsend?path={quote(str(path))}") + request("GET", "/hello"))
        head = conn.read_response(method=b"HEAD")
        assert head.get(b"content-length") == b"1000"
        assert conn.read_response().body == b"hello"


@pytest.mark.parametrize("pieces", [1, 3])
def test_zerocopysend(server: RunningServer, tmp_path: Path, pieces: int) -> None:
    path = tmp_path / "data.bin"
    content = pattern_body(150_001, 999)
    path.write_bytes(content)
    with raw(server) as conn:
        conn.send(request("GET", f"/zerocopy?path={quote(str(path))}&pieces={pieces}"))
        response = conn.read_response()
        assert response.status == 200
        assert response.body == content
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"


def test_early_hint(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/early-hint"))
        hint = conn.read_response(interim=True)
        assert hint.status == 103
        assert hint.get_all(b"link") == [
            b"</style.css>; rel=preload; as=style",
            b"</app.js>; rel=preload",
        ]
        final = conn.read_response()
        assert final.status == 200
        assert final.body == b"final"


def test_no_early_hint_for_http10(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/early-hint", version="1.0"))
        data = conn.read_all()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"103" not in data.split(b"\r\n", 1)[0]


# -- flow control ------------------------------------------------------------------------------


def test_large_upload_to_a_slow_reader(client: httpx.Client) -> None:
    body = pattern_body(5 * 1024 * 1024)
    response = client.post("/slow-read", content=body)
    assert response.status_code == 200
    result = response.json()
    assert result["length"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    # Reading paused while the app lagged: it never got megabytes at once.
    assert result["biggest"] <= 1024 * 1024, result
    assert result["pieces"] >= 5


def test_large_streaming_response_to_a_slow_client(server: RunningServer) -> None:
    total = 5 * 1024 * 1024
    expected = hashlib.sha256(pattern_body(total)).hexdigest()
    with raw(server, rcvbuf=16384) as conn:
        conn.send(request("GET", f"/big-stream?size={total}"))
        status, _, headers, _ = conn.read_head()
        assert status == 200
        assert (b"transfer-encoding", b"chunked") in headers
        # Read the chunked body slowly, a small piece at a time.
        data = bytearray(conn.buf)
        conn.buf = b""
        deadline = time.monotonic() + 30
        reads = 0
        while not data.endswith(b"0\r\n\r\n"):
            assert time.monotonic() < deadline, "the response did not complete"
            piece = conn.sock.recv(32768)
            assert piece, "closed before the end of the response"
            data += piece
            reads += 1
            if reads % 16 == 0:
                time.sleep(0.005)
        body = bytearray()
        view = bytes(data)
        pos = 0
        while True:
            line_end = view.index(b"\r\n", pos)
            size = int(view[pos:line_end], 16)
            pos = line_end + 2
            if size == 0:
                break
            body += view[pos : pos + size]
            pos += size + 2
        assert len(body) == total
        assert hashlib.sha256(body).hexdigest() == expected


def test_many_sequential_requests_on_one_connection(server: RunningServer) -> None:
    with raw(server) as conn:
        for i in range(50):
            conn.send(request("POST", "/echo", body=b"%d" % i))
            assert conn.read_response().body == b"%d" % i


def test_server_survives_abrupt_client_resets(server: RunningServer) -> None:
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.port or 0), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(request("POST", "/echo", [("Content-Length", "100")]) + b"x")
        sock.close()  # RST
    assert_served(server)


# -- more pipelining, flow control and concurrency ------------------------------------------


def test_deep_pipeline_beyond_the_read_buffer(server: RunningServer) -> None:
    # More pipelined bytes than the server buffers behind one request: it
    # pauses reading, and every request is still answered, in order.
    count = 2000
    data = b"".join(request("GET", f"/scope?{i:05d}") for i in range(count))
    assert len(data) > 65536
    with raw(server, timeout=30) as conn:
        conn.send(data)
        for i in range(count):
            response = conn.read_response()
            assert response.status == 200
            assert json.loads(response.body)["query_string"] == f"{i:05d}"


def test_pipelined_request_after_connection_close_is_not_served(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(
            request("GET", "/scope?first", [("Connection", "close")])
            + request("GET", "/scope?second")
        )
        first = conn.read_response()
        assert json.loads(first.body)["query_string"] == "first"
        assert conn.read_all() == b""


def test_pipelined_request_after_an_unread_body(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("POST", "/no-read", body=b"ignored body") + request("GET", "/hello"))
        first = conn.read_response()
        assert first.body == b"answered without reading"
        # The unread body is skipped or the connection closes: never parsed as a request.
        try:
            second = conn.read_response()
        except IncompleteResponse as exc:
            assert exc.partial == b""
        else:
            assert second.status == 200
            assert second.body == b"hello"


def test_client_gone_during_a_large_streaming_response(server: RunningServer) -> None:
    with raw(server, rcvbuf=16384) as conn:
        conn.send(request("GET", f"/big-stream?size={200 * 1024 * 1024}"))
        conn.read_head()
        conn.sock.recv(65536)
    # The app's send() raises once the client is gone; the task ends, nothing leaks.
    assert wait_for(lambda: not server.server.state.tasks, 10)
    assert_served(server)


def test_chunked_upload_to_a_slow_reader(client: httpx.Client) -> None:
    body = pattern_body(2 * 1024 * 1024)

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    response = client.post("/slow-read", content=pieces())
    result = response.json()
    assert result["length"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["biggest"] <= 1024 * 1024, result


def test_concurrent_clients(server: RunningServer) -> None:
    # One client shared by the threads: a pool of up to 10 connections at once.
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as shared:

        def one(i: int) -> bytes:
            return shared.post("/echo", content=b"client %d" % i).content

        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(one, range(30)))
    assert results == [b"client %d" % i for i in range(30)]
