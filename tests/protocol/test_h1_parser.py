"""The strict HTTP/1.x request parser, sans-IO (like h11's ``tests/test_io.py``).

Every case is fed three ways: whole, byte by byte, and whole with the next
request's bytes behind it; the same events (or the same rejection, with the
same status) must come out every way. A rejection fed byte by byte must come
out at or before the last byte of the bad input: the parser never waits at
``NEED_DATA`` once the offending bytes are in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from hurtle.protocol.errors import ProtocolError
from hurtle.protocol.events import NEED_DATA, PAUSED, Data, EndOfMessage, Event, Request
from hurtle.protocol.h1 import RequestParser

# A complete request that follows the case under test in the "trailing" mode.
NEXT_REQUEST = b"GET /next?n=1 HTTP/1.1\r\nHost: next\r\n\r\n"


# -- helpers -------------------------------------------------------------------


def normalize(event: Event) -> tuple[Any, ...]:
    if isinstance(event, Request):
        return (
            "request",
            event.method,
            event.target,
            event.path,
            event.query,
            event.http_version,
            tuple(event.headers),
            event.keep_alive,
            event.content_length,
            event.chunked,
            event.expect_continue,
            event.te_trailers,
            event.upgrade,
            event.has_body,
        )
    if isinstance(event, Data):
        return ("data", event.data)
    if isinstance(event, EndOfMessage):
        return ("end", tuple(event.trailers))
    raise AssertionError(f"unexpected event {event!r}")


def _merge_data(events: list[Event]) -> list[Event]:
    """Consecutive `Data` joined: how body bytes are cut depends on the feeding."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def _pump(parser: RequestParser, out: list[Event]) -> None:
    """Pull events until NEED_DATA, starting the next cycle after each message."""
    for _ in range(100_000):
        event = parser.next_event()
        if event is NEED_DATA:
            return
        assert event is not PAUSED, "start_next_cycle() was called after each message"
        out.append(event)
        if isinstance(event, EndOfMessage):
            parser.start_next_cycle()
    raise AssertionError("the parser produced events without end")


def feed_whole(data: bytes, **limits: Any) -> list[Event]:
    parser = RequestParser(**limits)
    events: list[Event] = []
    parser.receive_data(data)
    _pump(parser, events)
    return _merge_data(events)


def feed_bytewise(data: bytes, **limits: Any) -> list[Event]:
    parser = RequestParser(**limits)
    events: list[Event] = []
    for i in range(len(data)):
        parser.receive_data(data[i : i + 1])
        _pump(parser, events)
    return _merge_data(events)


def feed_trailing(data: bytes, **limits: Any) -> list[Event]:
    return feed_whole(data + NEXT_REQUEST, **limits)


FEEDERS: dict[str, Callable[..., list[Event]]] = {
    "whole": feed_whole,
    "bytewise": feed_bytewise,
}


def parse(data: bytes, *, trailing: bool = True, **limits: Any) -> list[Event]:
    """The events of `data`, after checking that every way of feeding it agrees."""
    whole = feed_whole(data, **limits)
    expected = [normalize(e) for e in whole]
    for name, feeder in FEEDERS.items():
        got = [normalize(e) for e in feeder(data, **limits)]
        assert got == expected, f"fed {name}: events differ"
    if trailing:
        after = feed_trailing(data, **limits)
        got = [normalize(e) for e in after]
        tail = [normalize(e) for e in feed_whole(NEXT_REQUEST, **limits)]
        assert got == expected + tail, "fed with trailing data: events differ"
    return whole


def _outcome(feeder: Callable[..., list[Event]], data: bytes, **limits: Any) -> Any:
    try:
        events = feeder(data, **limits)
    except ProtocolError as exc:
        return ("error", exc.status)
    return ("events", [normalize(e) for e in events])


def reject(data: bytes, status: int, *, trailing: bool = True, **limits: Any) -> ProtocolError:
    """Assert that `data` is refused with `status` however it is fed; return the error."""
    try:
        feed_whole(data, **limits)
    except ProtocolError as exc:
        error = exc
    else:
        raise AssertionError(f"fed whole: accepted, expected {status}")
    assert error.status == status, f"fed whole: {error.status} ({error.reason}), expected {status}"
    assert isinstance(error.reason, str) and error.reason

    # Byte by byte: the error comes out by the last byte of the bad input.
    outcome = _outcome(feed_bytewise, data, **limits)
    assert outcome == ("error", status), f"fed byte by byte: {outcome}, expected {status}"

    if trailing:
        outcome = _outcome(feed_trailing, data, **limits)
        assert outcome == ("error", status), f"fed with trailing data: {outcome}"
    return error


