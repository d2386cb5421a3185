"""Request bodies through `H1Protocol` and `HTTPCycle`, over a fake transport.

A Content-Length body ends with its last `Data` (``last=True``): the protocol
hands it to the cycle as complete and does not pull the `EndOfMessage`;
chunked bodies still end with theirs. Either way the app sees the same
messages, and pipelined requests behind a body are served in order.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from hurtle.asgi.http import HTTPCycle
from hurtle.io.h1 import H1Protocol
from tests.fakes import FakeTransport, connect_h1


def make_app(seen: list[list[dict[str, Any]]]) -> Any:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        messages: list[dict[str, Any]] = []
        seen.append(messages)
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return echo


async def serve(*pieces: bytes) -> tuple[FakeTransport, list[list[dict[str, Any]]], H1Protocol]:
    seen: list[list[dict[str, Any]]] = []
    app = make_app(seen)
    protocol, transport, _ = connect_h1(app, access_log=False)
    for piece in pieces:
        protocol.data_received(piece)
        for _ in range(5):
            await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    return transport, seen, protocol


def post(body: bytes, path: bytes = b"/") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (path, len(body), body)


async def test_a_buffered_body_reaches_the_app_in_one_message() -> None:
    transport, seen, protocol = await serve(post(b"hello"))
    assert seen == [[{"type": "http.request", "body": b"hello", "more_body": False}]]
    assert b"".join(transport.writes).endswith(b"\r\n\r\nhello")
    assert not transport.closed
    # The connection parses the next request: the body's end was taken as its end.
    assert not protocol.parser.paused
    protocol.connection_lost(None)


async def test_a_body_in_pieces_ends_with_its_last_piece() -> None:
    request = post(b"0123456789")
    transport, seen, protocol = await serve(request[:-7], request[-7:-3], request[-3:])
    messages = seen[0]
    assert b"".join(m["body"] for m in messages) == b"0123456789"
    assert [m["more_body"] for m in messages][-1] is False
    assert all(m["more_body"] for m in messages[:-1])
    assert b"".join(transport.writes).endswith(b"\r\n\r\n0123456789")
    protocol.connection_lost(None)


async def test_pipelined_requests_behind_bodies_are_answered_in_order() -> None:
    data = post(b"one", b"/1") + post(b"", b"/2") + post(b"three", b"/3")
    data += b"GET /4 HTTP/1.1\r\nHost: a\r\n\r\n"
    transport, seen, protocol = await serve(data)
    assert [m[0]["body"] for m in seen] == [b"one", b"", b"three", b""]
    out = b"".join(transport.writes)
    assert out.count(b"HTTP/1.1 200 OK") == 4
    assert out.index(b"one") < out.index(b"three")
    protocol.connection_lost(None)


async def test_a_chunked_body_still_ends_with_its_end_of_message() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    transport, seen, protocol = await serve(data[:60], data[60:])
    assert b"".join(m["body"] for m in seen[0]) == b"abcde"
    assert seen[0][-1]["more_body"] is False
    assert b"".join(transport.writes).endswith(b"\r\n\r\nabcde")
    protocol.connection_lost(None)


async def test_pipelined_bytes_past_the_high_water_mark_pause_reading() -> None:
    # A complete body with over 64 KiB of further requests behind it: reading
    # pauses until the response is done, as after a body-less request.
    behind = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 3000
    seen: list[list[dict[str, Any]]] = []
    app = make_app(seen)
    protocol, transport, _ = connect_h1(app, access_log=False)
    protocol.data_received(post(b"body") + behind)
    assert transport.paused == 1
    for _ in range(5):
        await asyncio.sleep(0)
    # (On 3.12+ the app may have answered inside data_received already.)
    assert seen[0] == [{"type": "http.request", "body": b"body", "more_body": False}]
    protocol.connection_lost(None)


async def test_a_body_that_came_with_its_head_is_there_before_the_app_starts() -> None:
    # So an app started eagerly (3.12+) reads it at its first receive()
    # instead of waiting a loop turn for it. The task factory looks at the
    # cycle at the moment the app's task is made.
    loop = asyncio.get_running_loop()
    at_start: list[bool] = []
    protocols: list[H1Protocol] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        cycle = protocols[0].cycle
        assert cycle is not None and not cycle.response_started
        at_start.append(cycle.request_complete)
        return asyncio.Task(coro, loop=loop, **kwargs)

    seen: list[list[dict[str, Any]]] = []
    loop.set_task_factory(factory)
    try:
        protocol, transport, _ = connect_h1(make_app(seen), access_log=False)
        protocols.append(protocol)
        # A whole body, then a head whose body is still on its way.
        protocol.data_received(post(b"all of it") + post(b"half of it")[:-3])
        for _ in range(5):
            await asyncio.sleep(0)
        assert at_start == [True, False]
        protocol.data_received(b" it")
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        loop.set_task_factory(None)
    assert seen[0] == [{"type": "http.request", "body": b"all of it", "more_body": False}]
    assert b"".join(m["body"] for m in seen[1]) == b"half of it"
    assert b"".join(transport.writes).endswith(b"\r\n\r\nhalf of it")
    protocol.connection_lost(None)


async def test_a_waiting_receive_wakes_on_the_last_piece() -> None:
    class Writer:
        def resume_reading(self) -> None:
            pass

    cycle = HTTPCycle({"method": "POST"}, Writer(), False)  # type: ignore[arg-type]
    got = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not got.done()
    assert cycle.feed_body(b"abc", True) is False
    assert await got == {"type": "http.request", "body": b"abc", "more_body": False}
    assert cycle.request_complete


async def test_an_app_waiting_for_its_body_does_not_look_its_loop_up(monkeypatch: Any) -> None:
    # A wait gets its future from the app task's loop: on 3.11 looking the
    # running loop up costs a getpid() system call, once per wait. Here the
    # app waits for the rest of its body.
    looked_up: list[str] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        looked_up.append("get_running_loop")
        return real()

    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
    seen: list[list[dict[str, Any]]] = []
    protocol, transport, _ = connect_h1(make_app(seen), access_log=False)
    monkeypatch.setattr(asyncio, "get_running_loop", counting)
    protocol.data_received(head + b"he")
    for _ in range(5):
        await asyncio.sleep(0)
    protocol.data_received(b"llo")
    for _ in range(5):
        await asyncio.sleep(0)
    monkeypatch.undo()
    body = b"".join(m["body"] for m in seen[0])
    assert body == b"hello" and len(seen[0]) == 2  # the app waited for the rest
    assert b"".join(transport.writes).endswith(b"\r\n\r\nhello")
    # On 3.12+ the app's first step runs eagerly, before its task is known
    # and before the body's first bytes are fed: that first wait looks the
    # loop up (which makes no system call there).
    assert looked_up == ([] if sys.version_info < (3, 12) else ["get_running_loop"])
    protocol.connection_lost(None)
