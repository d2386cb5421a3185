"""The asyncio side of a WebSocket connection, over HTTP/1.1 or an HTTP/2 stream.

`WebSocketSession` is everything that does not depend on what carries the
bytes: it is the cycle's `WebSocketWriter`, feeds the sans-IO `WSConnection`,
owns the ping, pong and close timers and the read/write flow control. It
writes to a `ByteSink` (write, pause/resume reading, close, abort): the TCP
transport itself after an HTTP/1.1 upgrade (`WSProtocol`), or one HTTP/2
stream's DATA frames for RFC 8441 (`hurtle.io.h2`). Only the handshake's HTTP
side (the ``101`` or ``:status 200`` head, the denial response) differs, and
each subclass writes it.

`websocket_upgrade` is called by `H1Protocol` for a request that carries
``Connection: upgrade``. It checks the handshake (answering 400 or 426 and
closing when it is broken) and hands the transport to a `WSProtocol`, with the
bytes the HTTP parser had already buffered past the request head: nothing is
re-parsed or re-serialized.

The app runs at once; the handshake response goes out when the app accepts,
and only then are client frames read (RFC 6455 section 4.2.2: no frame before
the handshake completes).

- Flow control: reading pauses while the app has ``ws_max_queue`` unread
  messages; ``send()`` waits while the sink is paused for writing.
- Timers, per connection: a ping every ``ws_ping_interval`` seconds, failing
  the connection with 1011 when no pong comes within ``ws_ping_timeout``; and
  a close timeout that drops the connection when the peer does not finish
  the closing handshake.
- Closing: the server closes the sink once close frames went both ways
  (section 7.1.1), at once after a protocol failure (section 7.1.7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from hurtle.asgi.websocket import CLOSE_ABNORMAL, WebSocketCycle, websocket_scope
from hurtle.io.state import over_concurrency_limit
from hurtle.logging import log_access
from hurtle.protocol.h1 import error_response
from hurtle.protocol.ws import (
    OPEN,
    CloseReceived,
    Failure,
    HandshakeError,
    Message,
    Pong,
    UpgradeRequest,
    WSConnection,
    accept_response,
    is_websocket_upgrade,
    validate_request,
)

if TYPE_CHECKING:
    from hurtle.config import Config
    from hurtle.io.h1 import H1Protocol
    from hurtle.io.state import ServerState
    from hurtle.protocol.events import Request
    from hurtle.protocol.h1 import H1Connection

logger = logging.getLogger("hurtle.error")

# How long the peer has to answer our close frame (or to read what is still
# buffered for it) before the connection is dropped. The RFC sets no figure;
# 10 s is what the `websockets` library uses.
CLOSE_TIMEOUT = 10.0
# Bytes a client may send before the handshake completes (it should send
# none) before reading pauses until the app accepts.
_PRE_ACCEPT_HIGH_WATER = 65536

# Payload size from which a frame goes out as (header, payload) with writelines.
_WRITELINES_FROM = 65536

_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011


class ByteSink(Protocol):
    """Where a session's frames go; an asyncio transport is one as it is.

    ``close`` ends the byte stream once what was written has left (TCP FIN,
    or END_STREAM); ``abort`` drops it now (TCP RST, or RST_STREAM). The sink
    tells the session ``pause_writing``/``resume_writing`` and
    ``connection_lost`` as an asyncio transport tells its protocol.
    """

    def write(self, data: bytes) -> None: ...

    def writelines(self, list_of_data: Iterable[bytes]) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def websocket_upgrade(h1: H1Protocol, request: Request) -> bool:
    """Take over a connection whose request asked for an upgrade; False to serve it as HTTP.

    True means the connection is no longer the HTTP protocol's: either a
    `WSProtocol` owns it, or a handshake error was answered and it closes.
    False also when ``--limit-concurrency`` is reached: the HTTP path then
    answers 503 by its own rule.
    """
    config = h1.config
    upgrade = request.upgrade
    if config.ws == "none" or upgrade is None or not is_websocket_upgrade(upgrade):
        return False
    limit = config.limit_concurrency
    if limit is not None and over_concurrency_limit(limit, h1.state):
        return False
    transport = h1.transport
    assert transport is not None
    try:
        handshake = validate_request(
            request.method,
            request.http_version,
            request.headers,
            request.has_body,
            config.ws_per_message_deflate,
        )
    except HandshakeError as exc:
        h1.handed_over()
        client = h1.client
        logger.info(
            "Invalid WebSocket handshake from %s: %s (answered %d)",
            f"{client[0]}:{client[1]}" if client else "-",
            exc.reason,
            exc.status,
        )
        extra = b"".join(name + b": " + value + b"\r\n" for name, value in exc.headers)
        transport.write(error_response(exc.status, exc.reason, extra + h1.state.header_block))
        transport.close()
        return True
    # Before the session starts: its app may run eagerly (3.12+) inside start().
    h1.handed_over()
    h1.state.total_requests += 1
    protocol = WSProtocol(config, h1.app, h1.state, h1.conn, transport, h1.loop)
    scope = websocket_scope(
        request.http_version,
        request.path,
        request.query,
        request.headers,
        "wss" if h1.scheme == "https" else "ws",
        h1.client,
        h1.server,
        config.root_path,
        h1.state.app_state,
        handshake.subprotocols,
    )
    protocol.start(scope, handshake, h1.conn.parser.trailing_data)
    return True


class WebSocketSession:
    """One WebSocket connection on a `ByteSink`, from the handshake to the closed sink.

    Subclasses write the handshake's HTTP side: `_write_accept`,
    `write_response_head` and `write_response_body`.
    """

    __slots__ = (
        "_close_timer",
        "_handshake",
        "_pending",
        "_pending_size",
        "_ping_count",
        "_ping_payload",
        "_ping_timer",
        "_pong_timer",
        "_read_paused",
        "_shutting_down",
        "_write_waiter",
        "app",
        "config",
        "conn",
        "cycle",
        "loop",
        "sink",
        "state",
        "task",
        "write_paused",
    )

    def __init__(
        self,
        config: Config,
        app: Any,
        state: ServerState,
        sink: ByteSink,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config = config
        self.app = app
        self.state = state
        self.sink = sink
        self.loop = loop
        self.conn: WSConnection | None = None
        self.cycle: WebSocketCycle | None = None
        self.task: asyncio.Task[None] | None = None
        self._handshake: UpgradeRequest | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._read_paused = False
        # A plain attribute, not a property: the cycle reads it after every send.
        self.write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._shutting_down = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_payload = b""
        self._ping_count = 0

    def _start_app(
        self, scope: dict[str, Any], handshake: UpgradeRequest, trailing: bytes
    ) -> asyncio.Task[None]:
        """Start the app with ``websocket.connect`` waiting; bytes so far wait for accept."""
        self._handshake = handshake
        if trailing:
            self._pending.append(trailing)
            self._pending_size = len(trailing)
        self.cycle = cycle = WebSocketCycle(scope, self, self.config.ws_max_queue, self.loop)
        task = self.loop.create_task(cycle.run(self.app))
        self.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)
        return task

    # -- from the sink, named as asyncio.Protocol names them ------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnect(CLOSE_ABNORMAL)
        waiter = self._write_waiter
        self._write_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            # Before accept: hold the bytes (a client should send none yet).
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > _PRE_ACCEPT_HIGH_WATER:
                self._pause_reading()
            return
        events = conn.receive_data(data)
        if events:
            self._on_events(conn, events)

    def _on_events(self, conn: WSConnection, events: list[Any]) -> None:
        cycle = self.cycle
        assert cycle is not None
        for event in events:
            kind = type(event)
            if kind is Message:
                if cycle.feed(event.data):
                    self._pause_reading()
            elif kind is Pong:
                if self._pong_timer is not None and event.payload == self._ping_payload:
                    self._pong_timer.cancel()
                    self._pong_timer = None
            elif kind is CloseReceived:
                out = conn.data_to_send()
                if out:
                    self.sink.write(out)
                cycle.disconnect(event.code, event.reason)
                # Section 7.1.1: both close frames are out; the server ends TCP.
                self._end(True)
                return
            elif kind is Failure:
                logger.info(
                    "WebSocket protocol error: %s (closing with %d)", event.reason, event.code
                )
                out = conn.data_to_send()
                if out:
                    self.sink.write(out)
                cycle.disconnect(event.code, event.reason)
                self._end(True)
                return
            # Ping: the core has queued the pong; it goes out below.
        out = conn.data_to_send()
        if out:
            self.sink.write(out)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- WebSocketWriter, for the cycle ---------------------------------------------

    def _write_accept(
        self, handshake: UpgradeRequest, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        raise NotImplementedError

    def write_response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
    ) -> None:
        raise NotImplementedError

    def write_response_body(self, body: bytes, end: bool) -> None:
        raise NotImplementedError

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        handshake = self._handshake
        assert handshake is not None
        self._write_accept(handshake, subprotocol, headers)
        self.conn = conn = WSConnection(self.config.ws_max_size, handshake.deflate)
        interval = self.config.ws_ping_interval
        if interval:
            self._ping_timer = self.loop.call_later(interval, self._send_ping)
        if self._shutting_down:
            self._server_close(_GOING_AWAY, "Server shutting down")
            return
        if self._read_paused:
            self.resume_reading()
        pending = self._pending
        if pending:
            self._pending = []
            self._pending_size = 0
            events = conn.receive_data(b"".join(pending))
            if events:
                self._on_events(conn, events)

    def send_message(self, data: str | bytes) -> None:
        conn = self.conn
        assert conn is not None
        header, payload = conn.frame_message(data)
        if len(payload) < _WRITELINES_FROM:
            self.sink.write(header + payload)
        else:
            # One writev on uvloop (and on asyncio from 3.12) instead of copying
            # a large payload behind its few header bytes.
            self.sink.writelines((header, payload))

    def close(self, code: int, reason: str) -> None:
        """The app closes: send our close frame and wait (bounded) for the peer's."""
        conn = self.conn
        if conn is None or conn.state != OPEN:
            return
        self.sink.write(conn.send_close(code, reason))
        self._cancel_timers()
        self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_timed_out)
        # The peer's close frame may sit behind messages the app will never
        # read now: read on, or the queue limit would stall the handshake.
        if self._read_paused:
            self.resume_reading()

    async def wait_writable(self) -> None:
        while self.write_paused and not self.sink.is_closing():
            waiter = self._write_waiter
            if waiter is None:
                waiter = self._write_waiter = self.loop.create_future()
            await waiter

    def resume_reading(self) -> None:
        if self._read_paused and not self.sink.is_closing():
            self._read_paused = False
            self.sink.resume_reading()

    def abort(self) -> None:
        self._cancel_timers()
        self.sink.abort()

    # -- timers, closing, shutdown ----------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.sink.is_closing():
            self._read_paused = True
            self.sink.pause_reading()

    def _send_ping(self) -> None:
        self._ping_timer = None
        conn = self.conn
        if conn is None or conn.state != OPEN or self.sink.is_closing():
            return
        # A counter tells an answer to this ping from a stale or unsolicited pong.
        self._ping_count += 1
        self._ping_payload = payload = self._ping_count.to_bytes(4, "big")
        self.sink.write(conn.send_ping(payload))
        timeout = self.config.ws_ping_timeout
        if timeout and self._pong_timer is None:
            self._pong_timer = self.loop.call_later(timeout, self._ping_timed_out)
        interval = self.config.ws_ping_interval
        if interval:
            self._ping_timer = self.loop.call_later(interval, self._send_ping)

    def _ping_timed_out(self) -> None:
        self._pong_timer = None
        logger.info("WebSocket ping timed out; closing with %d", _INTERNAL_ERROR)
        # The peer is presumed gone: fail the connection (section 7.1.7)
        # rather than wait for a close frame that will not come.
        self._server_close(_INTERNAL_ERROR, "keepalive ping timeout", wait=False)

    def _server_close(self, code: int, reason: str, wait: bool = True) -> None:
        """The server ends the connection on its own (ping timeout, shutdown)."""
        conn = self.conn
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnect(code, reason)
        if conn is not None and conn.state == OPEN:
            self.sink.write(conn.send_close(code, reason))
            if wait:
                self._cancel_timers()
                self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_timed_out)
                if self._read_paused:
                    self.resume_reading()
                return
        self._end(True)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self.sink.abort()

    def _cancel_timers(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None

    def _end(self, websocket: bool) -> None:
        """Close the sink once the buffered bytes are out, or drop it when they never leave."""
        self._cancel_timers()
        self.sink.close()
        if self._close_timer is None and websocket:
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._close_timed_out)

    def shutdown(self) -> None:
        """Graceful stop: close an open WebSocket with 1001 (going away)."""
        self._shutting_down = True
        conn = self.conn
        if conn is not None and conn.state == OPEN:
            self._server_close(_GOING_AWAY, "Server shutting down")
        # Before accept the app still decides; accept() then closes with 1001.

    def force_close(self) -> None:
        """The graceful timeout ran out: the app sees 1006, its task a cancel."""
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnect(CLOSE_ABNORMAL)
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        self.abort()

    def _log_access(self, status: int) -> None:
        cycle = self.cycle
        if not self.config.access_log or cycle is None:
            return
        log_access(cycle.scope["client"], cycle.scope, status, "WebSocket")


