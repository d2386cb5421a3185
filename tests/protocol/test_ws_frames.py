"""Sans-IO tests of the WebSocket core: each rule fed whole, byte by byte, with trailing data."""

from __future__ import annotations

import os
import zlib

import pytest

from hurtle.protocol.ws import (
    CLOSE_SENT,
    CLOSED,
    OPEN,
    CloseReceived,
    DeflateParams,
    Event,
    Failure,
    Message,
    Ping,
    Pong,
    WSConnection,
    apply_mask,
    valid_close_code,
)
from hurtle.protocol.ws.frames import (
    FrameError,
    close_payload,
    frame_header,
    parse_close_payload,
    serialize_frame,
)

MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
) -> bytes:
    """A client frame: masked unless ``mask`` is None."""
    b0 = opcode | (0x80 if fin else 0) | rsv
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)


def feed_whole(conn: WSConnection, data: bytes) -> list[Event]:
    return conn.receive_data(data)


def feed_bytewise(conn: WSConnection, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    return events


def feed_split(conn: WSConnection, data: bytes) -> list[Event]:
    # Uneven pieces: header and payload boundaries fall everywhere.
    events: list[Event] = []
    i = 0
    step = 1
    while i < len(data):
        events += conn.receive_data(data[i : i + step])
        i += step
        step = step * 3 % 17 + 1
    return events


FEEDERS = [feed_whole, feed_bytewise, feed_split]


@pytest.fixture(params=FEEDERS, ids=lambda f: f.__name__)
def feed(request: pytest.FixtureRequest) -> object:
    return request.param


# -- masking ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 2047, 16383, 16384, 16385, 32768, 65537])
def test_apply_mask_matches_bytewise_xor(size: int) -> None:
    data = os.urandom(size)
    expected = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    assert apply_mask(data, MASK) == expected
    assert apply_mask(expected, MASK) == data


# -- data messages ---------------------------------------------------------------


def test_text_and_binary_messages(feed: object) -> None:
    conn = WSConnection()
    data = frame(0x1, "héllo ☃".encode()) + frame(0x2, b"\x00\xff")
    assert feed(conn, data) == [Message("héllo ☃"), Message(b"\x00\xff")]  # type: ignore[operator]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 70000])
def test_length_encodings(feed: object, size: int) -> None:
    payload = os.urandom(size)
    conn = WSConnection()
    events = feed(conn, frame(0x2, payload))  # type: ignore[operator]
    assert events == [Message(payload)]


def test_trailing_data_after_a_frame_is_kept() -> None:
    conn = WSConnection()
    second = frame(0x1, b"second")
    data = frame(0x1, b"first") + second[:3]
    assert conn.receive_data(data) == [Message("first")]
    assert conn.receive_data(second[3:]) == [Message("second")]


def test_fragmented_message_with_interleaved_control_frames(feed: object) -> None:
    conn = WSConnection()
    data = (
        frame(0x1, b"he", fin=False)
        + frame(0x9, b"ping")
        + frame(0x0, b"ll", fin=False)
        + frame(0xA, b"pong")
        + frame(0x0, b"o")
    )
    events = feed(conn, data)  # type: ignore[operator]
    assert events == [Ping(b"ping"), Pong(b"pong"), Message("hello")]
    assert conn.data_to_send() == serialize_frame(0xA, b"ping")


def test_fragmented_binary_and_empty_fragments(feed: object) -> None:
    conn = WSConnection()
    data = frame(0x2, b"", fin=False) + frame(0x0, b"ab", fin=False) + frame(0x0, b"")
    assert feed(conn, data) == [Message(b"ab")]  # type: ignore[operator]


def test_utf8_split_across_fragments(feed: object) -> None:
    snowman = "☃".encode()
    conn = WSConnection()
    data = frame(0x1, snowman[:1], fin=False) + frame(0x0, snowman[1:])
    assert feed(conn, data) == [Message("☃")]  # type: ignore[operator]


# -- protocol errors ---------------------------------------------------------------


def _fails_with(events: list[Event], code: int) -> Failure:
    assert events, "expected a failure"
    last = events[-1]
    assert isinstance(last, Failure), events
    assert last.code == code
    return last


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(0x1, b"x", mask=None), 1002),  # unmasked
        (frame(0x1, b"x", rsv=0x40), 1002),  # RSV1 without an extension
        (frame(0x1, b"x", rsv=0x20), 1002),
        (frame(0x1, b"x", rsv=0x10), 1002),
        (frame(0x3, b"x"), 1002),  # reserved data opcode
        (frame(0xB, b"x"), 1002),  # reserved control opcode
        (frame(0x9, b"x", fin=False), 1002),  # fragmented control
        (frame(0x9, b"x" * 126), 1002),  # control over 125 bytes
        (frame(0x9, b"x", rsv=0x40), 1002),
        (frame(0x0, b"x"), 1002),  # continuation outside a message
        (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),  # new message mid-message
        (frame(0x1, b"a", fin=False) + frame(0x0, b"b", rsv=0x40), 1002),
        (frame(0x1, b"\xff"), 1007),  # invalid UTF-8
        (frame(0x1, b"\xed\xa0\x80"), 1007),  # a surrogate is not UTF-8
        (frame(0x8, b"\x03"), 1002),  # one-byte close
        (frame(0x8, (999).to_bytes(2, "big")), 1002),
        (frame(0x8, (1005).to_bytes(2, "big")), 1002),
        (frame(0x8, (1000).to_bytes(2, "big") + b"\xff"), 1007),
        (bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + MASK, 1002),
    ],
)
def test_protocol_errors(feed: object, data: bytes, code: int) -> None:
    conn = WSConnection()
    events = feed(conn, data)  # type: ignore[operator]
    _fails_with(events, code)
    assert conn.state == CLOSED
    sent = conn.data_to_send()
    assert sent[:1] == b"\x88"
    assert int.from_bytes(sent[2:4], "big") == code
    # Nothing is read after a failure.
    assert conn.receive_data(frame(0x1, b"more")) == []


