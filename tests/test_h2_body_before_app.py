"""HTTP/2: a request body that arrives in the same read as its HEADERS is the
cycle's before the app's task is made.

On 3.12+ an app task starts eagerly, inside the protocol's data_received;
started at the HEADERS, its first receive() would wait a loop turn for DATA
frames already in hand. A task factory on the loop (honoured) looks at the
cycle at the moment the task is made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events

from hurtle.config import Config
from hurtle.io.h2 import H2Protocol
from hurtle.io.state import ServerState
from tests.fakes import FakeTransport


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def post(client: h2.connection.H2Connection, body: bytes, end: bool = True) -> int:
    sid = client.get_next_available_stream_id()
    client.send_headers(
        sid,
        [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")],
    )
    client.send_data(sid, body, end_stream=end)
    return sid


def answers(client: h2.connection.H2Connection, transport: FakeTransport) -> dict[int, bytes]:
    bodies: dict[int, bytes] = {}
    for event in client.receive_data(transport.written):
        if isinstance(event, h2.events.DataReceived):
            bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
    transport.writes.clear()
    return bodies


async def test_the_body_of_the_same_read_is_fed_before_the_app_starts() -> None:
    loop = asyncio.get_running_loop()
    at_start: list[tuple[int, bool]] = []
    protocols: list[H2Protocol] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        # Streams start in order: the one being started is the first without a task.
        sid, stream = next((i, s) for i, s in protocols[0].streams.items() if s.task is None)
        assert stream.cycle is not None and not stream.cycle.response_started
        at_start.append((sid, stream.cycle.request_complete))
        return asyncio.Task(coro, loop=loop, **kwargs)

    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    loop.set_task_factory(factory)
    try:
        config = Config(echo, http="auto")
        protocol = H2Protocol(config, echo, ServerState(config))
        protocols.append(protocol)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        whole = post(client, b"all of it")
        # A second stream whose body is still on its way: its app starts
        # after this read too, and reads the rest when it comes.
        partial = post(client, b"half ", end=False)
        protocol.data_received(client.data_to_send())
        for _ in range(5):
            await asyncio.sleep(0)
        assert at_start == [(whole, True), (partial, False)]
        assert answers(client, transport) == {whole: b"all of it"}
        client.send_data(partial, b"of it", end_stream=True)
        protocol.data_received(client.data_to_send())
        for _ in range(5):
            await asyncio.sleep(0)
        assert answers(client, transport) == {partial: b"half of it"}
    finally:
        loop.set_task_factory(None)
    protocol.connection_lost(None)
