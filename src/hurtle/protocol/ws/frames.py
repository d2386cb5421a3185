"""RFC 6455 section 5: the frame layout, masking, close codes.

A frame (section 5.2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-------+-+-------------+-------------------------------+
    |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
    |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
    |N|V|V|V|       |S|             |   (if payload len==126/127)   |
    | |1|2|3|       |K|             |                               |
    +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
    |     Extended payload length continued, if payload len == 127  |
    + - - - - - - - - - - - - - - - +-------------------------------+
    |                               |Masking-key, if MASK set to 1  |
    +-------------------------------+-------------------------------+

The server never masks (section 5.1); this module serializes server frames
and unmasks client payloads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

# Section 5.2 and 11.8: the opcodes defined so far; every other value is
# reserved and fails the connection with 1002.
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))

FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10

# Section 5.5: a control frame's payload is at most 125 bytes.
MAX_CONTROL_PAYLOAD = 125

# Section 7.4.1 close codes used by the server itself.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005  # never on the wire: "the close frame had no code"
CLOSE_ABNORMAL = 1006  # never on the wire: "the TCP connection dropped"
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class FrameError(Exception):
    """The peer broke a framing rule; fail the connection with close ``code`` (section 7.1.7)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (section 7.4, IANA registry).

    1004 is reserved, 1005, 1006 and 1015 are local-only and must never be on
    the wire; 1012-1014 were registered after RFC 6455 (service restart, try
    again later, bad gateway). 3000-3999 are registered names and 4000-4999
    private use; both are the application's to choose.
    """
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


# -- masking ------------------------------------------------------------------

# Measured (CPython 3.11, MiB/s of payload unmasked): a per-byte generator
# about 7; one big-integer XOR over the whole payload about 150 (converting a
# megabyte to and from an int is slow past the caches); four strided
# `bytes.translate` passes about 300; the big-integer XOR done 16 KiB at a
# time, with the repeated mask converted to an int once per message, about
# 330, and the fastest for small payloads too (one XOR, no slicing).
_CHUNK = 16384  # a multiple of 4, so every chunk starts at mask offset 0

# Large payloads are unmasked by the C routine of the `websockets` package when
# it is installed (it is in the `standard` extra, as in uvicorn[standard]):
# measured 0.2 ms per MiB against 6.9 ms for the pure-Python XOR, which left
# 1 MiB echo at 0.73x uvicorn. Small payloads stay on the inline XOR above,
# where a C call costs as much as the work.
_c_apply_mask: Callable[[Any, bytes], bytes] | None
try:
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - the pure-Python path is tested directly
    _c_apply_mask = None


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``mask`` (section 5.3); masking and unmasking alike."""
    n = len(data)
    if n <= _CHUNK:
        if not n:
            return b""
        key = (mask * ((n >> 2) + 1))[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return unmask_range(data, 0, n, mask)


def unmask_range(buf: bytes, start: int, end: int, mask: bytes) -> bytes:
    """``buf[start:end]`` unmasked, without first copying that slice out of ``buf``."""
    if _c_apply_mask is not None:
        return _c_apply_mask(memoryview(buf)[start:end], mask)
    return py_unmask_range(buf, start, end, mask)


def py_unmask_range(buf: bytes, start: int, end: int, mask: bytes) -> bytes:
    """`unmask_range` in pure Python, used when the C routine is not installed."""
    from_bytes = int.from_bytes
    chunk_key = from_bytes(mask * (_CHUNK >> 2), "big")
    whole = end - (end - start) % _CHUNK
    # Slicing bytes measured faster than from_bytes on a memoryview slice.
    parts = [
        (from_bytes(buf[i : i + _CHUNK], "big") ^ chunk_key).to_bytes(_CHUNK, "big")
        for i in range(start, whole, _CHUNK)
    ]
    if whole < end:
        parts.append(apply_mask(buf[whole:end], mask))
    return b"".join(parts)


# -- serializing server frames ---------------------------------------------------

_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def frame_header(first_byte: int, length: int) -> bytes:
    """The header of an unmasked frame: ``first_byte`` holds FIN, RSV and the opcode."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 65536:
        return _LEN16.pack(first_byte, 126, length)
    return _LEN64.pack(first_byte, 127, length)


def serialize_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One whole unmasked frame, as the server sends it (section 5.1: servers never mask)."""
    first = opcode | (FIN if fin else 0) | (RSV1 if rsv1 else 0)
    return frame_header(first, len(payload)) + payload


def close_payload(code: int | None, reason: str = "") -> bytes:
    """The body of a close frame (section 5.5.1): no code, or a code and a UTF-8 reason.

    The reason is cut to fit the 125-byte control frame limit, at a
    character boundary so it stays valid UTF-8.
    """
    if code is None:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CONTROL_PAYLOAD - 2:
        raw = raw[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Code and reason of a received close frame; `FrameError` when they are invalid.

    Section 5.5.1: an empty body means no code (reported as 1005); a one-byte
    body is malformed; the reason must be UTF-8 (section 8.1, 1007).
    """
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "Close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"Invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "Close reason is not valid UTF-8") from None
    return code, reason
