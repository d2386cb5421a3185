"""The ASGI HTTP cycle: one per request, shared by every HTTP version.

`HTTPCycle` owns the scope, the app's ``receive`` and ``send``, and the order
of the app's messages; it knows nothing of the wire. A protocol adapter gives
it a `ResponseWriter` (write head, write body, trailers, interim responses,
flow control, abort) and feeds it body bytes and the disconnect.

Message order (asgiref www spec 2.5), enforced with integer compares:

    START --start--> HEAD_PENDING --body(more)--> STREAMING --body(end)--> DONE
      |                    |                          |
      +--early_hint (103)  +--pathsend/zerocopysend   +--(trailers=True)--> TRAILERS
                                                                     --trailers--> DONE

The head is held back until the first body message so that a response whose
body is complete at that point leaves in one write with a Content-Length.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote

logger = logging.getLogger("hurtle.error")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}

_START = 0
_HEAD_PENDING = 1
_STREAMING = 2
_TRAILERS = 3
_DONE = 4

# RFC 9110 5.1 and 5.5: names are tokens; values never carry CR, LF, NUL or
# other controls (HTAB aside), which is what would let an app split a response.
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Names already validated, lowercased: most apps send the same few names on
# every response, so one dict hit replaces a regex. Bounded so that apps that
# invent names cannot grow it without end.
_NAME_CACHE: dict[bytes, bytes] = {}
_NAME_CACHE_MAX = 512
# Values already checked: content types and cache directives repeat on every
# response, and a dict hit costs a fifth of a regex search. Short values only,
# and a bounded count, so that the cache's memory stays small.
_VALUE_CACHE: dict[bytes, None] = {}
_VALUE_CACHE_MAX = 512
_VALUE_CACHE_ITEM_MAX = 128
# Content-Length values already parsed (int() of bytes is slow next to a hit).
_LENGTH_VALUES: dict[bytes, int] = {}
# The last header list validated and its result. A route answers with the same
# headers over and over, and comparing two short lists of tuples costs a tenth
# of validating one. Kept as a copy of the app's list, and only when every pair
# is a tuple: a pair that could change after the fact is never remembered. The
# initial entry holds a private object, so it equals no list an app can send.
_Validated = tuple[list[tuple[bytes, bytes]], int | None]
_LAST_VALIDATED: tuple[list[Any], _Validated] = ([object()], ([], None))
_LAST_VALIDATED_MAX = 16

_SERVER_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_SERVER_ERROR_BODY = b"Internal Server Error"


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (asgiref www spec 2.4+)."""


class ResponseWriter(Protocol):
    """What a protocol adapter offers the cycle: the only coupling to the wire."""

    @property
    def write_paused(self) -> bool: ...

    def write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
        trailers: bool,
    ) -> None: ...

    def write_body(self, data: bytes, end: bool) -> None: ...

    def write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None: ...

    def write_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def write_continue(self) -> None: ...

    async def wait_writable(self) -> None: ...

    async def sendfile(self, file: Any, offset: int, count: int) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None: ...

    # The writer ends the response itself on ``end=True`` unless ``trailers``
    # was promised in ``write_head``; then ``write_trailers`` ends it.


def _as_bytes(item: Any, what: str) -> bytes:
    # Bytes-like header items are taken as their bytes, as bodies are: the
    # remembered header list compares by value, and bytearray(b"x") == b"x".
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"Header {what} must be bytes, got {type(item).__name__}")


