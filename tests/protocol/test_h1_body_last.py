"""`Data.last` marks the end of a Content-Length body, however the bytes arrive.

The HTTP/1.1 adapter takes such a piece as the end of the message without
pulling the `EndOfMessage` behind it, so it must be set on exactly the piece
that holds the body's last byte, never on a chunked body's data, and
``start_next_cycle`` must be allowed right after it.
"""

from __future__ import annotations

import itertools
import random

import pytest

from hurtle.protocol.events import NEED_DATA, Data, EndOfMessage, Request
from hurtle.protocol.h1 import RequestParser

NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def expect_next(parser: RequestParser, data: bytes) -> None:
    """After a body, the parser's next event: the NEXT request when ``data`` ends with it."""
    event = parser.next_event()
    if data.endswith(NEXT):
        assert isinstance(event, Request)
        assert event.target == b"/next"
    else:
        assert event is NEED_DATA


def pieces_of(parser: RequestParser, data: bytes, cuts: list[int]) -> tuple[list[Data], int]:
    """Feed ``data`` cut at ``cuts`` up to the body's end: its Data events, bytes fed."""
    out: list[Data] = []
    bounds = [0, *cuts, len(data)]
    for start, stop in itertools.pairwise(bounds):
        parser.receive_data(data[start:stop])
        for _ in range(100):
            event = parser.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, Data):
                out.append(event)
                if event.last:
                    return out, stop
            assert not isinstance(event, EndOfMessage), "the body ended without a last Data"
    return out, len(data)


@pytest.mark.parametrize("seed", range(3))
def test_the_piece_with_the_last_byte_is_last(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
        head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
        data = head + body + rng.choice([b"", NEXT])
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(5, len(data) - 1))))
        parser = RequestParser()
        pieces, fed = pieces_of(parser, data, cuts)
        assert b"".join(p.data for p in pieces) == body
        assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
        # The message is over: the next request may start without its EndOfMessage.
        parser.start_next_cycle()
        parser.receive_data(data[fed:])
        expect_next(parser, data)


def test_the_end_of_message_can_still_be_pulled_after_the_last_piece() -> None:
    parser = RequestParser()
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
    assert isinstance(parser.next_event(), Request)
    data = parser.next_event()
    assert data == Data(b"ok")
    assert isinstance(data, Data) and data.last
    assert parser.next_event() == EndOfMessage()


def test_chunked_data_is_never_last() -> None:
    parser = RequestParser()
    parser.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n1\r\nc\r\n0\r\nT: v\r\n\r\n"
    )
    events = [parser.next_event() for _ in range(4)]
    assert isinstance(events[0], Request)
    assert [e.last for e in events if isinstance(e, Data)] == [False, False]
    assert events[-1] == EndOfMessage([(b"t", b"v")])


def test_a_body_in_a_bytearray_buffer_comes_out_as_bytes() -> None:
    parser = RequestParser()
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab")
    assert isinstance(parser.next_event(), Request)
    first = parser.next_event()
    assert isinstance(first, Data) and first.data == b"ab" and not first.last
    parser.receive_data(b"c")
    parser.receive_data(b"def")  # buffered as a bytearray
    rest = parser.next_event()
    assert isinstance(rest, Data)
    assert type(rest.data) is bytes and rest.data == b"cdef"
    assert rest.last
