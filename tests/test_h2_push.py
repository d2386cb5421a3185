"""``http.response.push`` (ASGI's HTTP/2 server push extension), with `h2` as the client."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.events
import httpx
import pytest
from h2.settings import SettingCodes

from tests.h2_helpers import RawH2
from tests.utils import run_server

pytestmark = pytest.mark.timeout(60)


class Seen:
    def __init__(self) -> None:
        self.scopes: dict[str, dict[str, Any]] = {}


def make_app(seen: Seen, pushes: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        seen.scopes[path] = scope
        if path == "/":
            for pushed in pushes:
                # Sent whether advertised or not: the server must ignore it then.
                await send(
                    {
                        "type": "http.response.push",
                        "path": pushed,
                        "headers": [(b"accept", b"text/css"), (b"connection", b"x")],
                    }
                )
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"index"})
            return
        if path == "/hold":
            await asyncio.sleep(0.2)
        accept = dict(scope["headers"]).get(b"accept", b"-").decode()
        body = f"{scope['method']} {path} {scope['query_string'].decode()} {accept}"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/css")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    return app


def promises(client: RawH2) -> list[h2.events.PushedStreamReceived]:
    return [e for e in client.events if isinstance(e, h2.events.PushedStreamReceived)]


def test_push_promise_and_pushed_response() -> None:
    seen = Seen()
    with run_server(make_app(seen, ["/style.css?v=1"])) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            main = client.get("/")
            (promise,) = promises(client)
            pushed = client.response(promise.pushed_stream_id)
        finally:
            client.close()
    assert main.status == 200
    assert main.body == b"index"
    assert promise.parent_stream_id == 1
    request = dict(promise.headers)
    assert request[b":method"] == b"GET"
    assert request[b":path"] == b"/style.css?v=1"
    assert request[b":scheme"] == b"http"
    assert request[b":authority"] == b"localhost"
    assert request[b"accept"] == b"text/css"
    assert b"connection" not in request
    assert pushed.status == 200
    assert pushed.body == b"GET /style.css v=1 text/css"
    assert (b"content-type", b"text/css") in pushed.headers
    # Advertised on the client's stream only, never on the pushed one (RFC 9113 6.6).
    assert "http.response.push" in seen.scopes["/"]["extensions"]
    pushed_scope = seen.scopes["/style.css"]
    assert "http.response.push" not in pushed_scope["extensions"]
    assert pushed_scope["http_version"] == "2"
    assert pushed_scope["headers"][0] == (b"host", b"localhost")


def test_disabled_push_is_not_advertised_and_ignored() -> None:
    seen = Seen()
    with run_server(make_app(seen, ["/style.css"])) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            client.conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
            client.flush()
            main = client.get("/")
            again = client.get("/")
        finally:
            client.close()
    assert (main.status, main.body) == (200, b"index")
    assert (again.status, again.body) == (200, b"index")
    assert promises(client) == []
    assert "http.response.push" not in seen.scopes["/"]["extensions"]
    assert "/style.css" not in seen.scopes


def test_pushes_bounded_by_the_client_concurrency_limit() -> None:
    seen = Seen()
    with run_server(make_app(seen, ["/hold", "/a", "/b"])) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            client.conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
            client.flush()
            main = client.get("/")
            (promise,) = promises(client)
            pushed = client.response(promise.pushed_stream_id)
        finally:
            client.close()
    assert main.body == b"index"
    assert pushed.body == b"GET /hold  text/css"
    assert "/a" not in seen.scopes
    assert "/b" not in seen.scopes


def test_http11_has_no_push_and_ignores_it() -> None:
    seen = Seen()
    with run_server(make_app(seen, ["/style.css"])) as srv:
        response = httpx.get(srv.url + "/")
    assert response.text == "index"
    assert "http.response.push" not in seen.scopes["/"]["extensions"]
    assert "/style.css" not in seen.scopes


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "http.response.push", "path": b"/x", "headers": []}, TypeError),
        ({"type": "http.response.push", "path": "x", "headers": []}, RuntimeError),
        ({"type": "http.response.push", "path": "/x", "headers": [(b"a b", b"c")]}, RuntimeError),
    ],
)
def test_invalid_push_message_fails_the_app(message: dict[str, Any], error: type) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            await send(message)
        except Exception as exc:
            errors.append(exc)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with run_server(app) as srv:
        assert srv.port is not None
        client = RawH2(srv.port)
        try:
            response = client.get("/")
        finally:
            client.close()
    assert response.body == b"ok"
    assert [type(e) for e in errors] == [error]
    assert promises(client) == []