def validate_headers(raw: Any) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """Lowercased, checked response headers and the parsed Content-Length.

    Content-Length is taken out of the list: the protocol writer frames the
    body and writes the header itself (HTTP/2 and HTTP/1.1 differ there).
    The list returned may be shared with other responses: callers never
    change it.
    """
    global _LAST_VALIDATED
    last = _LAST_VALIDATED
    if type(raw) is list and raw == last[0]:
        return last[1]
    headers: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    try:
        pairs: Iterable[Any] = raw
        for name, value in pairs:
            try:
                lowered = _NAME_CACHE.get(name)
            except TypeError:  # unhashable: a bytearray
                lowered = None
            if lowered is None:
                if type(name) is not bytes:
                    name = _as_bytes(name, "names")
                if _HEADER_NAME.fullmatch(name) is None:
                    raise RuntimeError(f"Invalid HTTP header name {name!r}")
                lowered = name.lower()
                if len(_NAME_CACHE) < _NAME_CACHE_MAX:
                    _NAME_CACHE[name] = lowered
            if type(value) is not bytes:
                value = _as_bytes(value, "values")
            if lowered == b"content-length":
                # Digits only (so no control can hide in it): no value check.
                length = _LENGTH_VALUES.get(value)
                if length is None:
                    stripped = value.strip()
                    if not stripped.isdigit() or not stripped.isascii():
                        raise RuntimeError(f"Invalid Content-Length header value {value!r}")
                    length = int(stripped)
                    if len(_LENGTH_VALUES) < _VALUE_CACHE_MAX:
                        _LENGTH_VALUES[bytes(value)] = length
                if content_length is not None and content_length != length:
                    raise RuntimeError("Conflicting Content-Length headers")
                content_length = length
                # Framing headers are the writer's to emit, from content_length.
                continue
            if value not in _VALUE_CACHE:
                if _BAD_VALUE.search(value) is not None:
                    raise RuntimeError(f"Invalid HTTP header value for {lowered!r}")
                if len(value) <= _VALUE_CACHE_ITEM_MAX and len(_VALUE_CACHE) < _VALUE_CACHE_MAX:
                    _VALUE_CACHE[bytes(value)] = None
            headers.append((lowered, value))
    except ValueError:
        raise TypeError("Headers must be an iterable of [name, value] pairs") from None
    result = (headers, content_length)
    if type(raw) is list and len(raw) <= _LAST_VALIDATED_MAX:
        for pair in raw:
            if type(pair) is not tuple:
                break
        else:
            _LAST_VALIDATED = (raw.copy(), result)
    return result


def length_mismatch(sent: int, declared: int, more_body: bool) -> bool:
    """The body so far breaks its Content-Length: longer, or short at its end.

    Shared by every response the bridge frames (HTTP responses and WebSocket
    denial responses); called only when a length was declared.
    """
    return sent > declared or (not more_body and sent < declared)


def length_error(sent: int, declared: int | None) -> RuntimeError:
    return RuntimeError(
        f"Response body length ({sent} bytes so far) does not match Content-Length ({declared})"
    )


def _message_type(message: Any) -> str:
    if not isinstance(message, Mapping):
        raise TypeError(f"ASGI messages must be mappings, got {type(message).__name__}")
    mtype = message.get("type")
    if not isinstance(mtype, str):
        raise TypeError("ASGI message without a 'type'")
    return mtype


def _body_of(message: Mapping[str, Any]) -> bytes:
    body = message.get("body", b"")
    if type(body) is not bytes:
        if isinstance(body, (bytearray, memoryview)):
            return bytes(body)
        raise TypeError(f"'body' must be bytes, got {type(body).__name__}")
    return body


def decode_path(raw_path: bytes) -> str:
    """The ``path`` of a scope: percent-decoded UTF-8 (RFC 3986 2.1)."""
    path = raw_path.decode("latin-1")
    if "%" in path:
        return unquote(path)
    return path


