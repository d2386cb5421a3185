"""Regressions in the ASGI bridge found while building it, end to end over a real socket."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hurtle.config import Config
from tests.utils import run_server


def _exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


async def declared_length_app(scope: Any, receive: Any, send: Any) -> None:
    # Like frameworks that answer HEAD with the GET headers and body, or a
    # 304 with the length of the representation it stands for.
    if scope["type"] != "http":
        return
    status = 304 if scope["path"] == "/not-modified" else 200
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"13")]}
    )
    body = b"" if status == 304 or scope["method"] == "HEAD" else b"Hello, world!"
    await send({"type": "http.response.body", "body": body})


def test_head_keeps_declared_content_length_without_body() -> None:
    with run_server(declared_length_app) as server:
        raw = _exchange(
            server.port,
            b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-length: 13" in head
    # The HEAD response has no body: the next bytes are the GET's response.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"\r\n\r\nHello, world!")


def test_304_keeps_declared_content_length_without_body() -> None:
    with run_server(declared_length_app) as server:
        raw = _exchange(
            server.port,
            b"GET /not-modified HTTP/1.1\r\nhost: x\r\n\r\n"
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    assert raw.startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert raw.count(b"HTTP/1.1 ") == 2
    assert raw.endswith(b"\r\n\r\nHello, world!")


def test_config_refuses_extra_headers_that_could_split_responses() -> None:
    with pytest.raises(ValueError, match="invalid value"):
        Config("tests.apps.basic:app", headers=[("x-a", "b\r\nset-cookie: evil")])
    with pytest.raises(ValueError, match="invalid header name"):
        Config("tests.apps.basic:app", headers=[("x a", "b")])
    assert Config("tests.apps.basic:app", headers=[("x-a", "b")]).encoded_headers == [
        (b"x-a", b"b")
    ]


def test_client_disconnected_is_public_and_an_oserror() -> None:
    import hurtle  # noqa: PLC0415 - the lazy attribute is what is under test

    assert issubclass(hurtle.ClientDisconnected, OSError)
    with pytest.raises(AttributeError):
        _ = hurtle.NoSuchThing  # type: ignore[attr-defined]