def request_of(data: bytes, **limits: Any) -> Request:
    events = parse(data, **limits)
    assert isinstance(events[0], Request)
    return events[0]


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


# -- valid requests ---------------------------------------------------------------


def test_get_origin_form_with_query() -> None:
    events = parse(b"GET /path/to?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert len(events) == 2
    request, end = events
    assert isinstance(request, Request)
    assert request.method == b"GET"
    assert request.target == b"/path/to?x=1&y=%20"
    assert request.path == b"/path/to"
    assert request.query == b"x=1&y=%20"
    assert request.http_version == "1.1"
    assert request.headers == [(b"host", b"example.com")]
    assert request.keep_alive is True
    assert request.content_length is None
    assert request.chunked is False
    assert request.has_body is False
    assert end == EndOfMessage()
    assert end.trailers == []


def test_empty_query_and_question_mark_only() -> None:
    request = request_of(b"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (request.path, request.query) == (b"/a", b"")
    request = request_of(b"GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (request.path, request.query) == (b"/a", b"b?c")


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://example.com/a?b", b"/a", b"b"),
        (b"https://example.com:8443/x/y", b"/x/y", b""),
        (b"http://example.com", b"/", b""),
        (b"http://example.com?q=1", b"/", b"q=1"),
        (b"HTTP://EXAMPLE.COM/A", b"/A", b""),
        (b"http://user@example.com/p", b"/p", b""),
    ],
)
def test_absolute_form(target: bytes, path: bytes, query: bytes) -> None:
    request = request_of(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert request.target == target
    assert request.path == path
    assert request.query == query


def test_options_asterisk() -> None:
    request = request_of(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert request.method == b"OPTIONS"
    assert request.target == b"*"
    assert request.path == b"*"
    assert request.query == b""


def test_http10_without_host() -> None:
    events = parse(b"GET / HTTP/1.0\r\n\r\n")
    request = events[0]
    assert isinstance(request, Request)
    assert request.http_version == "1.0"
    assert request.headers == []
    assert request.keep_alive is False
    assert events[1:] == [EndOfMessage()]


def test_http10_with_headers_and_no_host() -> None:
    request = request_of(b"GET /x HTTP/1.0\r\nUser-Agent: old\r\n\r\n")
    assert request.headers == [(b"user-agent", b"old")]


def test_higher_minor_version_is_answered_as_11() -> None:
    # RFC 9110 6.2: a 1.x request with an unknown minor is treated as 1.1.
    request = request_of(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
    assert request.http_version == "1.1"


@pytest.mark.parametrize("method", [b"PURGE", b"M-SEARCH", b"PROPFIND", b"get", b"X_Y.Z~!"])
def test_any_token_method(method: bytes) -> None:
    assert request_of(method + b" / HTTP/1.1\r\nHost: a\r\n\r\n").method == method


def test_header_values_trimmed_empty_and_obs_text() -> None:
    request = request_of(
        b"GET / HTTP/1.1\r\n"
        b"Host:a\r\n"
        b"X-Spaces:   v  \t\r\n"
        b"X-Inner: a  b\tc\r\n"
        b"X-Empty:\r\n"
        b"X-Blank:  \t \r\n"
        b"X-Obs: caf\xe9 \xff\x80\r\n"
        b"X-Colon: a:b: c\r\n"
        b"X-Quote: \"q\" 'r' {}\r\n"
        b"\r\n"
    )
    assert request.headers == [
        (b"host", b"a"),
        (b"x-spaces", b"v"),
        (b"x-inner", b"a  b\tc"),
        (b"x-empty", b""),
        (b"x-blank", b""),
        (b"x-obs", b"caf\xe9 \xff\x80"),
        (b"x-colon", b"a:b: c"),
        (b"x-quote", b"\"q\" 'r' {}"),
    ]


def test_duplicate_headers_kept_in_order_names_lowercased() -> None:
    request = request_of(
        b"GET / HTTP/1.1\r\n"
        b"HOST: a\r\n"
        b"X-Dup: 1\r\n"
        b"Accept: */*\r\n"
        b"x-DUP: 2\r\n"
        b"Set-Cookie: a=b\r\n"
        b"X-Dup: 3\r\n"
        b"\r\n"
    )
    assert request.headers == [
        (b"host", b"a"),
        (b"x-dup", b"1"),
        (b"accept", b"*/*"),
        (b"x-dup", b"2"),
        (b"set-cookie", b"a=b"),
        (b"x-dup", b"3"),
    ]


def test_header_values_keep_case() -> None:
    request = request_of(b"GET / HTTP/1.1\r\nHost: MiXeD.Example\r\nX-A: VaLuE\r\n\r\n")
    assert request.headers == [(b"host", b"MiXeD.Example"), (b"x-a", b"VaLuE")]


def test_content_length_body() -> None:
    events = parse(b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
    request = events[0]
    assert isinstance(request, Request)
    assert request.content_length == 11
    assert request.chunked is False
    assert request.has_body is True
    assert events[1:] == [Data(b"hello world"), EndOfMessage()]


def test_content_length_with_ows_and_leading_zeros() -> None:
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  003 \r\n\r\nabc")
    request = events[0]
    assert isinstance(request, Request)
    assert request.content_length == 3
    assert events[1:] == [Data(b"abc"), EndOfMessage()]


def test_content_length_zero() -> None:
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    request = events[0]
    assert isinstance(request, Request)
    assert request.content_length == 0
    assert request.has_body is False
    assert events[1:] == [EndOfMessage()]


def test_body_bytes_are_not_interpreted() -> None:
    body = b"GET / HTTP/1.1\r\n\r\n\x00\xff\r\n0\r\n\r\n"
    events = parse(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert body_of(events) == body


def test_chunked_with_extensions_and_trailers() -> None:
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'6 ; a = "quoted; \\"value\\"" ;b\r\n world\r\n'
        b"1;x\r\n!\r\n"
        b"0;last=1\r\n"
        b"X-Trailer: t\r\n"
        b"x-other:  o \r\n"
        b"\r\n"
    )
    request = events[0]
    assert isinstance(request, Request)
    assert request.chunked is True
    assert request.content_length is None
    assert request.has_body is True
    assert body_of(events) == b"hello world!"
    assert events[-1] == EndOfMessage([(b"x-trailer", b"t"), (b"x-other", b"o")])


def test_chunked_without_trailers_hex_case_and_leading_zeros() -> None:
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"a\r\n0123456789\r\n"
        b"0000B\r\nabcdefghijk\r\n"
        b"000\r\n\r\n"
    )
    assert body_of(events) == b"0123456789abcdefghijk"
    assert events[-1] == EndOfMessage()


def test_chunked_empty_body() -> None:
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert [type(e) for e in events] == [Request, EndOfMessage]


def test_chunked_transfer_encoding_in_two_headers_of_which_last_is_chunked() -> None:
    # Only chunked, listed once: two fields combine to "chunked" alone here.
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert body_of(events) == b"abc"


@pytest.mark.parametrize("count", [1, 2, 4])
def test_leading_empty_lines_tolerated(count: int) -> None:
    request = request_of(b"\r\n" * count + b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert request.path == b"/x"


def test_leading_empty_lines_counted_per_request() -> None:
    # The allowance is per request: a few before each pipelined one are fine.
    one = b"\r\n" * 4 + b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    events = parse(one * 3)
    assert [e.path for e in events if isinstance(e, Request)] == [b"/x"] * 3


def test_empty_line_between_pipelined_requests() -> None:
    # Some clients send a CRLF after a POST body (RFC 9112 2.2).
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n"
        b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert [type(e) for e in events] == [Request, Data, EndOfMessage, Request, EndOfMessage]
    second = events[3]
    assert isinstance(second, Request)
    assert second.path == b"/second"


@pytest.mark.parametrize(
    ("version", "connection_lines", "keep_alive"),
    [
        (b"1.1", [], True),
        (b"1.1", [b"close"], False),
        (b"1.1", [b"Close"], False),
        (b"1.1", [b"keep-alive"], True),
        (b"1.1", [b"keep-alive, close"], False),
        (b"1.1", [b"close, keep-alive"], False),
        (b"1.1", [b"close", b"keep-alive"], False),
        (b"1.1", [b"keep-alive", b"close"], False),
        (b"1.1", [b"foo,  close ,bar"], False),
        (b"1.1", [b"upgrade"], True),
        (b"1.0", [], False),
        (b"1.0", [b"keep-alive"], True),
        (b"1.0", [b"Keep-Alive"], True),
        (b"1.0", [b"x, keep-alive"], True),
        (b"1.0", [b"keep-alive", b"close"], False),
        (b"1.0", [b"close, keep-alive"], False),
        (b"1.0", [b"close"], False),
    ],
)
def test_keep_alive_rules(version: bytes, connection_lines: list[bytes], keep_alive: bool) -> None:
    head = b"GET / HTTP/" + version + b"\r\nHost: a\r\n"
    head += b"".join(b"Connection: " + v + b"\r\n" for v in connection_lines)
    assert request_of(head + b"\r\n").keep_alive is keep_alive


@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue", b"100-CONTINUE"])
def test_expect_100_continue(value: bytes) -> None:
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: " + value + b"\r\nContent-Length: 3\r\n\r\nabc"
    )
    request = events[0]
    assert isinstance(request, Request)
    assert request.expect_continue is True
    assert body_of(events) == b"abc"


def test_no_expect_by_default() -> None:
    assert request_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect_continue is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"trailers", True),
        (b"Trailers", True),
        (b"gzip;q=0.5, trailers", True),
        (b"trailers, deflate", True),
        (b"gzip", False),
        (b"", False),
    ],
)
def test_te_trailers(value: bytes, expected: bool) -> None:
    request = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nTE: " + value + b"\r\n\r\n")
    assert request.te_trailers is expected


def test_upgrade_needs_connection_upgrade() -> None:
    request = request_of(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert request.upgrade == b"websocket"
    request = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    assert request.upgrade is None


def test_pipelined_requests_in_one_buffer() -> None:
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
        b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        b"GET /4 HTTP/1.0\r\n\r\n"
    )
    events = parse(data)
    paths = [e.path for e in events if isinstance(e, Request)]
    assert paths == [b"/1", b"/2", b"/3", b"/4"]
    assert [type(e).__name__ for e in events] == [
        "Request",
        "EndOfMessage",
        "Request",
        "Data",
        "EndOfMessage",
        "Request",
        "Data",
        "EndOfMessage",
        "Request",
        "EndOfMessage",
    ]
    assert [e.data for e in events if isinstance(e, Data)] == [b"body", b"hi"]


def test_paused_until_start_next_cycle() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    first = parser.next_event()
    assert isinstance(first, Request)
    assert first.path == b"/1"
    assert parser.next_event() == EndOfMessage()
    assert parser.paused
    # The second request is not parsed before the first response is done.
    assert parser.next_event() is PAUSED
    assert parser.next_event() is PAUSED
    assert parser.buffered == len(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    parser.start_next_cycle()
    assert not parser.paused
    second = parser.next_event()
    assert isinstance(second, Request)
    assert second.path == b"/2"
    assert parser.next_event() == EndOfMessage()
    parser.start_next_cycle()
    assert parser.next_event() is NEED_DATA


def test_start_next_cycle_before_the_request_is_complete() -> None:
    parser = RequestParser()
    with pytest.raises(RuntimeError):
        parser.start_next_cycle()
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == Data(b"ab")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(RuntimeError):
        parser.start_next_cycle()


def test_in_partial_head_and_trailing_data() -> None:
    parser = RequestParser()
    assert not parser.in_partial_head
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"GET / HT")
    assert parser.next_event() is NEED_DATA
    assert parser.in_partial_head
    parser.receive_data(b"TP/1.1\r\nHost: a\r\n\r\nextra bytes")
    assert isinstance(parser.next_event(), Request)
    assert not parser.in_partial_head
    assert parser.next_event() == EndOfMessage()
    assert parser.trailing_data == b"extra bytes"


def test_body_split_at_every_boundary_for_chunked() -> None:
    # Every two-way split of one chunked request gives the same body.
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"
    )
    for cut in range(len(data) + 1):
        parser = RequestParser()
        events: list[Event] = []
        parser.receive_data(data[:cut])
        _pump(parser, events)
        parser.receive_data(data[cut:])
        _pump(parser, events)
        merged = _merge_data(events)
        assert body_of(merged) == b"abcde", cut
        assert merged[-1] == EndOfMessage([(b"t", b"v")]), cut


