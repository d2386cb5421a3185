"""Strict, incremental HTTP/1.x request parser (RFC 9112), sans-IO.

Feed bytes with `receive_data`, pull events with `next_event`: a `Request`
head, zero or more `Data`, one `EndOfMessage`, then `PAUSED` until the
connection calls `start_next_cycle` (so a pipelined request is not parsed
before the previous response is done). `NEED_DATA` means: feed more bytes.

A whole head is parsed in one pass once its blank line is buffered; only
partial heads and bodies take the incremental path. Every rejection raises a
`ProtocolError` carrying the status to answer. The rules that stop request
smuggling (DESIGN.md, RFC 9112 6.1 and 6.3) are enforced here and nowhere else.
"""

from __future__ import annotations

from hurtle.protocol.errors import (
    BadRequest,
    ContentTooLarge,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    MethodNotImplemented,
    ProtocolError,
    URITooLong,
    VersionNotSupported,
)
from hurtle.protocol.events import NEED_DATA, PAUSED, Data, EndOfMessage, Event, Request
from hurtle.protocol.h1 import abnf

_HEAD = 0
_BODY = 1
_CHUNK_SIZE = 2
_CHUNK_DATA = 3
_CHUNK_CRLF = 4
_TRAILERS = 5
_DONE = 6
_ERROR = 7

_SPECIAL_HEADERS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"te", b"upgrade")
)
_END = EndOfMessage()
# RFC 9112 2.2: a server SHOULD ignore at least one empty line before a
# request-line; a few are tolerated, a stream of them is an attack.
_MAX_LEADING_EMPTY_LINES = 4
# 16 hex digits cover any size that fits in 64 bits; more is never legitimate.
_MAX_CHUNK_SIZE_DIGITS = 16
_ABSOLUTE_PREFIX = (b"http://", b"https://")


