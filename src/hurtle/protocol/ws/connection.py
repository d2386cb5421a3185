"""The WebSocket connection core (RFC 6455 sections 5 to 7), server side, sans-IO.

Bytes in: ``receive_data(data)`` returns the events they complete (whole
messages, pings, pongs, the peer's close, or a failure). Bytes out:
``send_message``, ``send_ping``, ``send_close`` return frames to write, and
``data_to_send()`` returns what the core answered on its own (pongs, the
close reply, the close that fails the connection).

Rules enforced on every client frame, each failing the connection with the
close code of section 7.4.1:

- masked (section 5.1), else 1002;
- RSV bits clear unless an extension gives them meaning: RSV1 marks a
  compressed message under permessage-deflate, on its first frame only
  (RFC 7692 section 6), else 1002;
- a defined opcode (section 5.2), else 1002;
- control frames final and at most 125 bytes (section 5.5), else 1002;
- continuation frames only inside a fragmented message, and no new data
  message before it ends (section 5.4), else 1002;
- text valid UTF-8, checked fragment by fragment so a bad byte fails at once
  (section 8.1), else 1007;
- a close frame's code and reason valid (section 7.4), else 1002 or 1007;
- a message at most ``max_size`` bytes, counted after decompression, else
  1009. Frame lengths are checked from the header, before the payload is
  buffered.

Connection states, in the order they are reached::

    OPEN --send_close--> CLOSE_SENT --peer close--> CLOSED
      |                                                ^
      +--peer close (the core queues the reply)--------+
      +--protocol failure (the core queues a close)----+

Nothing is read after the peer's close or a failure.
"""

from __future__ import annotations

import codecs

from hurtle.protocol.ws.deflate import Deflate, DeflateParams
from hurtle.protocol.ws.events import CloseReceived, Event, Failure, Message, Ping, Pong
from hurtle.protocol.ws.frames import (
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    FIN,
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    FrameError,
    close_payload,
    frame_header,
    parse_close_payload,
    serialize_frame,
    unmask_range,
)

OPEN = 0
CLOSE_SENT = 1
CLOSED = 2

_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_from_bytes = int.from_bytes
# Payloads shorter than this are unmasked inline with one big-integer XOR (see
# frames.apply_mask for the measurements).
_INLINE_MASK = 16385


