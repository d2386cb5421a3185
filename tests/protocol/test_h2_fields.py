"""The core's own request field checks (RFC 9113 8.1.1, 8.2, 8.3), in memory.

h2's inbound validation is off: `H2Core._convert` checks every field in its
one pass. Each malformed case must reset its stream with PROTOCOL_ERROR and
start no request, while the connection goes on; each field is also checked
against `h2`'s own validator so the two never disagree on what is malformed.
"""

from __future__ import annotations

from typing import Any

import h2.utilities
import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, Frame, HeadersFrame, RstStreamFrame

from hurtle.protocol.h2 import StreamEnded, StreamRequest, StreamReset
from tests.protocol.test_h2_core import pair

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"x")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"x")]

MALFORMED: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("uppercase name", [*GET, (b"X-Upper", b"v")]),
    ("space in name", [*GET, (b"x a", b"v")]),
    ("colon in name", [*GET, (b"x:a", b"v")]),
    ("DEL in name", [*GET, (b"x\x7f", b"v")]),
    ("non-ASCII name", [*GET, (b"x\xe9", b"v")]),
    ("empty name", [*GET, (b"", b"v")]),
    ("NUL in value", [*GET, (b"x-a", b"a\x00b")]),
    ("CR in value", [*GET, (b"x-a", b"a\rb")]),
    ("LF in value", [*GET, (b"x-a", b"a\nb")]),
    ("leading space", [*GET, (b"x-a", b" v")]),
    ("trailing tab", [*GET, (b"x-a", b"v\t")]),
    (
        "CR in a pseudo-header",
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/\r"), (b":authority", b"x")],
    ),
    ("connection", [*GET, (b"connection", b"keep-alive")]),
    ("keep-alive", [*GET, (b"keep-alive", b"5")]),
    ("proxy-connection", [*GET, (b"proxy-connection", b"x")]),
    ("transfer-encoding", [*GET, (b"transfer-encoding", b"chunked")]),
    ("upgrade", [*GET, (b"upgrade", b"h2c")]),
    ("te gzip", [*GET, (b"te", b"gzip")]),
    ("unknown pseudo", [*GET, (b":foo", b"x")]),
    ("response pseudo", [*GET, (b":status", b"200")]),
    ("pseudo after regular", [*GET[:2], (b"x-a", b"b"), *GET[2:]]),
    ("duplicate :method", [(b":method", b"GET"), *GET]),
    ("duplicate :path", [*GET, (b":path", b"/b")]),
    ("missing :method", GET[1:]),
    ("missing :scheme", [GET[0], *GET[2:]]),
    ("missing :path", [*GET[:2], GET[3]]),
    ("empty :path", [*GET[:2], (b":path", b""), GET[3]]),
    ("no authority at all", GET[:3]),
    ("two Host fields", [*GET[:3], (b"host", b"x"), (b"host", b"x")]),
    ("Host differs from :authority", [*GET, (b"host", b"y")]),
    (":protocol without CONNECT", [*GET, (b":protocol", b"websocket")]),
    ("CONNECT with :path", [(b":method", b"CONNECT"), (b":path", b"/"), (b":authority", b"x")]),
    (
        "CONNECT with :scheme",
        [(b":method", b"CONNECT"), (b":scheme", b"http"), (b":authority", b"x")],
    ),
    (
        "extended CONNECT without :path",
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"http"),
            (b":authority", b"x"),
        ],
    ),
]

WELL_FORMED: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("plain", GET),
    ("te trailers", [*GET, (b"te", b"trailers")]),
    ("empty value", [*GET, (b"x-a", b"")]),
    ("inner spaces and tabs", [*GET, (b"x-a", b"a \t b")]),
    ("Host only", [*GET[:3], (b"host", b"x")]),
    ("Host equal to :authority", [*GET, (b"host", b"x")]),
    ("token punctuation in name", [*GET, (b"x-!#$%&'*+.^_`|~", b"v")]),
    ("CONNECT", [(b":method", b"CONNECT"), (b":authority", b"x:443")]),
]


def send_block(cli: Any, sid: int, fields: list[tuple[bytes, bytes]], end: bool = True) -> bytes:
    """A HEADERS frame encoded by hand: h2 as a client refuses to send malformed fields."""
    block = cli.encoder.encode(fields)
    flags = ["END_HEADERS", "END_STREAM"] if end else ["END_HEADERS"]
    frame: Frame = HeadersFrame(sid, data=block, flags=flags)
    return bytes(frame.serialize())


def h2_says_malformed(fields: list[tuple[bytes, bytes]]) -> bool:
    flags = h2.utilities.HeaderValidationFlags(
        is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
    )
    try:
        list(h2.utilities.validate_headers(fields, flags))
    except h2.exceptions.ProtocolError:
        return True
    return False


def server_frames(core: Any) -> list[Frame]:
    data = memoryview(core.data_to_send())
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(data[:9])
        frame.parse_body(data[9 : 9 + length])
        frames.append(frame)
        data = data[9 + length :]
    return frames


