"""The sans-IO HTTP/2 core, driven by the `h2` library as the client, in memory.

Each request case is fed whole and byte by byte; the same events must come out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from hurtle.protocol.h2 import (
    ENHANCE_YOUR_CALM,
    PREFACE,
    REFUSED_STREAM,
    ConnectionClosed,
    H2Core,
    StreamData,
    StreamEnded,
    StreamRequest,
    StreamReset,
    StreamWritable,
)
from hurtle.protocol.h2.connection import CONNECTION_WINDOW, STREAM_WINDOW, encode_fields

GET = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/a%20b?x=1"),
    ("user-agent", "t"),
]


class _UnboundedClient(h2.connection.H2Connection):
    """A client that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS, as attackers do."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


def client() -> h2.connection.H2Connection:
    conn = _UnboundedClient(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn


def pair(**kwargs: Any) -> tuple[H2Core, h2.connection.H2Connection]:
    core = H2Core(**kwargs)
    core.initiate()
    cli = client()
    events = core.receive_data(cli.data_to_send(), 0.0)
    assert events == []
    cli.receive_data(core.data_to_send())
    core.receive_data(cli.data_to_send(), 0.0)  # the client's SETTINGS ACK
    return core, cli


def to_server(core: H2Core, cli: h2.connection.H2Connection, now: float = 0.0) -> list[Any]:
    return core.receive_data(cli.data_to_send(), now)


def to_client(core: H2Core, cli: h2.connection.H2Connection) -> list[Any]:
    return cli.receive_data(core.data_to_send())


def calm(events: list[Any]) -> bool:
    """Whether the core ended the connection with GOAWAY ENHANCE_YOUR_CALM."""
    return any(type(e) is ConnectionClosed and e.error_code == ENHANCE_YOUR_CALM for e in events)


def test_preface_and_settings_advertise_limits() -> None:
    core = H2Core(max_concurrent_streams=7, max_header_list_size=1000)
    core.initiate()
    cli = client()
    core.receive_data(cli.data_to_send(), 0.0)
    events = cli.receive_data(core.data_to_send())
    changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
    settings = {code: s.new_value for code, s in changed.changed_settings.items()}
    assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 1000
    assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == STREAM_WINDOW
    assert settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 0
    window = next(e for e in events if isinstance(e, h2.events.WindowUpdated))
    assert window.stream_id == 0 and window.delta == CONNECTION_WINDOW - 65535


def test_request_converted_whole_and_byte_by_byte() -> None:
    for split in (False, True):
        core, cli = pair()
        cli.send_headers(
            1,
            [*GET, ("cookie", "a=1"), ("host", "example.com"), ("cookie", "b=2"), ("x-y", "z")],
        )
        cli.send_data(1, b"hello", end_stream=True)
        data = cli.data_to_send()
        events: list[Any] = []
        if split:
            for i in range(len(data)):
                events += core.receive_data(data[i : i + 1], 0.0)
        else:
            events = core.receive_data(data, 0.0)
        request, body, end = events
        assert isinstance(request, StreamRequest)
        assert request.stream_id == 1
        assert request.method == b"GET"
        assert request.path == b"/a%20b" and request.query == b"x=1"
        assert request.http_version == "2"
        assert request.has_body
        # :authority is the first host; the Host field is dropped; cookies joined.
        assert request.headers == [
            (b"host", b"example.com"),
            (b"user-agent", b"t"),
            (b"x-y", b"z"),
            (b"cookie", b"a=1; b=2"),
        ]
        assert isinstance(body, StreamData) and body.data == b"hello" and body.stream_id == 1
        assert isinstance(end, StreamEnded) and end.stream_id == 1


def test_request_without_body_ends_with_headers() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    (request,) = to_server(core, cli)
    assert isinstance(request, StreamRequest) and not request.has_body


def test_response_and_trailers_reach_the_client() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    to_server(core, cli)
    core.send_headers(1, [(b":status", b"200"), (b"x-a", b"b")])
    core.send_data(1, b"body")
    core.send_trailers(1, [(b"x-trailer", b"1"), (b"connection", b"close")])
    events = to_client(core, cli)
    kinds = [type(e) for e in events]
    assert kinds == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]
    assert events[2].headers == [(b"x-trailer", b"1")]


def test_send_waits_for_window_and_reports_writable() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    to_server(core, cli)
    core.send_headers(1, [(b":status", b"200")])
    body = bytes(range(256)) * 1024  # 256 KiB: four times the default window
    assert core.send_data(1, body, True) is False
    assert core.has_pending(1)
    received = bytearray()
    writable = False
    ended = False
    for _ in range(100):
        for event in to_client(core, cli):
            if isinstance(event, h2.events.DataReceived):
                received += event.data
                cli.acknowledge_received_data(event.flow_controlled_length, 1)
            ended = ended or isinstance(event, h2.events.StreamEnded)
        for event in to_server(core, cli):
            writable = writable or isinstance(event, StreamWritable)
        if ended:
            break
    assert bytes(received) == body
    assert writable
    assert not core.has_pending(1)


