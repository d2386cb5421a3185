"""The ASGI WebSocket cycle (asgiref www spec 2.5, ``websocket`` scope).

`WebSocketCycle` owns the scope, the app's ``receive`` and ``send`` and the
order of the app's messages; it knows nothing of frames or sockets. The
protocol adapter gives it a `WebSocketWriter` and feeds it whole messages
and the disconnect.

Message order, enforced with integer compares (the app's ``send`` side)::

    CONNECTING --websocket.accept--> CONNECTED --websocket.close--> CLOSED
        |                                 (websocket.send any number of times)
        +--websocket.close (before accept: 403)---------------------> CLOSED
        +--websocket.http.response.start--> RESPONSE --body(end)----> CLOSED

``receive`` gives ``websocket.connect`` first, then each message in order,
then one ``websocket.disconnect`` (1005 when the peer's close had no code,
1006 when the connection dropped). ``send`` after the connection closed, from
either side, raises `ClientDisconnected`, the ``OSError`` subclass that the
HTTP cycle raises too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from hurtle.asgi.http import (
    ASGI_VERSION,
    ClientDisconnected,
    decode_path,
    length_error,
    length_mismatch,
    validate_headers,
)
from hurtle.protocol.ws.frames import valid_close_code

logger = logging.getLogger("hurtle.error")

_CONNECTING = 0
_CONNECTED = 1
_RESPONSE_PENDING = 2  # denial response: the head waits for its first body message
_RESPONSE_STREAMING = 3
_CLOSED = 4

_CONNECT_EVENT = {"type": "websocket.connect"}

CLOSE_ABNORMAL = 1006

_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_SERVER_ERROR_BODY = b"Internal Server Error"


class WebSocketWriter(Protocol):
    """What a protocol adapter offers the cycle: the only coupling to the wire."""

    @property
    def write_paused(self) -> bool: ...

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None: ...

    def send_message(self, data: str | bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def write_response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
    ) -> None: ...

    def write_response_body(self, body: bytes, end: bool) -> None: ...

    async def wait_writable(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None: ...


def websocket_scope(
    http_version: str,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    app_state: dict[str, Any],
    subprotocols: list[str],
) -> dict[str, Any]:
    """The ``websocket`` scope of asgiref's www spec 2.5; ``scheme`` is ``ws`` or ``wss``.

    ``path`` and ``raw_path`` include ``root_path``, as in the HTTP scope.
    """
    path = decode_path(raw_path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    return {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": http_version,
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query_string,
        "headers": headers,
        "subprotocols": subprotocols,
        "state": app_state.copy(),
        "extensions": {"websocket.http.response": {}},
    }


def _message_type(message: Any) -> str:
    if not isinstance(message, Mapping):
        raise TypeError(f"ASGI messages must be mappings, got {type(message).__name__}")
    mtype = message.get("type")
    if not isinstance(mtype, str):
        raise TypeError("ASGI message without a 'type'")
    return mtype


class WebSocketCycle:
    """One WebSocket connection as the ASGI app sees it."""

    __slots__ = (
        "_close_code",
        "_close_reason",
        "_connect_sent",
        "_content_length",
        "_headers",
        "_length_limit",
        "_loop",
        "_low_water",
        "_queue",
        "_read_paused",
        "_sent",
        "_state",
        "_status",
        "_waiter",
        "max_queue",
        "scope",
        "writer",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        writer: WebSocketWriter,
        max_queue: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.scope = scope
        self.writer = writer
        self.max_queue = max_queue
        # The connection's loop, for the futures receive() waits on; looking
        # it up costs a getpid() system call per wait on 3.11.
        self._loop = loop
        # Resume reading only once the app has caught up by a margin, so a
        # queue at the limit does not pause and resume on every message.
        self._low_water = max_queue // 4
        self._queue: deque[dict[str, Any]] = deque()
        self._read_paused = False
        self._state = _CONNECTING
        self._connect_sent = False
        self._close_code: int | None = None
        self._close_reason = ""
        self._waiter: asyncio.Future[None] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._content_length: int | None = None
        self._length_limit: int | None = None
        self._sent = 0

    # -- from the adapter ------------------------------------------------------

    def feed(self, data: str | bytes) -> bool:
        """Queue a received message for the app; True when the adapter should pause reading."""
        if self._state != _CONNECTED or self._close_code is not None:
            # Closing, from either side: what the peer still sends goes nowhere.
            return False
        if type(data) is str:
            self._queue.append({"type": "websocket.receive", "text": data})
        else:
            self._queue.append({"type": "websocket.receive", "bytes": data})
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(self._queue) >= self.max_queue:
            self._read_paused = True
            return True
        return False

    def disconnect(self, code: int, reason: str = "") -> None:
        """The connection is closed (or closing) with ``code``: the app's last receive."""
        if self._close_code is not None:
            return
        self._close_code = code
        self._close_reason = reason
        self._wake()

    @property
    def disconnected(self) -> bool:
        return self._close_code is not None

    @property
    def accepted(self) -> bool:
        return self._state == _CONNECTED or (self._state == _CLOSED and self._status == 101)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side ----------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if not self._connect_sent:
            self._connect_sent = True
            return dict(_CONNECT_EVENT)
        queue = self._queue
        while True:
            if queue:
                message = queue.popleft()
                if self._read_paused and len(queue) <= self._low_water:
                    self._read_paused = False
                    self.writer.resume_reading()
                return message
            if self._close_code is not None:
                return {
                    "type": "websocket.disconnect",
                    "code": self._close_code,
                    "reason": self._close_reason,
                }
            waiter = self._waiter
            if waiter is None:
                loop = self._loop or asyncio.get_running_loop()
                waiter = self._waiter = loop.create_future()
            await waiter

    async def send(self, message: Mapping[str, Any]) -> None:
        mtype = message.get("type") if type(message) is dict else None
        if type(mtype) is not str:
            mtype = _message_type(message)
        state = self._state
        if state == _CONNECTED:
            if self._close_code is not None:
                raise ClientDisconnected("WebSocket closed")
            if mtype == "websocket.send":
                # The common shapes checked inline; _payload for the rest.
                data = message.get("bytes")
                if type(data) is not bytes:
                    data = message.get("text") if data is None else None
                    if type(data) is not str:
                        data = _payload(message)
                self.writer.send_message(data)
                if self.writer.write_paused:
                    await self.writer.wait_writable()
                    if self._close_code is not None:
                        raise ClientDisconnected("WebSocket closed")
                return
            if mtype == "websocket.close":
                code, reason = _close_args(message)
                self._state = _CLOSED
                self.writer.close(code, reason)
                return
            raise RuntimeError(
                f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {mtype!r}."
            )
        if state == _CONNECTING:
            if self._close_code is not None:
                raise ClientDisconnected("WebSocket client disconnected")
            if mtype == "websocket.accept":
                subprotocol = message.get("subprotocol")
                if subprotocol is not None and not isinstance(subprotocol, str):
                    raise TypeError("'subprotocol' must be a str or None")
                headers, _ = validate_headers(message.get("headers", ()))
                if subprotocol is not None:
                    # One Sec-WebSocket-Protocol (RFC 6455 4.2.2 step 5.5): the
                    # ``subprotocol`` key wins over a header of the same name.
                    headers = [h for h in headers if h[0] != b"sec-websocket-protocol"]
                self._state = _CONNECTED
                self._status = 101
                self.writer.accept(subprotocol, headers)
                return
            if mtype == "websocket.close":
                # asgiref www spec: a close before accept rejects the handshake
                # with 403.
                _close_args(message)
                self._state = _CLOSED
                self._status = 403
                self.writer.write_response_head(403, [], None, b"", True)
                return
            if mtype == "websocket.http.response.start":
                status = message.get("status")
                if type(status) is not int:
                    raise TypeError(f"'status' must be an int, got {type(status).__name__}")
                if not 100 <= status <= 599 or status == 101:
                    raise RuntimeError(f"Invalid denial response status {status}")
                headers, length = validate_headers(message.get("headers", ()))
                self._status = status
                self._headers = headers
                self._content_length = length
                # The HTTP cycle's rule (RFC 9110 8.6): 204 and 304 carry no
                # body whatever their Content-Length says; others are held to it.
                self._length_limit = None if status == 204 or status == 304 else length
                self._state = _RESPONSE_PENDING
                return
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start', but got {mtype!r}."
            )
        if mtype == "websocket.http.response.body" and (
            state == _RESPONSE_PENDING or state == _RESPONSE_STREAMING
        ):
            body = message.get("body", b"")
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"'body' must be bytes, got {type(body).__name__}")
            body = bytes(body)
            more_body = bool(message.get("more_body", False))
            self._sent += len(body)
            limit = self._length_limit
            if limit is not None and length_mismatch(self._sent, limit, more_body):
                self._fail_length()
            if not more_body:
                self._state = _CLOSED
            if state == _RESPONSE_PENDING:
                self._state = _RESPONSE_STREAMING if more_body else _CLOSED
                self.writer.write_response_head(
                    self._status, self._headers, self._content_length, body, not more_body
                )
            else:
                self.writer.write_response_body(body, not more_body)
            if more_body and self.writer.write_paused:
                await self.writer.wait_writable()
            return
        if state == _CLOSED and (mtype == "websocket.send" or mtype == "websocket.close"):
            raise ClientDisconnected("WebSocket closed")
        if state == _CLOSED:
            raise RuntimeError(f"Unexpected ASGI message {mtype!r} after the WebSocket closed.")
        raise RuntimeError(
            f"Expected ASGI message 'websocket.http.response.body', but got {mtype!r}."
        )

    # -- running the app ----------------------------------------------------------

    async def run(self, app: Callable[..., Awaitable[Any]]) -> None:
        """Run the app for this connection; turn its failures into a 500, a 1011 or a close."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except asyncio.CancelledError:
            if self._state != _CLOSED:
                self.writer.abort()
            raise
        except BaseException as exc:
            if not (self.disconnected and isinstance(exc, OSError)):
                logger.error("Exception in ASGI application", exc_info=exc)
            self._fail()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable returned a value other than None: %r", result)
            state = self._state
            if state == _CONNECTING and self._close_code is None:
                logger.error("ASGI callable returned without sending handshake.")
                self._fail()
            elif state == _CONNECTED:
                # The app is done with an open connection: close it normally.
                self._state = _CLOSED
                if self._close_code is None:
                    self.writer.close(1000, "")
            elif state == _RESPONSE_PENDING or state == _RESPONSE_STREAMING:
                logger.error("ASGI callable returned without completing the response.")
                self._fail()

    def _fail_length(self) -> None:
        # As in the HTTP cycle: the response cannot be completed as framed, so
        # it is cut (a client never reads a short or long body as whole).
        self._state = _CLOSED
        self.writer.abort()
        raise length_error(self._sent, self._content_length)

    def _fail(self) -> None:
        state = self._state
        self._state = _CLOSED
        if state == _CONNECTING:
            if self._close_code is None:
                self._status = 500
                self.writer.write_response_head(
                    500, _ERROR_HEADERS, len(_SERVER_ERROR_BODY), _SERVER_ERROR_BODY, True
                )
        elif state == _CONNECTED:
            if self._close_code is None:
                self.writer.close(1011, "")
        elif state == _RESPONSE_PENDING:
            self.writer.write_response_head(
                500, _ERROR_HEADERS, len(_SERVER_ERROR_BODY), _SERVER_ERROR_BODY, True
            )
        elif state == _RESPONSE_STREAMING:
            # Part of the response is out: close, so no client reads it as whole.
            self.writer.abort()


def _payload(message: Mapping[str, Any]) -> str | bytes:
    data = message.get("bytes")
    if data is not None:
        if type(data) is bytes:
            return data
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        raise TypeError(f"'bytes' must be bytes, got {type(data).__name__}")
    text = message.get("text")
    if text is not None:
        if type(text) is str:
            return text
        raise TypeError(f"'text' must be a str, got {type(text).__name__}")
    raise RuntimeError("websocket.send needs 'bytes' or 'text'")


def _close_args(message: Mapping[str, Any]) -> tuple[int, str]:
    code = message.get("code", 1000)
    if code is None:
        code = 1000
    if type(code) is not int:
        raise TypeError(f"'code' must be an int, got {type(code).__name__}")
    if not valid_close_code(code):
        raise RuntimeError(f"Invalid WebSocket close code {code}")
    reason = message.get("reason") or ""
    if not isinstance(reason, str):
        raise TypeError(f"'reason' must be a str, got {type(reason).__name__}")
    return code, reason