class WSConnection:
    """One server-side WebSocket connection after the handshake."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_compressed",
        "_decoder",
        "_deflate",
        "_fragmented",
        "_max_frame",
        "_msg_text",
        "_need",
        "_out",
        "_parts",
        "_size",
        "_text_parts",
        "max_size",
        "state",
    )

    def __init__(self, max_size: int = 16 * 1024 * 1024, deflate: DeflateParams | None = None):
        self.max_size = max_size
        self.state = OPEN
        self._deflate = Deflate(deflate) if deflate is not None else None
        # A compressed frame may be a little larger than what it inflates to
        # (stored blocks add 5 bytes per 64 KiB): allow that, and no more, to
        # be buffered before inflating.
        self._max_frame = max_size + max_size // 1000 + 64 if deflate is not None else max_size
        self._chunks: list[bytes] = []
        self._buffered = 0
        # Bytes needed before the next frame can be parsed or checked: the
        # receive path joins buffered chunks only once, when they are enough.
        self._need = 2
        self._out: list[bytes] = []
        # The fragmented message in progress.
        self._fragmented = False
        self._msg_text = False
        self._compressed = False
        self._parts: list[bytes] = []
        self._text_parts: list[str] = []
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def compression(self) -> bool:
        return self._deflate is not None

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete, in order."""
        if self.state == CLOSED or self._need < 0:
            return []
        buffered = self._buffered + len(data)
        if buffered < self._need:
            self._chunks.append(data)
            self._buffered = buffered
            return []
        if self._chunks:
            self._chunks.append(data)
            buf = b"".join(self._chunks)
            self._chunks = []
        else:
            buf = data
        events: list[Event] = []
        pos = 0
        end = len(buf)
        need = 2
        try:
            while True:
                avail = end - pos
                if avail < 2:
                    need = 2
                    break
                b0 = buf[pos]
                b1 = buf[pos + 1]
                length = b1 & 0x7F
                head = 6  # two bytes, then the four-byte mask
                if length == 126:
                    head = 8
                    if avail < 4:
                        need = 4
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                elif length == 127:
                    head = 14
                    if avail < 10:
                        need = 10
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise FrameError(CLOSE_PROTOCOL_ERROR, "Frame length with the top bit set")
                if not b1 & 0x80:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "Client frame not masked")
                # The common frame, a whole uncompressed text or binary message
                # outside a fragmented one, skips the general checks and dispatch:
                # measured, this path is most of the per-message cost.
                whole = (b0 == 0x82 or b0 == 0x81) and not self._fragmented
                if whole:
                    if length > self.max_size:
                        raise FrameError(CLOSE_TOO_BIG, "Message too big")
                else:
                    self._check_header(b0, length)
                if avail < head + length:
                    need = head + length
                    break
                start = pos + head
                pos = start + length
                if length < _INLINE_MASK:
                    # apply_mask's small-payload branch, inlined.
                    payload = (
                        _from_bytes(buf[start:pos], "big")
                        ^ _from_bytes(
                            (buf[start - 4 : start] * ((length >> 2) + 1))[:length], "big"
                        )
                    ).to_bytes(length, "big")
                else:
                    payload = unmask_range(buf, start, pos, buf[start - 4 : start])
                if whole:
                    if b0 == 0x82:
                        events.append(Message(payload))
                    else:
                        try:
                            events.append(Message(payload.decode("utf-8")))
                        except UnicodeDecodeError:
                            raise FrameError(CLOSE_INVALID_DATA, "Invalid UTF-8 in text") from None
                    continue
                self._on_frame(b0, payload, events)
                if self.state == CLOSED:
                    need = -1
                    break
        except FrameError as exc:
            self._fail(exc.code, exc.reason, events)
            return events
        if need > 0 and pos < end:
            rest = buf[pos:] if pos else buf
            self._chunks.append(rest)
            self._buffered = end - pos
        else:
            self._buffered = 0
        self._need = need
        return events

    def _check_header(self, b0: int, length: int) -> None:
        """The rules a frame header alone can break: checked before its payload is buffered."""
        opcode = b0 & 0x0F
        if opcode >= 0x8:
            if opcode > OP_PONG:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"Reserved opcode {opcode:#x}")
            if not b0 & FIN:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Control frame payload over 125 bytes")
            if b0 & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Reserved bits set on a control frame")
            return
        if opcode > OP_BINARY:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"Reserved opcode {opcode:#x}")
        rsv = b0 & 0x70
        if opcode == OP_CONTINUATION:
            if not self._fragmented:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Continuation frame outside a message")
            if rsv:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Reserved bits set on a continuation frame")
            compressed = self._compressed
        else:
            if self._fragmented:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "New message inside a fragmented message")
            if rsv and (rsv != RSV1 or self._deflate is None):
                raise FrameError(CLOSE_PROTOCOL_ERROR, "Reserved bits set without an extension")
            compressed = bool(rsv)
        if compressed:
            if length > self._max_frame:
                raise FrameError(CLOSE_TOO_BIG, "Message too big")
        elif self._size + length > self.max_size:
            raise FrameError(CLOSE_TOO_BIG, "Message too big")

    def _on_frame(self, b0: int, payload: bytes, events: list[Event]) -> None:
        opcode = b0 & 0x0F
        if opcode == OP_TEXT or opcode == OP_BINARY:
            # The first frame of a fragmented or compressed message (a whole
            # uncompressed one never gets here: receive_data handles it inline).
            self._fragmented = True
            self._msg_text = opcode == OP_TEXT
            self._compressed = bool(b0 & RSV1)
            self._size = 0
            self._decoder = _utf8_decoder() if self._msg_text else None
            self._on_fragment(payload, bool(b0 & FIN), events)
        elif opcode == OP_CONTINUATION:
            self._on_fragment(payload, bool(b0 & FIN), events)
        elif opcode == OP_PING:
            if self.state == OPEN:
                # Section 5.5.2: answer with the same payload as soon as practical.
                self._out.append(serialize_frame(OP_PONG, payload))
            events.append(Ping(payload))
        elif opcode == OP_PONG:
            events.append(Pong(payload))
        else:  # OP_CLOSE; _check_header let no other opcode through
            code, reason = parse_close_payload(payload)
            if self.state == OPEN:
                # Section 5.5.1: reply with a close, echoing the code.
                self._out.append(
                    serialize_frame(
                        OP_CLOSE, close_payload(None if code == CLOSE_NO_STATUS else code)
                    )
                )
            self.state = CLOSED
            events.append(CloseReceived(code, reason))

    def _on_fragment(self, payload: bytes, fin: bool, events: list[Event]) -> None:
        if self._compressed:
            assert self._deflate is not None
            payload = self._deflate.decompress(payload, fin, self.max_size - self._size)
        self._size += len(payload)
        if self._size > self.max_size:
            raise FrameError(CLOSE_TOO_BIG, "Message too big")
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(payload, fin)
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "Invalid UTF-8 in text") from None
            self._text_parts.append(text)
            if fin:
                events.append(Message("".join(self._text_parts)))
                self._text_parts = []
        else:
            self._parts.append(payload)
            if fin:
                events.append(Message(b"".join(self._parts)))
                self._parts = []
        if fin:
            self._fragmented = False
            self._size = 0
            self._decoder = None

    def _fail(self, code: int, reason: str, events: list[Event]) -> None:
        # Section 7.1.7: send a close (unless one went already) and stop reading.
        if self.state == OPEN:
            self._out.append(serialize_frame(OP_CLOSE, close_payload(code, reason)))
        self.state = CLOSED
        self._need = -1
        self._chunks = []
        self._buffered = 0
        events.append(Failure(code, reason))

    # -- sending -----------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Frames the core queued on its own: pongs, the close reply, a failing close."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def send_message(self, data: str | bytes) -> bytes:
        """A whole text (``str``) or binary (``bytes``) message as one frame."""
        header, payload = self.frame_message(data)
        return header + payload

    def frame_message(self, data: str | bytes) -> tuple[bytes, bytes]:
        """`send_message` as (header, payload): a large payload need not be copied behind
        its header (``transport.writelines``)."""
        if isinstance(data, str):
            payload = data.encode("utf-8")
            opcode = OP_TEXT
        else:
            payload = data
            opcode = OP_BINARY
        deflate = self._deflate
        if deflate is not None:
            # RFC 7692 section 6: RSV1 on the first (here: only) frame.
            payload = deflate.compress(payload)
            return frame_header(FIN | RSV1 | opcode, len(payload)), payload
        n = len(payload)
        if n < 126:
            return bytes((FIN | opcode, n)), payload
        return frame_header(FIN | opcode, n), payload

    def send_ping(self, payload: bytes = b"") -> bytes:
        return serialize_frame(OP_PING, payload[:MAX_CONTROL_PAYLOAD])

    def send_close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the closing handshake (section 7.1.2); the peer's close then ends it."""
        if self.state != OPEN:
            return b""
        self.state = CLOSE_SENT
        return serialize_frame(OP_CLOSE, close_payload(code, reason))
