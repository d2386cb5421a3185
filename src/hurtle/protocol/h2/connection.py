"""`H2Core`: the server side of an HTTP/2 connection (RFC 9113), sans-IO.

The framing, HPACK, stream states and most validation are the `h2` library's;
this layer adds what a server needs on top and that `h2` leaves to its user:

- requests as the shared event vocabulary (`StreamRequest` and friends), with
  pseudo-headers taken out, ``:authority`` as the first ``host`` header and
  ``cookie`` fields joined (RFC 9113 8.2.3);
- outbound flow control: `send_data` queues what the windows do not allow yet
  and sends it as WINDOW_UPDATEs arrive; `StreamWritable` says a queue drained;
- limits and attack counters, each against the clock the caller passes in:
  concurrent streams (REFUSED_STREAM for the excess stream only), header
  count, stream resets sent or received (rapid reset, CVE-2023-44487, and
  server resets a client provokes, CVE-2025-8671) and control-frame floods
  (SETTINGS, PING, PRIORITY, empty DATA; CVE-2019-9512/9515/9518): past a
  limit, GOAWAY ENHANCE_YOUR_CALM;
- a graceful GOAWAY that lets streams in flight finish (``h2``'s own
  ``close_connection`` forbids sending anything after it).

Calling sequence: `initiate` (or `initiate_upgrade` for h2c), then
`receive_data` with the socket's bytes, acting on the events; the
``send_*`` methods for responses; `data_to_send` after each of these, written
to the socket as it is.
"""

from __future__ import annotations

import binascii
import contextlib
import re
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hpack.exceptions
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2.stream import StreamInputs, StreamState
from hpack.table import HeaderTable
from hyperframe.exceptions import InvalidDataError
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

from hurtle.protocol.h2.events import (
    ConnectionClosed,
    H2Event,
    StreamData,
    StreamEnded,
    StreamRequest,
    StreamReset,
    StreamWritable,
)

__all__ = ["H2Core", "H2Error", "encode_fields", "encode_status"]

NO_ERROR = int(ErrorCodes.NO_ERROR)
PROTOCOL_ERROR = int(ErrorCodes.PROTOCOL_ERROR)
INTERNAL_ERROR = int(ErrorCodes.INTERNAL_ERROR)
REFUSED_STREAM = int(ErrorCodes.REFUSED_STREAM)
CANCEL = int(ErrorCodes.CANCEL)
ENHANCE_YOUR_CALM = int(ErrorCodes.ENHANCE_YOUR_CALM)

# Our receive windows. A 64 KiB stream window (the protocol's default) caps an
# upload at one window per round trip; 1 MiB per stream and 16 MiB for the
# connection let one upload fill a fast link while bounding what a client can
# make the server hold (the bridge stops acknowledging past its high-water mark).
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 24
# Seconds over which resets and control frames are counted.
COUNT_WINDOW = 10.0
# PING, SETTINGS, PRIORITY and empty DATA frames a client may send per count
# window. Browsers send a handful; the floods of CVE-2019-9512/9515/9518 send
# hundreds of thousands, each making the server answer or work.
MAX_CONTROL_FRAMES = 1000
# h2 refuses with a connection error past its own stream limit: keep that limit
# well above ours so the excess stream of a client that ignores our SETTINGS is
# refused alone, and a flood of streams in one read still ends the connection.
_HARD_STREAM_FACTOR = 2
_HARD_STREAM_SLACK = 100
# `_Connection.open_inbound_streams` walks h2's streams only once it holds
# this many (and twice as many as the last walk left); below the slack above.
_WALK_MIN = 32

# Stream states in which the server may send DATA (RFC 9113 5.1).
_SENDING_STATES = frozenset([StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE])

_CONNECTION_HEADERS = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)


# -- a response header block encoder (RFC 7541) ---------------------------------
#
# Every field is a "literal header field without indexing" (6.2.2), naming a
# static-table entry where one exists, and no Huffman coding (5.2): such a
# block never touches the dynamic table, so its bytes do not depend on the
# connection and can be computed once (the fixed server fields) or looked up
# per name. h2's encoder, which does index, costs more than the rest of a small
# response put together; what this gives up is compressing fields that repeat
# across responses (a few dozen bytes per response).

_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_NAMES.setdefault(_name, _index)
# 6.1: an indexed ``:status`` for the values the static table holds.
_STATUS_INDEXED = {
    int(value): bytes([0x80 | index])
    for index, (name, value) in enumerate(HeaderTable.STATIC_TABLE, 1)
    if name == b":status"
}
# Encoded name prefixes, by name: apps send the same few names every time.
# Bounded so that apps inventing names cannot grow it without end.
# Bounded so that apps inventing names cannot grow it without end. The
# connection-specific fields map to b"": `encode_fields` drops them.
_NAME_PREFIX: dict[bytes, bytes] = dict.fromkeys(_CONNECTION_HEADERS, b"")
_NAME_PREFIX_MAX = 512 + len(_CONNECTION_HEADERS)


