"""The HTTP/1.x connection core, sans-IO: request events in, response bytes out.

`H1Connection` wraps the `RequestParser` and owns what the server side of a
connection decides: response framing (Content-Length, chunked or
close-delimited, none for HEAD/1xx/204/304), keep-alive, chunked trailers.

Rules (RFC 9112 6.3, 9.3):
- A request's keep-alive comes from its version and its Connection header; the
  response may turn it off (``connection: close`` from the app, a body that can
  only be delimited by closing, a server shutting down), never on.
- A complete body known at head time gets a Content-Length; a streamed body
  without one is chunked on 1.1 and close-delimited on 1.0.
- The server owns framing: a Transfer-Encoding from the app is dropped.
"""

from __future__ import annotations

from http import HTTPStatus

from hurtle.protocol.events import Event, Request
from hurtle.protocol.h1.parser import RequestParser

# Every response carries a reason phrase: some clients (h2load among them)
# count a status line without one as a failure.
STATUS_LINES: dict[int, bytes] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii"))
    for status in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


# "content-length: N\r\n" by N: apps answer with few distinct lengths, and a
# dict hit is a fifth of formatting the line. Bounded.
_LENGTH_LINES: dict[int, bytes] = {}
_LENGTH_LINES_MAX = 1024

# The last length-framed HTTP/1.1 head built, with what it was built from and
# its keep-alive decision: (server block, status, content length, headers,
# whether the request allowed keep-alive, whether the response kept it, bytes).
# Most apps answer the same head over and over (a route's content type and
# length); a match costs a few compares instead of building the head.
_LAST_HEAD: tuple[bytes, int, int | None, list[tuple[bytes, bytes]], bool, bool, bytes] = (
    b"",
    0,
    None,
    [],
    False,
    False,
    b"",
)


def _length_line(length: int) -> bytes:
    line = _LENGTH_LINES.get(length)
    if line is None:
        line = b"content-length: %d\r\n" % length
        if len(_LENGTH_LINES) < _LENGTH_LINES_MAX:
            _LENGTH_LINES[length] = line
    return line


# Response fields the server writes itself: framing and Connection it owns;
# a Server or Date from the app replaces the server's own line.
_SERVER_FIELDS = frozenset((b"transfer-encoding", b"connection", b"server", b"date"))


def block_without(block: bytes, names: tuple[bytes, ...]) -> bytes:
    """The server's ``name: value\r\n`` block without the lines of ``names`` (lowercase).

    RFC 9110 5.3: Server and Date are singletons, so when an app sends its
    own, the server's line must go rather than follow it (some clients, such
    as aiohttp, reject a response with two). Rare: built per response.
    """
    return b"".join(
        line + b"\r\n"
        for line in block.split(b"\r\n")
        if line and line.partition(b":")[0].lower() not in names
    )


def replaced_defaults(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, ...]:
    """The server's default fields (Server, Date) that ``headers`` carry themselves."""
    found: tuple[bytes, ...] = ()
    for name, _ in headers:
        if name == b"server" or name == b"date":
            found += (name,)
    return found


_MODE_LENGTH = 0
_MODE_CHUNKED = 1
_MODE_CLOSE = 2
_MODE_NONE = 3

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(status: int, reason: str, default_block: bytes = b"") -> bytes:
    """A complete plain-text response for a rejected request; the connection closes after it."""
    body = f"{HTTPStatus(status).phrase}: {reason}\n".encode("ascii", "replace")
    return (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)
        + b"connection: close\r\n"
        + default_block
        + b"\r\n"
        + body
    )


