"""Each request on a keep-alive connection gets a scope of its own.

The connection builds its first request's scope fresh and copies a kept base
for later ones: an app that writes into its scope (routers do) must never see
those writes in the next request's scope.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from tests.utils import run_server


async def mutating_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    seen = {k: scope.get(k) for k in ("path", "router", "http_version", "client")}
    seen["keys"] = sorted(scope)
    seen["state"] = sorted(scope["state"])
    seen["mine"] = "mine" in scope["extensions"]
    scope["router"] = "set by the app"
    scope["path"] = "/rewritten"
    scope["client"] = ("203.0.113.9", 1)
    scope["state"]["x"] = 1
    scope["extensions"]["mine"] = {}
    body = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def read_responses(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    data = b""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            out.append(json.loads(rest[:length]))
            data = rest[length:]
    return out


def test_writes_to_a_scope_do_not_reach_the_next_request() -> None:
    with (
        run_server(mutating_app) as server,
        socket.create_connection((server.host, server.port or 0), timeout=10) as sock,
    ):
        for i in range(4):  # first (fresh), second (base kept), later (copies)
            sock.sendall(b"GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            [seen] = read_responses(sock, 1)
            assert seen["path"] == f"/p{i}"
            assert seen["router"] is None
            assert seen["client"][0] == "127.0.0.1"
            assert seen["http_version"] == "1.1"
            assert "router" not in seen["keys"]
            assert seen["state"] == []
            assert seen["mine"] is False
        sock.sendall(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        [seen] = read_responses(sock, 1)
        assert seen["http_version"] == "1.0"
        sock.sendall(b"GET /eleven HTTP/1.1\r\nHost: a\r\n\r\n")
        [seen] = read_responses(sock, 1)
        assert seen["http_version"] == "1.1"
        assert seen["path"] == "/eleven"