def _hpack_length(size: int) -> bytes:
    """A string length: 7-bit prefix integer, H bit clear (RFC 7541 5.1, 5.2)."""
    if size < 127:
        return bytes((size,))
    out = bytearray((127,))
    size -= 127
    while size >= 128:
        out.append((size & 127) | 128)
        size >>= 7
    out.append(size)
    return bytes(out)


def _name_prefix(name: bytes) -> bytes:
    index = _STATIC_NAMES.get(name)
    if index is None:
        prefix = b"\x00" + _hpack_length(len(name)) + name
    elif index < 15:
        prefix = bytes((index,))
    else:
        prefix = bytes((15, index - 15))  # 4-bit prefix integer; every index < 15 + 127
    if len(_NAME_PREFIX) < _NAME_PREFIX_MAX:
        _NAME_PREFIX[name] = prefix
    return prefix


def encode_fields(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Literal, unindexed header fields (names lowercase, already validated by the bridge).

    Connection-specific fields are left out (RFC 9113 8.2.2: malformed in HTTP/2).
    """
    parts: list[bytes] = []
    prefixes = _NAME_PREFIX
    for name, value in headers:
        prefix = prefixes.get(name)
        if prefix is None:
            prefix = _name_prefix(name)
        if not prefix:
            continue
        size = len(value)
        parts.append(prefix)
        parts.append(bytes((size,)) if size < 127 else _hpack_length(size))
        parts.append(value)
    return b"".join(parts)


def encode_status(status: int) -> bytes:
    indexed = _STATUS_INDEXED.get(status)
    if indexed is not None:
        return indexed
    return b"\x08\x03" + str(status).encode()  # :status is static entry 8


# -- request field checks (RFC 9113 8.2 and 8.3) ----------------------------------
#
# Done here in the one pass that converts a request, instead of by h2's chain
# of generators (which cost more than the rest of a small request): the same
# rules, a malformed request being a stream error of type PROTOCOL_ERROR (8.1.1).

# 8.2.1: "A field name MUST NOT contain characters in the ranges 0x00-0x20,
# 0x41-0x5a, or 0x7f-0xff"; outside pseudo-header names, no colon either; and
# not empty.
_FIELD_NAME = re.compile(rb"[^\x00-\x20A-Z:\x7f-\xff]+")
# 8.2.1: "A field value MUST NOT contain the zero value (ASCII NUL, 0x00), line
# feed (ASCII LF, 0x0a), or carriage return (ASCII CR, 0x0d) at any position"
# and "MUST NOT start or end with an ASCII whitespace character (SP or HTAB)".
_BAD_FIELD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# Regular field names already checked: one set lookup instead of a regex for
# the few names clients send on every request. Bounded against invented names.
_CHECKED_NAMES: set[bytes] = set()
_CHECKED_NAMES_MAX = 512


class _Malformed(Exception):
    """A request or trailer section RFC 9113 8.1.1 calls malformed."""


def _check_trailers(trailers: list[tuple[bytes, bytes]]) -> None:
    """8.1: a trailer section carries no pseudo-header; the same field rules as a head."""
    for name, value in trailers:
        if value and _BAD_FIELD_VALUE.search(value) is not None:
            raise _Malformed("Invalid field value")
        if _FIELD_NAME.fullmatch(name) is None or name in _CONNECTION_HEADERS:
            raise _Malformed("Invalid field name")
        if name == b"te" and value.lower() != b"trailers":
            raise _Malformed("TE other than trailers")


class H2Error(Exception):
    """A request the core refuses before any app sees it; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Header blocks remembered per connection, and the largest one remembered.
_DECODED_MAX = 64
_DECODED_BLOCK_MAX = 64


class _CachingDecoder(hpack.Decoder):
    """HPACK's decoder, remembering blocks made only of one-byte indexed fields.

    Such a block (every byte 0x81..0xfe: RFC 7541 6.1, an index below 127)
    neither reads nor changes anything but the table, so while the dynamic
    table is unchanged it decodes to the same fields. Clients that repeat a
    request send exactly that after the first time (h2load, API pollers). Any
    other block may insert into the table (or resize it): it forgets them all.
    """

    def __init__(self) -> None:
        super().__init__()
        self._decoded: dict[bytes, tuple[Any, ...]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Any:
        decoded = self._decoded
        cacheable = False
        if raw and type(data) is bytes:
            fields = decoded.get(data)
            if fields is not None:
                return list(fields)
            cacheable = (
                len(data) <= _DECODED_BLOCK_MAX and _ONLY_INDEXED.fullmatch(data) is not None
            )
        if not cacheable and decoded:
            # Forgotten before decoding: a block that fails halfway may
            # already have changed the table.
            decoded.clear()
        result = list(super().decode(data, raw))
        if cacheable and len(decoded) < _DECODED_MAX:
            decoded[data] = tuple(result)
        return result


# RFC 7541 6.1 with a one-byte index: 1xxxxxxx, neither 0x80 (index 0, an
# error) nor 0xff (the prefix saturated, a longer integer follows).
_ONLY_INDEXED = re.compile(rb"[\x81-\xfe]+")


class _Connection(h2.connection.H2Connection):
    """`h2`'s connection with two hooks: a looser inbound stream cap and a reset counter."""

    # Not slotted: H2Connection itself is not.

    def __init__(self, config: h2.config.H2Configuration, stream_slack: int) -> None:
        super().__init__(config)
        decoder = _CachingDecoder()
        decoder.max_header_list_size = self.decoder.max_header_list_size
        self.decoder = decoder
        self.stream_slack = stream_slack
        self.resets_sent = 0
        # When `open_inbound_streams` next walks the streams (see there).
        self._walk_at = _WALK_MIN

    @property
    def open_inbound_streams(self) -> int:
        # h2 compares this with our advertised SETTINGS_MAX_CONCURRENT_STREAMS
        # and fails the whole connection past it; the core refuses excess
        # streams one by one itself, so h2's check only backs it up.
        #
        # h2 counts by walking every stream it holds, for every new stream,
        # and drops the closed ones as it goes: 3 % of a small request with
        # ten streams in flight. Here every stream held counts as open until
        # there are twice as many as the last walk left: walks then cost O(1)
        # a stream, and closed streams linger in proportion to open ones.
        # Fewer held than the slack can never reach h2's limit (max + slack),
        # so the upper bound refuses exactly what the true count would.
        held = len(self.streams)
        if held < self._walk_at:
            return held - self.stream_slack
        count: int = super().open_inbound_streams
        self._walk_at = min(max(2 * len(self.streams), _WALK_MIN), self.stream_slack)
        return count - self.stream_slack

    def _receive_frame(self, frame: Frame) -> list[Any]:
        # h2's own method first formats the frame for its trace log, whether
        # anything logs it or not: the repr of a DATA frame hex-encodes the
        # whole payload (5 us for 4 KiB here, 16 us for 16 KiB), a HEADERS
        # frame's costs about 2 us. Here the same steps without it: h2's
        # handler for the frame, then h2's answers for frames on streams that
        # are gone (RFC 9113 5.1; tests/protocol/test_h2_core.py has each).
        events: list[Any]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as exc:
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise  # a connection error
            self._reset_gone(exc.stream_id, exc.error_code)
            events = exc._events
            return events
        except h2.exceptions.StreamIDTooLowError as exc:
            # A stream h2 no longer holds.
            if self._stream_is_closed_by_reset(exc.stream_id):
                self._reset_gone(exc.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise h2.exceptions.StreamClosedError(exc.stream_id) from exc
            raise  # never opened: PROTOCOL_ERROR
        self._prepare_for_sending(frames)
        return events

    def _reset_gone(self, stream_id: int, error_code: ErrorCodes) -> None:
        """A stream error for a frame on a stream closed by a reset (either side's)."""
        frame = RstStreamFrame(stream_id)
        frame.error_code = error_code
        self._prepare_for_sending([frame])

    def _terminate_connection(self, error_code: ErrorCodes) -> None:
        # h2 reports two connection errors with a vaguer code than RFC 9113
        # asks for (and h2spec checks): a header block that does not decode
        # is a COMPRESSION_ERROR (4.3), a SETTINGS ACK with a payload a
        # FRAME_SIZE_ERROR (6.5). Called inside h2's except block, so the
        # error being handled tells which.
        cause = sys.exc_info()[1]
        cause = cause.__cause__ if cause is not None else None
        if error_code == ErrorCodes.PROTOCOL_ERROR and cause is not None:
            if isinstance(cause, hpack.exceptions.HPACKError):
                error_code = ErrorCodes.COMPRESSION_ERROR
            elif isinstance(cause, InvalidDataError) and "ack" in str(cause).lower():
                error_code = ErrorCodes.FRAME_SIZE_ERROR
        super()._terminate_connection(error_code)

    def _prepare_for_sending(self, frames: list[Frame]) -> None:
        for frame in frames:
            if type(frame) is RstStreamFrame and frame.error_code != NO_ERROR:
                # Resets the client provoked (MadeYouReset) count as its own.
                self.resets_sent += 1
        super()._prepare_for_sending(frames)


class _Outbound:
    """Response bytes of one stream waiting for flow-control window."""

    __slots__ = ("chunks", "end", "offset", "size", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.offset = 0
        self.size = 0
        self.end = False
        self.trailers: list[tuple[bytes, bytes]] | None = None


class H2Core:
    """One HTTP/2 server connection; see the module docstring for the calling sequence."""

    __slots__ = (
        "_conn",
        "_control_count",
        "_count_start",
        "_goaway_sent",
        "_last_converted",
        "_last_fields",
        "_last_stream_id",
        "_out",
        "_outbound",
        "_resets_received",
        "_resets_sent_base",
        "active",
        "closed",
        "enable_connect_protocol",
        "max_concurrent_streams",
        "max_control_frames",
        "max_header_fields",
        "max_resets",
        "pushed",
    )

    def __init__(
        self,
        *,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 65536,
        max_header_fields: int = 100,
        max_resets: int = 200,
        max_control_frames: int = MAX_CONTROL_FRAMES,
        enable_connect_protocol: bool = False,
    ) -> None:
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # The ASGI bridge validated and lowercased the app's headers; h2
            # checking them again costs a large share of a small response.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            # Request fields are checked (RFC 9113 8.2, 8.3) and cookies
            # joined in `_convert`'s single pass; h2's generators did both.
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        slack = max_concurrent_streams * (_HARD_STREAM_FACTOR - 1) + _HARD_STREAM_SLACK
        self._conn = _Connection(config, slack)
        # Before our SETTINGS are acknowledged h2 applies its defaults; the
        # header-list bound protects from the first byte on.
        self._conn.decoder.max_header_list_size = max_header_list_size
        settings = {
            SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        }
        if enable_connect_protocol:
            # RFC 8441 3: extended CONNECT (WebSocket over HTTP/2) is offered.
            settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        # Set before the preface goes out, so the first SETTINGS carries them
        # and h2 enforces them from the start instead of after the ACK.
        self._conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.max_concurrent_streams = max_concurrent_streams
        self.max_header_fields = max_header_fields
        self.max_resets = max_resets
        self.max_control_frames = max_control_frames
        self.enable_connect_protocol = enable_connect_protocol
        #: Streams handed to the caller and not yet `stream_done`: each may run
        #: an app task, also after the client reset it, so this (not h2's open
        #: stream count) is what the concurrency limit counts.
        self.active: set[int] = set()
        #: Streams we promised (server push) and not yet `stream_done`: their
        #: own count, bounded by both sides' concurrency limits.
        self.pushed: set[int] = set()
        self.closed = False
        self._outbound: dict[int, _Outbound] = {}
        # Bytes written here rather than by h2 (graceful GOAWAY, DATA frames),
        # each preceded by what h2 had queued before it.
        self._out: list[Any] = []
        self._goaway_sent = False
        self._last_stream_id = 0
        # The last request head `_convert` accepted, as decoded, and what
        # `_check_fields` made of it: clients repeat heads (the same fields, often the very
        # objects of the HPACK decoder's cache), and a hit skips the checks.
        self._last_fields: list[tuple[bytes, bytes]] | None = None
        self._last_converted: tuple[Any, ...] = ()
        self._count_start = 0.0
        self._resets_received = 0
        self._resets_sent_base = 0
        self._control_count = 0

    # -- setting up ----------------------------------------------------------

    def initiate(self) -> None:
        """Queue the server preface (SETTINGS) and open the connection window."""
        self._conn.initiate_connection()
        self._raise_connection_window()

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """Start after ``Upgrade: h2c`` (RFC 7540 3.2); stream 1 is the upgraded request.

        Raises `H2Error` (400) for an ``HTTP2-Settings`` header that does not decode.
        """
        try:
            self._conn.initiate_upgrade_connection(settings_header)
        except (binascii.Error, ValueError, h2.exceptions.ProtocolError) as exc:
            raise H2Error(400, f"Invalid HTTP2-Settings header: {exc}") from None
        self._raise_connection_window()
        self.active.add(1)

    def _raise_connection_window(self) -> None:
        # SETTINGS cannot change the connection window (RFC 9113 6.9.2): only
        # a WINDOW_UPDATE on stream 0 can.
        self._conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    # -- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[H2Event]:
        """Feed socket bytes; the events they complete. ``now`` is a monotonic clock."""
        if self.closed:
            return []
        conn = self._conn
        try:
            raw: list[Any] = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 queued a GOAWAY with the error's code.
            self.closed = True
            code = int(getattr(exc, "error_code", PROTOCOL_ERROR) or PROTOCOL_ERROR)
            return [ConnectionClosed(code, str(exc) or type(exc).__name__, False)]
        if now - self._count_start > COUNT_WINDOW:
            self._count_start = now
            self._resets_received = 0
            self._control_count = 0
            self._resets_sent_base = conn.resets_sent
        events: list[H2Event] = []
        # A stream reset later in the same read starts no app at all: the
        # cheapest rapid-reset attack sends HEADERS and RST_STREAM together.
        reset_now: set[int] | None = None
        for event in raw:
            if type(event) is h2.events.StreamReset:
                if reset_now is None:
                    reset_now = set()
                reset_now.add(event.stream_id)
        for event in raw:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                stream_id = event.stream_id
                if reset_now is not None and stream_id in reset_now:
                    continue
                request = self._request(event)
                if request is not None:
                    events.append(request)
            elif kind is h2.events.DataReceived:
                stream_id = event.stream_id
                data = event.data
                if stream_id in self.active:
                    events.append(StreamData(stream_id, data, event.flow_controlled_length))
                    if event.stream_ended is not None:
                        events.append(StreamEnded(stream_id))
                else:
                    # Nobody will read it: give the window back at once.
                    self.acknowledge(stream_id, event.flow_controlled_length)
                if not data and event.stream_ended is None:
                    self._control_count += 1
            elif kind is h2.events.StreamEnded:
                # Reported with RequestReceived or DataReceived already, apart
                # from a stream that ends with trailers.
                pass
            elif kind is h2.events.TrailersReceived:
                stream_id = event.stream_id
                trailers = [(bytes(n), bytes(v)) for n, v in event.headers]
                try:
                    _check_trailers(trailers)
                except _Malformed:
                    self.reset(stream_id, PROTOCOL_ERROR)
                    if stream_id in self.active:
                        events.append(StreamReset(stream_id, PROTOCOL_ERROR, False))
                    continue
                if stream_id in self.active:
                    events.append(StreamEnded(stream_id, trailers))
            elif kind is h2.events.StreamReset:
                stream_id = event.stream_id
                self._outbound.pop(stream_id, None)
                if event.remote_reset and stream_id % 2:
                    # A client cancelling a push it has cached is no attack:
                    # only resets of its own streams count.
                    self._resets_received += 1
                if stream_id in self.active or stream_id in self.pushed:
                    events.append(StreamReset(stream_id, int(event.error_code), event.remote_reset))
            elif kind is h2.events.WindowUpdated:
                self._window_opened(event.stream_id, events)
            elif kind is h2.events.RemoteSettingsChanged:
                self._control_count += 1
                if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._window_opened(0, events)
            elif kind is h2.events.PingReceived or kind is h2.events.PriorityUpdated:
                self._control_count += 1
            elif kind is h2.events.ConnectionTerminated:
                self.closed = True
                events.append(
                    ConnectionClosed(int(event.error_code or 0), "GOAWAY from the client", True)
                )
                return events
            elif kind is h2.events.UnknownFrameReceived:
                self._control_count += 1
        resets = self._resets_received + conn.resets_sent - self._resets_sent_base
        if resets > self.max_resets:
            events.append(self.close(ENHANCE_YOUR_CALM, "Too many stream resets"))
        elif self._control_count > self.max_control_frames:
            events.append(self.close(ENHANCE_YOUR_CALM, "Too many control frames"))
        return events

    def _request(self, event: Any) -> StreamRequest | None:
        stream_id: int = event.stream_id
        if self._goaway_sent and stream_id > self._last_stream_id:
            # RFC 9113 6.8: streams above the GOAWAY's last id are not processed.
            self.reset(stream_id, REFUSED_STREAM)
            return None
        if len(self.active) >= self.max_concurrent_streams:
            self.reset(stream_id, REFUSED_STREAM)
            return None
        try:
            request = self._convert(stream_id, event.headers, event.stream_ended is not None)
        except _Malformed:
            self.reset(stream_id, PROTOCOL_ERROR)
            return None
        except H2Error as exc:
            self._answer(stream_id, exc.status)
            return None
        if request.protocol is not None and not self.enable_connect_protocol:
            # RFC 8441 3 and RFC 9113 8.3: without our SETTINGS_ENABLE_CONNECT_PROTOCOL
            # the pseudo-header is undefined, so the request is malformed.
            self.reset(stream_id, PROTOCOL_ERROR)
            return None
        self.active.add(stream_id)
        return request

    def _convert(
        self, stream_id: int, raw: Iterable[tuple[bytes, bytes]], stream_ended: bool
    ) -> StreamRequest:
        """Check the fields and convert: pseudo-headers out, ``:authority`` as the first ``host``.

        Raises `_Malformed` for what RFC 9113 8.2 and 8.3 forbid, `H2Error`
        for what is well-formed HTTP/2 but a bad request.
        """
        if raw == self._last_fields:
            parts = self._last_converted
        else:
            parts = self._check_fields(raw)
            if type(raw) is list:  # not an iterator, spent by now
                self._last_fields = raw
                self._last_converted = parts
        return StreamRequest(
            stream_id,
            parts[0],
            parts[1],
            parts[2],
            parts[3],
            list(parts[4]),  # a list of its own: the app may change its scope's
            scheme=parts[5],
            authority=parts[6],
            protocol=parts[7],
            content_length=parts[8],
            expect_continue=parts[9],
            stream_ended=stream_ended,
        )

    def _check_fields(self, raw: Iterable[tuple[bytes, bytes]]) -> tuple[Any, ...]:
        """`_convert`'s checks: (method, target, path, query, headers as a tuple,
        scheme, authority, protocol, content_length, expect_continue)."""
        method = path = scheme = authority = protocol = host = None
        headers: list[tuple[bytes, bytes]] = []
        cookies: list[bytes] | None = None
        content_length: int | None = None
        expect_continue = False
        regular = False
        checked = _CHECKED_NAMES
        bad_value = _BAD_FIELD_VALUE.search
        for name, value in raw:
            if value and bad_value(value) is not None:
                raise _Malformed("Invalid field value")
            if name[:1] == b":":
                # 8.3: pseudo-headers come first, once each, only those defined.
                if regular:
                    raise _Malformed("Pseudo-header after a regular field")
                if name == b":method" and method is None:
                    method = value
                elif name == b":path" and path is None:
                    path = value
                elif name == b":scheme" and scheme is None:
                    scheme = value
                elif name == b":authority" and authority is None:
                    authority = value
                elif name == b":protocol" and protocol is None:
                    protocol = value
                else:
                    raise _Malformed("Unknown or repeated pseudo-header")
                continue
            if not regular:
                regular = True
                if authority is not None:
                    # 8.3.1: :authority stands for Host; first, as in HTTP/1.1.
                    headers.append((b"host", authority))
            if name not in checked:
                if _FIELD_NAME.fullmatch(name) is None:
                    raise _Malformed("Invalid field name")
                if name in _CONNECTION_HEADERS:
                    # 8.2.2: connection-specific fields are malformed.
                    raise _Malformed("Connection-specific field")
                if len(checked) < _CHECKED_NAMES_MAX:
                    checked.add(name)
            if name == b"cookie":
                # RFC 9113 8.2.3: crumbs may come as separate fields; an
                # HTTP/1.1 application expects one.
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
            elif name == b"host":
                if host is not None:
                    raise _Malformed("Repeated Host")
                host = value
                if authority is None:
                    headers.append((name, value))
                elif value != authority:
                    # 8.3.1: both present must name the same authority (h2's rule).
                    raise _Malformed("Host differs from :authority")
            elif name == b"te":
                if value.lower() != b"trailers":
                    raise _Malformed("TE other than trailers")  # 8.2.2
                headers.append((name, value))
            else:
                if name == b"content-length":
                    if not value.isdigit() or not value.isascii():
                        raise H2Error(400, "Invalid Content-Length")
                    content_length = int(value)
                elif name == b"expect":
                    expect_continue = value.lower() == b"100-continue"
                headers.append((name, value))
        if not regular and authority is not None:
            headers.append((b"host", authority))
        # 8.3.1 and 8.5 (RFC 8441 4 for :protocol): the pseudo-headers a request needs.
        if method is None:
            raise _Malformed("Missing :method")
        if method == b"CONNECT" and protocol is None:
            if scheme is not None or path is not None:
                raise _Malformed("CONNECT with :scheme or :path")
        elif scheme is None or path is None:
            raise _Malformed("Missing :scheme or :path")
        elif protocol is not None and method != b"CONNECT":
            raise _Malformed(":protocol outside CONNECT")
        if authority is None and host is None:
            raise _Malformed("Neither :authority nor Host")
        if path is not None and not path:
            raise _Malformed("Empty :path")
        if cookies is not None:
            headers.append((b"cookie", b"; ".join(cookies)))
        if len(headers) > self.max_header_fields:
            raise H2Error(431, "Too many header fields")
        if path is None:
            # CONNECT without :protocol (RFC 9113 8.5) carries no :path.
            if method != b"CONNECT" or protocol is not None:
                raise H2Error(400, "Missing :path")
            target = b""
            query = b""
            path = b""
        else:
            target = path
            if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
                raise H2Error(400, "Invalid :path")
            path, _, query = path.partition(b"?")
        return (
            method, target, path, query, tuple(headers), scheme, authority, protocol,
            content_length, expect_continue,
        )  # fmt: skip

    def _answer(self, stream_id: int, status: int) -> None:
        """A body-less error response from the core itself, then the stream is done."""
        try:
            self._conn.send_headers(
                stream_id,
                [(b":status", str(status).encode()), (b"content-length", b"0")],
                end_stream=True,
            )
        except h2.exceptions.H2Error:
            self.reset(stream_id, PROTOCOL_ERROR)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The app consumed ``size`` flow-controlled bytes of ``stream_id``: reopen the windows."""
        if size and not self.closed:
            try:  # noqa: SIM105 - on every DATA frame; suppress() makes an object and two calls
                self._conn.acknowledge_received_data(size, stream_id)
            except h2.exceptions.H2Error:
                pass

    def stream_done(self, stream_id: int) -> None:
        """The app of ``stream_id`` finished: it no longer counts as concurrent."""
        self.active.discard(stream_id)
        self.pushed.discard(stream_id)

    @property
    def push_enabled(self) -> bool:
        """Whether the client allows server push (SETTINGS_ENABLE_PUSH, RFC 9113 6.5.2)."""
        return bool(self._conn.remote_settings.enable_push) and not self.closed

    def push(self, stream_id: int, request: list[tuple[bytes, bytes]]) -> int | None:
        """PUSH_PROMISE on ``stream_id`` for ``request`` (pseudo-headers first, RFC 9113 8.4).

        Returns the promised stream's id, on which the response then goes as
        on any stream; None when no push can go now: the client disabled it,
        a GOAWAY was sent, ``stream_id`` can no longer carry frames or is
        itself pushed (6.6), or as many pushes run as the client's
        SETTINGS_MAX_CONCURRENT_STREAMS (5.1.2) or our own limit allows.
        """
        conn = self._conn
        if not self.push_enabled or self._goaway_sent or not stream_id % 2:
            return None
        limit = min(conn.remote_settings.max_concurrent_streams, self.max_concurrent_streams)
        if len(self.pushed) >= limit:
            return None
        stream = conn.streams.get(stream_id)
        if stream is None or stream.state_machine.state not in _SENDING_STATES:
            return None
        try:
            promised: int = conn.get_next_available_stream_id()
            conn.push_stream(stream_id, promised, request)
        except h2.exceptions.H2Error:
            return None
        self.pushed.add(promised)
        return promised

    # -- sending -----------------------------------------------------------------

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = False
    ) -> None:
        """A response head (``:status`` first) or an interim 1xx head."""
        if self.closed:
            return
        try:  # noqa: SIM105 - on every response; try costs nothing when nothing raises
            self._conn.send_headers(stream_id, headers, end_stream=end_stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def send_response(self, stream_id: int, block: bytes, body: bytes) -> bool:
        """A whole response in one go: HEADERS (``block``, from `encode_fields`) and body.

        The common small response, framed here rather than by h2 (its
        send_headers and send_data are most of a small response's cost); the
        stream's state machine still takes the same inputs, so h2 knows the
        stream is closed. False when the response does not fit that path
        (window, frame size, a pending HPACK table-size update, stream state):
        the caller then sends it the ordinary way, nothing having been sent.
        """
        conn = self._conn
        stream = conn.streams.get(stream_id)
        size = len(body)
        if (
            stream is None
            or self.closed
            or stream_id in self._outbound
            or conn.state_machine.state is not ConnectionState.SERVER_OPEN
            or conn.encoder.header_table.resized
            or len(block) > conn.max_outbound_frame_size
            or size > conn.max_outbound_frame_size
            or size > stream.outbound_flow_control_window
            or size > conn.outbound_flow_control_window
        ):
            return False
        machine = stream.state_machine
        state = machine.state
        if state is not StreamState.HALF_CLOSED_REMOTE and state is not StreamState.OPEN:
            return False
        if machine.headers_sent:
            return False
        machine.process_input(StreamInputs.SEND_HEADERS)
        machine.process_input(StreamInputs.SEND_END_STREAM)
        out = self._out
        pending = conn.data_to_send()
        if pending:
            out.append(pending)  # keep h2's frames ahead of these
        # Frame headers (RFC 9113 4.1): length, type, flags, stream id.
        # HEADERS (1) with END_HEADERS (4), and END_STREAM (1) when no body.
        if size:
            out.append(((len(block) << 48) | (0x0104 << 32) | stream_id).to_bytes(9, "big"))
            out.append(block)
            out.append(((size << 48) | (0x0001 << 32) | stream_id).to_bytes(9, "big"))
            out.append(body)
            conn.outbound_flow_control_window -= size
            stream.outbound_flow_control_window -= size
        else:
            out.append(((len(block) << 48) | (0x0105 << 32) | stream_id).to_bytes(9, "big"))
            out.append(block)
        return True

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> bool:
        """Send or queue body bytes; True when all of it left (nothing waits for window)."""
        if self.closed:
            return True
        out = self._outbound.get(stream_id)
        if out is None:
            conn = self._conn
            size = len(data)
            if size <= conn.max_outbound_frame_size:
                # The common case: one frame that fits the window right now.
                try:
                    if size <= conn.local_flow_control_window(stream_id):
                        conn.send_data(stream_id, data, end_stream=end_stream)
                        return True
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    return True
            out = self._outbound[stream_id] = _Outbound()
        if data:
            out.chunks.append(data)
            out.size += len(data)
        if end_stream:
            out.end = True
        return self._flush_stream(stream_id, out)

    def send_trailers(self, stream_id: int, trailers: list[tuple[bytes, bytes]]) -> None:
        """End the stream with a trailer section, after any queued body bytes."""
        out = self._outbound.get(stream_id)
        if out is None:
            out = self._outbound[stream_id] = _Outbound()
        out.end = True
        out.trailers = [(n, v) for n, v in trailers if n not in _CONNECTION_HEADERS]
        self._flush_stream(stream_id, out)

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", True)

    def has_pending(self, stream_id: int) -> bool:
        """Whether bytes of ``stream_id`` wait for flow-control window."""
        return stream_id in self._outbound

    def pending_size(self, stream_id: int) -> int:
        out = self._outbound.get(stream_id)
        return 0 if out is None else out.size

    def reset(self, stream_id: int, error_code: int = CANCEL) -> None:
        """RST_STREAM: the stream ends here (queued bytes are dropped)."""
        self._outbound.pop(stream_id, None)
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._conn.reset_stream(stream_id, error_code)

    def _flush_stream(self, stream_id: int, out: _Outbound) -> bool:
        conn = self._conn
        chunks = out.chunks
        try:
            while chunks:
                window = conn.local_flow_control_window(stream_id)
                if window <= 0:
                    return False
                chunk = chunks[0]
                offset = out.offset
                size = min(window, conn.max_outbound_frame_size, len(chunk) - offset)
                if offset == 0 and size == len(chunk):
                    piece: Any = chunk
                    chunks.popleft()
                else:
                    piece = memoryview(chunk)[offset : offset + size]
                    offset += size
                    if offset == len(chunk):
                        chunks.popleft()
                        offset = 0
                    out.offset = offset
                out.size -= size
                last = not chunks and out.end and out.trailers is None
                if not last and self._send_data_frame(stream_id, piece, size):
                    continue
                conn.send_data(stream_id, piece, end_stream=last)
                if last:
                    del self._outbound[stream_id]
                    return True
            if not out.end:
                del self._outbound[stream_id]
                return True
            del self._outbound[stream_id]
            if out.trailers is not None:
                conn.send_headers(stream_id, out.trailers, end_stream=True)
            else:
                conn.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._outbound.pop(stream_id, None)
        return True

    def _send_data_frame(self, stream_id: int, piece: Any, size: int) -> bool:
        """A DATA frame without END_STREAM, written here rather than by h2.

        Measured: h2's send_data (state machine, frame object, two copies)
        costs about ten times this, and a 1 MiB body is 64 such frames. The
        frame changes no stream state, so only the two windows need the
        bookkeeping h2 would do; END_STREAM frames still go through h2.
        """
        conn = self._conn
        stream = conn.streams.get(stream_id)
        if (
            stream is None
            or stream.state_machine.state not in _SENDING_STATES
            or conn.state_machine.state is not ConnectionState.SERVER_OPEN
        ):
            return False
        out = self._out
        pending = conn.data_to_send()
        if pending:
            out.append(pending)  # keep h2's frames ahead of this one
        # Frame header (RFC 9113 4.1): length, type DATA (0), no flags, stream id.
        out.append(((size << 48) | stream_id).to_bytes(9, "big"))
        out.append(piece)
        conn.outbound_flow_control_window -= size
        stream.outbound_flow_control_window -= size
        return True

    def _window_opened(self, stream_id: int, events: list[H2Event]) -> None:
        if not self._outbound:
            return
        if stream_id:
            out = self._outbound.get(stream_id)
            if out is not None and self._flush_stream(stream_id, out):
                events.append(StreamWritable(stream_id))
            return
        # The connection window: every waiting stream in the order it queued.
        for waiting, out in list(self._outbound.items()):
            if self._flush_stream(waiting, out):
                events.append(StreamWritable(waiting))
            elif self._conn.outbound_flow_control_window <= 0:
                return

    # -- ending ------------------------------------------------------------------

    def goaway(self) -> None:
        """Graceful GOAWAY (NO_ERROR): streams so far finish, later ones are refused.

        Written by hand: h2's ``close_connection`` would refuse to send the
        rest of the responses in flight.
        """
        if self._goaway_sent or self.closed:
            return
        self._goaway_sent = True
        self._last_stream_id = self._conn.highest_inbound_stream_id
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._last_stream_id
        frame.error_code = NO_ERROR
        # After whatever h2 has queued, so frames keep their order.
        self._out.append(self._conn.data_to_send())
        self._out.append(frame.serialize())

    def close(self, error_code: int, reason: str) -> ConnectionClosed:
        """GOAWAY with ``error_code``; nothing more is sent or processed after it."""
        if not self.closed:
            self.closed = True
            self._outbound.clear()
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn.close_connection(error_code, reason.encode("ascii", "replace"))
        return ConnectionClosed(error_code, reason, False)

    @property
    def goaway_sent(self) -> bool:
        return self._goaway_sent

    def data_to_send(self) -> bytes:
        """The bytes to write to the socket now."""
        out = self._conn.data_to_send()
        if self._out:
            chunks = self._out
            chunks.append(out)
            out = b"".join(chunks)
            chunks.clear()
        return out
