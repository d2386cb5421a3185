"""Malformed requests, limits and timeouts, end to end over raw sockets.

Each rejection must answer the right status with ``connection: close`` and a
short plain-text body, then close; the next connection is served normally.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.apps.http_apps import Probe, RawConnection, RawResponse, app, make_slow, request
from tests.utils import RunningServer, run_server, wait_for


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(
        app,
        access_log=False,
        limit_request_body=100,
        limit_request_head=8192,
        limit_request_line=1024,
        limit_request_fields=20,
    ) as running:
        yield running


def raw(server: RunningServer, **kwargs: Any) -> RawConnection:
    assert server.port is not None
    return RawConnection(server.port, **kwargs)


def assert_served(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/hello"))
        response = conn.read_response()
    assert response.status == 200
    assert response.body == b"hello"


def assert_rejected(conn: RawConnection, status: int) -> RawResponse:
    """The response is a plain-text `status` with connection: close, then the server closes."""
    response = conn.read_response()
    assert response.status == status, response.raw
    assert response.reason, "a status line always carries a reason phrase"
    assert [v.lower() for v in response.get_all(b"connection")] == [b"close"]
    content_type = response.get(b"content-type") or b""
    assert content_type.startswith(b"text/plain"), response.raw
    assert response.body
    assert response.get(b"content-length") == str(len(response.body)).encode()
    assert conn.closed_by_server(5), "the server must close after a rejection"
    return response


MALFORMED = [
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="missing-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="duplicate-host"),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        id="cl-and-te",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
        id="duplicate-cl",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400, id="cl-plus"
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        id="te-gzip-chunked",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        id="te-not-chunked",
    ),
    pytest.param(
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, id="te-on-10"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", 400, id="bare-lf"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, id="bare-cr"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", 400, id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", 400, id="bad-name"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, id="http-2.0"),
    pytest.param(b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n", 400, id="garbage-version"),
    pytest.param(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501, id="connect"),
    pytest.param(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="asterisk-get"),
    pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="non-ascii-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417, id="expect"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, id="tls-hello"),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
        400,
        id="bad-chunk-size",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
        400,
        id="chunk-without-crlf",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1" * 17
        + b"\r\n",
        413,
        id="chunk-size-digits",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
        413,
        id="body-over-limit-cl",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"40\r\n"
        + b"x" * 64
        + b"\r\n40\r\n"
        + b"y" * 64
        + b"\r\n0\r\n\r\n",
        413,
        id="body-over-limit-chunked",
    ),
    pytest.param(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, id="long-target"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431, id="big-head"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(25))
        + b"\r\n",
        431,
        id="too-many-headers",
    ),
]


@pytest.mark.parametrize(("data", "status"), MALFORMED)
def test_malformed_request(server: RunningServer, data: bytes, status: int) -> None:
    with raw(server) as conn:
        conn.send(data)
        assert_rejected(conn, status)
    assert_served(server)


def test_rejection_after_a_good_request_on_the_same_connection(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("GET", "/hello") + b"GET / HTTP/1.1\r\n\r\n")
        assert conn.read_response().body == b"hello"
        assert_rejected(conn, 400)


def test_rejected_body_while_the_app_reads_it(server: RunningServer) -> None:
    # The app has started (reading the body) when the chunked body goes bad.
    with raw(server) as conn:
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        time.sleep(0.05)
        conn.send(b"-1\r\n")
        assert_rejected(conn, 400)
    assert_served(server)


def test_body_exactly_at_the_limit(server: RunningServer) -> None:
    with raw(server) as conn:
        conn.send(request("POST", "/echo", body=b"x" * 100))
        assert conn.read_response().body == b"x" * 100


def test_body_limit_with_httpx(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=15) as client:
        assert client.post("/echo", content=b"y" * 100).content == b"y" * 100
        try:
            response = client.post("/echo", content=b"y" * 101)
        except httpx.HTTPError:
            return  # the client may see the close before reading the 413
        assert response.status_code == 413


def test_log_of_rejection_escapes_client_bytes(server: RunningServer) -> None:
    # The reason text may carry client bytes; the response body must stay ASCII text.
    with raw(server) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n")
        response = assert_rejected(conn, 400)
    assert b"\x1b" not in response.body


# -- timeouts ------------------------------------------------------------------------------


def test_slowloris_gets_408_and_close() -> None:
    with run_server(app, access_log=False, timeout_request_header=0.5) as srv, raw(srv) as conn:
        start = time.monotonic()
        conn.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        response = assert_rejected(conn, 408)
        elapsed = time.monotonic() - start
        assert 0.3 < elapsed < 5, elapsed
        assert response.get(b"connection") == b"close"
        assert_served(srv)


def test_slowloris_trickling_bytes_still_times_out() -> None:
    # The limit runs from the first byte of the head: more bytes do not extend it.
    with run_server(app, access_log=False, timeout_request_header=0.5) as srv, raw(srv) as conn:
        start = time.monotonic()
        conn.send(b"GET / HTTP/1.1\r\n")
        deadline = start + 5
        got_408 = False
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                conn.send(b"X: y\r\n")
            except OSError:
                break
            if not conn.nothing_within(0.01):
                got_408 = True
                break
        assert got_408 or conn.eof
        elapsed = time.monotonic() - start
        assert elapsed < 4, elapsed
        data = conn.buf + conn.read_all()
        assert data.startswith(b"HTTP/1.1 408 ")


def test_slow_but_timely_head_is_served() -> None:
    with run_server(app, access_log=False, timeout_request_header=3) as srv, raw(srv) as conn:
        conn.send_slowly(request("GET", "/hello"), [3], pause=0.01)
        assert conn.read_response().body == b"hello"


def test_head_timeout_applies_to_the_second_request_too() -> None:
    with run_server(app, access_log=False, timeout_request_header=0.5) as srv, raw(srv) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"
        conn.send(b"GET /hello HTTP/1.1\r\n")
        assert_rejected(conn, 408)


def test_idle_keep_alive_connection_is_closed() -> None:
    with run_server(app, access_log=False, timeout_keep_alive=0.5) as srv, raw(srv) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().body == b"hello"
        start = time.monotonic()
        assert conn.closed_by_server(5)
        elapsed = time.monotonic() - start
        assert 0.3 < elapsed < 4, elapsed
        assert conn.buf == b""  # closed quietly, no response


def test_silent_connection_is_closed_by_keep_alive_timeout() -> None:
    with run_server(app, access_log=False, timeout_keep_alive=0.5) as srv, raw(srv) as conn:
        start = time.monotonic()
        assert conn.closed_by_server(5)
        assert time.monotonic() - start < 4
        assert conn.buf == b""


def test_keep_alive_timer_rearmed_after_each_response() -> None:
    with run_server(app, access_log=False, timeout_keep_alive=0.6) as srv, raw(srv) as conn:
        for _ in range(4):
            time.sleep(0.3)
            conn.send(request("GET", "/hello"))
            assert conn.read_response().body == b"hello"


def test_slow_app_is_not_cut_by_the_keep_alive_timeout() -> None:
    with run_server(app, access_log=False, timeout_keep_alive=0.3) as srv, raw(srv) as conn:
        conn.send(request("GET", "/sleep?s=0.8"))
        assert conn.read_response().body == b"slept"


# -- concurrency --------------------------------------------------------------------------------


def test_limit_concurrency_answers_503() -> None:
    probe = Probe()
    with run_server(make_slow(probe), access_log=False, limit_concurrency=1) as srv:
        with raw(srv) as slow_conn:
            slow_conn.send(request("GET", "/slow"))
            assert probe.started.wait(10)
            with raw(srv) as other:
                other.send(request("GET", "/fast"))
                response = other.read_response()
                assert response.status == 503
                assert response.body
            probe.release.set()
            assert slow_conn.read_response().body == b"done /slow"

        def served() -> bool:
            with raw(srv) as conn:
                conn.send(request("GET", "/fast"))
                return conn.read_response().status == 200

        # Once the slow request and its connection are gone, requests are served again.
        assert wait_for(served, 10, interval=0.1)


def test_limit_max_requests_stops_the_server() -> None:
    with run_server(app, access_log=False, limit_max_requests=2) as srv:
        for _ in range(2):
            with raw(srv) as conn:
                conn.send(request("GET", "/hello", [("Connection", "close")]))
                assert conn.read_response().body == b"hello"
        assert wait_for(lambda: srv.server.should_exit, 10)
