"""The parser's fast path for whole heads agrees with its careful path.

`RequestParser._parse_head` takes a plain head (whole, in a bytes buffer,
no framing header but Host and one well-formed Content-Length) in one pass
and leaves everything else to `_parse_head_careful` and `_interpret`, the
checks as they always ran. Over many heads built from the fields that
matter to framing (and from the ones that do not), a parser with the fast
path and one without it must produce the same events, or the same
rejection with the same status and reason. Plain heads must really take the
fast path: a parser whose careful path fails the test still parses them.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from hurtle.protocol.errors import ProtocolError
from hurtle.protocol.events import NEED_DATA, PAUSED, Event, Request
from hurtle.protocol.h1 import RequestParser
from tests.protocol.test_h1_parser import normalize


class CarefulParser(RequestParser):
    """Every head through the careful path, as before the fast path existed."""

    def _parse_head(self) -> Event:
        return self._parse_head_careful()


class FastOnlyParser(RequestParser):
    """Fails the test whenever a head leaves the fast path (an empty buffer may)."""

    def _parse_head_careful(self) -> Event:
        if self.buffered:
            raise AssertionError("the head left the fast path")
        return super()._parse_head_careful()

    def _interpret(self, *args: Any) -> Request:
        raise AssertionError("the head left the fast path for _interpret")


def outcome(parser_class: type[RequestParser], data: bytes, **limits: Any) -> Any:
    """Normalized events of ``data`` fed whole (every message of it), or the rejection."""
    parser = parser_class(**limits)
    parser.receive_data(data)
    events: list[Any] = []
    try:
        for _ in range(1000):
            event = parser.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                parser.start_next_cycle()
                continue
            events.append(normalize(event))
    except ProtocolError as exc:
        events.append(("error", exc.status, exc.reason))
    return events


# Field lines that decide framing, keep-alive or rejection, and some that do not.
FIELDS = [
    b"Host: example.com",
    b"host:example.com",
    b"HOST: \texample.com",
    b"Host: example.com ",
    b"Host:",
    b"Content-Length: 5",
    b"content-length: 0",
    b"Content-Length: 05",
    b"Content-Length: 5 ",
    b"Content-Length: 1000",
    b"Content-Length: 1234567890123456789",
    b"Content-Length: -1",
    b"Content-Length: 5, 5",
    b"Content-Length:",
    b"Content-Length: \xd9\xa5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Connection: close",
    b"Connection: keep-alive",
    b"connection: Keep-Alive",
    b"Connection: CLOSE",
    b"Connection: close, keep-alive",
    b"Connection: closed",
    b"Connection:",
    b"Connection: Upgrade",
    b"Upgrade: websocket",
    b"Expect: 100-continue",
    b"Expect: nonsense",
    b"TE: trailers",
    b"User-Agent: wrk",
    b"Accept: */*",
    b"X-Empty:",
    b"X-Spaces:   a  b  ",
    b"X-Tab:\tv\t",
    b"X-Latin: caf\xe9",
    b"Content-Type: application/octet-stream",
]
REQUEST_LINES = [
    b"GET / HTTP/1.1",
    b"POST /upload?x=1 HTTP/1.1",
    b"GET /old HTTP/1.0",
    b"GET /future HTTP/1.9",
    b"GET http://example.com/a?b HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET * HTTP/1.1",
    b"CONNECT example.com:443 HTTP/1.1",
    b"GET / HTTP/2.0",
    b"GET  / HTTP/1.1",
    b"G@T / HTTP/1.1",
]
LIMITS: list[dict[str, int]] = [
    {},
    {"max_body": 4},
    {"max_fields": 2},
    {"max_line": 12},
    {"max_head": 64},
]
TRAILING = [b"", b"hello", b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n", b"\r\nGET /n HTTP/1.0\r\n\r\n"]


def _random_head(rng: random.Random) -> bytes:
    line = rng.choice(REQUEST_LINES[:3] if rng.random() < 0.6 else REQUEST_LINES)
    fields = [rng.choice(FIELDS) for _ in range(rng.choice([0, 1, 1, 2, 3, 5]))]
    if rng.random() < 0.7:  # one Host, as most requests have: many are accepted
        fields.insert(rng.randint(0, len(fields)), FIELDS[0])
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n"


@pytest.mark.parametrize("seed", range(4))
def test_fast_and_careful_paths_agree(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(3000):
        data = _random_head(rng) + rng.choice(TRAILING)
        limits = rng.choice(LIMITS)
        expected = outcome(CarefulParser, data, **limits)
        assert outcome(RequestParser, data, **limits) == expected, (data, limits)
        if expected and expected[0][0] == "request":
            taken += 1
    # The generator must reach accepted requests often, not only rejections.
    assert taken > 500


@pytest.mark.parametrize(
    "head",
    [
        b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 4\r\n"
        b"Content-Type: application/octet-stream\r\n\r\nabcd",
        b"GET /a?b HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHOST: h\r\nX-Tab: v\tw\r\nX-Colon: :\r\n\r\n",
        b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        # Pipelined: the second head is found by offset, not partitioned.
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        # A body shorter than, as long as, longer than its Content-Length.
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\ncd",
    ],
)
def test_plain_heads_take_the_fast_path(head: bytes) -> None:
    assert outcome(FastOnlyParser, head) == outcome(CarefulParser, head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: h \r\n\r\n",  # trailing whitespace
        # Other OWS than one SP, and empty values: decided by the careful path.
        b"GET / HTTP/1.1\r\nHost:h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:  h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\th\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",  # an empty line first
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    ],
)
def test_other_heads_leave_the_fast_path(head: bytes) -> None:
    with pytest.raises(AssertionError, match="left the fast path"):
        outcome(FastOnlyParser, head)


def test_a_head_in_pieces_is_not_searched_again_by_the_fast_path() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n"
    parser = FastOnlyParser()
    parser.receive_data(head[:10])
    with pytest.raises(AssertionError, match="left the fast path"):
        parser.next_event()  # incomplete: the careful path marks how far it looked
    parser = RequestParser()
    parser.receive_data(head[:10])
    assert parser.next_event() is NEED_DATA
    parser.receive_data(head[10:] + b"\r\n")
    request = parser.next_event()
    assert isinstance(request, Request)
    assert request.headers == [(b"host", b"h")]
