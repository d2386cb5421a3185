"""The asyncio side of an HTTP/2 connection.

`H2Protocol` feeds socket bytes to the sans-IO `H2Core` and starts one
`HTTPCycle` (the bridge HTTP/1.1 uses too) per stream, with an `H2Stream` as
its `ResponseWriter`. How a connection becomes HTTP/2:

- over TLS, ALPN chose ``h2``: `ALPNProtocol` hands the transport over;
- in cleartext, ``--http h2``: the server's factory makes an `H2Protocol`;
- in cleartext, ``--http auto``: `H1Protocol` meets the connection preface
  (prior knowledge, `take_over_preface`) or ``Upgrade: h2c``
  (`take_over_h2c`) and hands over the transport with its buffered bytes.

Flow control, both ways:

- inbound: the windows are large (`STREAM_WINDOW`, `CONNECTION_WINDOW`) and
  body bytes are acknowledged as the bridge takes them, except past its
  high-water mark, where acknowledgements wait for the app's ``receive()``;
- outbound: what the client's windows do not allow waits in the core, and the
  app's ``send()`` waits (`wait_writable`) until it has left.

Writes are coalesced: a stream's writer marks the connection dirty and one
``transport.write`` per loop iteration sends what every stream produced.

Safety: the core refuses excess streams and counts resets and control frames;
reading pauses while the transport is paused for writing, so a client that
does not read cannot make the server queue PING and SETTINGS answers without
end; an idle connection (no stream) is closed after ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from hurtle.asgi.http import (
    ClientDisconnected,
    HTTPCycle,
    http_scope,
    scope_base,
    validate_headers,
)
from hurtle.asgi.websocket import websocket_scope
from hurtle.io.h1 import H1Protocol, _address, _service_unavailable, start_task
from hurtle.io.state import over_concurrency_limit
from hurtle.io.timers import Deadline
from hurtle.io.tls import tls_extension
from hurtle.io.ws import WebSocketSession
from hurtle.logging import escape_control, log_access
from hurtle.protocol.h1.connection import replaced_defaults
from hurtle.protocol.h2 import (
    CANCEL,
    INTERNAL_ERROR,
    NO_ERROR,
    PREFACE,
    ConnectionClosed,
    H2Core,
    H2Error,
    StreamData,
    StreamEnded,
    StreamRequest,
    StreamReset,
    StreamWritable,
)
from hurtle.protocol.h2.connection import encode_fields, encode_status
from hurtle.protocol.ws import (
    HandshakeError,
    UpgradeRequest,
    accept_headers,
    validate_extended_connect,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hurtle.config import Config
    from hurtle.io.state import ServerState
    from hurtle.protocol.events import Request

logger = logging.getLogger("hurtle.error")
access_logger = logging.getLogger("hurtle.access")

# Precomputed ``:status`` values: one dict hit per response.
_STATUS = {status: str(status).encode() for status in range(100, 600)}
_STATUS_LINE_101 = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n"
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.
_CONNECTION_HEADERS = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"]
)
# content-length (static table entry 28), literal without indexing (RFC 7541 6.2.2).
_CONTENT_LENGTH_PREFIX = encode_fields([(b"content-length", b"")])[:-1]
# Fields a promised request cannot carry: connection-specific ones (RFC 9113
# 8.2.2), host (its :authority is this request's) and framing of a body it
# does not have (8.4: a promised request is safe and has no content).
_PUSH_DROPPED = _CONNECTION_HEADERS | {b"host", b"content-length", b"te"}
# Characters a :path keeps as they are; the rest are percent-encoded (RFC 3986 3.3, 3.4).
_PATH_SAFE = "/?=&;:@!$'()*+,%~-._"
# Bytes read from a file per DATA burst for http.response.pathsend.
_FILE_CHUNK = 1 << 16


def _default_headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """The server's ``name: value\\r\\n`` block (date, server, --header) as pairs."""
    pairs = []
    for line in block.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            pairs.append((name.lower(), value.strip()))
    return pairs