def test_error_state_is_sticky() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.next_event()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 400


# -- limits at their boundary: accepted exactly at the limit -------------------------


def test_request_line_exactly_at_the_limit() -> None:
    line = b"GET /" + b"a" * 50 + b" HTTP/1.1"
    limit = len(line)
    request = request_of(line + b"\r\nHost: a\r\n\r\n", max_line=limit)
    assert len(request.target) == 51
    reject(b"GET /" + b"a" * 51 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, max_line=limit)


def test_head_exactly_at_the_limit() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\n"
    # The trailing request is a head of its own and must fit too.
    request_of(head, max_head=len(head))
    reject(head[:-4] + b"p\r\n\r\n", 431, max_head=len(head))


def test_fields_exactly_at_the_limit() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    request = request_of(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", max_fields=5)
    assert len(request.headers) == 5
    reject(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"X-9: v\r\n\r\n", 431, max_fields=5)


def test_body_exactly_at_the_limit() -> None:
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", max_body=10
    )
    assert body_of(events) == b"0123456789"
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
        max_body=10,
    )
    assert body_of(events) == b"0123456789"


def test_chunk_extensions_exactly_at_the_limit() -> None:
    # ";aaaaaaa" is 8 bytes; two of them are 16, the limit.
    events = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1;aaaaaaa\r\nx\r\n1;bbbbbbb\r\ny\r\n0\r\n\r\n",
        max_chunk_ext=16,
    )
    assert body_of(events) == b"xy"