def _fields(request: StreamRequest) -> dict[str, Any]:
    names = {n for cls in type(request).__mro__ for n in getattr(cls, "__slots__", ())}
    return {n: getattr(request, n) for n in sorted(names) if n != "stream_id"}


def test_a_repeated_head_converts_as_the_first() -> None:
    # The core remembers the last head it converted; what a repeat gets must
    # be what converting it afresh gives, with a list of its own.
    fields = [*GET, ("cookie", "a=1"), ("cookie", "b=2"), ("content-length", "2")]
    core, cli = pair()
    cli.send_headers(1, fields, end_stream=True)
    cli.send_headers(3, fields)
    cli.send_headers(5, fields, end_stream=True)
    first, second, third = [e for e in to_server(core, cli) if isinstance(e, StreamRequest)]
    fresh_core, fresh_cli = pair()
    fresh_cli.send_headers(1, fields)
    (fresh,) = [e for e in to_server(fresh_core, fresh_cli) if isinstance(e, StreamRequest)]
    assert _fields(second) == _fields(fresh)
    assert (
        _fields(first)
        == _fields(third)
        == {**_fields(fresh), "has_body": False, "stream_ended": True}
    )
    assert [first.stream_id, second.stream_id, third.stream_id] == [1, 3, 5]
    assert first.headers is not third.headers
    # An app that changes its scope's headers changes nobody else's.
    third.headers.append((b"x-added", b"1"))
    cli.send_headers(7, fields, end_stream=True)
    (fourth,) = [e for e in to_server(core, cli) if isinstance(e, StreamRequest)]
    assert fourth.headers == fresh.headers


def test_a_head_like_the_last_but_malformed_is_refused() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    cli.send_headers(3, [*GET, ("x-bad", "a\x00b")], end_stream=True)
    cli.send_headers(5, GET, end_stream=True)
    events = to_server(core, cli)
    assert [e.stream_id for e in events if isinstance(e, StreamRequest)] == [1, 5]
    resets = [e for e in to_client(core, cli) if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(3, ErrorCodes.PROTOCOL_ERROR)]


def test_excess_stream_refused_alone() -> None:
    core, cli = pair(max_concurrent_streams=2)
    for sid in (1, 3, 5):
        cli.send_headers(sid, GET, end_stream=True)
    events = to_server(core, cli)
    assert [e.stream_id for e in events if isinstance(e, StreamRequest)] == [1, 3]
    client_events = to_client(core, cli)
    resets = [e for e in client_events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(5, REFUSED_STREAM)]
    # A finished app frees a slot; a reset stream whose app still runs does not.
    core.stream_done(1)
    cli.send_headers(7, GET, end_stream=True)
    assert [e.stream_id for e in to_server(core, cli)] == [7]


@pytest.mark.parametrize("streams", [104, 105, 300])
def test_a_flood_of_streams_in_one_read_ends_the_connection(streams: int) -> None:
    # Streams past our limit are refused one by one, but h2's own limit
    # (ours, times two, plus 100) still ends a connection that floods.
    core, cli = pair(max_concurrent_streams=2)
    for i in range(streams):
        cli.send_headers(1 + 2 * i, GET, end_stream=True)
    events = to_server(core, cli)
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    if streams <= 2 * 2 + 100:
        assert not closed
        assert [e.stream_id for e in events if isinstance(e, StreamRequest)] == [1, 3]
    else:
        assert closed and closed[0].error_code == ErrorCodes.PROTOCOL_ERROR
        assert core.closed


@pytest.mark.parametrize("in_flight", [1, 10, 60])
def test_finished_streams_are_dropped(in_flight: int) -> None:
    # h2 drops closed streams only while counting the open ones, which the
    # core does rarely (see _Connection.open_inbound_streams): what it holds
    # must still stay in proportion to the streams in flight.
    core, cli = pair(max_concurrent_streams=100)
    block = encode_fields([(b":status", b"200")])
    held = []
    next_id = 1
    for _ in range(40):
        ids = list(range(next_id, next_id + 2 * in_flight, 2))
        next_id += 2 * in_flight
        for sid in ids:
            cli.send_headers(sid, GET, end_stream=True)
        events = to_server(core, cli)
        assert [e.stream_id for e in events if isinstance(e, StreamRequest)] == ids
        for sid in ids:
            assert core.send_response(sid, block, b"ok")
            core.stream_done(sid)
        ended = [e for e in to_client(core, cli) if isinstance(e, h2.events.StreamEnded)]
        assert [e.stream_id for e in ended] == ids
        held.append(len(core._conn.streams))
    assert max(held) <= 2 * in_flight + 32
    assert not core.closed


