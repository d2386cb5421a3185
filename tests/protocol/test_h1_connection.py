"""Response framing of the sans-IO HTTP/1.x connection (`H1Connection`).

The connection decides how a response body is delimited (RFC 9112 6.3):
Content-Length when the body is complete at head time, chunked when streamed
on 1.1, close-delimited on 1.0; none at all for HEAD, 1xx, 204 and 304.
"""

from __future__ import annotations

from typing import Any

import pytest

import hurtle.protocol.h1.connection as connection_module
from hurtle.protocol.events import EndOfMessage, Request
from hurtle.protocol.h1 import (
    CONTINUE_RESPONSE,
    H1Connection,
    RequestParser,
    error_response,
    status_line,
)

GET11 = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
GET10 = b"GET / HTTP/1.0\r\n\r\n"
GET10_KA = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
HEAD11 = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
GET11_TE = b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n"
GET10_TE = b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n"


def connection_for(request_bytes: bytes) -> H1Connection:
    conn = H1Connection(RequestParser())
    conn.receive_data(request_bytes)
    event = conn.next_event()
    assert isinstance(event, Request)
    assert conn.request is event
    assert conn.next_event() == EndOfMessage()
    return conn


def split_response(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """(status line, header pairs, rest) of serialized response bytes."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {data!r}"
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b": ")
        assert colon, f"bad header line {line!r}"
        headers.append((name, value))
    return lines[0], headers, rest


def header_values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def head(conn: H1Connection, status: int = 200, headers: Any = (), **kwargs: Any) -> bytes:
    params: dict[str, Any] = {
        "default_block": b"",
        "content_length": None,
        "body": b"",
        "end": True,
        "trailers": False,
    }
    params.update(kwargs)
    return conn.response_head(
        status,
        list(headers),
        params["default_block"],
        params["content_length"],
        params["body"],
        params["end"],
        params["trailers"],
    )


# -- Content-Length, chunked, close-delimited ----------------------------------------


def test_complete_body_gets_content_length() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"content-type", b"text/plain")], body=b"hello")
    assert data == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
    )
    assert conn.keep_alive is True
    assert conn.sends_body


def test_empty_complete_body_gets_content_length_zero() -> None:
    conn = connection_for(GET11)
    assert head(conn, 200) == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_known_content_length_is_written_by_the_connection() -> None:
    # The bridge hands the length over as an argument (it takes Content-Length
    # out of the app's headers): the connection writes the one header itself.
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"content-type", b"x/y")], content_length=5, body=b"he", end=False)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"content-length") == [b"5"]
    assert b"transfer-encoding" not in dict(headers)
    assert rest == b"he"
    assert conn.response_body(b"llo", True) == b"llo"
    assert conn.keep_alive


def test_known_content_length_complete_body() -> None:
    # What a 500 from the server, or a pathsend head, looks like.
    conn = connection_for(GET11)
    body = b"Internal Server Error"
    data = head(conn, 500, [(b"content-type", b"text/plain")], content_length=len(body), body=body)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"content-length") == [b"%d" % len(body)]
    assert rest == body


def test_known_content_length_zero() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, content_length=0, body=b"", end=True)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"content-length") == [b"0"]
    assert rest == b""


def test_streamed_body_is_chunked_on_11() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"content-type", b"text/plain")], body=b"ab", end=False)
    status, headers, rest = split_response(data)
    assert status == b"HTTP/1.1 200 OK"
    assert header_values(headers, b"transfer-encoding") == [b"chunked"]
    assert b"content-length" not in dict(headers)
    assert rest == b"2\r\nab\r\n"
    assert conn.chunked
    assert conn.response_body(b"0123456789abcdefX", False) == b"11\r\n0123456789abcdefX\r\n"
    # An empty non-final piece must not become the last chunk.
    assert conn.response_body(b"", False) == b""
    assert conn.response_body(b"end", True) == b"3\r\nend\r\n0\r\n\r\n"
    assert conn.keep_alive is True


def test_streamed_body_with_empty_first_message() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, end=False)
    assert data.endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert conn.response_body(b"", True) == b"0\r\n\r\n"


def test_streamed_body_is_close_delimited_on_10() -> None:
    conn = connection_for(GET10_KA)
    data = head(conn, 200, body=b"ab", end=False)
    _status, headers, rest = split_response(data)
    assert b"transfer-encoding" not in dict(headers)
    assert b"content-length" not in dict(headers)
    assert header_values(headers, b"connection") == [b"close"]
    assert rest == b"ab"
    assert conn.keep_alive is False
    assert not conn.chunked
    assert conn.response_body(b"cd", False) == b"cd"
    assert conn.response_body(b"", True) == b""


def test_status_line_is_11_even_for_10_requests() -> None:
    conn = connection_for(GET10)
    assert head(conn, 200, body=b"x").startswith(b"HTTP/1.1 200 OK\r\n")


def test_http10_without_keep_alive_closes() -> None:
    conn = connection_for(GET10)
    _status, headers, _rest = split_response(head(conn, 200, body=b"x"))
    assert header_values(headers, b"connection") == [b"close"]
    assert header_values(headers, b"content-length") == [b"1"]
    assert conn.keep_alive is False


def test_http10_keep_alive_response_says_keep_alive() -> None:
    conn = connection_for(GET10_KA)
    _status, headers, rest = split_response(head(conn, 200, body=b"x"))
    assert header_values(headers, b"connection") == [b"keep-alive"]
    assert rest == b"x"
    assert conn.keep_alive is True


def test_http11_keep_alive_response_has_no_connection_header() -> None:
    conn = connection_for(GET11)
    _status, headers, _rest = split_response(head(conn, 200, body=b"x"))
    assert header_values(headers, b"connection") == []


def test_request_connection_close_is_answered_with_close() -> None:
    conn = connection_for(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    _status, headers, _rest = split_response(head(conn, 200, body=b"x"))
    assert header_values(headers, b"connection") == [b"close"]
    assert conn.keep_alive is False


# -- HEAD, 1xx, 204, 304 ---------------------------------------------------------------


def test_head_gets_headers_but_no_body() -> None:
    conn = connection_for(HEAD11)
    data = head(conn, 200, content_length=5, body=b"hello")
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert not conn.sends_body
    assert conn.keep_alive


def test_head_with_complete_body_reports_its_length() -> None:
    conn = connection_for(HEAD11)
    data = head(conn, 200, body=b"hello")
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


def test_head_streamed_sends_no_body_bytes() -> None:
    conn = connection_for(HEAD11)
    data = head(conn, 200, body=b"abc", end=False)
    assert data.endswith(b"\r\n\r\n")
    assert b"abc" not in data
    assert conn.response_body(b"more", False) == b""
    assert conn.response_body(b"", True) == b""
    assert conn.keep_alive


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    conn = connection_for(GET11)
    data = head(conn, status, body=b"ignored")
    _status_bytes, headers, rest = split_response(data)
    assert rest == b""
    assert b"transfer-encoding" not in dict(headers)
    assert not conn.sends_body
    assert conn.response_body(b"more", True) == b""
    assert conn.keep_alive


def test_204_has_no_content_length() -> None:
    conn = connection_for(GET11)
    data = head(conn, 204, content_length=0)
    assert data == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_304_keeps_app_content_length() -> None:
    # RFC 9110 8.6: a 304 may carry the Content-Length a 200 would have had.
    conn = connection_for(GET11)
    data = head(conn, 304, [(b"etag", b'"x"')], content_length=42)
    _status, headers, rest = split_response(data)
    assert headers[0] == (b"etag", b'"x"')
    assert header_values(headers, b"content-length") == [b"42"]
    assert rest == b""


def test_204_streamed_is_not_chunked() -> None:
    conn = connection_for(GET11)
    data = head(conn, 204, end=False)
    assert data == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert conn.response_body(b"", True) == b""


# -- headers the server owns --------------------------------------------------------------


def test_app_transfer_encoding_is_dropped() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"transfer-encoding", b"gzip, chunked")], body=b"abc")
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"transfer-encoding") == []
    assert header_values(headers, b"content-length") == [b"3"]
    assert rest == b"abc"


def test_app_transfer_encoding_dropped_when_streaming() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"transfer-encoding", b"identity")], body=b"abc", end=False)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"transfer-encoding") == [b"chunked"]
    assert rest == b"3\r\nabc\r\n"


def test_app_connection_close_turns_keep_alive_off() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"connection", b"close")], body=b"x")
    _status, headers, _rest = split_response(data)
    assert conn.keep_alive is False
    assert [v.lower() for v in header_values(headers, b"connection")] == [b"close"]


def test_app_connection_close_mixed_case() -> None:
    conn = connection_for(GET11)
    head(conn, 200, [(b"connection", b"Close")], body=b"x")
    assert conn.keep_alive is False


def test_app_connection_keep_alive_on_http10_keep_alive() -> None:
    conn = connection_for(GET10_KA)
    data = head(conn, 200, [(b"connection", b"keep-alive")], body=b"x")
    _status, headers, _rest = split_response(data)
    assert conn.keep_alive is True
    assert [v.lower() for v in header_values(headers, b"connection")] == [b"keep-alive"]


def test_app_cannot_turn_keep_alive_on() -> None:
    # An HTTP/1.0 request without keep-alive: the connection closes whatever
    # the app says, and the response must not claim otherwise.
    conn = connection_for(GET10)
    data = head(conn, 200, [(b"connection", b"keep-alive")], body=b"x")
    _status, headers, _rest = split_response(data)
    assert conn.keep_alive is False
    assert [v.lower() for v in header_values(headers, b"connection")] == [b"close"]


def test_default_block_is_added_before_the_blank_line() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, [(b"x-app", b"1")], default_block=b"server: hurtle\r\n", body=b"ok")
    _status, headers, rest = split_response(data)
    assert headers[0] == (b"x-app", b"1")
    assert (b"server", b"hurtle") in headers
    assert rest == b"ok"


# -- trailers ------------------------------------------------------------------------------


def test_trailers_when_the_request_had_te_trailers() -> None:
    conn = connection_for(GET11_TE)
    data = head(conn, 200, content_length=5, body=b"hello", trailers=True)
    _status, headers, rest = split_response(data)
    # Trailers need chunked framing; Content-Length goes (RFC 9112 6.2).
    assert header_values(headers, b"transfer-encoding") == [b"chunked"]
    assert header_values(headers, b"content-length") == []
    assert rest == b"5\r\nhello\r\n"
    assert conn.expects_trailers
    assert conn.response_trailers([(b"x-checksum", b"abc"), (b"x-n", b"1")]) == (
        b"0\r\nx-checksum: abc\r\nx-n: 1\r\n\r\n"
    )


def test_trailers_streamed_end_without_last_chunk() -> None:
    conn = connection_for(GET11_TE)
    head(conn, 200, body=b"ab", end=False, trailers=True)
    # The last chunk comes with the trailers, not with the last body piece.
    assert conn.response_body(b"cd", True) == b"2\r\ncd\r\n"
    assert conn.response_trailers([]) == b"0\r\n\r\n"


def test_no_trailers_without_te_trailers() -> None:
    conn = connection_for(GET11)
    data = head(conn, 200, body=b"hello", trailers=True)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"content-length") == [b"5"]
    assert header_values(headers, b"transfer-encoding") == []
    assert rest == b"hello"
    assert not conn.expects_trailers
    assert conn.response_trailers([(b"x", b"y")]) == b""


def test_no_trailers_on_http10() -> None:
    conn = connection_for(GET10_TE)
    data = head(conn, 200, body=b"hello", trailers=True)
    _status, headers, rest = split_response(data)
    assert header_values(headers, b"transfer-encoding") == []
    assert rest == b"hello"
    assert conn.response_trailers([(b"x", b"y")]) == b""


def test_no_trailers_for_head() -> None:
    conn = connection_for(b"HEAD / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
    data = head(conn, 200, body=b"hello", end=False, trailers=True)
    assert not data.endswith(b"hello") and b"5\r\nhello" not in data
    assert conn.response_body(b"", True) == b""


# -- status lines, interim and error responses ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (103, b"HTTP/1.1 103 Early Hints\r\n"),
        (299, b"HTTP/1.1 299 Unknown\r\n"),
        (599, b"HTTP/1.1 599 Unknown\r\n"),
        (520, b"HTTP/1.1 520 Unknown\r\n"),
    ],
)
def test_status_line_always_has_a_reason(status: int, line: bytes) -> None:
    assert status_line(status).lower() == line.lower()


def test_unknown_status_in_a_response() -> None:
    conn = connection_for(GET11)
    assert head(conn, 299, body=b"x").startswith(b"HTTP/1.1 299 Unknown\r\n")


def test_informational_103() -> None:
    conn = connection_for(GET11)
    data = conn.informational(103, [(b"link", b"</a.css>; rel=preload")])
    assert data == b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"


def test_informational_not_sent_to_http10() -> None:
    conn = connection_for(GET10_KA)
    assert conn.informational(103, [(b"link", b"</a.css>")]) == b""


def test_continue_response() -> None:
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("status", [400, 408, 413, 414, 417, 431, 501, 505])
def test_error_response(status: int) -> None:
    data = error_response(status, "Something bad", b"server: hurtle\r\n")
    status_bytes, headers, rest = split_response(data)
    assert status_bytes.startswith(b"HTTP/1.1 %d " % status)
    assert header_values(headers, b"connection") == [b"close"]
    assert header_values(headers, b"content-type")[0].startswith(b"text/plain")
    assert header_values(headers, b"content-length") == [b"%d" % len(rest)]
    assert (b"server", b"hurtle") in headers
    assert b"Something bad" in rest
    assert rest.endswith(b"\n")


# -- the next cycle ---------------------------------------------------------------------------


def test_two_cycles_on_one_connection() -> None:
    conn = H1Connection(RequestParser())
    conn.receive_data(HEAD11 + b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == EndOfMessage()
    assert head(conn, 200, body=b"hello") == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    conn.start_next_cycle()
    assert conn.request is None
    second = conn.next_event()
    assert isinstance(second, Request)
    assert second.path == b"/2"
    assert conn.next_event() == EndOfMessage()
    # The HEAD of the first cycle does not leak into the second.
    assert head(conn, 200, body=b"hello").endswith(b"\r\n\r\nhello")


def test_keep_alive_reset_per_request() -> None:
    conn = H1Connection(RequestParser())
    conn.receive_data(GET11 + GET11)
    conn.next_event()
    conn.next_event()
    head(conn, 200, [(b"connection", b"close")], body=b"x")
    assert conn.keep_alive is False
    conn.start_next_cycle()
    conn.next_event()
    assert conn.keep_alive is True


# -- the remembered head ---------------------------------------------------------------

_REQUESTS = {
    "get11": GET11,
    "get10": GET10,
    "get10_ka": GET10_KA,
    "head11": HEAD11,
    "te11": GET11_TE,
    "close11": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
}
_HEADER_SETS: list[list[tuple[bytes, bytes]]] = [
    [(b"content-type", b"text/plain")],
    [(b"content-type", b"text/html")],
    [(b"content-type", b"text/plain"), (b"connection", b"close")],
    [(b"content-type", b"text/plain"), (b"connection", b"keep-alive")],
    [],
]
BLOCK_A = b"date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
BLOCK_B = b"date: Thu, 01 Jan 2026 00:00:01 GMT\r\n"


def _state(conn: H1Connection) -> tuple[Any, ...]:
    return (conn.keep_alive, conn.sends_body, conn.chunked, conn.expects_trailers)


def _combos() -> list[dict[str, Any]]:
    combos = []
    for req in _REQUESTS:
        for status in (200, 204, 304, 404):
            for length in (None, 5):
                for hs in range(len(_HEADER_SETS)):
                    for trailers in (False, True):
                        for closing in (False, True):
                            for block in (BLOCK_A, BLOCK_B):
                                combos.append(
                                    {
                                        "req": req,
                                        "status": status,
                                        "length": length,
                                        "hs": hs,
                                        "trailers": trailers,
                                        "closing": closing,
                                        "block": block,
                                    }
                                )
    return combos


def _build(combo: dict[str, Any], body: bytes = b"hello") -> tuple[bytes, tuple[Any, ...]]:
    conn = connection_for(_REQUESTS[combo["req"]])
    conn.closing = combo["closing"]
    data = conn.response_head(
        combo["status"],
        list(_HEADER_SETS[combo["hs"]]),
        combo["block"],
        combo["length"],
        body,
        True,
        combo["trailers"],
    )
    return data, _state(conn)


def test_remembered_head_is_what_building_it_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every combination, built cold (nothing remembered) and then again after
    # each other combination was built last: the bytes and the connection's
    # framing state must not depend on what was remembered.
    combos = _combos()
    cold = {}
    for i, combo in enumerate(combos):
        monkeypatch.setattr(connection_module, "_LAST_HEAD", (b"", 0, None, [], False, False, b""))
        cold[i] = _build(combo)
    primes = [c for c in combos if c["status"] in (200, 404) and not c["trailers"]]
    for prime in primes[:: max(1, len(primes) // 40)]:
        for i, combo in enumerate(combos):
            _build(prime, body=b"other")
            assert _build(combo) == cold[i], (prime, combo)


def test_remembered_head_is_used_for_a_repeat() -> None:
    conn = connection_for(GET11)
    first = head(conn, 200, [(b"content-type", b"text/plain")], content_length=5, body=b"hello")
    remembered = connection_module._LAST_HEAD[6]
    assert first == remembered + b"hello"
    conn = connection_for(GET11)
    again = head(conn, 200, [(b"content-type", b"text/plain")], content_length=5, body=b"world")
    assert again == remembered + b"world"
    assert connection_module._LAST_HEAD[6] is remembered  # a hit, not a rebuild


def test_remembered_head_after_a_response_with_trailers_on_the_same_connection() -> None:
    # A hit leaves the trailers flag of the connection's previous response as
    # it was: the length-framed response must still neither expect trailers
    # nor frame its body or trailers as chunks.
    headers = [(b"content-type", b"text/plain")]
    conn = connection_for(GET11)
    head(conn, 200, headers, content_length=5, body=b"hello")  # remembered
    conn = H1Connection(RequestParser())
    conn.receive_data(GET11_TE + GET11)
    assert isinstance(conn.next_event(), Request)
    assert conn.next_event() == EndOfMessage()
    head(conn, 200, headers, end=False, trailers=True)
    assert conn.expects_trailers
    assert conn.response_body(b"abc", True) == b"3\r\nabc\r\n"
    assert conn.response_trailers([(b"x-t", b"1")]) == b"0\r\nx-t: 1\r\n\r\n"
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), Request)
    remembered = connection_module._LAST_HEAD[6]
    assert head(conn, 200, headers, content_length=5, body=b"world") == remembered + b"world"
    assert _state(conn) == (True, True, False, False)
    assert conn.response_body(b"", True) == b""
    assert conn.response_trailers([(b"x-t", b"1")]) == b""