def test_sixteen_hex_digits_chunk_size_is_not_too_many() -> None:
    parser = RequestParser()
    parser.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0000FFFFFFFFFFFFFFF\r\nabc"
    )
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == Data(b"abc")
    assert parser.next_event() is NEED_DATA


# -- rejections ------------------------------------------------------------------------

H = b"Host: a\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

REJECTIONS: list[Any] = [
    # framing: RFC 9112 6.1, 6.3 (request smuggling)
    pytest.param(
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        {},
        id="cl-and-te",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
        {},
        id="te-and-cl",
    ),
    pytest.param(
        POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, {}, id="dup-cl-equal"
    ),
    pytest.param(
        POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, {}, id="dup-cl-differ"
    ),
    pytest.param(POST + b"Content-Length: abc\r\n\r\n", 400, {}, id="cl-alpha"),
    pytest.param(POST + b"Content-Length: +5\r\n\r\nhello", 400, {}, id="cl-plus"),
    pytest.param(POST + b"Content-Length: -1\r\n\r\n", 400, {}, id="cl-negative"),
    pytest.param(POST + b"Content-Length: 1,1\r\n\r\nx", 400, {}, id="cl-list"),
    pytest.param(POST + b"Content-Length: 1, 1\r\n\r\nx", 400, {}, id="cl-list-space"),
    pytest.param(POST + b"Content-Length: 1 1\r\n\r\nx", 400, {}, id="cl-two-numbers"),
    pytest.param(POST + b"Content-Length: 0x5\r\n\r\nhello", 400, {}, id="cl-hex"),
    pytest.param(POST + b"Content-Length: 5.0\r\n\r\nhello", 400, {}, id="cl-float"),
    pytest.param(POST + b"Content-Length:\r\n\r\n", 400, {}, id="cl-empty"),
    pytest.param(POST + b"Content-Length: \xd9\xa3\r\n\r\nabc", 400, {}, id="cl-unicode-digit"),
    pytest.param(POST + b"Content-Length: " + b"9" * 19 + b"\r\n\r\n", 413, {}, id="cl-huge"),
    pytest.param(POST + b"Transfer-Encoding: gzip\r\n\r\n", 400, {}, id="te-gzip-only"),
    pytest.param(POST + b"Transfer-Encoding: identity\r\n\r\n", 400, {}, id="te-identity"),
    pytest.param(POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, {}, id="te-chunked-gzip"),
    pytest.param(POST + b"Transfer-Encoding:\r\n\r\n", 400, {}, id="te-empty"),
    pytest.param(POST + b"Transfer-Encoding: chunkedx\r\n\r\n", 400, {}, id="te-chunkedx"),
    pytest.param(
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, {}, id="te-gzip-chunked"
    ),
    pytest.param(
        POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
        {},
        id="te-gzip-then-chunked-fields",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
        {},
        id="te-chunked-twice",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        {},
        id="te-chunked-two-fields",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, {}, id="te-on-10"
    ),
    # the head's syntax: RFC 9112 2.2, 5
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n", 400, {}, id="obs-fold-space"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n\tb\r\n\r\n", 400, {}, id="obs-fold-tab"
    ),
    pytest.param(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, {}, id="first-line-folded"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\n\n", 400, {}, id="bare-lf-everywhere"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, {}, id="bare-lf-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, {}, id="bare-lf-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400, {}, id="bare-lf-before-blank"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400, {}, id="bare-lf-blank-line"),
    pytest.param(b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, {}, id="bare-cr-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, {}, id="bare-cr-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, {}, id="bare-cr-value"),
    pytest.param(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="bare-cr-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, {}, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, {}, id="tab-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, {}, id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400, {}, id="ctl-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n", 400, {}, id="esc-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, {}, id="del-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x0b\r\n\r\n", 400, {}, id="vt-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-(A): b\r\n\r\n", 400, {}, id="paren-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400, {}, id="space-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX@A: b\r\n\r\n", 400, {}, id="at-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400, {}, id="nul-in-name"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n\xe9t\xe9: b\r\n\r\n", 400, {}, id="non-ascii-name"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, {}, id="empty-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, {}, id="no-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX/Y: b\r\n\r\n", 400, {}, id="slash-in-name"),
    pytest.param(b'GET / HTTP/1.1\r\nHost: a\r\n"X": b\r\n\r\n', 400, {}, id="quote-in-name"),
    # Host: RFC 9112 3.2
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, {}, id="missing-host"),
    pytest.param(b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, {}, id="missing-host-with-fields"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, {}, id="dup-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, {}, id="dup-host-differ"),
    pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, {}, id="dup-host-10"),
    # chunked framing: RFC 9112 7.1
    pytest.param(CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-zz"),
    pytest.param(CHUNKED + b"-1\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-negative"),
    pytest.param(CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-leading-space"),
    pytest.param(CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-trailing-space"),
    pytest.param(CHUNKED + b"5 5\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-inner-space"),
    pytest.param(CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-0x"),
    pytest.param(CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-plus"),
    pytest.param(CHUNKED + b"\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-empty"),
    pytest.param(CHUNKED + b"5\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-bare-lf"),
    pytest.param(CHUNKED + b"5\rhello\r\n0\r\n\r\n", 400, {}, id="chunk-size-bare-cr"),
    pytest.param(CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-ext-empty"),
    pytest.param(CHUNKED + b"5;a=\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-ext-no-value"),
    pytest.param(CHUNKED + b'5;a="x\r\nhello\r\n0\r\n\r\n', 400, {}, id="chunk-ext-open-quote"),
    pytest.param(CHUNKED + b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400, {}, id="chunk-ext-nul"),
    pytest.param(
        CHUNKED + b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n", 413, {}, id="chunk-size-17-digits"
    ),
    pytest.param(CHUNKED + b"F" * 40 + b"\r\nhello\r\n", 413, {}, id="chunk-size-40-digits"),
    pytest.param(
        CHUNKED + b"5;" + b"a" * 20 + b"\r\nhello\r\n0\r\n\r\n",
        400,
        {"max_chunk_ext": 16},
        id="chunk-ext-over-limit",
    ),
    pytest.param(
        CHUNKED + b"1;aaaaaaa\r\nx\r\n1;bbbbbbb\r\ny\r\n1;c\r\nz\r\n0\r\n\r\n",
        400,
        {"max_chunk_ext": 16},
        id="chunk-ext-over-limit-in-total",
    ),
    pytest.param(
        CHUNKED + b"0;" + b"a" * 20 + b"\r\n\r\n",
        400,
        {"max_chunk_ext": 16},
        id="chunk-ext-over-limit-on-last-chunk",
    ),
    pytest.param(CHUNKED + b"5\r\nhelloX\r\n0\r\n\r\n", 400, {}, id="chunk-data-no-crlf"),
    pytest.param(CHUNKED + b"5\r\nhello0\r\n\r\n", 400, {}, id="chunk-data-too-long"),
    pytest.param(CHUNKED + b"5\r\nhello\n0\r\n\r\n", 400, {}, id="chunk-data-bare-lf"),
    pytest.param(CHUNKED + b"5\r\nhello\rX0\r\n\r\n", 400, {}, id="chunk-data-bare-cr"),
    pytest.param(CHUNKED + b"0\r\nX : a\r\n\r\n", 400, {}, id="trailer-space-before-colon"),
    pytest.param(CHUNKED + b"0\r\nX: a\n\r\n", 400, {}, id="trailer-bare-lf"),
    pytest.param(CHUNKED + b"0\r\nX: a\r\n b\r\n\r\n", 400, {}, id="trailer-obs-fold"),
    pytest.param(CHUNKED + b"0\r\nX: \x00\r\n\r\n", 400, {}, id="trailer-nul"),
    pytest.param(CHUNKED + b"0\r\n\n", 400, {}, id="last-chunk-bare-lf"),
    pytest.param(CHUNKED + b"0\r\nX\r\n\r\n", 400, {}, id="trailer-no-colon"),
    # sizes: RFC 9110 15.5.14, 15.5.15, 15.5.20; RFC 6585 5
    pytest.param(
        b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        414,
        {"max_line": 64},
        id="request-line-too-long",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 300 + b"\r\n\r\n",
        431,
        {"max_head": 256},
        id="head-too-large",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(10))
        + b"\r\n",
        431,
        {"max_fields": 5},
        id="too-many-fields",
    ),
    pytest.param(
        CHUNKED + b"0\r\n" + b"".join(b"T-%d: v\r\n" % i for i in range(10)) + b"\r\n",
        431,
        {"max_fields": 5},
        id="too-many-trailer-fields",
    ),
    pytest.param(
        CHUNKED + b"0\r\nT: " + b"v" * 300 + b"\r\n\r\n",
        431,
        {"max_head": 256},
        id="trailers-too-large",
    ),
    pytest.param(
        POST + b"Content-Length: 11\r\n\r\nhello world",
        413,
        {"max_body": 10},
        id="body-over-limit-by-cl",
    ),
    pytest.param(
        CHUNKED + b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
        413,
        {"max_body": 10},
        id="body-over-limit-chunked",
    ),
    pytest.param(
        CHUNKED + b"b\r\nhello world\r\n0\r\n\r\n", 413, {"max_body": 10}, id="one-chunk-over"
    ),
    # request line: RFC 9112 3, 2.3; RFC 9110 15.6.6
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, {}, id="http-2.0"),
    pytest.param(b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, {}, id="http-3.0"),
    pytest.param(b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, {}, id="http-0.9-versioned"),
    pytest.param(b"GET /\r\n\r\n", 400, {}, id="no-version"),
    pytest.param(b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400, {}, id="version-no-minor"),
    pytest.param(b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n", 400, {}, id="version-three-parts"),
    pytest.param(b"GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400, {}, id="version-two-digit-major"),
    pytest.param(b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, {}, id="version-lowercase"),
    pytest.param(b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400, {}, id="version-other-name"),
    pytest.param(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="double-space"),
    pytest.param(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, {}, id="trailing-space"),
    pytest.param(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="leading-space"),
    pytest.param(b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="tabs"),
    pytest.param(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="method-not-token"),
    pytest.param(b"/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="no-method"),
    pytest.param(b"\x16\x03\x01\x00\xa5\x01\r\n\r\n", 400, {}, id="binary-garbage"),
    pytest.param(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501, {}, id="connect"
    ),
    pytest.param(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="asterisk-get"),
    pytest.param(b"POST * HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="asterisk-post"),
    pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="non-ascii-target"),
    pytest.param(b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="nul-in-target"),
    pytest.param(b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="del-in-target"),
    pytest.param(b"GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="authority-form-get"),
    pytest.param(b"GET ftp://x/y HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="absolute-form-ftp"),
    pytest.param(b"GET http:///y HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="absolute-no-authority"),
    pytest.param(b"GET ?x HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="query-only-target"),
    # expectations: RFC 9110 10.1.1
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417, {}, id="expect-unknown"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n", 417, {}, id="expect-list"
    ),
    # RFC 9112 2.2: a few empty lines before a request, not a stream of them.
    pytest.param(
        b"\r\n" * 5 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="five-empty-lines"
    ),
    pytest.param(
        b"\r\n" * 100 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, {}, id="many-empty-lines"
    ),
]


@pytest.mark.parametrize(("data", "status", "limits"), REJECTIONS)
def test_rejected(data: bytes, status: int, limits: dict[str, int]) -> None:
    reject(data, status, **limits)


# Bad input that must be refused before the head is complete: the parser
# knows enough already, so it must not wait (for bytes or a timeout).
EARLY_REJECTIONS: list[Any] = [
    pytest.param(b"GET / HTTP/1.1\nHost: a", 400, {}, id="bare-lf-in-partial-head"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX", 400, {}, id="bare-lf-in-partial-field"),
    pytest.param(b"GET /" + b"a" * 100, 414, {"max_line": 64}, id="endless-request-line"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 300, 431, {"max_head": 256}, id="endless-head"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 300, 431, {"max_head": 256}, id="endless-fields"
    ),
    # An HTTP/0.9 "simple request" has no version and no blank line after it:
    # the request line alone is complete and invalid.
    pytest.param(b"GET /\r\n", 400, {}, id="http-0.9-simple-request"),
    pytest.param(CHUNKED + b"5\nhel", 400, {}, id="chunk-size-bare-lf-partial"),
    pytest.param(CHUNKED + b"5\r\nhelloX", 400, {}, id="chunk-data-no-crlf-partial"),
    pytest.param(
        CHUNKED + b"5;" + b"a" * 5000, 400, {"max_chunk_ext": 16}, id="endless-chunk-extension"
    ),
    pytest.param(CHUNKED + b"1" * 40, 413, {}, id="endless-chunk-size"),
    pytest.param(CHUNKED + b"0\r\nT: v\nX", 400, {}, id="trailer-bare-lf-partial"),
    pytest.param(CHUNKED + b"0\r\nT: " + b"v" * 300, 431, {"max_head": 256}, id="endless-trailers"),
]


@pytest.mark.parametrize(("data", "status", "limits"), EARLY_REJECTIONS)
def test_rejected_before_the_head_or_body_completes(
    data: bytes, status: int, limits: dict[str, int]
) -> None:
    reject(data, status, trailing=False, **limits)


def test_chunk_size_line_of_leading_zeros_is_bounded() -> None:
    # Leading zeros are grammatical, but a chunk-size line thousands of bytes
    # long is not a real client; however it arrives, the answer is the same.
    data = CHUNKED + b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"
    outcomes = {name: _outcome(feeder, data) for name, feeder in FEEDERS.items()}
    assert outcomes["whole"] == outcomes["bytewise"], outcomes
    assert outcomes["whole"][0] == "error"
    assert outcomes["whole"][1] in (400, 413)


def test_rejection_carries_reason_and_status_attributes() -> None:
    error = reject(b"GET / HTTP/1.1\r\n\r\n", 400)
    assert "Host" in error.reason
    assert str(error) == error.reason


def test_second_request_rejected_after_a_good_one() -> None:
    parser = RequestParser()
    parser.receive_data(
        b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == EndOfMessage()
    parser.start_next_cycle()
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 400


# -- cost: linear in the bytes received ---------------------------------------------------
#
# One socket read can carry 256 KiB; a parser that copies the rest of its
# buffer for each tiny chunk (or rescans the whole partial head for each byte)
# spends seconds of event-loop time on it, stalling every connection. Linear
# parsing takes a small fraction of these bounds even on a loaded machine.


# Linear time is asserted through the mechanism that gives it, not a stopwatch
# (timed tests flake on a loaded machine): events consume the buffer by moving
# an offset, and a partial head is never rescanned from its start.


def test_many_tiny_chunks_in_one_read_parse_in_linear_time() -> None:
    count = 80_000
    data = CHUNKED + b"1\r\nx\r\n" * count + b"0\r\n\r\n"
    parser = RequestParser(max_body=None)
    parser.receive_data(data)
    assert isinstance(parser.next_event(), Request)
    buffer = parser._buf
    body = []
    while True:
        event = parser.next_event()
        # The same buffer object throughout: no copy of the rest per chunk,
        # which is what made 80 000 chunks in one read take seconds.
        assert parser._buf is buffer
        if isinstance(event, EndOfMessage):
            break
        assert isinstance(event, Data)
        body.append(event.data)
    assert b"".join(body) == b"x" * count


def test_head_arriving_byte_by_byte_parses_in_linear_time() -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 600) for i in range(95))
        + b"\r\n"
    )
    assert 55_000 < len(head) < 65_536
    parser = RequestParser()
    for i in range(len(head) - 1):
        parser.receive_data(head[i : i + 1])
        assert parser.next_event() is NEED_DATA
        # Appending is amortised (a bytearray, not a new bytes per byte) and
        # everything fed so far is marked as checked: the next feed looks at
        # the new byte only, instead of rescanning the whole head.
        assert parser._scan == len(parser._buf) == i + 1
        if i:
            assert isinstance(parser._buf, bytearray)
    parser.receive_data(head[-1:])
    request = parser.next_event()
    assert isinstance(request, Request)
    assert len(request.headers) == 96


@pytest.mark.parametrize("seed", range(3))
def test_buffered_counts_the_unconsumed_bytes_after_every_call(seed: int) -> None:
    # ``buffered`` is an attribute kept by receive_data and next_event, not
    # computed on read: after any call it must equal what is left unconsumed,
    # whatever path (fast, careful, body, chunked, pipelined, error) ran.
    rng = random.Random(seed)
    stream = (
        b"\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"
        b"GET /d HTTP/1.0\r\nX:  spaced  \r\n\r\n"
        b"GET /e HTTP/1.1\r\nHost: a\r\nBad Line\r\n\r\n"
    )
    for _ in range(50):
        parser = RequestParser()
        fed = 0
        for _ in range(len(stream) + 100):
            if fed < len(stream) and rng.random() < 0.5:
                size = rng.choice([1, 2, 7, 40, 200])
                parser.receive_data(stream[fed : fed + size])
                fed = min(fed + size, len(stream))
            else:
                try:
                    event = parser.next_event()
                except ProtocolError:
                    assert parser.buffered == len(parser._buf) - parser._pos
                    break
                if event is PAUSED:
                    parser.start_next_cycle()
            assert parser.buffered == len(parser._buf) - parser._pos <= fed
        else:
            raise AssertionError("the bad line was never reached")