class H2Stream:
    """One stream: the `ResponseWriter` of its `HTTPCycle`."""

    __slots__ = (
        "conn",
        "cycle",
        "ended",
        "head_only",
        "received",
        "stream_id",
        "task",
        "trailers",
        "unacked",
        "waiter",
    )

    def __init__(self, conn: H2Protocol, stream_id: int, head_only: bool) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.head_only = head_only  # HEAD: the head goes out, body bytes do not
        self.cycle: HTTPCycle | None = None
        self.task: asyncio.Task[None] | None = None
        self.ended = False
        self.trailers = False
        # Body bytes received but not acknowledged: the bridge holds more than
        # its high-water mark, so the client waits for the app to read.
        self.unacked = 0
        self.received = 0  # request body bytes, for limit_request_body
        self.waiter: asyncio.Future[None] | None = None

    # -- ResponseWriter --------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        conn = self.conn
        return conn.write_paused or conn.core.has_pending(self.stream_id)

    def write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
        trailers: bool,
    ) -> None:
        conn = self.conn
        if conn.closing_now or self.ended:
            return
        no_body = self.head_only or status == 204 or status == 304
        if content_length is None and end and not trailers and not no_body:
            content_length = len(body)
        replaced = replaced_defaults(headers)
        if end and not trailers:
            # The whole response is here: the core frames it in one HEADERS
            # and at most one DATA, with a block encoded without h2.
            defaults = (
                conn.default_fields()
                if not replaced
                else encode_fields(conn.default_headers_without(replaced))
            )
            fields = encode_status(status) + defaults + encode_fields(headers)
            if content_length is not None and status != 204 and status != 304:
                length = str(content_length).encode()
                fields += _CONTENT_LENGTH_PREFIX + bytes((len(length),)) + length
            if conn.core.send_response(self.stream_id, fields, b"" if no_body else body):
                self._ended()
                conn.want_flush()
                return
        block = conn.head_block(status, headers, replaced)
        if content_length is not None and status != 204 and status != 304:
            block.append((b"content-length", str(content_length).encode()))
        self.trailers = trailers
        core = conn.core
        sid = self.stream_id
        if no_body:
            body = b""
        if end and not trailers and not body:
            core.send_headers(sid, block, True)
            self._ended()
        else:
            core.send_headers(sid, block, False)
            if body or (end and not trailers):
                core.send_data(sid, body, end and not trailers)
                if end and not trailers:
                    self._ended()
        conn.want_flush()

    def write_body(self, data: bytes, end: bool) -> None:
        conn = self.conn
        if conn.closing_now or self.ended:
            return
        if self.head_only:
            data = b""
        end_stream = end and not self.trailers
        if data or end_stream:
            conn.core.send_data(self.stream_id, data, end_stream)
            conn.want_flush()
        if end_stream:
            self._ended()

    def write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        conn = self.conn
        if conn.closing_now or self.ended:
            return
        conn.core.send_trailers(self.stream_id, trailers)
        conn.want_flush()
        self._ended()

    def write_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        conn = self.conn
        if conn.closing_now or self.ended:
            return
        conn.core.send_headers(self.stream_id, [(b":status", _STATUS[status]), *headers], False)
        conn.want_flush()

    def write_continue(self) -> None:
        self.write_informational(100, [])

    def push(self, message: Any) -> None:
        """``http.response.push``: PUSH_PROMISE a GET of ``path``, then serve it as a new stream.

        The promised request gets this request's scheme and authority (RFC
        9113 8.4: the server is authoritative for them) and the message's
        headers; its response comes from the same app through the same
        bridge. Nothing happens when the core cannot push now (see
        `H2Core.push`).
        """
        path = message.get("path")
        if not isinstance(path, str):
            raise TypeError("'path' of http.response.push must be a str")
        raw_path = quote(path, safe=_PATH_SAFE).encode("ascii")
        if raw_path[:1] != b"/":
            raise RuntimeError("'path' of http.response.push must start with '/'")
        headers, _ = validate_headers(message.get("headers", ()))
        conn = self.conn
        cycle = self.cycle
        if conn.closing_now or self.ended or cycle is None:
            return
        authority = b""
        for name, value in cycle.scope["headers"]:
            if name == b"host":
                authority = value
                break
        fields = [(name, value) for name, value in headers if name not in _PUSH_DROPPED]
        request = [
            (b":method", b"GET"),
            (b":scheme", conn.scheme.encode()),
            (b":authority", authority),
            (b":path", raw_path),
            *fields,
        ]
        promised = conn.core.push(self.stream_id, request)
        if promised is None:
            return
        conn.want_flush()
        path_only, _, query = raw_path.partition(b"?")
        conn.start_pushed(
            StreamRequest(
                promised,
                b"GET",
                raw_path,
                path_only,
                query,
                [(b"host", authority), *fields],
                scheme=conn.scheme.encode(),
                authority=authority,
                protocol=None,
                content_length=None,
                expect_continue=False,
                stream_ended=True,
            )
        )

    async def wait_writable(self) -> None:
        conn = self.conn
        while self.write_paused and not self.ended and not conn.closing_now:
            cycle = self.cycle
            if cycle is not None and cycle.disconnected:
                return
            waiter = self.waiter
            if waiter is None:
                waiter = self.waiter = conn.loop.create_future()
            await waiter

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        # No os.sendfile: every byte travels in DATA frames the core frames.
        loop = self.conn.loop
        remaining = count
        position = offset
        while remaining > 0:
            chunk = os.pread(file.fileno(), min(_FILE_CHUNK, remaining), position)
            if not chunk:
                raise RuntimeError("File shrank while it was being sent")
            position += len(chunk)
            remaining -= len(chunk)
            self.write_body(chunk, False)
            cycle = self.cycle
            if self.write_paused:
                await self.wait_writable()
            else:
                # Let other streams and the socket have their turn.
                await asyncio.sleep(0)
            if self.ended or (cycle is not None and cycle.disconnected):
                raise ClientDisconnected("Client disconnected")
        del loop

    def resume_reading(self) -> None:
        unacked = self.unacked
        if unacked:
            self.unacked = 0
            self.conn.core.acknowledge(self.stream_id, unacked)
            self.conn.want_flush()

    def abort(self) -> None:
        # Only this stream: RST_STREAM tells the client its response is cut.
        if not self.ended:
            self.ended = True
            self.conn.core.reset(self.stream_id, INTERNAL_ERROR)
            self.conn.want_flush()
        cycle = self.cycle
        if cycle is not None and not cycle.disconnected:
            cycle.disconnect()

    # -- internals -------------------------------------------------------------

    def task_done(self, task: asyncio.Task[None]) -> None:
        """The app task of this stream is over (returned, failed or cancelled)."""
        conn = self.conn
        conn.state.tasks.discard(task)
        conn._stream_finished(self)

    def _ended(self) -> None:
        self.ended = True
        conn = self.conn
        if conn.access_log and self.cycle is not None:
            log_access(conn.client, self.cycle.scope, self.cycle.status)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