def test_invalid_utf8_fails_at_the_bad_fragment_not_at_the_end() -> None:
    conn = WSConnection()
    assert conn.receive_data(frame(0x1, b"ok", fin=False)) == []
    _fails_with(conn.receive_data(frame(0x0, b"\xc0\xaf", fin=False)), 1007)


def test_oversized_frame_fails_from_its_header() -> None:
    conn = WSConnection(max_size=100)
    head = frame(0x2, b"x" * 101)[:8]  # header and mask only
    _fails_with(conn.receive_data(head), 1009)


def test_oversized_fragmented_message_fails() -> None:
    conn = WSConnection(max_size=100)
    assert conn.receive_data(frame(0x2, b"x" * 60, fin=False)) == []
    _fails_with(conn.receive_data(frame(0x0, b"x" * 60)), 1009)


def test_message_at_the_size_limit_passes() -> None:
    conn = WSConnection(max_size=100)
    assert conn.receive_data(frame(0x2, b"x" * 100)) == [Message(b"x" * 100)]


# -- close handshake -----------------------------------------------------------------


def test_peer_close_is_answered_with_its_code(feed: object) -> None:
    conn = WSConnection()
    events = feed(conn, frame(0x8, close_payload(1001, "bye")) + frame(0x1, b"late"))  # type: ignore[operator]
    assert events == [CloseReceived(1001, "bye")]
    assert conn.state == CLOSED
    assert conn.data_to_send() == serialize_frame(0x8, (1001).to_bytes(2, "big"))


def test_peer_close_without_code_reports_1005_and_gets_an_empty_close() -> None:
    conn = WSConnection()
    assert conn.receive_data(frame(0x8)) == [CloseReceived(1005, "")]
    assert conn.data_to_send() == b"\x88\x00"


def test_server_close_then_peer_close() -> None:
    conn = WSConnection()
    assert conn.send_close(1000, "done") == b"\x88\x06\x03\xe8done"
    assert conn.state == CLOSE_SENT
    assert conn.send_close(1000) == b""
    # Data still arriving is delivered, pings are not answered any more.
    events = conn.receive_data(frame(0x1, b"x") + frame(0x9, b"p") + frame(0x8, b"\x03\xe8"))
    assert events == [Message("x"), Ping(b"p"), CloseReceived(1000, "")]
    assert conn.data_to_send() == b""
    assert conn.state == CLOSED


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1011, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
    ],
)
def test_close_codes(code: int, valid: bool) -> None:
    assert valid_close_code(code) is valid
    payload = code.to_bytes(2, "big")
    if valid:
        assert parse_close_payload(payload) == (code, "")
    else:
        with pytest.raises(FrameError):
            parse_close_payload(payload)


