"""Sans-IO tests of the WebSocket opening handshake and permessage-deflate negotiation."""

from __future__ import annotations

import pytest

from hurtle.protocol.ws import (
    HandshakeError,
    accept_response,
    accept_token,
    is_websocket_upgrade,
    negotiate,
    validate_request,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def headers(**extra: bytes) -> list[tuple[bytes, bytes]]:
    base = {
        b"host": b"example.com",
        b"upgrade": b"websocket",
        b"connection": b"Upgrade",
        b"sec-websocket-key": KEY,
        b"sec-websocket-version": b"13",
    }
    for name, value in extra.items():
        key = name.replace("_", "-").encode()
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return list(base.items())


def test_accept_token_from_rfc_6455_section_1_3() -> None:
    assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"websocket", True), (b"WebSocket", True), (b"foo, websocket", True), (b"h2c", False)],
)
def test_upgrade_token(value: bytes, expected: bool) -> None:
    assert is_websocket_upgrade(value) is expected


def test_valid_request() -> None:
    req = validate_request(
        b"GET",
        "1.1",
        [
            *headers(),
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-protocol", b"x"),
        ],
        False,
        True,
    )
    assert req.accept == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert req.subprotocols == ["chat", "superchat", "x"]
    assert req.deflate is None


@pytest.mark.parametrize(
    ("method", "version", "hdrs", "body", "status"),
    [
        (b"POST", "1.1", headers(), False, 400),
        (b"GET", "1.0", headers(), False, 400),
        (b"GET", "1.1", headers(), True, 400),
        (b"GET", "1.1", headers(sec_websocket_key=None), False, 400),  # type: ignore[arg-type]
        (b"GET", "1.1", headers(sec_websocket_key=b"short"), False, 400),
        (b"GET", "1.1", headers(sec_websocket_key=b"!!!notbase64!!!!!!!!!!=="), False, 400),
        (b"GET", "1.1", headers(sec_websocket_version=b"8"), False, 426),
        (b"GET", "1.1", headers(sec_websocket_version=None), False, 426),  # type: ignore[arg-type]
        (b"GET", "1.1", [*headers(), (b"sec-websocket-key", KEY)], False, 400),
    ],
)
def test_invalid_requests(
    method: bytes, version: str, hdrs: list[tuple[bytes, bytes]], body: bool, status: int
) -> None:
    with pytest.raises(HandshakeError) as info:
        validate_request(method, version, hdrs, body, True)
    assert info.value.status == status
    if status == 426:
        assert info.value.headers == [(b"sec-websocket-version", b"13")]


def test_accept_response_head() -> None:
    req = validate_request(
        b"GET",
        "1.1",
        [*headers(), (b"sec-websocket-extensions", b"permessage-deflate")],
        False,
        True,
    )
    head = accept_response(
        req, "chat", [(b"x-extra", b"1"), (b"upgrade", b"evil")], b"server: t\r\n"
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert b"sec-websocket-protocol: chat\r\n" in head
    assert b"sec-websocket-extensions: permessage-deflate\r\n" in head
    assert b"x-extra: 1\r\n" in head
    assert b"evil" not in head
    assert head.endswith(b"server: t\r\n\r\n")


def test_deflate_off_ignores_the_offer() -> None:
    req = validate_request(
        b"GET",
        "1.1",
        [*headers(), (b"sec-websocket-extensions", b"permessage-deflate")],
        False,
        False,
    )
    assert req.deflate is None


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        (b"permessage-deflate", b"permessage-deflate"),
        (b"permessage-deflate; client_max_window_bits", b"permessage-deflate"),
        (
            b"permessage-deflate; client_max_window_bits=10",
            b"permessage-deflate; client_max_window_bits=10",
        ),
        (
            b"permessage-deflate; server_max_window_bits=12",
            b"permessage-deflate; server_max_window_bits=12",
        ),
        (
            b'permessage-deflate; server_max_window_bits="9"',
            b"permessage-deflate; server_max_window_bits=9",
        ),
        (
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        # The first acceptable offer wins; a bad one is skipped, not fatal.
        (
            b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
            b"permessage-deflate",
        ),
        (b"x-foo, permessage-deflate; unknown=1, permessage-deflate", b"permessage-deflate"),
        (b"permessage-deflate; server_max_window_bits", None),
        (b"permessage-deflate; server_max_window_bits=16", None),
        (b"permessage-deflate; client_max_window_bits=7", None),
        (b"permessage-deflate; server_no_context_takeover=1", None),
        (b"permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        (b"permessage-deflate; foo", None),
        (b"x-webkit-deflate-frame", None),
        (b"\xff", None),
    ],
)
def test_deflate_negotiation(offer: bytes, response: bytes | None) -> None:
    params = negotiate([offer])
    if response is None:
        assert params is None
    else:
        assert params is not None
        assert params.response_header() == response