class H2StreamSink:
    """A WebSocket's `ByteSink` on one HTTP/2 stream (RFC 8441 section 5).

    Frames travel in DATA frames under both flow-control windows; END_STREAM
    stands for TCP's FIN and RST_STREAM for its RST. ``local_ended``: our
    END_STREAM is queued; ``remote_ended``: the client's came; ``lost``: the
    stream is over both ways (the session has had its ``connection_lost``).
    """

    __slots__ = (
        "conn",
        "local_ended",
        "lost",
        "read_paused",
        "remote_ended",
        "session",
        "stream_id",
        "unacked",
    )

    def __init__(self, conn: H2Protocol, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.session: H2WebSocket | None = None
        self.local_ended = False
        self.remote_ended = False
        self.lost = False
        self.read_paused = False
        # DATA bytes held unacknowledged while the app is behind: the client's
        # window closes, as a paused TCP socket's receive window does.
        self.unacked = 0

    # -- ByteSink ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.writelines((data,))

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        conn = self.conn
        if self.local_ended or self.lost or conn.closing_now:
            return
        core = conn.core
        sid = self.stream_id
        for data in list_of_data:
            core.send_data(sid, data, False)
        conn.want_flush()
        if (conn.write_paused or core.has_pending(sid)) and self.session is not None:
            self.session.pause_writing()

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False
        unacked = self.unacked
        if unacked:
            self.unacked = 0
            self.conn.core.acknowledge(self.stream_id, unacked)
            self.conn.want_flush()

    def is_closing(self) -> bool:
        return self.local_ended or self.lost or self.conn.closing_now

    def close(self) -> None:
        if self.local_ended or self.lost:
            return
        self.local_ended = True
        conn = self.conn
        if not conn.closing_now:
            conn.core.end_stream(self.stream_id)
            conn.want_flush()
        # On the next turn: a client END_STREAM later in the same read is
        # seen first, so a finished stream needs no reset.
        conn.loop.call_soon(conn.websocket_check, self)

    def abort(self) -> None:
        if self.lost:
            return
        conn = self.conn
        if not conn.closing_now:
            conn.core.reset(self.stream_id, CANCEL)
            conn.want_flush()
        self.stream_lost()

    # -- from H2Protocol ------------------------------------------------------------

    def stream_lost(self) -> None:
        """The stream is over (reset, both ends ended, or the connection went)."""
        if self.lost:
            return
        self.lost = True
        if self.session is not None:
            self.session.connection_lost(None)
        self.conn.websocket_check(self)

    def data(self, data: bytes, flow_length: int) -> None:
        session = self.session
        core = self.conn.core
        if self.lost or self.remote_ended or session is None:
            core.acknowledge(self.stream_id, flow_length)
            return
        session.data_received(data)
        if self.read_paused or self.unacked:
            self.unacked += flow_length
        else:
            core.acknowledge(self.stream_id, flow_length)

    def remote_end(self) -> None:
        # The client's END_STREAM is TCP's FIN: the WebSocket is over (1006
        # unless its close frame came first), and our side ends too.
        self.remote_ended = True
        self.close()
        self.stream_lost()

    def writable(self) -> None:
        conn = self.conn
        if not conn.write_paused and not conn.core.has_pending(self.stream_id):
            session = self.session
            if session is not None and session.write_paused:
                session.resume_writing()


class H2WebSocket(WebSocketSession):
    """A WebSocket on an HTTP/2 stream: the handshake's HTTP/2 side (RFC 8441 section 5)."""

    __slots__ = ("stream",)

    def __init__(self, config: Config, app: Any, state: ServerState, stream: H2StreamSink) -> None:
        super().__init__(config, app, state, stream, stream.conn.loop)
        self.stream = stream

    def _write_accept(
        self, handshake: UpgradeRequest, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        # Section 5.1: a 2xx to the extended CONNECT opens the WebSocket; no
        # Sec-WebSocket-Accept, the stream itself is the proof.
        stream = self.stream
        conn = stream.conn
        if stream.is_closing():
            return
        block = [
            (b":status", b"200"),
            *conn.default_headers_without(replaced_defaults(headers)),
            *accept_headers(handshake, subprotocol, headers),
        ]
        conn.core.send_headers(stream.stream_id, block, False)
        conn.want_flush()
        self._log_access(200)

    def write_response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
    ) -> None:
        # The denial response (or 403, or 500): a plain HTTP/2 response on the stream.
        stream = self.stream
        conn = stream.conn
        if stream.is_closing():
            return
        block = conn.head_block(status, headers, replaced_defaults(headers))
        if content_length is None and end:
            content_length = len(body)
        if content_length is not None and status != 204 and status != 304:
            block.append((b"content-length", str(content_length).encode()))
        conn.core.send_headers(stream.stream_id, block, False)
        conn.want_flush()
        self._log_access(status)
        if body:
            stream.write(body)
        if end:
            self._end(False)

    def write_response_body(self, body: bytes, end: bool) -> None:
        if body:
            self.stream.write(body)
        if end:
            self._end(False)


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection; constructed by the server as ``H2Protocol(config, app, state)``."""

    __slots__ = (
        "_default_block",
        "_default_fields",
        "_default_fields_block",
        "_default_headers",
        "_deferred",
        "_extensions_base",
        "_flush_scheduled",
        "_h1_body",
        "_plain_tasks",
        "_read_paused",
        "_scope_base",
        "_timer",
        "access_log",
        "app",
        "client",
        "closing_now",
        "config",
        "core",
        "loop",
        "scheme",
        "server",
        "state",
        "streams",
        "transport",
        "websockets",
        "write_paused",
    )

    def __init__(self, config: Config, app: Any, state: ServerState) -> None:
        self.config = config
        self.app = app
        self.state = state
        self.loop = state.loop or asyncio.get_event_loop()
        self._plain_tasks = self.loop.get_task_factory() is None  # see start_task
        self.core = H2Core(
            max_concurrent_streams=config.h2_max_concurrent_streams,
            max_header_list_size=config.h2_max_header_list_size,
            max_header_fields=config.limit_request_fields,
            max_resets=config.h2_max_resets,
            enable_connect_protocol=config.ws != "none",
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        # WebSockets over HTTP/2 (RFC 8441), by stream id; apart from `streams`
        # so the HTTP path pays nothing for them.
        self.websockets: dict[int, H2StreamSink] = {}
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "http"
        self.access_log = config.access_log
        self.write_paused = False
        self.closing_now = False
        self._read_paused = False
        self._flush_scheduled = False
        # While data_received walks a batch of events: the streams whose app
        # waits for the batch's DATA before it starts (see _start_stream).
        self._deferred: list[tuple[H2Stream, Any]] | None = None
        # Filed with the HTTP/1.1 connections' deadlines: no loop timer of its own.
        self._timer = Deadline(self.loop, self._on_deadline, state.timers)
        self._default_block = b""
        self._default_headers: list[tuple[bytes, bytes]] = []
        self._default_fields_block = b""
        self._default_fields = b""
        self._extensions_base: dict[str, Any] = {}
        # Built at the first request, once scheme, client and server are known.
        self._scope_base: dict[str, Any] | None = None
        # After Upgrade: h2c with a body, the rest of that body still arrives
        # in HTTP/1.1 framing before the client's preface (RFC 7540 3.2).
        self._h1_body: Any = None

    # -- starting --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(cast("asyncio.Transport", transport))
        self.core.initiate()
        self._flush()

    def _attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.state.connections.add(self)
        self.client = _address(transport.get_extra_info("peername"))
        sockname = transport.get_extra_info("sockname")
        if isinstance(sockname, str):
            self.server = (sockname, None)
        else:
            self.server = _address(sockname)
        tls = transport.get_extra_info("sslcontext") is not None
        self.scheme = "https" if tls else "http"
        # No TCP_NODELAY here: asyncio's and uvloop's TCP transports set it.
        ext: dict[str, Any] = {
            "http.response.pathsend": {},
            "http.response.early_hint": {},
            # HTTP/2 frames trailers on every response (RFC 9113 8.1).
            "http.response.trailers": {},
        }
        if tls:
            ext["tls"] = tls_extension(transport)
        self._extensions_base = ext
        self._set_idle_deadline()

    def take_over(self, transport: asyncio.Transport, data: bytes) -> None:
        """Start on a transport another protocol had, with the bytes it had buffered."""
        transport.set_protocol(self)
        self._attach(transport)
        self.core.initiate()
        self._flush()
        if data:
            self.data_received(data)

    # -- asyncio.Protocol --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing_now:
            return
        if self._h1_body is not None:
            data = self._read_h1_body(data)
            if not data:
                return
        events = self.core.receive_data(data, self.loop.time())
        deferred = self._deferred = []
        closed = self._dispatch(events)
        self._deferred = None
        for stream, app in deferred:
            self._run_stream(stream, app)
        if not closed:
            self._flush()

    def _dispatch(self, events: list[Any]) -> bool:
        """Act on a batch of events; True when the connection closed."""
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is StreamRequest:
                self._on_request(cast(StreamRequest, event))
            elif kind is StreamData:
                data_event = cast(StreamData, event)
                stream = streams.get(data_event.stream_id)
                if stream is None or stream.cycle is None:
                    websocket = self.websockets.get(data_event.stream_id)
                    if websocket is not None:
                        websocket.data(data_event.data, data_event.flow_length)
                    else:
                        self.core.acknowledge(data_event.stream_id, data_event.flow_length)
                    continue
                cycle = stream.cycle
                if cycle.disconnected or self._over_body_limit(stream, len(data_event.data)):
                    self.core.acknowledge(data_event.stream_id, data_event.flow_length)
                elif cycle.feed_body(data_event.data) or stream.unacked:
                    # Past the bridge's high-water mark: the window stays
                    # closed until the app reads (H2Stream.resume_reading).
                    stream.unacked += data_event.flow_length
                else:
                    self.core.acknowledge(data_event.stream_id, data_event.flow_length)
            elif kind is StreamEnded:
                sid = cast(StreamEnded, event).stream_id
                stream = streams.get(sid)
                if stream is not None and stream.cycle is not None:
                    stream.cycle.body_complete()
                elif sid in self.websockets:
                    self.websockets[sid].remote_end()
            elif kind is StreamReset:
                self._on_reset(cast(StreamReset, event))
            elif kind is StreamWritable:
                sid = cast(StreamWritable, event).stream_id
                stream = streams.get(sid)
                if stream is not None:
                    stream.wake()
                elif sid in self.websockets:
                    self.websockets[sid].writable()
            elif kind is ConnectionClosed:
                self._on_closed(cast(ConnectionClosed, event))
                return True
        return False

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.closing_now = True
        # close(), not cancel(): the deadline holds this protocol's bound
        # method, a cycle that would leave the connection to the cyclic GC.
        self._timer.close()
        for stream in list(self.streams.values()):
            cycle = stream.cycle
            if cycle is not None and not cycle.disconnected:
                cycle.disconnect()
            stream.wake()
        for websocket in list(self.websockets.values()):
            websocket.stream_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        # A client that does not read must not make the server queue answers
        # (PING and SETTINGS ACKs, RST_STREAMs) without end: stop reading too.
        if self.transport is not None and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._read_paused and self.transport is not None and not self.closing_now:
            self._read_paused = False
            self.transport.resume_reading()
        for stream in list(self.streams.values()):
            if stream.waiter is not None and not self.core.has_pending(stream.stream_id):
                stream.wake()
        for websocket in list(self.websockets.values()):
            websocket.writable()

    # -- streams -----------------------------------------------------------------

    def _on_request(self, request: StreamRequest) -> None:
        stream_id = request.stream_id
        config = self.config
        limit = config.limit_request_body
        if (
            limit is not None
            and request.content_length is not None
            and request.content_length > limit
        ):
            self._answer_and_reset(stream_id, 413)
            return
        if request.method == b"CONNECT":
            # The core let :protocol through only if we offered extended
            # CONNECT; plain CONNECT is for proxies (RFC 9113 8.5).
            protocol = request.protocol
            if protocol is not None and protocol.lower() == b"websocket":
                self._start_websocket(request)
            else:
                self._answer_and_reset(stream_id, 501)
            return
        self._start_stream(request)

    def _start_stream(self, request: StreamRequest | Request, stream_id: int | None = None) -> None:
        sid = stream_id if stream_id is not None else cast(StreamRequest, request).stream_id
        state = self.state
        app = self.app
        limit = self.config.limit_concurrency
        if limit is not None and over_concurrency_limit(limit, state):
            app = _service_unavailable
        stream = H2Stream(self, sid, request.method == b"HEAD")
        base = self._scope_base
        if base is None:
            base = self._scope_base = scope_base(
                "2", self.scheme, self.client, self.server, self.config.root_path
            )
        scope = http_scope(
            base.copy(),
            request.method,
            request.path,
            request.query,
            request.headers,
            state.app_state,
            self._extensions(sid),
        )
        cycle = HTTPCycle(scope, stream, not request.has_body, request.expect_continue)
        stream.cycle = cycle
        self.streams[sid] = stream
        self._timer.when = None
        state.total_requests += 1
        deferred = self._deferred
        if request.has_body and deferred is not None:
            # Its DATA frames usually come in the same read: the app starts
            # after the batch, with them fed, so an app run eagerly (3.12+)
            # finds its body at its first receive() instead of waiting a loop
            # turn (with lazy tasks the order is the same as before).
            deferred.append((stream, app))
            return
        self._run_stream(stream, app)

    def _run_stream(self, stream: H2Stream, app: Any) -> None:
        cycle = stream.cycle
        assert cycle is not None
        state = self.state
        task = start_task(self.loop, cycle.run(app), self._plain_tasks)
        if task.done():
            self._stream_finished(stream)
        else:
            stream.task = task
            state.tasks.add(task)
            # One bound-method callback does both (no closure per stream).
            task.add_done_callback(stream.task_done)

    def _extensions(self, stream_id: int) -> dict[str, Any]:
        extensions = dict(self._extensions_base)
        if stream_id % 2 and self.core.push_enabled:
            # Only where the client allows push, and never on a pushed
            # stream (RFC 9113 6.6: PUSH_PROMISE only on a client's stream).
            extensions["http.response.push"] = {}
        return extensions

    def start_pushed(self, request: StreamRequest) -> None:
        """Run the app for a promised request (`H2Stream.push`), as for a client's."""
        self._start_stream(request)

    def _stream_finished(self, stream: H2Stream) -> None:
        """The app of a stream returned: the stream stops counting as concurrent."""
        sid = stream.stream_id
        self.streams.pop(sid, None)
        core = self.core
        core.stream_done(sid)
        if not stream.ended and not self.closing_now:
            # The bridge ends every response it can; what is left is cut.
            core.reset(sid, CANCEL)
        cycle = stream.cycle
        if cycle is not None and not cycle.request_complete and not cycle.disconnected:
            # RFC 9113 8.1: a complete response may come before the whole
            # request; NO_ERROR tells the client to stop sending the body.
            core.reset(sid, NO_ERROR)
        if stream.unacked:
            core.acknowledge(sid, stream.unacked)
            stream.unacked = 0
        self.want_flush()
        self._stream_gone()

    def _stream_gone(self) -> None:
        if not self.streams and not self.websockets and not self.closing_now:
            if self.core.goaway_sent or self.state.should_exit:
                self._close_when_flushed()
            else:
                self._set_idle_deadline()

    def _start_websocket(self, request: StreamRequest) -> None:
        """Extended CONNECT for ``websocket`` (RFC 8441 section 4): the same session as HTTP/1.1."""
        sid = request.stream_id
        config = self.config
        state = self.state
        limit = config.limit_concurrency
        if limit is not None and over_concurrency_limit(limit, state):
            self._answer_and_reset(sid, 503)
            return
        try:
            if not request.has_body:
                # END_STREAM on the HEADERS: the client's byte stream is over already.
                raise HandshakeError("Extended CONNECT that ends its stream")
            handshake = validate_extended_connect(request.headers, config.ws_per_message_deflate)
        except HandshakeError as exc:
            client = self.client
            logger.info(
                "Invalid WebSocket handshake from %s: %s (answered %d)",
                f"{client[0]}:{client[1]}" if client else "-",
                exc.reason,
                exc.status,
            )
            self._answer_and_reset(sid, exc.status, exc.headers)
            return
        stream = H2StreamSink(self, sid)
        session = H2WebSocket(config, self.app, state, stream)
        stream.session = session
        self.websockets[sid] = stream
        self._timer.when = None
        state.total_requests += 1
        scope = websocket_scope(
            "2",
            request.path,
            request.query,
            request.headers,
            "wss" if self.scheme == "https" else "ws",
            self.client,
            self.server,
            config.root_path,
            state.app_state,
            handshake.subprotocols,
        )
        task = session._start_app(scope, handshake, b"")
        task.add_done_callback(lambda _: self.websocket_check(stream))

    def websocket_check(self, stream: H2StreamSink) -> None:
        """Forget a WebSocket stream once its app returned and its byte stream ended."""
        session = stream.session
        task = session.task if session is not None else None
        if task is None or not task.done() or not (stream.local_ended or stream.lost):
            # The session is still closing; its close timer bounds the wait.
            return
        sid = stream.stream_id
        if self.websockets.pop(sid, None) is None:
            return
        core = self.core
        if not stream.lost:
            if not stream.remote_ended and not self.closing_now:
                # As for HTTP: our side is complete; NO_ERROR tells the client
                # to stop sending (RFC 9113 8.1).
                core.reset(sid, NO_ERROR)
            stream.lost = True
            if session is not None:
                session.connection_lost(None)
        if stream.unacked:
            core.acknowledge(sid, stream.unacked)
            stream.unacked = 0
        core.stream_done(sid)
        if not self.closing_now:
            self.want_flush()
            self._stream_gone()

    def _on_reset(self, event: StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            websocket = self.websockets.get(event.stream_id)
            if websocket is not None:
                # TCP's RST for a WebSocket over HTTP/2: the app sees 1006.
                websocket.stream_lost()
            return
        stream.ended = True
        cycle = stream.cycle
        if cycle is not None and not cycle.disconnected:
            # That stream only: the app gets http.disconnect, send() raises.
            cycle.disconnect()
        stream.wake()

    def _over_body_limit(self, stream: H2Stream, size: int) -> bool:
        limit = self.config.limit_request_body
        cycle = stream.cycle
        if limit is None or cycle is None:
            return False
        stream.received += size
        if stream.received <= limit:
            return False
        if not cycle.response_started:
            stream.write_head(413, [], 0, b"", True, False)
        cycle.disconnect()
        self.core.reset(stream.stream_id, CANCEL)
        stream.ended = True
        return True

    def _answer_and_reset(
        self, stream_id: int, status: int, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.core.send_headers(
            stream_id,
            [
                (b":status", _STATUS[status]),
                *self.default_headers(),
                *(extra or ()),
                (b"content-length", b"0"),
            ],
            True,
        )
        self.core.stream_done(stream_id)

    # -- writing -------------------------------------------------------------------

    def default_headers(self) -> list[tuple[bytes, bytes]]:
        block = self.state.header_block
        if block is not self._default_block:
            # Rebuilt when the date changes: once a second at most.
            self._default_block = block
            self._default_headers = _default_headers(block)
        return self._default_headers

    def default_headers_without(self, names: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
        """`default_headers` less the fields of ``names``, which the app sends itself
        (`default_headers` itself, no copy, when there are none)."""
        if not names:
            return self.default_headers()
        return [pair for pair in self.default_headers() if pair[0] not in names]

    def head_block(
        self, status: int, headers: list[tuple[bytes, bytes]], replaced: tuple[bytes, ...]
    ) -> list[tuple[bytes, bytes]]:
        """A response's fields for h2: status, the server's defaults (less those in
        ``replaced``), then the app's headers without connection-specific ones."""
        block = [(b":status", _STATUS[status]), *self.default_headers_without(replaced)]
        for header in headers:
            if header[0] not in _CONNECTION_HEADERS:
                block.append(header)
        return block

    def default_fields(self) -> bytes:
        """`default_headers`, HPACK-encoded by `encode_fields` (rebuilt with the date)."""
        block = self.state.header_block
        if block is not self._default_fields_block:
            self._default_fields_block = block
            self._default_fields = encode_fields(_default_headers(block))
        return self._default_fields

    def want_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.core.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close_when_flushed(self) -> None:
        self._flush()
        if self.transport is not None and not self.closing_now:
            self.closing_now = True
            self.transport.close()

    def _on_closed(self, event: ConnectionClosed) -> None:
        if not event.remote:
            client = self.client
            logger.info(
                "HTTP/2 connection from %s closed: %s (error code %d)",
                f"{client[0]}:{client[1]}" if client else "-",
                escape_control(event.reason),
                event.error_code,
            )
        self._flush()
        self.closing_now = True
        for stream in list(self.streams.values()):
            cycle = stream.cycle
            if cycle is not None and not cycle.disconnected:
                cycle.disconnect()
            stream.wake()
        for websocket in list(self.websockets.values()):
            websocket.stream_lost()
        if self.transport is not None:
            self.transport.close()

    # -- timers and shutdown ---------------------------------------------------------

    def _set_idle_deadline(self) -> None:
        self._timer.set(self.config.timeout_keep_alive)

    def _on_deadline(self) -> None:
        if self.closing_now:
            return
        if not self.streams and not self.websockets:
            # Idle: a graceful GOAWAY, then close (RFC 9113 9.1).
            self.core.goaway()
            self._close_when_flushed()

    def shutdown(self) -> None:
        """Graceful stop: WebSockets close with 1001, GOAWAY; close once the streams are done."""
        if self.closing_now:
            return
        for websocket in list(self.websockets.values()):
            if websocket.session is not None:
                websocket.session.shutdown()
        self.core.goaway()
        self._flush()
        if not self.streams and not self.websockets:
            self._close_when_flushed()

    def force_close(self) -> None:
        """The graceful timeout ran out: every app gets http.disconnect, its task a cancel."""
        self.closing_now = True
        for stream in list(self.streams.values()):
            cycle = stream.cycle
            if cycle is not None and not cycle.disconnected:
                cycle.disconnect()
            task = stream.task
            if task is not None and not task.done():
                task.cancel()
        for websocket in list(self.websockets.values()):
            if websocket.session is not None:
                websocket.session.force_close()
        if self.transport is not None:
            self.transport.close()

    # -- h2c upgrade -------------------------------------------------------------------

    def _read_h1_body(self, data: bytes) -> bytes:
        """The rest of an upgraded request's HTTP/1.1 body; what follows it is HTTP/2."""
        from hurtle.protocol.errors import ProtocolError  # noqa: PLC0415
        from hurtle.protocol.events import Data, EndOfMessage  # noqa: PLC0415

        h1 = self._h1_body
        stream = self.streams.get(1)
        cycle = stream.cycle if stream is not None else None
        if data:
            h1.receive_data(data)
        while True:
            try:
                event = h1.next_event()
            except ProtocolError:
                self._on_closed(ConnectionClosed(NO_ERROR, "Invalid upgraded request body", False))
                return b""
            if type(event) is Data:
                if cycle is not None and not cycle.disconnected:
                    cycle.feed_body(event.data)
            elif type(event) is EndOfMessage:
                if cycle is not None:
                    cycle.body_complete()
            else:
                if h1.parser.paused:
                    self._h1_body = None
                    rest: bytes = h1.parser.trailing_data
                    return rest
                return b""


def take_over_preface(h1: H1Protocol) -> bool:
    """HTTP/2 with prior knowledge (RFC 9113 3.3): the HTTP/1.1 parser met the preface."""
    data: bytes = h1.conn.parser.trailing_data
    transport = h1.transport
    if not PREFACE.startswith(data[: len(PREFACE)]) or transport is None:
        return False
    # The HTTP/1.1 side lets go first: the bytes handed over may hold a whole
    # request, and an app started eagerly (3.12+) answers it inside take_over;
    # nothing may see the connection counted twice meanwhile.
    h1.handed_over()
    protocol = H2Protocol(h1.config, h1.app, h1.state)
    protocol.take_over(transport, data)
    return True


def take_over_h2c(h1: H1Protocol, request: Request) -> bool:
    """``Upgrade: h2c`` (RFC 7540 3.2): 101, then the request is stream 1 in HTTP/2.

    False when the request does not qualify (no single ``HTTP2-Settings``,
    TLS): it is then served as HTTP/1.1, as the RFC allows.
    """
    transport = h1.transport
    if transport is None or h1.scheme == "https" or h1.config.http != "auto":
        return False
    tokens = [t.strip().lower() for t in (request.upgrade or b"").split(b",")]
    if b"h2c" not in tokens:
        return False
    settings = [value for name, value in request.headers if name == b"http2-settings"]
    if len(settings) != 1:
        return False
    protocol = H2Protocol(h1.config, h1.app, h1.state)
    try:
        protocol.core.initiate_upgrade(settings[0].strip())
    except H2Error:
        return False
    # Stream 1's app may run eagerly (3.12+) inside _start_stream below.
    h1.handed_over()
    transport.write(_STATUS_LINE_101 + b"\r\n")
    transport.set_protocol(protocol)
    protocol._attach(transport)
    protocol._flush()
    # The HTTP/1.1 request goes on as stream 1, with h2c's hop-by-hop fields out.
    request.headers = [
        (name, value)
        for name, value in request.headers
        if name not in (b"http2-settings", b"upgrade", b"connection")
    ]
    protocol._start_stream(request, 1)
    trailing = h1.conn.parser.trailing_data
    if request.has_body:
        protocol._h1_body = h1.conn
        trailing = protocol._read_h1_body(b"")
    if trailing:
        protocol.data_received(trailing)
    return True


class ALPNProtocol(asyncio.Protocol):
    """For TLS connections: becomes HTTP/2 or HTTP/1.1 as the handshake's ALPN chose."""

    __slots__ = ("app", "config", "state")

    def __init__(self, config: Config, app: Any, state: ServerState) -> None:
        self.config = config
        self.app = app
        self.state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        if alpn == "h2":
            protocol = H2Protocol(self.config, self.app, self.state)
        else:
            protocol = H1Protocol(self.config, self.app, self.state)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        pass
