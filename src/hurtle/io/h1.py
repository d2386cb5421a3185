"""The asyncio side of an HTTP/1.x connection.

`H1Protocol` feeds socket bytes to the sans-IO `H1Connection`, starts one
`HTTPCycle` task per request, and is itself the cycle's `ResponseWriter`: on
HTTP/1.x only one response is on the wire at a time, so one object per
connection serves every request on it.

Deadlines: the connection is its own (`hurtle.io.timers.Timed`), filed in
the server's shared `Timers`. It is set at a deadline (keep-alive idle, or
the head-read limit from a head's first byte) and moved later lazily, so a
request costs an attribute store or two, not a timer.

Flow control: reading pauses when the cycle holds more than its high-water
mark of unread body, or when pipelined bytes pile up behind the current
request; a paused transport makes ``send()`` wait in `wait_writable`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

from hurtle.asgi.http import ClientDisconnected, HTTPCycle, http_scope, scope_base
from hurtle.io.state import over_concurrency_limit
from hurtle.io.timers import Timed
from hurtle.io.tls import tls_extension
from hurtle.logging import escape_control, log_access
from hurtle.protocol.errors import ProtocolError
from hurtle.protocol.events import NEED_DATA, PAUSED, Data, EndOfMessage, Request
from hurtle.protocol.h1 import CONTINUE_RESPONSE, H1Connection, RequestParser, error_response

if TYPE_CHECKING:
    from hurtle.config import Config
    from hurtle.io.state import ServerState

logger = logging.getLogger("hurtle.error")

_KEEP_ALIVE = 0
_HEAD_TIMEOUT = 1
# Pipelined bytes buffered behind an in-flight request before reading pauses.
_PIPELINE_HIGH_WATER = 65536
# Streamed response parts held for one loop iteration are written at once past
# this size, so that a fast producer meets the transport's flow control.
_COALESCE_LIMIT = 65536
# A complete body at least this large is written beside its head (writelines)
# rather than joined to it: the copy would cost more than a second buffer.
_WRITE_APART = 65536

# Python 3.12+: run the app up to its first real suspension right away, so a
# handler that answers without waiting costs no extra loop iteration.
_EAGER = sys.version_info >= (3, 12)


def start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None], plain: bool = False
) -> asyncio.Task[None]:
    """Start an app task, eagerly where the interpreter allows it (3.12+).

    ``plain``: the loop has no task factory (a connection asks once), so the
    Task is made directly, without create_task()'s wrapper, a Python method on
    asyncio's loop (-2.0k instructions per request there, -0.5k on uvloop).
    ``loop=`` is passed although the Task could find the running loop
    itself, and parsing the keyword costs the C constructor 0.9k
    instructions: on 3.11 finding it means a getpid() system call per
    request (the running loop is checked against the process), about 160 ns
    here, more than those instructions. The eager Task needs it anyway
    (3.13.0's eager start reads the argument, not the running loop), and is
    made here rather than by asyncio.eager_task_factory, a Python closure
    passing four keywords: -1.5k per request on 3.13.
    """
    if not plain:
        # The loop's own factory decides, eager or not: hurtle does not
        # override what an app or its instrumentation installed.
        return loop.create_task(coro)
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    return asyncio.Task(coro, loop=loop)


def _address(addr: Any) -> tuple[str, int] | None:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]), int(addr[1]))
    return None


# What a connection's transport is, as far as the scope goes. Decided once per
# transport class (a class is either TLS or not, and either wraps a socket or
# not) instead of asking every transport: uvloop's get_extra_info("socket")
# builds a socket object per connection. TCP_NODELAY is not set here: asyncio's
# and uvloop's TCP transports both set it themselves.
_PLAIN = 0
_PLAIN_SOCKET = 1
_TLS = 2
_TRANSPORT_KINDS: dict[type, int] = {}


def _transport_kind(transport: Any) -> int:
    if transport.get_extra_info("sslcontext") is not None:
        kind = _TLS
    elif transport.get_extra_info("socket") is not None:
        # os.sendfile moves bytes kernel-side; TLS needs them in user space.
        kind = _PLAIN_SOCKET
    else:
        kind = _PLAIN
    _TRANSPORT_KINDS[type(transport)] = kind
    return kind


# The extensions every HTTP/1.1 scope on a connection advertises (the request
# adds ``http.response.trailers`` to its own copy). Shared by connections:
# `_on_request` copies the dict, and the ASGI spec gives the values no content.
_EXTENSIONS: dict[str, Any] = {"http.response.pathsend": {}, "http.response.early_hint": {}}
_EXTENSIONS_SOCKET: dict[str, Any] = {**_EXTENSIONS, "http.response.zerocopysend": {}}


async def _service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    body = b"Service Unavailable"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class H1Protocol(asyncio.Protocol, Timed):
    """One HTTP/1.x connection; constructed by the server as ``H1Protocol(config, app, state)``."""

    __slots__ = (
        "_access_log",
        "_app_trailers",
        "_closing",
        "_deadline_kind",
        "_extensions_base",
        "_flush_scheduled",
        "_pending",
        "_pending_size",
        "_plain_tasks",
        "_read_paused",
        "_scope_base",
        "_scope_base_wanted",
        "_write_paused",
        "_write_waiter",
        "app",
        "client",
        "config",
        "conn",
        "cycle",
        "loop",
        "parser",
        "scheme",
        "server",
        "state",
        "task",
        "transport",
    )

    def __init__(self, config: Config, app: Any, state: ServerState) -> None:
        self.config = config
        self.app = app
        self.state = state
        self.loop = state.loop or asyncio.get_event_loop()
        # A task factory set on the loop (instrumentation, a custom Task) is
        # honoured; looked up once per connection, not per request.
        self._plain_tasks = self.loop.get_task_factory() is None
        self.conn = H1Connection(
            # Positional: a keyword call costs 2.2k instructions more, per connection.
            RequestParser(
                config.limit_request_line,
                config.limit_request_fields,
                config.limit_request_head,
                config.limit_request_body,
                config.limit_chunk_extensions,
            )
        )
        self.parser = self.conn.parser
        self.transport: asyncio.Transport | None = None
        self.cycle: HTTPCycle | None = None
        self.task: asyncio.Task[None] | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        # The connection is its own deadline (`Timed`): no Deadline object
        # and no bound method per connection.
        self._bucket = None
        self.when = None
        self._deadline_kind = _KEEP_ALIVE
        self._read_paused = False
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        # Parts of a streamed response written by the app within one loop
        # iteration, sent with one transport.write at its end (see _queue).
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_scheduled = False
        self._closing = False
        self._app_trailers = False
        self._access_log = config.access_log
        self._extensions_base = _EXTENSIONS
        # The scope fields shared by every request here, built at the first.
        self._scope_base: dict[str, Any] | None = None
        self._scope_base_wanted = False

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if TYPE_CHECKING:  # uvloop's transports do not subclass asyncio.Transport; they quack alike
            transport = cast("asyncio.Transport", transport)
        self.transport = transport
        self.state.connections.add(self)
        # What asyncio and uvloop give for TCP is already a (str, int) pair
        # for IPv4; _address is for the rest (IPv6's 4-tuple, None, Unix '').
        peer = transport.get_extra_info("peername")
        self.client = peer if type(peer) is tuple and len(peer) == 2 else _address(peer)
        sockname = transport.get_extra_info("sockname")
        if type(sockname) is tuple and len(sockname) == 2:
            self.server = sockname
        elif isinstance(sockname, str):  # Unix socket
            self.server = (sockname, None)
        else:
            self.server = _address(sockname)
        kind = _TRANSPORT_KINDS.get(type(transport))
        if kind is None:
            kind = _transport_kind(transport)
        if kind == _PLAIN_SOCKET:
            self._extensions_base = _EXTENSIONS_SOCKET
        elif kind == _TLS:
            self.scheme = "https"
            ext = dict(_EXTENSIONS)
            ext["tls"] = tls_extension(transport)
            self._extensions_base = ext
        # The keep-alive limit also bounds a connection that never sends a
        # byte (``_deadline_kind`` starts as _KEEP_ALIVE).
        self.arm(self.state.timers, self.config.timeout_keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self._closing = True
        self.cancel()
        cycle = self.cycle
        if cycle is not None:
            if not cycle.disconnected:
                cycle.disconnect()
            task = self.task
            if task is None or task.done():
                # The app has returned: nothing will use the cycle again, and
                # it holds this protocol as its writer (a cycle, as above).
                self.cycle = None
                self.task = None
            else:
                self._untrack_if_cancelled_unstarted()
        self._pending.clear()
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._write_waiter = None

    def eof_received(self) -> bool | None:
        # A client that half-closes has gone as far as HTTP/1.1 is concerned;
        # returning None lets the transport close and connection_lost follow.
        # Answering a half-closed client's last request instead was tried and
        # undone: a FIN looks the same when the client closed altogether, and
        # an app waiting in receive() (a long poll, a stream) must then hear
        # http.disconnect at once, not after its next write fails.
        return None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # rejected, aborted or timed out: bytes still in flight are dropped
        self.parser.receive_data(data)
        self._process()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._write_waiter
        if waiter is not None:
            self._write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- events from the core -----------------------------------------------------

    def _process(self) -> None:
        parser = self.parser
        while True:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                # 505 is what the HTTP/1.1 parser makes of the HTTP/2 preface
                # ("PRI * HTTP/2.0"): the error path, so requests pay nothing.
                if exc.status == 505 and self._take_over_h2():
                    return
                self._reject(exc.status, exc.reason)
                return
            # isinstance() narrows for mypy and is the check itself: no
            # assert (a global lookup and a call per event outside -O).
            if isinstance(event, Request):
                if self._on_request(event):
                    # No body, or all of it taken with the head: its
                    # EndOfMessage carries nothing the cycle needs (it was
                    # made complete); the parser moves on at start_next_cycle.
                    if parser.buffered > _PIPELINE_HIGH_WATER:
                        self._pause_reading()
                    return
            elif isinstance(event, Data):
                cycle = self.cycle
                if cycle is not None and cycle.feed_body(event.data, event.last):
                    self._pause_reading()
                if event.last:
                    # A Content-Length body is complete: its EndOfMessage
                    # carries nothing more and the parser moves on at
                    # start_next_cycle, as after a body-less request (two
                    # parser events and a body_complete() fewer).
                    if parser.buffered > _PIPELINE_HIGH_WATER:
                        self._pause_reading()
                    return
            elif isinstance(event, EndOfMessage):
                if self.cycle is not None:
                    self.cycle.body_complete()
            else:
                if event is NEED_DATA:
                    if (
                        self.cycle is None
                        and parser.in_partial_head
                        and (self._deadline_kind != _HEAD_TIMEOUT or self.when is None)
                    ):
                        self._set_deadline(self.config.timeout_request_header, _HEAD_TIMEOUT)
                elif event is PAUSED and parser.buffered > _PIPELINE_HIGH_WATER:
                    self._pause_reading()
                return

    def _on_request(self, request: Request) -> bool:
        """Start the app on ``request``; True when no body events are to follow."""
        if request.upgrade is not None and self._upgrade(request):
            return True
        self.when = None
        state = self.state
        app = self.app
        limit = self.config.limit_concurrency
        if limit is not None and over_concurrency_limit(limit, state):
            app = _service_unavailable
        extensions = self._extensions_base.copy()
        if request.te_trailers and request.http_version == "1.1":
            extensions["http.response.trailers"] = {}
        base = self._scope_base
        if base is None:
            base = scope_base("1.1", self.scheme, self.client, self.server, self.config.root_path)
            if self._scope_base_wanted:
                self._scope_base = base
                base = base.copy()
            else:
                # A connection's first request takes the fresh dict as its
                # scope; a base to copy is kept from the second request on
                # (one request per connection never pays for the copy).
                self._scope_base_wanted = True
        else:
            base = base.copy()
        scope = http_scope(
            base,
            request.method,
            request.path,
            request.query,
            request.headers,
            state.app_state,
            extensions,
        )
        if request.http_version != "1.1":
            scope["http_version"] = request.http_version
        if request.has_body:
            # Taken before the app starts, so an app run eagerly (3.12+) finds
            # it at its first receive() instead of waiting for a wake-up.
            body = self.parser.whole_body()
            complete = body is not None
        else:
            body = None
            complete = True
        cycle = HTTPCycle(
            scope,
            self,
            complete,
            request.expect_continue and request.http_version == "1.1",
            body,
        )
        self.cycle = cycle
        state.total_requests += 1
        coro = cycle.run(app)
        task = start_task(self.loop, coro, self._plain_tasks)
        if not task.done():
            # An eagerly started app may already have answered, and the next
            # pipelined request may own the connection by now.
            if self.cycle is cycle:
                self.task = task
            # The cycle takes its task out of the set when the app returns: no
            # done callback, one loop callback fewer per request (-2.8k
            # instructions per request, bench/instructions.py).
            state.tasks.add(task)
            cycle.task = task
            cycle.task_set = state.tasks
        return complete

    def _upgrade(self, request: Request) -> bool:
        """Hand the connection to the WebSocket layer; False to serve the request as HTTP."""
        # Imported here: a server that never sees an upgrade never loads it.
        from hurtle.io.ws import websocket_upgrade  # noqa: PLC0415

        if b"h2c" in (request.upgrade or b"").lower() and self._h2_allowed():
            from hurtle.io.h2 import take_over_h2c  # noqa: PLC0415

            # Either takes the transport, after calling handed_over(), or
            # leaves the request to be served as HTTP/1.1.
            return take_over_h2c(self, request)
        return websocket_upgrade(self, request)

    def _h2_allowed(self) -> bool:
        if self.config.http != "auto":
            return False
        from hurtle.io.tls import h2_available  # noqa: PLC0415

        return h2_available()

    def _take_over_h2(self) -> bool:
        """HTTP/2 with prior knowledge: hand the connection to `hurtle.io.h2`."""
        if self.cycle is not None or not self._h2_allowed():
            return False
        from hurtle.io.h2 import take_over_preface  # noqa: PLC0415

        return take_over_preface(self)

    def handed_over(self) -> None:
        """The transport is another protocol's from now on: no timer, no
        pausing, not one of the server's connections; what is left of
        `_process` sees ``_closing`` and does nothing."""
        self._closing = True
        self.cancel()
        self.state.connections.discard(self)

    # -- ResponseWriter, for the current cycle -----------------------------------

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    def write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
        trailers: bool,
    ) -> None:
        # Set before any transport call: the transport is set from
        # connection_made on, and write_head only runs for a request.
        transport: asyncio.Transport = self.transport  # type: ignore[assignment]
        if end and not trailers:
            # The whole response (the common case): one write, then done. No
            # need to record the trailers flag: only a streamed response's
            # write_body and write_trailers read it.
            conn = self.conn
            if len(body) < _WRITE_APART:
                transport.write(
                    conn.response_head(
                        status, headers, self.state.header_block, content_length, body, True
                    )
                )
            else:
                # A large complete body goes out beside its head, not copied
                # into one bytes object with it: uvloop writes both with one
                # writev.
                head = conn.response_head(
                    status,
                    headers,
                    self.state.header_block,
                    len(body) if content_length is None else content_length,
                    b"",
                    False,
                )
                if conn.sends_body:
                    transport.writelines((head, body))
                else:  # HEAD, 204, 304: the head is all there is
                    transport.write(head)
            self._response_done()
            return
        self._app_trailers = trailers
        data = self.conn.response_head(
            status,
            headers,
            self.state.header_block,
            content_length,
            body,
            end,
            trailers,
        )
        if end:
            # Trailers follow: write_trailers ends the response.
            transport.write(data)
        else:
            self._queue(data)

    def write_body(self, data: bytes, end: bool) -> None:
        out = self.conn.response_body(data, end)
        if not end:
            if out:
                self._queue(out)
            return
        if self._pending:
            self._pending.append(out)
            out = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
        if out:
            assert self.transport is not None
            self.transport.write(out)
        if not self._app_trailers:
            self._response_done()

    def write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self._flush()
        out = self.conn.response_trailers(trailers)
        if out:
            assert self.transport is not None
            self.transport.write(out)
        self._response_done()

    def _queue(self, data: bytes) -> None:
        """Hold a part of a streamed response until the end of this loop iteration.

        An app that streams sends many small body events without yielding; a
        transport.write each is a syscall each (PERF-NOTES: 63 % of uvicorn's
        time on 32 x 1 KiB). Parts written within one iteration leave in one
        write, scheduled with call_soon, and at once past 64 KiB so that the
        transport's own high-water mark, and so ``send()``'s backpressure,
        still engage. The last part of a response joins them synchronously.
        """
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _COALESCE_LIMIT:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            data = b"".join(pending)
            pending.clear()
            self._pending_size = 0
            if self.transport is not None and not self._closing:
                self.transport.write(data)

    def write_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        out = self.conn.informational(status, headers)
        if out and self.transport is not None:
            self.transport.write(out)

    def write_continue(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(CONTINUE_RESPONSE)

    async def wait_writable(self) -> None:
        while self._write_paused and not self._closing:
            waiter = self._write_waiter
            if waiter is None:
                waiter = self._write_waiter = self.loop.create_future()
            await waiter

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        assert self.transport is not None
        conn = self.conn
        if not conn.sends_body:  # HEAD, 204, 304
            return
        self._flush()  # what the app streamed before the file goes first
        if conn.chunked:
            self.transport.write(b"%x\r\n" % count)
        try:
            await self.loop.sendfile(self.transport, file, offset, count)
        except (ConnectionError, RuntimeError) as exc:
            if self._closing:
                raise ClientDisconnected("Client disconnected") from exc
            raise
        if conn.chunked:
            self.transport.write(b"\r\n")

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        # The response cannot be completed as framed: close so that no client
        # takes a truncated body for a whole one (what was sent still goes).
        self._flush()
        self._closing = True
        if self.transport is not None:
            self.transport.close()
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnect()

    # -- the end of a response ------------------------------------------------------

    def _response_done(self) -> None:
        cycle = self.cycle
        if self._access_log and cycle is not None:
            log_access(self.client, cycle.scope, cycle.status)
        transport: asyncio.Transport = self.transport  # type: ignore[assignment]
        conn = self.conn
        request_done = cycle is None or cycle.request_complete
        if not conn.keep_alive or conn.closing or self._closing or not request_done:
            # An unread body (the app answered early) would be parsed as the
            # next request: close instead of guessing where it ends.
            self._closing = True
            if cycle is not None:
                cycle.disconnect()
            transport.close()
            return
        self.cycle = None
        self.task = None
        # conn.keep_alive needs no reset: every response's head decides it.
        buffered = self.parser.start_next_cycle()
        if self.state.should_exit:
            self._closing = True
            transport.close()
            return
        self._set_deadline(self.config.timeout_keep_alive, _KEEP_ALIVE)
        if buffered:
            # A pipelined request is waiting; handle it on the next loop turn,
            # not inside the app's send() that ended this one.
            self.loop.call_soon(self._process_pipelined)
        elif self._read_paused:
            self.resume_reading()

    def _process_pipelined(self) -> None:
        if self._closing or self.cycle is not None:
            return
        self._process()
        if self._read_paused and self.cycle is None:
            self.resume_reading()

    # -- errors, timers, shutdown ------------------------------------------------------

    def _reject(self, status: int, reason: str) -> None:
        """Answer a protocol error with ``status`` (when no response is under way) and close."""
        self._flush()
        self._closing = True
        logger.info(
            "Invalid HTTP request from %s: %s (answered %d)",
            f"{self.client[0]}:{self.client[1]}" if self.client else "-",
            escape_control(reason),
            status,
        )
        cycle = self.cycle
        transport = self.transport
        if transport is None:
            return
        if cycle is None or not cycle.response_started:
            transport.write(error_response(status, reason, self.state.header_block))
        if cycle is not None:
            cycle.disconnect()
        transport.close()

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self._closing:
            self._read_paused = True
            self.transport.pause_reading()

    def _set_deadline(self, seconds: float, kind: int) -> None:
        self._deadline_kind = kind
        self.arm(self.state.timers, seconds)

    def _on_deadline(self) -> None:
        if self._closing:
            return
        if self._deadline_kind == _HEAD_TIMEOUT and self.parser.in_partial_head:
            self._reject(408, "Timed out reading the request head")
        elif self.cycle is None and self.transport is not None:
            self._closing = True
            self.transport.close()

    def _untrack_if_cancelled_unstarted(self) -> None:
        # A task cancelled before its first step never runs the cycle's
        # `run`, so it cannot take itself out of ``state.tasks``. Only the
        # connection's current task can be unstarted (it started by the time
        # its response ended), and only a closing connection or a shutdown
        # cancels it: here a done callback covers that case, off the hot path.
        task = self.task
        if task is not None and not task.done():
            task.add_done_callback(self.state.tasks.discard)

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the response in flight."""
        self.conn.closing = True
        if self.cycle is None and self.transport is not None:
            self._closing = True
            self.transport.close()

    def force_close(self) -> None:
        """The graceful timeout ran out: tell the app the client is gone, cancel, close."""
        self._flush()
        self._closing = True
        cycle = self.cycle
        if cycle is not None and not cycle.disconnected:
            cycle.disconnect()
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        self._untrack_if_cancelled_unstarted()
        if self.transport is not None:
            self.transport.close()
