"""HTTP/2 (RFC 9113), sans-IO: a thin server layer over the `h2` library.

Importing this package needs ``h2`` (the ``standard`` extra); HTTP/1.1 never does.
"""

from hurtle.protocol.h2.connection import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    H2Core,
    H2Error,
)
from hurtle.protocol.h2.events import (
    ConnectionClosed,
    H2Event,
    StreamData,
    StreamEnded,
    StreamRequest,
    StreamReset,
    StreamWritable,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

__all__ = [
    "CANCEL",
    "ENHANCE_YOUR_CALM",
    "INTERNAL_ERROR",
    "NO_ERROR",
    "PREFACE",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "ConnectionClosed",
    "H2Core",
    "H2Error",
    "H2Event",
    "StreamData",
    "StreamEnded",
    "StreamRequest",
    "StreamReset",
    "StreamWritable",
]
