"""The ASGI WebSocket cycle with a fake writer: message order, types, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hurtle.asgi.http import ClientDisconnected
from hurtle.asgi.websocket import WebSocketCycle, websocket_scope


class FakeWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.write_paused = False
        self.resumed = 0

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("accept", subprotocol, headers))

    def send_message(self, data: str | bytes) -> None:
        self.calls.append(("send", data))

    def close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def write_response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
    ) -> None:
        self.calls.append(("head", status, headers, content_length, body, end))

    def write_response_body(self, body: bytes, end: bool) -> None:
        self.calls.append(("body", body, end))

    async def wait_writable(self) -> None:
        self.calls.append(("wait",))
        self.write_paused = False

    def resume_reading(self) -> None:
        self.resumed += 1

    def abort(self) -> None:
        self.calls.append(("abort",))


def make_cycle(max_queue: int = 32) -> tuple[WebSocketCycle, FakeWriter]:
    scope = websocket_scope(
        "1.1", b"/p", b"", [], "ws", ("127.0.0.1", 1), ("127.0.0.1", 2), "", {}, []
    )
    writer = FakeWriter()
    return WebSocketCycle(scope, writer, max_queue), writer


async def test_messages_and_disconnect_in_order() -> None:
    cycle, writer = make_cycle(max_queue=4)
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept", "headers": [(b"X-A", b"1")]})
    assert writer.calls == [("accept", None, [(b"x-a", b"1")])]
    assert not cycle.feed("a")
    assert not cycle.feed(b"b")
    assert not cycle.feed("c")
    assert cycle.feed("d")  # the queue is full: the adapter pauses reading
    cycle.disconnect(1000, "bye")
    assert await cycle.receive() == {"type": "websocket.receive", "text": "a"}
    assert await cycle.receive() == {"type": "websocket.receive", "bytes": b"b"}
    assert writer.resumed == 0
    assert await cycle.receive() == {"type": "websocket.receive", "text": "c"}
    assert writer.resumed == 1  # caught up to the low-water mark
    assert await cycle.receive() == {"type": "websocket.receive", "text": "d"}
    expected = {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}
    assert await cycle.receive() == expected
    assert await cycle.receive() == expected
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.send", "text": "late"})


async def test_receive_waits_for_a_message() -> None:
    cycle, _ = make_cycle()
    await cycle.receive()
    await cycle.send({"type": "websocket.accept"})
    task = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not task.done()
    cycle.feed("x")
    assert await task == {"type": "websocket.receive", "text": "x"}


async def test_send_waits_while_paused() -> None:
    cycle, writer = make_cycle()
    await cycle.send({"type": "websocket.accept"})
    writer.write_paused = True
    await cycle.send({"type": "websocket.send", "bytes": bytearray(b"ab")})
    assert writer.calls[-2:] == [("send", b"ab"), ("wait",)]


async def test_close_after_accept_and_send_after_it() -> None:
    cycle, writer = make_cycle()
    await cycle.send({"type": "websocket.accept", "subprotocol": "chat"})
    await cycle.send({"type": "websocket.close", "code": 4000, "reason": None})
    assert writer.calls[-1] == ("close", 4000, "")
    assert cycle.feed("ignored") is False
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.send", "text": "x"})
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.close"})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "websocket.accept"})


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.send", "text": "x"},
        {"type": "websocket.http.response.body", "body": b""},
        {"type": "http.response.start", "status": 200},
    ],
)
async def test_wrong_message_before_accept(message: dict[str, Any]) -> None:
    cycle, _ = make_cycle()
    with pytest.raises(RuntimeError):
        await cycle.send(message)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "websocket.send"}, RuntimeError),
        ({"type": "websocket.send", "text": b"bytes"}, TypeError),
        ({"type": "websocket.send", "bytes": "str"}, TypeError),
        ({"type": "websocket.close", "code": 1005}, RuntimeError),
        ({"type": "websocket.close", "code": "1000"}, TypeError),
        ({"type": "websocket.close", "reason": 5}, TypeError),
        ({"type": "websocket.accept"}, RuntimeError),
    ],
)
async def test_invalid_messages_after_accept(message: dict[str, Any], error: type) -> None:
    cycle, _ = make_cycle()
    await cycle.send({"type": "websocket.accept"})
    with pytest.raises(error):
        await cycle.send(message)


async def test_invalid_accept_and_message_shapes() -> None:
    cycle, _ = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send({"type": "websocket.accept", "subprotocol": 1})
    with pytest.raises(TypeError):
        await cycle.send(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await cycle.send({"no": "type"})
    with pytest.raises(TypeError):
        await cycle.send({"type": "websocket.http.response.start", "status": "200"})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "websocket.http.response.start", "status": 101})


async def test_denial_response_streamed() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "websocket.http.response.start", "status": 404, "headers": [(b"a", b"b")]}
    )
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "websocket.accept"})
    writer.write_paused = True
    await cycle.send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
    await cycle.send({"type": "websocket.http.response.body", "body": b"y"})
    assert writer.calls == [
        ("head", 404, [(b"a", b"b")], None, b"x", False),
        ("wait",),
        ("body", b"y", True),
    ]
    other, _ = make_cycle()
    await other.send({"type": "websocket.http.response.start", "status": 404})
    with pytest.raises(TypeError):
        await other.send({"type": "websocket.http.response.body", "body": "str"})


async def test_client_gone_before_accept() -> None:
    cycle, _ = make_cycle()
    await cycle.receive()
    cycle.disconnect(1006)
    cycle.disconnect(1000)  # only the first counts
    assert await cycle.receive() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    with pytest.raises(ClientDisconnected):
        await cycle.send({"type": "websocket.accept"})


# -- run(): what the server does when the app ends or fails -----------------------


async def run_app(app: Any) -> tuple[WebSocketCycle, FakeWriter]:
    cycle, writer = make_cycle()
    await cycle.run(app)
    return cycle, writer


async def test_run_returns_without_handshake_is_500() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    _, writer = await run_app(app)
    assert writer.calls[0][:2] == ("head", 500)


async def test_run_app_returns_open_connection_closes_1000() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})

    _, writer = await run_app(app)
    assert writer.calls[-1] == ("close", 1000, "")


async def test_run_app_error_after_accept_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        raise ValueError("boom")

    _, writer = await run_app(app)
    assert writer.calls[-1] == ("close", 1011, "")
    assert "Exception in ASGI application" in caplog.text


async def test_run_app_error_in_denial_response() -> None:
    async def pending(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401})
        raise ValueError("boom")

    _, writer = await run_app(pending)
    assert writer.calls[-1][:2] == ("head", 500)

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401})
        await send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})

    _, writer = await run_app(streaming)
    assert writer.calls[-1] == ("abort",)


async def test_run_client_disconnected_is_quiet_and_cancel_aborts() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ClientDisconnected

    _, writer = await run_app(app)
    assert writer.calls == []

    cycle, writer = make_cycle()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await asyncio.sleep(100)

    task = asyncio.ensure_future(cycle.run(slow))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writer.calls[-1] == ("abort",)


async def test_run_app_returning_a_value_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        await send({"type": "websocket.close"})
        return 42

    _, writer = await run_app(app)
    assert writer.calls[0][:2] == ("head", 403)
    assert "returned a value" in caplog.text


async def test_subprotocol_wins_over_an_accept_header_of_the_same_name() -> None:
    cycle, writer = make_cycle()
    await cycle.receive()
    await cycle.send(
        {
            "type": "websocket.accept",
            "subprotocol": "chat",
            "headers": [(b"Sec-WebSocket-Protocol", b"other"), (b"x-a", b"1")],
        }
    )
    assert writer.calls == [("accept", "chat", [(b"x-a", b"1")])]


async def test_accept_header_alone_is_kept() -> None:
    cycle, writer = make_cycle()
    await cycle.receive()
    headers = [(b"sec-websocket-protocol", b"chat")]
    await cycle.send({"type": "websocket.accept", "headers": headers})
    assert writer.calls == [("accept", None, headers)]


@pytest.mark.parametrize(
    ("bodies", "ok"),
    [
        ([b"abc"], True),
        ([b"ab", b"c"], True),
        ([b"abcd"], False),
        ([b"ab"], False),
        ([b"ab", b"cd"], False),
    ],
)
async def test_denial_body_is_held_to_its_content_length(bodies: list[bytes], ok: bool) -> None:
    cycle, writer = make_cycle()
    await cycle.receive()
    await cycle.send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-length", b"3")],
        }
    )
    try:
        for i, body in enumerate(bodies):
            await cycle.send(
                {
                    "type": "websocket.http.response.body",
                    "body": body,
                    "more_body": i < len(bodies) - 1,
                }
            )
    except RuntimeError as exc:
        assert not ok
        assert "Content-Length" in str(exc)
        assert writer.calls[-1] == ("abort",)
    else:
        assert ok
        assert ("abort",) not in writer.calls


async def test_denial_204_body_length_is_not_checked() -> None:
    cycle, writer = make_cycle()
    await cycle.receive()
    await cycle.send(
        {
            "type": "websocket.http.response.start",
            "status": 204,
            "headers": [(b"content-length", b"9")],
        }
    )
    await cycle.send({"type": "websocket.http.response.body", "body": b""})
    assert writer.calls == [("head", 204, [], 9, b"", True)]


async def test_a_waiting_receive_uses_the_loop_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the connection's loop, a wait does not look the running loop up
    # (a getpid() system call per wait on 3.11).
    scope = websocket_scope(
        "1.1", b"/p", b"", [], "ws", ("127.0.0.1", 1), ("127.0.0.1", 2), "", {}, []
    )
    cycle = WebSocketCycle(scope, FakeWriter(), 32, asyncio.get_running_loop())
    assert await cycle.receive() == {"type": "websocket.connect"}
    await cycle.send({"type": "websocket.accept"})

    def no_lookup() -> asyncio.AbstractEventLoop:
        raise AssertionError("receive() looked its loop up")

    monkeypatch.setattr(asyncio, "get_running_loop", no_lookup)
    got = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not got.done()
    cycle.feed("hi")
    message = await got
    monkeypatch.undo()
    assert message == {"type": "websocket.receive", "text": "hi"}
