"""HTTP/2 conformance, h2spec style, in cleartext (prior knowledge) and over TLS.

h2spec is not packaged for Debian nor PyPI, so its RFC 7540/9113 and HPACK
checks that depend on the server (rather than on the `h2` library alone) are
reproduced here with hand-made frames. Each case names its h2spec section.
The rule for an error is h2spec's: a GOAWAY with the expected code (or, for a
stream error, an RST_STREAM with it), or the connection closed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.h2_helpers import Certs, FrameClient
from tests.utils import run_server

pytestmark = pytest.mark.timeout(60)

PROTOCOL = ErrorCodes.PROTOCOL_ERROR
FRAME_SIZE = ErrorCodes.FRAME_SIZE_ERROR
FLOW = ErrorCodes.FLOW_CONTROL_ERROR
CLOSED = ErrorCodes.STREAM_CLOSED
COMPRESSION = ErrorCodes.COMPRESSION_ERROR

REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")]
GET = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module", params=["h2c", "tls"])
def server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[tuple[int, Any]]:
    options: dict[str, Any] = {}
    context = None
    if request.param == "tls":
        options = {"ssl_certfile": certs.certfile, "ssl_keyfile": certs.keyfile}
        context = certs.client_context(["h2"])
    with run_server(app, **options) as srv:
        assert srv.port is not None
        yield srv.port, context


@pytest.fixture
def client(server: tuple[int, Any]) -> Iterator[FrameClient]:
    port, context = server
    frames = FrameClient(port, context)
    yield frames
    frames.close()


def raw(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame built byte by byte: lengths and fields hyperframe would refuse to write."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([frame_type, flags])
        + struct.pack(">I", stream_id)
        + payload
    )


def headers(c: FrameClient, sid: int, fields: list[tuple[str, str]], end: bool = True) -> None:
    flags = ["END_HEADERS", "END_STREAM"] if end else ["END_HEADERS"]
    c.send(HeadersFrame(sid, data=c.headers_block(fields), flags=flags))


# -- cases: (h2spec section, what the client does, expected code, stream error on) ------

Case = tuple[str, Callable[[FrameClient], None], int, int | None]

CASES: list[Case] = [
    # 4. HTTP frames
    (
        "4.2/data-too-large",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send(DataFrame(1, data=b"x" * 16385)),
        ),
        FRAME_SIZE,
        1,
    ),
    (
        "4.2/headers-too-large",
        lambda c: c.send_raw(raw(0x1, 0x4, 1, c.headers_block(GET) + b"\x00" * 16385)),
        FRAME_SIZE,
        None,
    ),
    (
        "4.3/invalid-header-block",
        lambda c: c.send_raw(raw(0x1, 0x5, 1, b"\xff\xff\xff\xff\xff\xff\xff")),
        COMPRESSION,
        None,
    ),
    (
        "4.3/interleaved-frame-in-header-block",
        lambda c: c.send(
            HeadersFrame(1, data=c.headers_block(GET), flags=["END_STREAM"]),
            DataFrame(1, data=b"x"),
        ),
        PROTOCOL,
        None,
    ),
    # 5.1 stream states
    ("5.1/data-on-idle-stream", lambda c: c.send(DataFrame(1, data=b"x")), PROTOCOL, None),
    (
        "5.1/rst-stream-on-idle-stream",
        lambda c: c.send_raw(raw(0x3, 0, 1, b"\x00\x00\x00\x08")),
        PROTOCOL,
        None,
    ),
    (
        "5.1/window-update-on-idle-stream",
        lambda c: c.send(WindowUpdateFrame(1, window_increment=100)),
        PROTOCOL,
        None,
    ),
    (
        "5.1/data-on-half-closed-remote",
        lambda c: (
            headers(c, 1, GET),
            c.send(DataFrame(1, data=b"x")),
        ),
        CLOSED,
        1,
    ),
    (
        "5.1/headers-on-half-closed-remote",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send(DataFrame(1, data=b"", flags=["END_STREAM"])),
            headers(c, 1, GET),
        ),
        CLOSED,
        1,
    ),
    ("5.1.1/even-stream-id", lambda c: headers(c, 2, GET), PROTOCOL, None),
    (
        "5.1.1/decreasing-stream-id",
        lambda c: (
            headers(c, 5, GET),
            headers(c, 3, GET),
        ),
        PROTOCOL,
        None,
    ),
    (
        "5.3.1/stream-depends-on-itself",
        lambda c: c.send(
            HeadersFrame(
                1,
                data=c.headers_block(GET),
                flags=["END_HEADERS", "END_STREAM", "PRIORITY"],
                depends_on=1,
                stream_weight=16,
            )
        ),
        PROTOCOL,
        1,
    ),
    # 6.x frame definitions
    ("6.1/data-on-stream-0", lambda c: c.send_raw(raw(0x0, 0, 0, b"x")), PROTOCOL, None),
    (
        "6.1/data-padding-too-long",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send_raw(raw(0x0, 0x8, 1, b"\x10abc")),
        ),
        PROTOCOL,
        None,
    ),
    (
        "6.2/headers-on-stream-0",
        lambda c: c.send_raw(raw(0x1, 0x5, 0, c.headers_block(GET))),
        PROTOCOL,
        None,
    ),
    (
        "6.2/headers-padding-too-long",
        lambda c: c.send_raw(raw(0x1, 0x5 | 0x8, 1, b"\xff" + c.headers_block(GET))),
        PROTOCOL,
        None,
    ),
    (
        "6.3/priority-on-stream-0",
        lambda c: c.send_raw(raw(0x2, 0, 0, b"\x00\x00\x00\x01\x10")),
        PROTOCOL,
        None,
    ),
    (
        "6.3/priority-bad-length",
        lambda c: c.send_raw(raw(0x2, 0, 1, b"\x00\x00\x00\x03\x10\x00")),
        FRAME_SIZE,
        1,
    ),
    (
        "6.4/rst-stream-on-stream-0",
        lambda c: c.send_raw(raw(0x3, 0, 0, b"\x00\x00\x00\x08")),
        PROTOCOL,
        None,
    ),
    (
        "6.4/rst-stream-bad-length",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send_raw(raw(0x3, 0, 1, b"\x00\x00\x00\x08\x00")),
        ),
        FRAME_SIZE,
        None,
    ),
    (
        "6.5/settings-ack-with-payload",
        lambda c: c.send_raw(raw(0x4, 0x1, 0, b"\x00\x01\x00\x00\x10\x00")),
        FRAME_SIZE,
        None,
    ),
    (
        "6.5/settings-on-stream-1",
        lambda c: c.send_raw(raw(0x4, 0, 1, b"\x00\x01\x00\x00\x10\x00")),
        PROTOCOL,
        None,
    ),
    (
        "6.5/settings-bad-length",
        lambda c: c.send_raw(raw(0x4, 0, 0, b"\x00\x01\x00\x00\x10")),
        FRAME_SIZE,
        None,
    ),
    (
        "6.5.2/enable-push-2",
        lambda c: c.send_raw(raw(0x4, 0, 0, b"\x00\x02\x00\x00\x00\x02")),
        PROTOCOL,
        None,
    ),
    (
        "6.5.2/initial-window-too-large",
        lambda c: c.send_raw(raw(0x4, 0, 0, b"\x00\x04\x80\x00\x00\x00")),
        FLOW,
        None,
    ),
    (
        "6.5.2/max-frame-size-too-small",
        lambda c: c.send_raw(raw(0x4, 0, 0, b"\x00\x05\x00\x00\x3f\xff")),
        PROTOCOL,
        None,
    ),
    (
        "6.5.2/max-frame-size-too-large",
        lambda c: c.send_raw(raw(0x4, 0, 0, b"\x00\x05\x01\x00\x00\x00")),
        PROTOCOL,
        None,
    ),
    ("6.7/ping-on-stream-1", lambda c: c.send_raw(raw(0x6, 0, 1, b"\x00" * 8)), PROTOCOL, None),
    ("6.7/ping-bad-length", lambda c: c.send_raw(raw(0x6, 0, 0, b"\x00" * 6)), FRAME_SIZE, None),
    (
        "6.8/goaway-on-stream-1",
        lambda c: c.send_raw(raw(0x7, 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00")),
        PROTOCOL,
        None,
    ),
    (
        "6.9/window-update-zero-on-connection",
        lambda c: c.send_raw(raw(0x8, 0, 0, b"\x00\x00\x00\x00")),
        PROTOCOL,
        None,
    ),
    (
        "6.9/window-update-zero-on-stream",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send_raw(raw(0x8, 0, 1, b"\x00\x00\x00\x00")),
        ),
        PROTOCOL,
        1,
    ),
    (
        "6.9/window-update-bad-length",
        lambda c: c.send_raw(raw(0x8, 0, 0, b"\x00\x00\x00\x01\x00")),
        FRAME_SIZE,
        None,
    ),
    (
        "6.9.1/connection-window-overflow",
        lambda c: c.send(
            WindowUpdateFrame(0, window_increment=2**31 - 1),
            WindowUpdateFrame(0, window_increment=2**31 - 1),
        ),
        FLOW,
        None,
    ),
    (
        "6.9.1/stream-window-overflow",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send(
                WindowUpdateFrame(1, window_increment=2**31 - 1),
                WindowUpdateFrame(1, window_increment=2**31 - 1),
            ),
        ),
        FLOW,
        1,
    ),
    (
        "6.9.2/initial-window-overflow",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send(WindowUpdateFrame(1, window_increment=2**31 - 65536)),
            c.send_raw(raw(0x4, 0, 0, b"\x00\x04\x7f\xff\xff\xff")),
        ),
        FLOW,
        None,
    ),
    (
        "6.10/continuation-after-end-headers",
        lambda c: c.send(
            HeadersFrame(1, data=c.headers_block(GET), flags=["END_HEADERS"]),
            ContinuationFrame(1, data=b"", flags=["END_HEADERS"]),
        ),
        PROTOCOL,
        None,
    ),
    (
        "6.10/continuation-other-stream",
        lambda c: c.send(
            HeadersFrame(1, data=c.headers_block(GET), flags=["END_STREAM"]),
            ContinuationFrame(3, data=b"", flags=["END_HEADERS"]),
        ),
        PROTOCOL,
        None,
    ),
    (
        "6.10/continuation-on-stream-0",
        lambda c: c.send_raw(raw(0x1, 0x1, 1, c.headers_block(GET)) + raw(0x9, 0x4, 0, b"")),
        PROTOCOL,
        None,
    ),
    # 8.1 HTTP message exchanges
    (
        "8.1/trailers-without-end-stream",
        lambda c: (
            headers(c, 1, REQUEST, end=False),
            c.send(DataFrame(1, data=b"x")),
            headers(c, 1, [("x-trailer", "1")], end=False),
        ),
        PROTOCOL,
        1,
    ),
    ("8.2/uppercase-field-name", lambda c: headers(c, 1, [*GET, ("X-Upper", "v")]), PROTOCOL, 1),
    (
        "8.2.2/connection-header",
        lambda c: headers(c, 1, [*GET, ("connection", "keep-alive")]),
        PROTOCOL,
        1,
    ),
    ("8.2.2/te-not-trailers", lambda c: headers(c, 1, [*GET, ("te", "gzip")]), PROTOCOL, 1),
    ("8.3/unknown-pseudo-header", lambda c: headers(c, 1, [*GET, (":foo", "bar")]), PROTOCOL, 1),
    (
        "8.3/response-pseudo-header",
        lambda c: headers(c, 1, [*GET, (":status", "200")]),
        PROTOCOL,
        1,
    ),
    (
        "8.3/pseudo-header-after-regular",
        lambda c: headers(
            c, 1, [(":method", "GET"), (":scheme", "http"), ("x-a", "b"), (":path", "/")]
        ),
        PROTOCOL,
        1,
    ),
    (
        "8.3.1/missing-method",
        lambda c: headers(c, 1, [(":scheme", "http"), (":path", "/"), (":authority", "x")]),
        PROTOCOL,
        1,
    ),
    (
        "8.3.1/missing-scheme",
        lambda c: headers(c, 1, [(":method", "GET"), (":path", "/"), (":authority", "x")]),
        PROTOCOL,
        1,
    ),
    (
        "8.3.1/missing-path",
        lambda c: headers(c, 1, [(":method", "GET"), (":scheme", "http"), (":authority", "x")]),
        PROTOCOL,
        1,
    ),
    (
        "8.3.1/empty-path",
        lambda c: headers(
            c, 1, [(":method", "GET"), (":scheme", "http"), (":path", ""), (":authority", "x")]
        ),
        PROTOCOL,
        1,
    ),
    (
        "8.3.1/duplicate-method",
        lambda c: headers(c, 1, [(":method", "GET"), *GET[:1], *GET[1:]]),
        PROTOCOL,
        1,
    ),
    (
        "8.1.1/content-length-mismatch",
        lambda c: (
            headers(c, 1, [*REQUEST, ("content-length", "10")], end=False),
            c.send(DataFrame(1, data=b"short", flags=["END_STREAM"])),
        ),
        PROTOCOL,
        1,
    ),
    # HPACK (RFC 7541)
    (
        "hpack/index-out-of-range",
        lambda c: c.send_raw(raw(0x1, 0x5, 1, b"\xfe\x0f")),
        COMPRESSION,
        None,
    ),
    (
        "hpack/table-size-update-too-large",
        lambda c: c.send_raw(raw(0x1, 0x5, 1, b"\x3f\xe1\xff\x03" + c.headers_block(GET))),
        COMPRESSION,
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_error_case(case: Case, client: FrameClient) -> None:
    _, act, code, stream_id = case
    client.handshake()
    act(client)
    client.expect_error(code, stream_id)


def test_invalid_preface(server: tuple[int, Any]) -> None:
    # 3.5: a bad preface is a connection error (GOAWAY PROTOCOL_ERROR or a close).
    port, context = server
    client = FrameClient(port, context)
    client.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9)
    client.expect_error(PROTOCOL)
    client.close()


def test_settings_are_acknowledged_and_unknown_settings_ignored(client: FrameClient) -> None:
    # 6.5.3 and 6.5.2: the server ACKs our SETTINGS, ignoring an unknown identifier.
    client.handshake({0xFF: 1, 0x3: 10})
    headers(client, 1, GET)
    assert _response_status(client, 1) == 200


def test_ping_is_answered_with_the_same_payload(client: FrameClient) -> None:
    client.handshake()
    client.send(PingFrame(0, opaque_data=b"h2spec!!"))
    while True:
        frame = client.read_frame()
        assert frame is not None
        if isinstance(frame, PingFrame):
            assert "ACK" in frame.flags and frame.opaque_data == b"h2spec!!"
            return


def test_unknown_frame_type_and_flags_are_ignored(client: FrameClient) -> None:
    # 4.1 and 5.5: unknown types and flags are ignored.
    client.handshake()
    client.send_raw(raw(0xEE, 0xFF, 0, b"whatever"))
    client.send_raw(raw(0x6, 0xF0, 0, b"\x00" * 8))  # PING with unknown flags
    headers(client, 1, GET)
    assert _response_status(client, 1) == 200


def test_max_frame_size_data_accepted(client: FrameClient) -> None:
    # 4.2: a DATA frame of exactly SETTINGS_MAX_FRAME_SIZE is fine.
    client.handshake()
    headers(client, 1, REQUEST, end=False)
    client.send(DataFrame(1, data=b"x" * 16384, flags=["END_STREAM"]))
    assert _response_status(client, 1) == 200


def test_goaway_from_client_closes(client: FrameClient) -> None:
    # 6.8: after the client's GOAWAY the server closes the connection.
    client.handshake()
    client.send(GoAwayFrame(0, last_stream_id=0))
    while client.read_frame() is not None:
        pass
    assert client.closed


def test_settings_header_table_size_zero(client: FrameClient) -> None:
    # HPACK 4.2 / 6.3: the server honours a zero table size from the client.
    client.handshake({0x1: 0})
    headers(client, 1, GET)
    assert _response_status(client, 1) == 200


def _response_status(client: FrameClient, stream_id: int) -> int:
    import hpack  # noqa: PLC0415

    decoder = hpack.Decoder()
    while True:
        frame = client.read_frame()
        assert frame is not None, "connection closed before the response"
        if isinstance(frame, GoAwayFrame):
            raise AssertionError(f"GOAWAY {frame.error_code}")
        if isinstance(frame, HeadersFrame) and frame.stream_id == stream_id:
            fields = dict(decoder.decode(frame.data))
            return int(fields[":status"])
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            client.send(SettingsFrame(0, flags=["ACK"]))
