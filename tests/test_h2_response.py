"""HTTP/2 response framing end to end with the `h2` library as the client.

Whole responses are framed by the core with its own HPACK block (no h2 on that
path), others by h2: both must drop connection-specific fields (RFC 9113
8.2.2) and decode to the same thing on the client.
"""

from __future__ import annotations

from typing import Any

import pytest
from h2.settings import SettingCodes

from tests.h2_helpers import RawH2
from tests.utils import run_server

pytestmark = pytest.mark.timeout(60)

HOP_BY_HOP = [
    (b"connection", b"close"),
    (b"Keep-Alive", b"timeout=5"),
    (b"proxy-connection", b"keep-alive"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"websocket"),
]
LONG_VALUE = b"v" * 300  # a string length past the 7-bit prefix (RFC 7541 5.1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode()
    params = dict(part.split("=") for part in query.split("&")) if query else {}
    status = int(params.get("status", "200"))
    size = int(params.get("size", "5"))
    headers = [
        (b"Content-Type", b"text/plain"),
        *HOP_BY_HOP,
        (b"x-custom-name", LONG_VALUE),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    body = b"x" * size
    if scope["path"] == "/stream":
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": body})
    else:
        await send({"type": "http.response.body", "body": body})


def get_once(asgi_app: Any, path: str) -> Any:
    """One GET over a fresh HTTP/2 connection to a fresh server."""
    with run_server(asgi_app) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            return client.get(path)
        finally:
            client.close()


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


@pytest.mark.parametrize(
    ("path", "status", "size", "length"),
    [
        ("/?status=200&size=5", 200, 5, 5),
        ("/?status=418&size=5", 418, 5, 5),  # not in the static table
        ("/?status=404&size=0", 404, 0, 0),
        ("/?status=204&size=0", 204, 0, None),
        ("/?status=200&size=40000", 200, 40000, 40000),  # past one frame: h2's path
        ("/stream?size=7", 200, 14, None),  # streamed: h2's path
    ],
)
def test_connection_specific_fields_dropped(
    path: str, status: int, size: int, length: int | None
) -> None:
    response = get_once(app, path)
    assert response.status == status
    assert response.body == b"x" * size
    got = names(response.headers)
    for name, _ in HOP_BY_HOP:
        assert name.lower() not in got
    assert got[:3] == [b":status", b"date", b"server"]
    headers = response.headers
    assert (b"content-type", b"text/plain") in headers
    assert (b"x-custom-name", LONG_VALUE) in headers
    assert [v for n, v in headers if n == b"set-cookie"] == [b"a=1", b"b=2"]
    lengths = [v for n, v in headers if n == b"content-length"]
    assert lengths == ([] if length is None else [str(length).encode()])


def test_head_response_has_no_body() -> None:
    with run_server(app) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            response = client.get("/?size=9", method="HEAD")
        finally:
            client.close()
    assert response.status == 200
    assert response.body == b""
    assert response.ended


def test_many_responses_after_a_table_size_change() -> None:
    """A client shrinking the HPACK table: h2 frames the block carrying the size
    update, the fast path the rest; every response decodes."""
    with run_server(app) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            client.conn.update_settings({SettingCodes.HEADER_TABLE_SIZE: 0})
            client.flush()
            responses = [client.get(f"/?size={i}") for i in range(20)]
        finally:
            client.close()
    assert [r.body for r in responses] == [b"x" * i for i in range(20)]
    assert all((b"server", b"hurtle") in r.headers for r in responses)


async def own_server_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"server", b"upstream/1.0"), (b"date", b"Mon, 01 Jan 2024 00:00:00 GMT")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/stream":
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
    await send({"type": "http.response.body", "body": b"x"})


@pytest.mark.parametrize("path", ["/", "/stream"])  # the fast path and h2's
def test_app_server_and_date_fields_replace_the_servers(path: str) -> None:
    response = get_once(own_server_app, path)
    assert response.status == 200
    assert [v for n, v in response.headers if n == b"server"] == [b"upstream/1.0"]
    assert [v for n, v in response.headers if n == b"date"] == [b"Mon, 01 Jan 2024 00:00:00 GMT"]