@pytest.mark.parametrize(("case", "fields"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_request_resets_its_stream_only(case: str, fields: Any) -> None:
    core, cli = pair(enable_connect_protocol=True)
    encoder = hpack.Encoder()
    cli.encoder = encoder
    events = core.receive_data(send_block(cli, 1, fields), 0.0)
    assert not [e for e in events if type(e) is StreamRequest], case
    resets = [f for f in server_frames(core) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, ErrorCodes.PROTOCOL_ERROR)]
    # The connection goes on: the next stream is served.
    events = core.receive_data(send_block(cli, 3, GET), 0.0)
    assert [type(e) for e in events] == [StreamRequest]
    assert not core.closed


@pytest.mark.parametrize(("case", "fields"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_h2_agrees_the_case_is_malformed(case: str, fields: Any) -> None:
    assert h2_says_malformed(fields), case


@pytest.mark.parametrize(("case", "fields"), WELL_FORMED, ids=[c for c, _ in WELL_FORMED])
def test_well_formed_request_is_accepted(case: str, fields: Any) -> None:
    assert not h2_says_malformed(fields)
    core, cli = pair(enable_connect_protocol=True)
    cli.encoder = hpack.Encoder()
    events = core.receive_data(send_block(cli, 1, fields), 0.0)
    requests = [e for e in events if type(e) is StreamRequest]
    assert len(requests) == 1, case
    request = requests[0]
    if (b":authority", b"x") in fields or (b"host", b"x") in fields:
        assert request.headers[0] == (b"host", b"x")
        assert [n for n, _ in request.headers].count(b"host") == 1


def test_cookie_crumbs_joined_after_host_first() -> None:
    core, cli = pair()
    cli.encoder = hpack.Encoder()
    fields = [*GET, (b"cookie", b"a=1"), (b"x-b", b"2"), (b"cookie", b"c=3")]
    (request,) = core.receive_data(send_block(cli, 1, fields), 0.0)
    assert isinstance(request, StreamRequest)
    assert request.headers == [(b"host", b"x"), (b"x-b", b"2"), (b"cookie", b"a=1; c=3")]


@pytest.mark.parametrize(
    "trailer",
    [(b":path", b"/"), (b"X-Up", b"v"), (b"x-a", b"a\nb"), (b"connection", b"x"), (b"te", b"gzip")],
)
def test_malformed_trailers_reset_the_stream(trailer: tuple[bytes, bytes]) -> None:
    core, cli = pair()
    cli.encoder = hpack.Encoder()
    events = core.receive_data(send_block(cli, 1, POST, end=False), 0.0)
    assert [type(e) for e in events] == [StreamRequest]
    data = bytes(DataFrame(1, data=b"body").serialize())
    events = core.receive_data(data + send_block(cli, 1, [trailer]), 0.0)
    assert [type(e) for e in events if type(e) is not StreamEnded][-1] is StreamReset
    assert not [e for e in events if type(e) is StreamEnded]
    resets = [f for f in server_frames(core) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, ErrorCodes.PROTOCOL_ERROR)]


def test_good_trailers_end_the_stream() -> None:
    core, cli = pair()
    cli.encoder = hpack.Encoder()
    core.receive_data(send_block(cli, 1, POST, end=False), 0.0)
    events = core.receive_data(send_block(cli, 1, [(b"x-sum", b"1")]), 0.0)
    assert [(type(e), e.trailers) for e in events] == [(StreamEnded, [(b"x-sum", b"1")])]


# -- the decoder's memory of indexed-only blocks -------------------------------------


def test_indexed_only_block_follows_table_changes() -> None:
    """The same bytes name other fields once the table changed: nothing stale comes out."""
    core, cli = pair()
    encoder = hpack.Encoder()
    cli.encoder = encoder
    first = [*GET, (b"x-a", b"1")]
    sid = 1
    seen = []
    for fields in (first, first, first, [*GET, (b"x-b", b"2")], first, first):
        # hpack indexes new fields, so the second time a field set is all
        # indexed: the block bytes repeat while the table's contents move.
        block = encoder.encode(fields)
        frame = HeadersFrame(sid, data=block, flags=["END_HEADERS", "END_STREAM"])
        (request,) = core.receive_data(bytes(frame.serialize()), 0.0)
        assert isinstance(request, StreamRequest)
        seen.append((bytes(block), request.headers[1:]))
        sid += 2
    assert [headers for _, headers in seen] == [
        [(b"x-a", b"1")],
        [(b"x-a", b"1")],
        [(b"x-a", b"1")],
        [(b"x-b", b"2")],
        [(b"x-a", b"1")],
        [(b"x-a", b"1")],
    ]
    # The repeats were indexed-only blocks, and the last two are the same
    # bytes as before the table moved, yet decode to what the table now says.
    assert seen[1][0] == seen[2][0]
    assert seen[4][0] == seen[5][0]


def test_decoder_memory_unit() -> None:
    from hurtle.protocol.h2.connection import _CachingDecoder  # noqa: PLC0415

    decoder = _CachingDecoder()
    encoder = hpack.Encoder()
    literal = encoder.encode([(b"x-a", b"1")])  # inserted at index 62
    assert decoder.decode(literal, raw=True) == [(b"x-a", b"1")]
    indexed = bytes([0x80 | 62])
    got = decoder.decode(indexed, raw=True)
    assert got == [(b"x-a", b"1")]
    got.append((b"mutated", b"!"))  # a hit is a fresh list
    assert decoder.decode(indexed, raw=True) == [(b"x-a", b"1")]
    assert decoder.decode(encoder.encode([(b"x-b", b"2")]), raw=True) == [(b"x-b", b"2")]
    assert decoder.decode(indexed, raw=True) == [(b"x-b", b"2")]
    # A table-size update shrinking the table to 0 evicts everything.
    assert decoder.decode(b"\x20", raw=True) == []
    with pytest.raises(hpack.exceptions.HPACKError):
        decoder.decode(indexed, raw=True)