class RequestParser:
    """One per connection; see the module docstring for the calling sequence."""

    __slots__ = (
        "_body_total",
        "_buf",
        "_chunk_ext_total",
        "_empty_lines",
        "_remaining",
        "_state",
        "max_body",
        "max_chunk_ext",
        "max_fields",
        "max_head",
        "max_line",
    )

    def __init__(
        self,
        *,
        max_line: int = 8190,
        max_fields: int = 100,
        max_head: int = 65536,
        max_body: int | None = None,
        max_chunk_ext: int = 4096,
    ) -> None:
        self.max_line = max_line
        self.max_fields = max_fields
        self.max_head = max_head
        self.max_body = max_body
        self.max_chunk_ext = max_chunk_ext
        self._buf = b""
        self._state = _HEAD
        self._remaining = 0
        self._body_total = 0
        self._chunk_ext_total = 0
        self._empty_lines = 0

    # -- feeding -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._buf:
            self._buf += data
        else:
            self._buf = data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    @property
    def trailing_data(self) -> bytes:
        """Bytes after the current request, for a protocol that takes over (upgrade)."""
        return self._buf

    @property
    def in_partial_head(self) -> bool:
        """A head has started arriving but is not complete (the slowloris window)."""
        return self._state == _HEAD and bool(self._buf)

    @property
    def paused(self) -> bool:
        return self._state == _DONE

    def start_next_cycle(self) -> None:
        """The response to the current request is done: parse the next one.

        Allowed once the whole body is in, even if its `EndOfMessage` was not
        pulled yet (an app run eagerly can answer a GET before that).
        """
        if self._state == _BODY and self._remaining == 0:
            self._state = _DONE
        if self._state != _DONE:
            raise RuntimeError("start_next_cycle() before the request was complete")
        self._state = _HEAD

    # -- events --------------------------------------------------------------

    def next_event(self) -> Event:
        state = self._state
        try:
            if state == _HEAD:
                return self._parse_head()
            if state == _BODY:
                return self._read_body()
            if state == _DONE:
                return PAUSED
            if state == _ERROR:
                raise BadRequest("Request after a protocol error")
            return self._read_chunked()
        except ProtocolError:
            self._state = _ERROR
            raise

    def _parse_head(self) -> Event:
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] == 13:  # "\r": empty lines before the request line
            while buf[:2] == b"\r\n":
                self._empty_lines += 1
                if self._empty_lines > _MAX_LEADING_EMPTY_LINES:
                    raise BadRequest("Too many empty lines before the request line")
                buf = buf[2:]
            self._buf = buf
            if not buf:
                return NEED_DATA
        end = buf.find(b"\r\n\r\n")
        if end == -1:
            return self._check_partial_head(buf)
        if end + 4 > self.max_head:
            raise HeaderFieldsTooLarge("Request head too large")

        line_end = buf.find(b"\r\n")
        if line_end > self.max_line:
            raise URITooLong("Request line too long")
        match = abnf.REQUEST_LINE.fullmatch(buf, 0, line_end)
        if match is None:
            raise BadRequest("Invalid request line")
        method, target, major, minor = match.groups()
        if major != b"1":
            raise VersionNotSupported("HTTP version not supported")
        # RFC 9110 6.2: a 1.x request with a higher minor is answered as 1.1.
        http_version = "1.0" if minor == b"0" else "1.1"

        block_end = end + 2
        if line_end == end:
            fields = []
        else:
            if abnf.HEADER_BLOCK.fullmatch(buf, line_end + 2, block_end) is None:
                raise BadRequest("Invalid header line")
            fields = abnf.HEADER_FIELD.findall(buf, line_end + 2, block_end)
            if len(fields) > self.max_fields:
                raise HeaderFieldsTooLarge("Too many header fields")
        self._buf = buf[end + 4 :]
        self._empty_lines = 0

        headers = [(name.lower(), value) for name, value in fields]
        request = self._interpret(method, target, http_version, headers)
        if request.chunked:
            self._state = _CHUNK_SIZE
            self._body_total = 0
            self._chunk_ext_total = 0
        elif request.content_length:
            self._state = _BODY
            self._remaining = request.content_length
        else:
            self._state = _BODY
            self._remaining = 0
        return request

    def _check_partial_head(self, buf: bytes) -> Event:
        # The head is incomplete: fail as soon as the bytes so far are already
        # over a limit or malformed, rather than waiting for the timeout.
        line_end = buf.find(b"\r\n")
        if line_end == -1:
            # A CR at the very end may be the first half of the line's CRLF.
            if len(buf) - buf.endswith(b"\r") > self.max_line:
                raise URITooLong("Request line too long")
        elif line_end > self.max_line:
            raise URITooLong("Request line too long")
        else:
            match = abnf.REQUEST_LINE.fullmatch(buf, 0, line_end)
            if match is None:
                raise BadRequest("Invalid request line")
            if match.group(3) != b"1":
                raise VersionNotSupported("HTTP version not supported")
        if len(buf) >= self.max_head:
            raise HeaderFieldsTooLarge("Request head too large")
        if buf.count(b"\n") != buf.count(b"\r\n"):
            raise BadRequest("Bare LF in request head")
        return NEED_DATA

    def _interpret(
        self, method: bytes, target: bytes, http_version: str, headers: list[tuple[bytes, bytes]]
    ) -> Request:
        host_count = 0
        content_length: int | None = None
        transfer_encoding: bytes | None = None
        keep_alive = http_version == "1.1"
        close = False
        expect_continue = False
        te_trailers = False
        upgrade: bytes | None = None
        connection_upgrade = False

        for name, value in headers:
            if name not in _SPECIAL_HEADERS:
                continue
            if name == b"host":
                host_count += 1
            elif name == b"content-length":
                if content_length is not None:
                    raise BadRequest("Duplicate Content-Length")
                if abnf.CONTENT_LENGTH.fullmatch(value) is None:
                    raise BadRequest("Invalid Content-Length")
                if len(value) > 18:
                    raise ContentTooLarge("Content-Length too large")
                content_length = int(value)
            elif name == b"transfer-encoding":
                transfer_encoding = (
                    value if transfer_encoding is None else transfer_encoding + b"," + value
                )
            elif name == b"connection":
                for token in value.lower().split(b","):
                    token = token.strip(b" \t")
                    if token == b"close":
                        close = True
                    elif token == b"keep-alive":
                        keep_alive = True
                    elif token == b"upgrade":
                        connection_upgrade = True
            elif name == b"expect":
                if value.lower() == b"100-continue":
                    expect_continue = True
                else:
                    raise ExpectationFailed("Unsupported expectation")
            elif name == b"te":
                te_trailers = te_trailers or any(
                    t.strip(b" \t").split(b";")[0] == b"trailers" for t in value.lower().split(b",")
                )
            else:  # upgrade
                upgrade = value

        if close:  # "close" wins over "keep-alive", whatever their order
            keep_alive = False
        if http_version == "1.1" and host_count != 1:
            raise BadRequest("Missing Host header" if host_count == 0 else "Duplicate Host header")
        if host_count > 1:
            raise BadRequest("Duplicate Host header")

        chunked = False
        if transfer_encoding is not None:
            # RFC 9112 6.1 and 6.3: both framings at once, or a transfer coding
            # on 1.0, is how two parsers are made to disagree: refuse.
            if content_length is not None:
                raise BadRequest("Both Transfer-Encoding and Content-Length")
            if http_version == "1.0":
                raise BadRequest("Transfer-Encoding on HTTP/1.0")
            codings = [c.strip(b" \t").lower() for c in transfer_encoding.split(b",")]
            if codings[-1] != b"chunked":
                raise BadRequest("Transfer-Encoding must end with chunked")
            if len(codings) > 1:
                if b"chunked" in codings[:-1]:
                    raise BadRequest("chunked applied more than once")
                raise MethodNotImplemented("Unsupported transfer coding")
            chunked = True
        if (
            content_length is not None
            and self.max_body is not None
            and content_length > self.max_body
        ):
            raise ContentTooLarge("Request body too large")

        path, query = self._split_target(method, target)
        if not connection_upgrade:
            upgrade = None
        return Request(
            method,
            target,
            path,
            query,
            http_version,
            headers,
            keep_alive,
            content_length,
            chunked,
            expect_continue,
            te_trailers,
            upgrade,
        )

    @staticmethod
    def _split_target(method: bytes, target: bytes) -> tuple[bytes, bytes]:
        # RFC 9112 3.2: origin-form, absolute-form (accepted for proxies),
        # asterisk-form (OPTIONS only), authority-form (CONNECT only).
        if method == b"CONNECT":
            raise MethodNotImplemented("CONNECT is not supported")
        if target[0] == 0x2F:  # "/"
            path, _, query = target.partition(b"?")
            return path, query
        if target == b"*":
            if method != b"OPTIONS":
                raise BadRequest("Asterisk-form target is only allowed with OPTIONS")
            return b"*", b""
        lowered = target[:8].lower()
        if lowered.startswith(_ABSOLUTE_PREFIX):
            rest = target[target.index(b"//") + 2 :]
            cut = len(rest)
            for sep in (b"/", b"?"):
                i = rest.find(sep)
                if i != -1 and i < cut:
                    cut = i
            if cut == 0:
                raise BadRequest("Absolute-form target without authority")
            path_query = rest[cut:]
            if path_query[:1] != b"/":
                path_query = b"/" + path_query
            path, _, query = path_query.partition(b"?")
            return path, query
        raise BadRequest("Invalid request target")

    # -- bodies --------------------------------------------------------------

    def _read_body(self) -> Event:
        remaining = self._remaining
        if remaining == 0:
            self._state = _DONE
            return _END
        buf = self._buf
        if not buf:
            return NEED_DATA
        if len(buf) <= remaining:
            self._buf = b""
            self._remaining = remaining - len(buf)
            return Data(buf)
        self._buf = buf[remaining:]
        self._remaining = 0
        return Data(buf[:remaining])

    def _read_chunked(self) -> Event:
        state = self._state
        buf = self._buf
        if state == _CHUNK_DATA:
            if not buf:
                return NEED_DATA
            remaining = self._remaining
            if len(buf) <= remaining:
                self._buf = b""
                remaining -= len(buf)
                data = buf
            else:
                self._buf = buf[remaining:]
                data = buf[:remaining]
                remaining = 0
            self._remaining = remaining
            if remaining == 0:
                self._state = _CHUNK_CRLF
            return Data(data)
        if state == _CHUNK_CRLF:
            if len(buf) < 2:
                if buf and buf != b"\r":
                    raise BadRequest("Chunk data not followed by CRLF")
                return NEED_DATA
            if buf[:2] != b"\r\n":
                raise BadRequest("Chunk data not followed by CRLF")
            self._buf = buf = buf[2:]
            self._state = state = _CHUNK_SIZE
        if state == _CHUNK_SIZE:
            line_end = buf.find(b"\r\n")
            max_line = _MAX_CHUNK_SIZE_DIGITS + self.max_chunk_ext + 2
            if line_end == -1:
                if b"\n" in buf:
                    raise BadRequest("Bare LF in chunk size line")
                digits = abnf.HEX_PREFIX.match(buf)
                if digits is not None and len(digits.group().lstrip(b"0")) > _MAX_CHUNK_SIZE_DIGITS:
                    raise ContentTooLarge("Chunk size too large")
                if len(buf) - buf.endswith(b"\r") > max_line:
                    raise BadRequest("Chunk size line too long")
                return NEED_DATA
            if line_end > max_line:
                raise BadRequest("Chunk size line too long")
            match = abnf.CHUNK_LINE.fullmatch(buf, 0, line_end + 2)
            if match is None:
                raise BadRequest("Invalid chunk size line")
            size_hex, extensions = match.groups()
            if extensions:
                self._chunk_ext_total += len(extensions)
                if self._chunk_ext_total > self.max_chunk_ext:
                    raise BadRequest("Chunk extensions too long")
            if len(size_hex.lstrip(b"0")) > _MAX_CHUNK_SIZE_DIGITS:
                raise ContentTooLarge("Chunk size too large")
            size = int(size_hex, 16)
            self._buf = buf = buf[line_end + 2 :]
            if size == 0:
                self._state = _TRAILERS
            else:
                self._body_total += size
                if self.max_body is not None and self._body_total > self.max_body:
                    raise ContentTooLarge("Request body too large")
                self._remaining = size
                self._state = _CHUNK_DATA
                return self._read_chunked()
        # trailers: zero or more header fields, then an empty line (RFC 9112 7.1.2)
        if buf[:2] == b"\r\n":
            self._buf = buf[2:]
            self._state = _DONE
            return _END
        end = buf.find(b"\r\n\r\n")
        if end == -1:
            if len(buf) >= self.max_head:
                raise HeaderFieldsTooLarge("Trailer section too large")
            if buf.count(b"\n") != buf.count(b"\r\n"):
                raise BadRequest("Bare LF in trailer section")
            return NEED_DATA
        if end + 4 > self.max_head:
            raise HeaderFieldsTooLarge("Trailer section too large")
        if abnf.HEADER_BLOCK.fullmatch(buf, 0, end + 2) is None:
            raise BadRequest("Invalid trailer field")
        fields = abnf.HEADER_FIELD.findall(buf, 0, end + 2)
        if len(fields) > self.max_fields:
            raise HeaderFieldsTooLarge("Too many trailer fields")
        self._buf = buf[end + 4 :]
        self._state = _DONE
        return EndOfMessage([(name.lower(), value) for name, value in fields])
