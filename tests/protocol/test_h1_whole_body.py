"""`RequestParser.whole_body`: a Content-Length body taken at once, right after its head.

The HTTP/1.1 adapter calls it before the app starts: when all of the body is
buffered it must come back whole, the parser must be where its last `Data`
would have left it (``start_next_cycle`` allowed, pipelined bytes kept), and
when it is not all here nothing may be taken, so the events follow as usual.
"""

from __future__ import annotations

import random

import pytest

from hurtle.protocol.events import NEED_DATA, Data, EndOfMessage, Request
from hurtle.protocol.h1 import RequestParser
from tests.protocol.test_h1_body_last import NEXT, expect_next


def post(body: bytes, *fields: bytes) -> bytes:
    extra = b"".join(field + b"\r\n" for field in fields)
    return b"POST / HTTP/1.1\r\nHost: a\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra,
        len(body),
        body,
    )


def head_of(parser: RequestParser, data: bytes | bytearray) -> Request:
    parser.receive_data(data)
    event = parser.next_event()
    assert isinstance(event, Request)
    return event


@pytest.mark.parametrize(
    "fields",
    [
        (),
        # Not the fast path's: the careful walk (_interpret) made the request.
        (b"Expect: 100-continue",),
        (b"X-Odd:  two spaces",),
    ],
)
def test_a_buffered_body_comes_back_whole(fields: tuple[bytes, ...]) -> None:
    parser = RequestParser()
    request = head_of(parser, post(b"hello world", *fields))
    assert request.has_body
    assert parser.whole_body() == b"hello world"
    assert parser.buffered == 0
    # What its last Data would have allowed: the next request may start.
    assert parser.start_next_cycle() == 0
    assert parser.next_event() is NEED_DATA


def test_pipelined_bytes_after_the_body_stay_for_the_next_request() -> None:
    parser = RequestParser()
    head_of(parser, post(b"abc") + NEXT)
    assert parser.whole_body() == b"abc"
    assert parser.buffered == len(NEXT)
    assert parser.start_next_cycle() == len(NEXT)
    request = parser.next_event()
    assert isinstance(request, Request)
    assert request.target == b"/next"
    assert parser.whole_body() is None  # a GET has no body to take


def test_a_partial_body_is_left_to_the_events() -> None:
    data = post(b"0123456789")
    parser = RequestParser()
    head_of(parser, data[:-4])
    assert parser.whole_body() is None
    # Nothing was taken: the Data events carry every byte.
    pieces = []
    event = parser.next_event()
    assert isinstance(event, Data)
    pieces.append(event)
    parser.receive_data(data[-4:])
    event = parser.next_event()
    assert isinstance(event, Data)
    pieces.append(event)
    assert b"".join(p.data for p in pieces) == b"0123456789"
    assert pieces[-1].last


def test_a_body_whose_head_came_in_pieces() -> None:
    # The careful path's buffer is a bytearray until the head is whole.
    data = post(b"x" * 100)
    parser = RequestParser()
    parser.receive_data(data[:10])
    assert parser.next_event() is NEED_DATA
    head_of(parser, data[10:])
    body = parser.whole_body()
    assert body == b"x" * 100
    assert type(body) is bytes


def test_chunked_and_empty_bodies_are_not_taken() -> None:
    parser = RequestParser()
    chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    head_of(parser, chunked + b"3\r\nabc\r\n0\r\n\r\n")
    assert parser.whole_body() is None
    event = parser.next_event()
    assert isinstance(event, Data)
    assert event.data == b"abc"

    parser = RequestParser()
    request = head_of(parser, post(b""))
    assert not request.has_body
    assert parser.whole_body() is None
    assert isinstance(parser.next_event(), EndOfMessage)


def test_before_any_request_nothing_is_taken() -> None:
    parser = RequestParser()
    assert parser.whole_body() is None
    parser.receive_data(b"GET / HTTP/1.1\r\n")
    assert parser.whole_body() is None
    assert parser.next_event() is NEED_DATA


@pytest.mark.parametrize("seed", range(2))
def test_the_same_bytes_as_the_events_give(seed: int) -> None:
    """Whatever the cut, the body from whole_body() (when it answers) plus the
    Data events after it is the body, and the next request parses the same."""
    rng = random.Random(seed)
    for _ in range(200):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 60)))
        data = post(body) + rng.choice([b"", NEXT])
        cut = rng.randint(len(data) - len(body) - len(NEXT), len(data))
        parser = RequestParser()
        parser.receive_data(data[:cut])
        event = parser.next_event()
        if not isinstance(event, Request):
            continue  # the head itself was cut
        got = parser.whole_body() or b""
        parser.receive_data(data[cut:])
        while len(got) < len(body):
            event = parser.next_event()
            assert isinstance(event, Data)
            got += event.data
        assert got == body
        parser.start_next_cycle()
        expect_next(parser, data)