class H1Connection:
    """Server side of one HTTP/1.x connection; one request/response at a time."""

    __slots__ = (
        "_mode",
        "_trailers",
        "closing",
        "keep_alive",
        "parser",
    )

    def __init__(self, parser: RequestParser) -> None:
        self.parser = parser
        #: The keep-alive decision for the current response, made by
        #: `response_head`; `closing` (a server shutting down) forces it off.
        self.keep_alive = True
        self.closing = False
        self._mode = _MODE_NONE
        self._trailers = False

    # The connection layer may feed and pull from ``parser`` directly (one
    # call fewer per request); these are the same, for symmetry.
    def receive_data(self, data: bytes) -> None:
        self.parser.receive_data(data)

    def next_event(self) -> Event:
        return self.parser.next_event()

    @property
    def request(self) -> Request | None:
        """The request being answered (the parser's latest head)."""
        return self.parser.request

    def response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        default_block: bytes,
        content_length: int | None,
        body: bytes,
        end: bool,
        trailers: bool = False,
    ) -> bytes:
        """Bytes of the head (and of ``body``, framed) for a final response.

        ``headers`` must not hold Content-Length or Transfer-Encoding: the
        framing is decided here, from ``content_length`` (the app's declared
        length, or None) and whether ``body`` is all there is (``end``).
        """
        request = self.parser.request
        if request is None:
            raise RuntimeError("response_head() before a request")
        global _LAST_HEAD
        last_block, last_status, last_length, last_headers, last_open, last_keep, last_head = (
            _LAST_HEAD
        )
        may_keep = request.keep_alive and not self.closing
        if (
            last_block is default_block
            and last_status == status
            and last_length == content_length
            and last_open == may_keep
            and not trailers
            and request.http_version == "1.1"
            and request.method != b"HEAD"
            and last_headers == headers
        ):
            # The same head as the last response built (by any connection),
            # from the same inputs: the length-framed case below, not rebuilt.
            # (_trailers is left as it was: only the chunked mode reads it.)
            self.keep_alive = last_keep
            self._mode = _MODE_LENGTH
            return last_head + body
        line = STATUS_LINES.get(status)
        parts = [line if line is not None else status_line(status)]
        keep_alive = may_keep
        replaced: tuple[bytes, ...] = ()
        for name, value in headers:
            if name in _SERVER_FIELDS:
                if name == b"connection":
                    # Hop-by-hop and owned by the server: the app may ask to
                    # close, and the server writes the one Connection header.
                    if b"close" in value.lower():
                        keep_alive = False
                    continue
                if name == b"transfer-encoding":
                    continue
                replaced += (name,)  # the app's Server or Date
            parts.append(name + b": " + value + b"\r\n")
        block = block_without(default_block, replaced) if replaced else default_block

        http10 = request.http_version == "1.0"
        trailers = trailers and not http10 and request.te_trailers
        self._trailers = trailers
        if status < 200 or status == 204 or status == 304:
            # RFC 9110 8.6: a 304 may state the length of what it stands for;
            # 1xx and 204 never carry the field.
            framing = b""
            if status == 304 and content_length is not None:
                framing = _length_line(content_length)
            mode = _MODE_NONE
        elif trailers:
            # Trailers need chunked framing even when the length is known, and
            # RFC 9112 6.2 forbids Content-Length alongside it.
            framing = b"transfer-encoding: chunked\r\n"
            mode = _MODE_CHUNKED
        elif content_length is not None or end:
            if content_length is None and (body or request.method != b"HEAD"):
                content_length = len(body)
            # HEAD without a declared length: no length to state.
            framing = b"" if content_length is None else _length_line(content_length)
            mode = _MODE_LENGTH
        elif not http10:
            framing = b"transfer-encoding: chunked\r\n"
            mode = _MODE_CHUNKED
        else:
            framing = b""
            mode = _MODE_CLOSE
            keep_alive = False

        self.keep_alive = keep_alive
        if not keep_alive:
            framing += b"connection: close\r\n"
        elif http10:
            framing += b"connection: keep-alive\r\n"
        parts.append(framing + block + b"\r\n")
        if mode == _MODE_NONE or request.method == b"HEAD":
            self._mode = _MODE_NONE
            return b"".join(parts)
        self._mode = mode
        if mode == _MODE_LENGTH:
            if content_length is not None and not http10:
                # Remembered for the next response with the same head (a
                # length-framed mode already excludes 1xx, 204, 304, HEAD and
                # trailers); the list is the cycle's validated copy.
                _LAST_HEAD = (
                    default_block,
                    status,
                    content_length,
                    headers,
                    may_keep,
                    keep_alive,
                    b"".join(parts),
                )
            # response_body() inline for the common case: the body as it is.
            parts.append(body)
        elif body or end:
            parts.append(self.response_body(body, end))
        return b"".join(parts)

    def response_body(self, data: bytes, end: bool) -> bytes:
        mode = self._mode
        if mode == _MODE_LENGTH or mode == _MODE_CLOSE:
            return data
        if mode == _MODE_CHUNKED:
            if data:
                data = b"%x\r\n" % len(data) + data + b"\r\n"
            if end and not self._trailers:
                return data + b"0\r\n\r\n"
            return data
        return b""

    def response_trailers(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        """The last chunk with the trailer section (RFC 9112 7.1.2)."""
        if not self._trailers or self._mode != _MODE_CHUNKED:
            return b""
        return b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n"

    @property
    def sends_body(self) -> bool:
        """The current response has a body on the wire (not HEAD, 1xx, 204 or 304)."""
        return self._mode != _MODE_NONE

    @property
    def chunked(self) -> bool:
        return self._mode == _MODE_CHUNKED

    @property
    def expects_trailers(self) -> bool:
        return self._trailers and self._mode == _MODE_CHUNKED

    def informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """A 1xx interim response (103 Early Hints); HTTP/1.0 clients get none."""
        request = self.parser.request
        if request is None or request.http_version == "1.0":
            return b""
        return status_line(status) + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"

    def start_next_cycle(self) -> int:
        """Ready for the next request; returns the bytes already buffered for it."""
        self.keep_alive = True
        return self.parser.start_next_cycle()
