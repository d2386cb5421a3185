"""WebSocket (RFC 6455) and permessage-deflate (RFC 7692), sans-IO."""

from hurtle.protocol.ws.connection import CLOSE_SENT, CLOSED, OPEN, WSConnection
from hurtle.protocol.ws.deflate import DeflateParams, negotiate
from hurtle.protocol.ws.events import CloseReceived, Event, Failure, Message, Ping, Pong
from hurtle.protocol.ws.frames import FrameError, apply_mask, valid_close_code
from hurtle.protocol.ws.handshake import (
    HandshakeError,
    UpgradeRequest,
    accept_headers,
    accept_response,
    accept_token,
    is_websocket_upgrade,
    validate_extended_connect,
    validate_request,
)

__all__ = [
    "CLOSED",
    "CLOSE_SENT",
    "OPEN",
    "CloseReceived",
    "DeflateParams",
    "Event",
    "Failure",
    "FrameError",
    "HandshakeError",
    "Message",
    "Ping",
    "Pong",
    "UpgradeRequest",
    "WSConnection",
    "accept_headers",
    "accept_response",
    "accept_token",
    "apply_mask",
    "is_websocket_upgrade",
    "negotiate",
    "valid_close_code",
    "validate_extended_connect",
    "validate_request",
]
