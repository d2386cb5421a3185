"""RFC 7692: the permessage-deflate extension, negotiation and codec.

Negotiation (section 7.1): the client offers one or more parameter sets in
``Sec-WebSocket-Extensions``; the server accepts the first it can honour and
answers with the parameters in force. An offer it cannot honour (unknown or
repeated parameter, bad value) is declined: the connection goes on without
compression, it is not failed (section 5.1).

Parameters, and what the server does with each:

- ``server_no_context_takeover``: the server resets its compressor after
  every message. Accepted, and echoed.
- ``client_no_context_takeover``: the client will reset its compressor; the
  server echoes it and may reset its decompressor too (it does).
- ``server_max_window_bits=N`` (8-15): the server compresses with a window of
  at most 2^N. zlib cannot make raw deflate streams with N=8
  (madler/zlib#171), so an offer of 8 is declined, as the `websockets`
  library does.
- ``client_max_window_bits[=N]``: the client can limit its window; the server
  answers with the value offered (or nothing when no value was given, which
  leaves the client at 15) and sizes its decompressor to match.

Decompression is bounded while it inflates (``max_length``), so a small
compressed message can never expand beyond the message size limit (a "zip
bomb").
"""

from __future__ import annotations

import re
import zlib

from hurtle.protocol.ws.frames import CLOSE_INVALID_DATA, CLOSE_TOO_BIG, FrameError

EXTENSION_NAME = "permessage-deflate"

# Section 7.2.1: the compressed payload of a message has the last four octets
# of the final empty stored block (0x00 0x00 0xff 0xff) removed.
_TAIL = b"\x00\x00\xff\xff"

# RFC 7692 section 7.1.2.1 / 7.1.2.2: window bits are a 1*DIGIT in 8..15, and
# section 7: a value may be a quoted-string per RFC 6455 section 9.1.
_BITS = re.compile(r'"?(8|9|1[0-5])"?')

# zlib level 1 rather than the default 6: compressing runs on the event loop,
# where it delays every other connection. Measured on 128 KiB of English text
# with context takeover: level 6 took 7.3 ms for 25 KB of output, level 1
# 2.3 ms for 36 KB (three times faster, 1.4 times larger). Autobahn's 128 KiB
# cases (12.x.10, 12.x.15-18) only finish within kosoku's time limit on a busy
# machine at the faster level.
COMPRESSION_LEVEL = 1


class DeflateParams:
    """The parameters of an accepted offer, from the server's point of view."""

    __slots__ = (
        "client_max_window_bits",
        "client_no_context_takeover",
        "server_max_window_bits",
        "server_no_context_takeover",
    )

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def response_header(self) -> bytes:
        """The ``Sec-WebSocket-Extensions`` value that accepts this offer."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is not None:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts).encode("ascii")


def _accept_offer(params: list[str]) -> DeflateParams | None:
    """One offer's parameters accepted as `DeflateParams`, or None to decline it."""
    seen: set[str] = set()
    result = DeflateParams()
    for param in params:
        name, eq, value = param.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name in seen:
            return None  # section 7.1: a repeated parameter makes the offer invalid
        seen.add(name)
        if name == "server_no_context_takeover" or name == "client_no_context_takeover":
            if eq:
                return None
            setattr(result, name, True)
        elif name == "server_max_window_bits":
            match = _BITS.fullmatch(value) if eq else None
            if match is None:
                return None  # section 7.1.2.1: the value is required
            bits = int(match.group(1))
            if bits == 8:
                return None  # zlib cannot honour it: see the module docstring
            result.server_max_window_bits = bits
        elif name == "client_max_window_bits":
            if eq:
                match = _BITS.fullmatch(value)
                if match is None:
                    return None
                result.client_max_window_bits = int(match.group(1))
            # Without a value the client only says it could take a limit; the
            # server sets none and the client's window stays at 15.
        else:
            return None  # section 7.1: unknown parameter, decline
    return result


def negotiate(header_values: list[bytes]) -> DeflateParams | None:
    """The first acceptable permessage-deflate offer among ``Sec-WebSocket-Extensions`` values.

    Values are comma-separated offers, each ``name; param; param=value``
    (RFC 6455 section 9.1). Other extensions are ignored; None when no
    permessage-deflate offer can be accepted.
    """
    for raw in header_values:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            continue
        for offer in text.split(","):
            name, *params = offer.split(";")
            if name.strip().lower() != EXTENSION_NAME:
                continue
            accepted = _accept_offer(params)
            if accepted is not None:
                return accepted
    return None


class Deflate:
    """The compressor and decompressor of one connection, per negotiated parameters."""

    __slots__ = (
        "_client_bits",
        "_compressor",
        "_decompressor",
        "_reset_compressor",
        "_reset_decompressor",
        "_server_bits",
    )

    def __init__(self, params: DeflateParams) -> None:
        self._server_bits = params.server_max_window_bits or 15
        self._client_bits = params.client_max_window_bits or 15
        self._reset_compressor = params.server_no_context_takeover
        # The client promised to reset its compressor each message: a fresh
        # decompressor each message frees the window memory between messages.
        self._reset_decompressor = params.client_no_context_takeover
        self._compressor = self._new_compressor()
        self._decompressor = self._new_decompressor()

    def _new_compressor(self) -> zlib._Compress:
        return zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -self._server_bits)

    def _new_decompressor(self) -> zlib._Decompress:
        return zlib.decompressobj(-self._client_bits)

    def compress(self, data: bytes) -> bytes:
        """A whole message's payload compressed (section 7.2.1)."""
        compressor = self._compressor
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._reset_compressor:
            self._compressor = self._new_compressor()
        if out.endswith(_TAIL):
            out = out[:-4]
        return out

    def decompress(self, data: bytes, fin: bool, max_size: int) -> bytes:
        """One frame's payload of a compressed message inflated, at most ``max_size`` bytes.

        Raises `FrameError` 1009 when the output would exceed ``max_size``
        (checked while inflating, never after) and 1007 for a corrupt stream.
        """
        decompressor = self._decompressor
        if fin:
            data += _TAIL  # section 7.2.2: put back what the sender removed
        try:
            # max_length stops zlib mid-stream: one byte over the limit proves
            # the message too big without inflating the rest.
            out = decompressor.decompress(data, max_size + 1)
        except zlib.error as exc:
            raise FrameError(CLOSE_INVALID_DATA, f"Invalid compressed data: {exc}") from None
        if len(out) > max_size or decompressor.unconsumed_tail:
            raise FrameError(CLOSE_TOO_BIG, "Message too big")
        if fin and self._reset_decompressor:
            self._decompressor = self._new_decompressor()
        return out