def _wire(data: bytes) -> list[tuple[str, int, Any]]:
    """The frames in ``data``: (type name, stream id, error code or None)."""
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        data = data[9 + length :]
        frames.append((type(frame).__name__, frame.stream_id, getattr(frame, "error_code", None)))
    return frames


def _answer(core: H2Core, cli: h2.connection.H2Connection, stream_id: int) -> None:
    assert core.send_response(stream_id, encode_fields([(b":status", b"200")]), b"ok")
    core.stream_done(stream_id)
    to_client(core, cli)


def _closed_by_client_reset(core: H2Core, cli: h2.connection.H2Connection) -> None:
    cli.send_headers(1, GET)
    cli.reset_stream(1)
    to_server(core, cli)
    to_client(core, cli)


def _closed_by_end(core: H2Core, cli: h2.connection.H2Connection) -> None:
    cli.send_headers(1, GET, end_stream=True)
    to_server(core, cli)
    _answer(core, cli, 1)


def _closed_by_server_reset(core: H2Core, cli: h2.connection.H2Connection) -> None:
    cli.send_headers(1, GET)
    to_server(core, cli)
    core.reset(1, ErrorCodes.CANCEL)
    to_client(core, cli)


def _forgotten(setup: Callable[[H2Core, h2.connection.H2Connection], None]) -> Any:
    # h2 forgets a closed stream's state (keeping only how it closed) once
    # enough later streams have come and gone.
    def forget(core: H2Core, cli: h2.connection.H2Connection) -> None:
        setup(core, cli)
        for i in range(1, 80):
            cli.send_headers(1 + 2 * i, GET, end_stream=True)
            to_server(core, cli)
            _answer(core, cli, 1 + 2 * i)
        assert 1 not in core._conn.streams

    return forget


def _higher_stream_open(core: H2Core, cli: h2.connection.H2Connection) -> None:
    cli.send_headers(5, GET, end_stream=True)
    to_server(core, cli)
    to_client(core, cli)