class WSProtocol(WebSocketSession, asyncio.Protocol):
    """A WebSocket after the HTTP/1.1 upgrade: the transport is the session's sink."""

    __slots__ = ("h1", "transport")

    def __init__(
        self,
        config: Config,
        app: Any,
        state: ServerState,
        h1: H1Connection,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(config, app, state, transport, loop)
        self.h1 = h1
        self.transport = transport

    def start(self, scope: dict[str, Any], handshake: UpgradeRequest, trailing: bytes) -> None:
        """Take the transport over and start the app with ``websocket.connect`` waiting."""
        self.transport.set_protocol(self)
        self.state.connections.add(self)
        self._start_app(scope, handshake, trailing)

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Never called: the transport is handed over by `start`, already connected.
        self.transport = self.sink = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        # A half-close ends the WebSocket too; the transport closes and
        # connection_lost reports 1006 unless a close frame came first.
        return None

    # -- the handshake's HTTP/1.1 side ------------------------------------------------

    def _write_accept(
        self, handshake: UpgradeRequest, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.transport.write(
            accept_response(handshake, subprotocol, headers, self.state.header_block)
        )
        self._log_access(101)

    def write_response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
    ) -> None:
        # The denial response (or 403, or 500) is plain HTTP/1.1 on the same
        # connection: the HTTP core frames it, then the connection closes.
        h1 = self.h1
        # The connection closes after a denial: as for a server shutting
        # down, the head says "connection: close" (keep_alive is the head's
        # own decision, so setting it here would be overwritten).
        h1.closing = True
        self.transport.write(
            h1.response_head(status, headers, self.state.header_block, content_length, body, end)
        )
        self._log_access(status)
        if end:
            self._end(False)

    def write_response_body(self, body: bytes, end: bool) -> None:
        out = self.h1.response_body(body, end)
        if out:
            self.transport.write(out)
        if end:
            self._end(False)