def test_close_reason_is_cut_at_a_character_boundary() -> None:
    payload = close_payload(1000, "☃" * 100)
    assert len(payload) <= 125
    payload[2:].decode("utf-8")


# -- sending ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_server_frames_are_unmasked(size: int) -> None:
    conn = WSConnection()
    out = conn.send_message(b"x" * size)
    assert out == frame_header(0x82, size) + b"x" * size
    assert out[1] & 0x80 == 0


def test_send_text_ping_and_state() -> None:
    conn = WSConnection()
    assert conn.state == OPEN
    assert conn.send_message("é") == b"\x81\x02" + "é".encode()
    assert conn.send_ping(b"p") == b"\x89\x01p"
    assert conn.data_to_send() == b""


# -- permessage-deflate ---------------------------------------------------------------


def _client_compress(compressor: zlib._Compress, data: bytes) -> bytes:
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_compressed_messages_both_ways(feed: object) -> None:
    conn = WSConnection(deflate=DeflateParams())
    client = zlib.compressobj(wbits=-15)
    messages = ["hello " * 50, "hello again " * 50]
    data = b"".join(frame(0x1, _client_compress(client, m.encode()), rsv=0x40) for m in messages)
    assert feed(conn, data) == [Message(m) for m in messages]  # type: ignore[operator]
    out = conn.send_message(b"abc" * 100)
    assert out[0] == 0xC2  # FIN, RSV1, binary
    inflater = zlib.decompressobj(wbits=-15)
    length = out[1]
    assert length < 126
    assert inflater.decompress(out[2:] + b"\x00\x00\xff\xff") == b"abc" * 100


def test_compressed_fragmented_message() -> None:
    conn = WSConnection(deflate=DeflateParams())
    client = zlib.compressobj(wbits=-15)
    body = _client_compress(client, b"fragmented " * 100)
    data = frame(0x2, body[:10], fin=False, rsv=0x40) + frame(0x0, body[10:])
    assert conn.receive_data(data) == [Message(b"fragmented " * 100)]


def test_uncompressed_message_on_a_compressed_connection() -> None:
    conn = WSConnection(deflate=DeflateParams())
    assert conn.receive_data(frame(0x1, b"plain")) == [Message("plain")]


def test_decompression_bomb_is_stopped_while_inflating() -> None:
    conn = WSConnection(max_size=1000, deflate=DeflateParams())
    bomb = _client_compress(zlib.compressobj(wbits=-15), b"\x00" * 10_000_000)
    assert len(bomb) < 20_000
    _fails_with(conn.receive_data(frame(0x2, bomb, rsv=0x40)), 1009)


def test_corrupt_compressed_data_fails() -> None:
    conn = WSConnection(deflate=DeflateParams())
    _fails_with(conn.receive_data(frame(0x2, b"\xff\xff\xff\xff", rsv=0x40)), 1007)


def test_no_context_takeover_resets_both_sides() -> None:
    params = DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True)
    conn = WSConnection(deflate=params)
    for _ in range(3):
        # A fresh client compressor each message, as the client promised.
        body = _client_compress(zlib.compressobj(wbits=-15), b"same " * 20)
        assert conn.receive_data(frame(0x1, body, rsv=0x40)) == [Message("same " * 20)]
    first = conn.send_message(b"same " * 20)
    second = conn.send_message(b"same " * 20)
    assert first == second  # no shared window between messages


def test_window_bits_are_honoured() -> None:
    params = DeflateParams(server_max_window_bits=9, client_max_window_bits=9)
    conn = WSConnection(deflate=params)
    client = zlib.compressobj(wbits=-9)
    payload = os.urandom(300) * 5
    assert conn.receive_data(frame(0x2, _client_compress(client, payload), rsv=0x40)) == [
        Message(payload)
    ]
    out = conn.send_message(payload)
    inflater = zlib.decompressobj(wbits=-9)
    start = 4 if out[1] == 126 else 2
    assert inflater.decompress(out[start:] + b"\x00\x00\xff\xff") == payload


def test_events_compare_and_print() -> None:
    def make() -> list[Event]:
        return [Message("a"), Ping(b"p"), Pong(b"q"), CloseReceived(1000, "r"), Failure(1002, "s")]

    for event, same in zip(make(), make(), strict=True):
        assert event == same and hash(event) == hash(same)
        assert type(event).__name__ in repr(event)
    assert Message("a") != Message(b"a")
    assert Ping(b"p") != Pong(b"p")
