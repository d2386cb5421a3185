"""RFC 6455 section 4: the opening handshake, server side.

`validate_request` checks a request that asked to upgrade to WebSocket
(section 4.2.1) and returns what the response needs; `accept_response`
builds the ``101 Switching Protocols`` head (section 4.2.2).

A request that claims the upgrade but breaks a rule is answered ``400``, or
``426`` with ``Sec-WebSocket-Version: 13`` when only the version is wrong
(section 4.4), and the connection closes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from hurtle.protocol.errors import ProtocolError
from hurtle.protocol.h1.connection import block_without, replaced_defaults
from hurtle.protocol.ws.deflate import DeflateParams, negotiate

# Section 1.3: the GUID appended to the key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SUPPORTED_VERSION = b"13"


class HandshakeError(ProtocolError):
    """A broken upgrade request: answer ``status`` with ``headers`` and close."""

    def __init__(
        self, reason: str, status: int = 400, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(reason, status)
        self.headers = headers or []


class UpgradeRequest:
    """What a valid upgrade request asks for: the accept token, subprotocols, extensions."""

    __slots__ = ("accept", "deflate", "subprotocols")

    def __init__(self, accept: bytes, subprotocols: list[str], deflate: DeflateParams | None):
        self.accept = accept
        self.subprotocols = subprotocols
        self.deflate = deflate


def accept_token(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for ``key`` (section 4.2.2 step 5.4): base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _tokens(values: list[bytes]) -> list[bytes]:
    return [t.strip(b" \t") for value in values for t in value.split(b",") if t.strip(b" \t")]


def is_websocket_upgrade(upgrade: bytes) -> bool:
    """Whether an ``Upgrade`` header value names websocket (section 4.2.1 item 3, any case)."""
    return any(token.lower() == b"websocket" for token in _tokens([upgrade]))


def validate_request(
    method: bytes,
    http_version: str,
    headers: list[tuple[bytes, bytes]],
    has_body: bool,
    per_message_deflate: bool,
) -> UpgradeRequest:
    """Check an upgrade request per section 4.2.1; `HandshakeError` when it is invalid.

    The caller has already seen ``Connection: upgrade`` and ``Upgrade:
    websocket`` (the HTTP/1.1 parser reports them); ``Host`` is required by
    the HTTP/1.1 parser itself.
    """
    if method != b"GET":
        raise HandshakeError("WebSocket upgrade must use GET")
    if http_version != "1.1":
        raise HandshakeError("WebSocket upgrade needs HTTP/1.1")
    if has_body:
        raise HandshakeError("WebSocket upgrade request with a body")
    keys, subprotocols, deflate = _sec_websocket_fields(headers, per_message_deflate, 426)
    if len(keys) != 1:
        raise HandshakeError("Missing or repeated Sec-WebSocket-Key")
    key = keys[0].strip()
    # Section 4.1 item 7: the key is a base64-encoded random 16-byte value.
    try:
        raw_key = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise HandshakeError("Invalid Sec-WebSocket-Key") from None
    if len(raw_key) != 16:
        raise HandshakeError("Invalid Sec-WebSocket-Key")
    return UpgradeRequest(accept_token(key), subprotocols, deflate)


def validate_extended_connect(
    headers: list[tuple[bytes, bytes]], per_message_deflate: bool
) -> UpgradeRequest:
    """Check an HTTP/2 extended CONNECT for ``websocket`` (RFC 8441 section 5).

    The pseudo-headers were checked by the HTTP/2 core. There is no
    ``Sec-WebSocket-Key`` and no accept token: the stream is the handshake
    (section 5.1), so the returned request's ``accept`` is empty. A wrong
    version is a 400 with ``Sec-WebSocket-Version: 13``: HTTP/2 has no 426
    upgrade to offer (RFC 9113 8.6).
    """
    _, subprotocols, deflate = _sec_websocket_fields(headers, per_message_deflate, 400)
    return UpgradeRequest(b"", subprotocols, deflate)


def _sec_websocket_fields(
    headers: list[tuple[bytes, bytes]], per_message_deflate: bool, version_status: int
) -> tuple[list[bytes], list[str], DeflateParams | None]:
    """The keys, the offered subprotocols and the negotiated deflate; checks the version."""
    keys: list[bytes] = []
    versions: list[bytes] = []
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    for name, value in headers:
        if name[:14] != b"sec-websocket-":
            continue
        if name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value)
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
    # Section 4.4: a version the server does not speak gets 426 with the ones it does.
    if len(versions) != 1 or versions[0].strip() != SUPPORTED_VERSION:
        raise HandshakeError(
            "Unsupported WebSocket version",
            version_status,
            [(b"sec-websocket-version", SUPPORTED_VERSION)],
        )
    subprotocols = [t.decode("latin-1") for t in _tokens(protocols)]
    deflate = negotiate(extensions) if per_message_deflate and extensions else None
    return keys, subprotocols, deflate


def accept_response(
    upgrade: UpgradeRequest,
    subprotocol: str | None,
    headers: list[tuple[bytes, bytes]],
    default_block: bytes,
) -> bytes:
    """The ``101 Switching Protocols`` head (section 4.2.2 step 5).

    ``headers`` are the app's extra headers, already validated; the
    handshake's own headers cannot be overridden by them.
    """
    parts = [
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"upgrade: websocket\r\n"
        b"connection: Upgrade\r\n"
        b"sec-websocket-accept: " + upgrade.accept + b"\r\n"
    ]
    for name, value in accept_headers(upgrade, subprotocol, headers):
        parts.append(name + b": " + value + b"\r\n")
    replaced = replaced_defaults(headers)
    parts.append(block_without(default_block, replaced) if replaced else default_block)
    parts.append(b"\r\n")
    return b"".join(parts)


def accept_headers(
    upgrade: UpgradeRequest, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The fields of an accepting response for any HTTP version, in order.

    The chosen subprotocol and the negotiated extension, then the app's own
    headers without those the handshake or the HTTP framing owns (HTTP/1.1
    adds upgrade, connection and the accept token; HTTP/2 only ``:status``).
    """
    fields: list[tuple[bytes, bytes]] = []
    if subprotocol is not None:
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    if upgrade.deflate is not None:
        fields.append((b"sec-websocket-extensions", upgrade.deflate.response_header()))
    for header in headers:
        if header[0] not in _OWN_HEADERS:
            fields.append(header)
    return fields


_OWN_HEADERS = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
        # RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
        b"keep-alive",
        b"proxy-connection",
    )
)