@pytest.mark.parametrize(
    ("setup", "frame", "answer"),
    [
        # A stream error (RST_STREAM STREAM_CLOSED) for a stream closed by a
        # reset either way, or one h2 still holds; a connection error for a
        # forgotten one the client had ended.
        (_closed_by_client_reset, "data", ("RstStreamFrame", 1, ErrorCodes.STREAM_CLOSED)),
        (_closed_by_server_reset, "data", ("RstStreamFrame", 1, ErrorCodes.STREAM_CLOSED)),
        (_closed_by_end, "data", ("RstStreamFrame", 1, ErrorCodes.STREAM_CLOSED)),
        (
            _forgotten(_closed_by_server_reset),
            "headers",
            ("RstStreamFrame", 1, ErrorCodes.STREAM_CLOSED),
        ),
        (_forgotten(_closed_by_end), "headers", ("GoAwayFrame", 0, ErrorCodes.STREAM_CLOSED)),
        # RFC 9113 5.1.1: a new stream's id must be above every earlier one.
        (_higher_stream_open, "headers", ("GoAwayFrame", 0, ErrorCodes.PROTOCOL_ERROR)),
    ],
)
def test_frames_on_closed_streams(setup: Any, frame: str, answer: tuple[str, int, Any]) -> None:
    core, cli = pair()
    setup(core, cli)
    stream_id = 3 if setup is _higher_stream_open else 1
    if frame == "data":
        raw = DataFrame(stream_id, data=b"x", flags=["END_STREAM"]).serialize()
    else:
        block = cli.encoder.encode(GET)
        raw = HeadersFrame(stream_id, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    events = core.receive_data(raw, 0.0)
    assert not any(isinstance(e, StreamRequest) for e in events)
    assert _wire(core.data_to_send()) == [answer]
    assert core.closed == (answer[0] == "GoAwayFrame")


def test_received_frames_are_not_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    # h2 formats every frame it receives for its trace log even when nothing
    # logs; a DATA frame's repr hex-encodes its whole payload.
    formatted: list[str] = []

    def spy(frame: Frame) -> str:
        formatted.append(type(frame).__name__)
        return "Frame"

    core, cli = pair()
    monkeypatch.setattr(Frame, "__repr__", spy)
    cli.send_headers(1, GET)
    cli.send_data(1, b"x" * 4096, end_stream=True)
    cli.ping(b"12345678")
    events = to_server(core, cli)
    assert [type(e) for e in events] == [StreamRequest, StreamData, StreamEnded]
    assert formatted == []


def test_reset_in_the_same_read_starts_no_request() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    cli.reset_stream(1, ErrorCodes.CANCEL)
    assert to_server(core, cli) == []
    assert core.active == set()


def test_reset_of_an_active_stream_is_reported() -> None:
    core, cli = pair()
    cli.send_headers(1, GET)
    to_server(core, cli)
    cli.reset_stream(1, ErrorCodes.CANCEL)
    (event,) = to_server(core, cli)
    assert isinstance(event, StreamReset) and event.remote and event.stream_id == 1


def test_rapid_reset_ends_with_enhance_your_calm() -> None:
    core, cli = pair(max_resets=50)
    events: list[Any] = []
    for i in range(60):
        sid = 1 + 2 * i
        cli.send_headers(sid, GET)
        cli.reset_stream(sid, ErrorCodes.CANCEL)
        events += to_server(core, cli, now=0.001 * i)
        if core.closed:
            break
    assert not any(isinstance(e, StreamRequest) for e in events)
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed and closed[0].error_code == ENHANCE_YOUR_CALM
    goaway = [e for e in to_client(core, cli) if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_resets_spread_over_time_are_allowed() -> None:
    core, cli = pair(max_resets=10)
    for i in range(40):
        sid = 1 + 2 * i
        cli.send_headers(sid, GET)
        cli.reset_stream(sid, ErrorCodes.CANCEL)
        to_server(core, cli, now=11.0 * (i // 8))
    assert not core.closed


def test_server_resets_count_too() -> None:
    # MadeYouReset: streams the server refuses or resets count like client resets.
    core, cli = pair(max_concurrent_streams=1, max_resets=20)
    cli.send_headers(1, GET)
    to_server(core, cli)
    events: list[Any] = []
    for i in range(30):
        if core.closed:
            break
        cli.send_headers(3 + 2 * i, GET, end_stream=True)
        events += to_server(core, cli)
        to_client(core, cli)
    assert calm(events)


@pytest.mark.parametrize(
    "frame",
    [
        lambda: PingFrame(0, opaque_data=b"12345678"),
        lambda: SettingsFrame(0),
        lambda: PriorityFrame(1, depends_on=0, stream_weight=16),
    ],
    ids=["ping", "settings", "priority"],
)
def test_control_frame_flood(frame: Any) -> None:
    core, _ = pair(max_control_frames=100)
    flood = b"".join(frame().serialize() for _ in range(150))
    events = core.receive_data(flood, 1.0)
    assert calm(events)


def test_continuation_flood_is_a_connection_error() -> None:
    core, _ = pair()
    headers = HeadersFrame(1, data=b"")
    frames = [headers.serialize()]
    frames += [ContinuationFrame(1, data=b"").serialize() for _ in range(200)]
    events = core.receive_data(b"".join(frames), 0.0)
    assert any(isinstance(e, ConnectionClosed) for e in events)
    assert core.closed


def test_header_list_too_large_is_a_connection_error() -> None:
    core, cli = pair(max_header_list_size=1000)
    cli.send_headers(1, [*GET, ("x-big", "a" * 2000)], end_stream=True)
    events = to_server(core, cli)
    assert isinstance(events[-1], ConnectionClosed)
    assert events[-1].error_code == ENHANCE_YOUR_CALM


def test_too_many_header_fields_answer_431() -> None:
    core, cli = pair(max_header_fields=5)
    cli.send_headers(1, [*GET, *[(f"x-{i}", "v") for i in range(10)]], end_stream=True)
    assert to_server(core, cli) == []
    events = to_client(core, cli)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[b":status"] == b"431"


def test_graceful_goaway_lets_streams_finish_and_refuses_new_ones() -> None:
    core, cli = pair()
    cli.send_headers(1, GET, end_stream=True)
    to_server(core, cli)
    core.goaway()
    events = to_client(core, cli)
    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == ErrorCodes.NO_ERROR and goaway.last_stream_id == 1
    # The stream in flight still gets its response.
    core.send_headers(1, [(b":status", b"200")])
    core.send_data(1, b"ok", True)
    raw = core.data_to_send()
    assert raw  # frames for stream 1 after the GOAWAY


def test_invalid_preface_is_a_connection_error() -> None:
    core = H2Core()
    core.initiate()
    events = core.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert isinstance(events[0], ConnectionClosed)


def test_raw_reset_frame_of_unknown_stream() -> None:
    core, _ = pair()
    # RST_STREAM on an idle stream is a connection error (RFC 9113 6.4).
    events = core.receive_data(RstStreamFrame(9).serialize(), 0.0)
    assert isinstance(events[0], ConnectionClosed)


def test_preface_constant() -> None:
    assert PREFACE == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