class HTTPCycle:
    """One request and its response, as the ASGI app sees them."""

    __slots__ = (
        "_body",
        "_body_size",
        "_content_length",
        "_continue_sent",
        "_delivered_final",
        "_expect_continue",
        "_headers",
        "_length_limit",
        "_sent",
        "_state",
        "_trailers",
        "_waiter",
        "disconnected",
        "request_complete",
        "scope",
        "status",
        "task",
        "task_set",
        "writer",
    )

    #: Above this many unread body bytes the adapter stops reading the socket.
    HIGH_WATER = 65536

    # The response's own fields, set by http.response.start before the state
    # machine lets anything read them (not in __init__: five stores fewer).
    _headers: list[tuple[bytes, bytes]]
    _content_length: int | None
    _length_limit: int | None
    _sent: int
    _trailers: bool

    def __init__(
        self,
        scope: dict[str, Any],
        writer: ResponseWriter,
        request_complete: bool,
        expect_continue: bool = False,
        body: bytes | None = None,
    ) -> None:
        self.scope = scope
        self.writer = writer
        #: Set by an adapter that tracks running app tasks in ``task_set``:
        #: `run` takes ``task`` out of it when the app is done, so the adapter
        #: needs no done callback (a loop callback per request).
        self.task: asyncio.Task[None] | None = None
        self.task_set: set[asyncio.Task[None]] | None = None
        self.disconnected = False
        self.status = 0
        self._state = _START
        #: The whole request body has arrived (a plain attribute, read once
        #: per response by the adapter).
        self.request_complete = request_complete
        # ``body``: all of it, taken with the head (request_complete is then
        # True): the app's first receive() has it without a wake-up.
        if body is None:
            self._body: list[bytes] = []
            self._body_size = 0
        else:
            self._body = [body]
            self._body_size = len(body)
        self._delivered_final = False
        self._expect_continue = expect_continue
        self._continue_sent = False
        self._waiter: asyncio.Future[None] | None = None

    # -- from the adapter ------------------------------------------------------

    def feed_body(self, data: bytes, last: bool = False) -> bool:
        """Buffer request body bytes; True when the adapter should pause reading.

        ``last``: they end the body (`body_complete` in the same call).
        """
        self._body.append(data)
        self._body_size += len(data)
        if last:
            self.request_complete = True
        if self._waiter is not None:
            self._wake()
        return self._body_size > self.HIGH_WATER

    def body_complete(self) -> None:
        self.request_complete = True
        self._wake()

    def disconnect(self) -> None:
        """The client has gone (or the server gave up on it)."""
        self.disconnected = True
        self._wake()

    @property
    def response_started(self) -> bool:
        return self._state != _START

    @property
    def response_complete(self) -> bool:
        return self._state == _DONE

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            # The task's loop where there is one: looking the running loop up
            # costs a getpid() system call per wait on 3.11 (an app streaming
            # while it listens for the disconnect waits once per request).
            task = self.task
            loop = task.get_loop() if task is not None else asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
        await waiter

    # -- the app's side ----------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self._state == _DONE:
                return {"type": "http.disconnect"}
            if self._body or (self.request_complete and not self._delivered_final):
                body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                paused = self._body_size > self.HIGH_WATER
                self._body.clear()
                self._body_size = 0
                more_body = not self.request_complete
                if not more_body:
                    self._delivered_final = True
                if paused:
                    self.writer.resume_reading()
                return {"type": "http.request", "body": body, "more_body": more_body}
            if self._expect_continue and not self._continue_sent and self._state == _START:
                # RFC 9110 10.1.1: the client waits for this before sending the
                # body; send it only once the app shows it wants the body.
                self._continue_sent = True
                self.writer.write_continue()
            await self._wait()

    async def send(self, message: Mapping[str, Any]) -> None:
        # The checks of _message_type and _body_of, inlined for plain dicts
        # and bytes (what nearly every app sends): two calls fewer per message.
        # A type that is not a str matches none of the names below and ends
        # in the "Expected ..." error: no separate check on the hot path.
        if type(message) is dict:
            try:  # a subscript is a third of get()'s cost, and try costs nothing
                mtype = message["type"]
            except KeyError:
                mtype = None
        else:
            mtype = _message_type(message)
        if self.disconnected:
            raise ClientDisconnected("Client disconnected")
        state = self._state
        if mtype == "http.response.body" and (state == _HEAD_PENDING or state == _STREAMING):
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = _body_of(message)
            more_body = message.get("more_body", False)
            sent = self._sent = self._sent + len(body)
            limit = self._length_limit
            # length_mismatch(), inlined: it runs for every body message.
            if limit is not None and (sent > limit or (not more_body and sent < limit)):
                self._fail_length()
            if state == _HEAD_PENDING:
                self._state = _STREAMING
                self.writer.write_head(
                    self.status,
                    self._headers,
                    self._content_length,
                    body,
                    not more_body,
                    self._trailers,
                )
            elif body or not more_body:
                self.writer.write_body(body, not more_body)
            if more_body:
                if self.writer.write_paused:
                    await self.writer.wait_writable()
                    if self.disconnected:
                        raise ClientDisconnected("Client disconnected")
            elif self._trailers:
                self._state = _TRAILERS
                self._headers = []
            else:
                self._state = _DONE
                if self._waiter is not None:
                    self._wake()
            return
        if state == _START:
            if mtype == "http.response.start":
                # The start, inline: it runs once per response.
                try:
                    status = message["status"]
                except KeyError:
                    status = None
                if type(status) is not int:
                    raise TypeError(f"'status' must be an int, got {type(status).__name__}")
                if not 200 <= status <= 599:
                    raise RuntimeError(f"Invalid response status {status}: must be 200..599")
                headers, length = validate_headers(message.get("headers", ()))
                self._headers = headers
                self._content_length = length
                # RFC 9110 8.6: HEAD, 204 and 304 responses carry no body
                # whatever their Content-Length says: nothing to hold it to.
                if status == 204 or status == 304 or self.scope["method"] == "HEAD":
                    self._length_limit = None
                else:
                    self._length_limit = length
                # The app's promise to send trailers is kept even where they
                # cannot go on the wire: the response then ends when they
                # arrive, and the writer drops them.
                self._trailers = bool(message.get("trailers", False))
                self._sent = 0
                self.status = status
                self._state = _HEAD_PENDING
                return
            if mtype == "http.response.early_hint":
                if "http.response.early_hint" in self.scope["extensions"]:
                    links = message.get("links", ())
                    if isinstance(links, (str, bytes)):
                        raise TypeError("'links' must be a list of bytes")
                    headers, _ = validate_headers([(b"link", link) for link in links])
                    self.writer.write_informational(103, headers)
                return
            if mtype == "http.response.push":
                self._push(message)
                return
            _message_type(message)  # a missing or non-str type is a TypeError
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {mtype!r}.")
        if state == _HEAD_PENDING and mtype == "http.response.pathsend":
            await self._pathsend(message)
            return
        if (state == _HEAD_PENDING or state == _STREAMING) and mtype == (
            "http.response.zerocopysend"
        ):
            await self._zerocopysend(message)
            return
        if state == _TRAILERS and mtype == "http.response.trailers":
            headers, _ = validate_headers(message.get("headers", ()))
            self._headers.extend(headers)
            if not message.get("more_trailers", False):
                self.writer.write_trailers(self._headers)
                self._complete()
            return
        if mtype == "http.response.push":
            self._push(message)
            return
        _message_type(message)  # a missing or non-str type is a TypeError
        if state == _DONE:
            raise RuntimeError(
                f"Unexpected ASGI message {mtype!r} sent, after response already completed."
            )
        expected = {
            _HEAD_PENDING: "http.response.body",
            _STREAMING: "http.response.body",
            _TRAILERS: "http.response.trailers",
        }[state]
        raise RuntimeError(f"Expected ASGI message {expected!r}, but got {mtype!r}.")

    def _push(self, message: Mapping[str, Any]) -> None:
        # Server push is best effort (asgiref's extension): ignored where the
        # writer did not advertise it, and once the response is complete.
        push = getattr(self.writer, "push", None)
        if (
            push is not None
            and self._state != _DONE
            and "http.response.push" in self.scope["extensions"]
        ):
            push(message)

    def _finish_body(self) -> None:
        if self._trailers:
            self._state = _TRAILERS
            self._headers = []
        else:
            self._complete()

    def _complete(self) -> None:
        self._state = _DONE
        self._wake()

    def _fail_length(self) -> None:
        self._state = _DONE
        self.writer.abort()
        raise length_error(self._sent, self._content_length)

    async def _pathsend(self, message: Mapping[str, Any]) -> None:
        path = message.get("path")
        if not isinstance(path, str):
            raise TypeError("'path' must be a str")
        if not os.path.isabs(path):
            raise RuntimeError("'path' of http.response.pathsend must be absolute")
        # Opening a local file does not block in any way that matters; the
        # bytes themselves move with loop.sendfile.
        with open(path, "rb") as file:  # noqa: ASYNC230
            size = os.fstat(file.fileno()).st_size
            if self._length_limit is not None and self._length_limit != size:
                self._fail_length()
            self._state = _STREAMING
            self.writer.write_head(self.status, self._headers, size, b"", size == 0, False)
            if size:
                await self.writer.sendfile(file, 0, size)
                self.writer.write_body(b"", True)
        self._complete()

    async def _zerocopysend(self, message: Mapping[str, Any]) -> None:
        fd = message.get("file")
        fileno = fd if isinstance(fd, int) else getattr(fd, "fileno", lambda: None)()
        if not isinstance(fileno, int):
            raise TypeError("'file' must be a file object or descriptor")
        more_body = bool(message.get("more_body", False))
        offset = message.get("offset")
        count = message.get("count")
        with open(fileno, "rb", closefd=False) as file:  # noqa: ASYNC230
            if offset is None:
                offset = os.lseek(fileno, 0, os.SEEK_CUR)
            if count is None:
                count = os.fstat(fileno).st_size - offset
            if self._state == _HEAD_PENDING:
                self._state = _STREAMING
                length = self._content_length
                if length is None and not more_body:
                    length = count
                self.writer.write_head(self.status, self._headers, length, b"", False, False)
            self._sent += count
            limit = self._length_limit
            if limit is not None and length_mismatch(self._sent, limit, more_body):
                self._fail_length()
            if count:
                await self.writer.sendfile(file, offset, count)
            if message.get("offset") is None:
                os.lseek(fileno, offset + count, os.SEEK_SET)
        if not more_body:
            self.writer.write_body(b"", True)
            self._finish_body()

    # -- running the app ----------------------------------------------------------

    async def run(self, app: Callable[..., Awaitable[Any]]) -> None:
        """Run the app for this request; turn its failures into a 500 or a closed connection."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except asyncio.CancelledError:
            if not self.disconnected and self._state != _DONE:
                self.writer.abort()
            raise
        except BaseException as exc:
            if self.disconnected and isinstance(exc, OSError):
                return
            logger.error("Exception in ASGI application", exc_info=exc)
            self._fail()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                logger.error("ASGI callable returned a value other than None: %r", result)
            if self._state == _START and not self.disconnected:
                logger.error("ASGI callable returned without starting a response.")
                self._fail()
            elif self._state != _DONE and not self.disconnected:
                logger.error("ASGI callable returned without completing the response.")
                self._fail()
        finally:
            task_set = self.task_set
            if task_set is not None and self.task is not None:
                task_set.discard(self.task)

    def _fail(self) -> None:
        if self.disconnected or self._state == _DONE:
            return
        if self._state == _START or self._state == _HEAD_PENDING:
            # Nothing reached the client yet (a started head is held back until
            # the first body message): answer 500 on the same connection.
            self._state = _STREAMING
            self.status = 500
            self._trailers = False
            self.writer.write_head(
                500,
                _SERVER_ERROR_HEADERS,
                len(_SERVER_ERROR_BODY),
                _SERVER_ERROR_BODY,
                True,
                False,
            )
            self._complete()
        else:
            # Part of a response is out: close, so no client reads it as whole.
            self._state = _DONE
            self.writer.abort()


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


def scope_base(
    http_version: str,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
) -> dict[str, Any]:
    """The fields of an ``http`` scope that every request of a connection shares.

    A connection keeps one and gives `http_scope` a copy per request: copying
    a built dict costs about half of building a 14-key dict from a literal.
    """
    # A copy of a built dict and five stores cost less than a 14-key literal
    # (a connection's first scope is this very dict). The placeholders are
    # all replaced by `http_scope` before anyone sees them.
    base = _SCOPE_TEMPLATE.copy()
    base["http_version"] = http_version
    base["server"] = server
    base["client"] = client
    base["scheme"] = scheme
    base["root_path"] = root_path
    return base


_SCOPE_TEMPLATE: dict[str, Any] = {
    "type": "http",
    "asgi": ASGI_VERSION,
    "http_version": "1.1",
    "server": None,
    "client": None,
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": None,
    "state": None,
    "extensions": None,
}


def http_scope(
    base: dict[str, Any],
    method: bytes,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    app_state: dict[str, Any],
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ``http`` scope of asgiref's www spec 2.5, for any HTTP version.

    ``base`` is filled in and returned: a dict from `scope_base`, or a copy of
    one kept for a connection's later requests (its ``http_version`` is the
    caller's to override). ``path`` and ``raw_path`` include ``root_path`` (as
    Uvicorn does), so that routers that strip the prefix see the full path.
    """
    scope = base
    method_str = _METHODS.get(method)
    if method_str is None:
        method_str = method.decode("ascii")
    scope["method"] = method_str
    path = raw_path.decode("latin-1")
    if "%" in path:  # decode_path, inlined: it runs once per request
        path = unquote(path)
    root_path = scope["root_path"]
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = query_string
    scope["headers"] = headers
    # A shallow copy per request (the spec's lifespan state); a literal when
    # empty, as most apps' is, is cheaper than the method call.
    scope["state"] = app_state.copy() if app_state else {}
    scope["extensions"] = extensions
    return scope
