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
# Events built slot by slot: a Python __init__ call less per request.
_new_event = object.__new__
# Bound once: two attribute loads fewer per request.
_request_head = abnf.REQUEST_HEAD.match
_plain_field_lines = abnf.FIELD_LINE_PLAIN.findall


class RequestParser:
    """One per connection; see the module docstring for the calling sequence.

    The buffer is consumed by moving an offset (``_pos``), never by slicing off
    what was read: one read holding thousands of tiny chunks or pipelined
    requests must cost linear time, not a copy of the rest per event. While a
    head or trailer section is incomplete, ``_scan`` marks how far the bytes
    were already searched and checked, so a head that arrives a byte at a
    time is not rescanned from its start on every byte.
    """

    __slots__ = (
        "_body_total",
        "_buf",
        "_chunk_ext_total",
        "_empty_lines",
        "_line_checked",
        "_pos",
        "_remaining",
        "_scan",
        "_state",
        "buffered",
        "max_body",
        "max_chunk_ext",
        "max_fields",
        "max_head",
        "max_line",
        "request",
    )

    def __init__(
        self,
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
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scan = 0
        self._line_checked = False
        self._state = _HEAD
        self._remaining = 0
        # _body_total and _chunk_ext_total are set when a chunked body starts
        # (_interpret), the only state that reads them: two stores fewer per
        # connection.
        self._empty_lines = 0
        #: The latest request head, the one being answered while paused.
        self.request: Request | None = None
        #: Bytes received and not yet turned into events. A plain attribute,
        #: brought up to date by receive_data and next_event (the only
        #: methods that move the buffer; _read_body for next_event): the
        #: connection reads it after every request, and a property cost
        #: about 600 instructions more per read on 3.11 than the places that
        #: keep it.
        self.buffered = 0

    # -- feeding -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            # The common case: everything before was consumed; keep the bytes
            # object as it is (no copy) and index into it.
            self._buf = data
            self._pos = 0
            self._scan = 0
            self.buffered = len(data)
            return
        if isinstance(buf, bytearray):
            if pos:
                del buf[:pos]
        else:
            # Bytes are arriving in pieces: accumulate in a bytearray so that
            # appending is amortised O(1) rather than a copy of all so far.
            buf = bytearray(memoryview(buf)[pos:])
        if pos:
            self._scan = max(self._scan - pos, 0)
            self._pos = 0
        buf += data
        self._buf = buf
        self.buffered = len(buf)

    def _take(self, end: int) -> bytes:
        """The unread bytes up to ``end`` as bytes, consumed."""
        buf = self._buf
        pos = self._pos
        self._pos = end
        if type(buf) is bytes:
            # One copy (none for the whole buffer: the object itself).
            return buf[pos:end]
        return bytes(memoryview(buf)[pos:end])

    @property
    def trailing_data(self) -> bytes:
        """Bytes after the current request, for a protocol that takes over (upgrade)."""
        return bytes(self._buf[self._pos :])

    @property
    def in_partial_head(self) -> bool:
        """A head has started arriving but is not complete (the slowloris window)."""
        return self._state == _HEAD and self._pos < len(self._buf)

    @property
    def paused(self) -> bool:
        return self._state == _DONE

    def start_next_cycle(self) -> int:
        """The response to the current request is done: parse the next one.

        Allowed once the whole body is in, even if its `EndOfMessage` was not
        pulled yet (an app run eagerly can answer a GET before that). Returns
        `buffered` (pipelined bytes waiting), which the caller needs next.
        """
        state = self._state
        if state != _DONE and (state != _BODY or self._remaining):
            raise RuntimeError("start_next_cycle() before the request was complete")
        self._state = _HEAD
        self.request = None
        return self.buffered

    # -- events --------------------------------------------------------------

    def next_event(self) -> Event:
        state = self._state
        try:
            if state == _HEAD:
                event = self._parse_head()
            elif state == _BODY:
                # It keeps ``buffered`` itself, from the lengths it has at hand.
                return self._read_body()
            elif state == _DONE:
                return PAUSED
            elif state == _ERROR:
                raise BadRequest("Request after a protocol error")
            else:
                event = self._read_chunked()
        except ProtocolError:
            self._state = _ERROR
            self.buffered = len(self._buf) - self._pos
            raise
        self.buffered = len(self._buf) - self._pos
        return event

    def _parse_head(self) -> Event:
        # The fast path: a whole head in a bytes buffer, its request line and
        # every field line plain (abnf.REQUEST_HEAD, abnf.FIELD_LINE_PLAIN),
        # within the limits, no framing header but Host, one well-formed
        # Content-Length and one plain Connection. Anything else, and every rejection, is decided by
        # _parse_head_careful and _interpret, which start over: a request
        # either path accepts comes out the same (tests/protocol/
        # test_h1_fast_path.py compares them).
        buf = self._buf
        pos = self._pos
        # A head that arrived in pieces has a scan mark (or is a bytearray):
        # searching it from its start again would cost quadratic time.
        if self._scan or type(buf) is not bytes:
            return self._parse_head_careful()
        # ``lines`` counts the LFs before the blank line: the request line's
        # and every field line's but the last, as many as there are fields
        # when each line is one (the count below that proves the block).
        if pos:
            # A pipelined head: found by offset, as a partition would copy
            # the rest of the buffer again for every request in it.
            end = buf.find(b"\r\n\r\n", pos)
            if end == -1:
                return self._parse_head_careful()
            lines = buf.count(b"\n", pos, end)
            rest = None
        else:
            # A fresh buffer, the common case: partition takes fewer
            # instructions than find (its arguments are not parsed from a
            # tuple), and what follows the head comes out as its own bytes,
            # which becomes the buffer when it is this request's body.
            head, found, rest = buf.partition(b"\r\n\r\n")
            if not found:
                return self._parse_head_careful()
            end = len(head)
            lines = head.count(b"\n")
        if end + 4 - pos > self.max_head:
            return self._parse_head_careful()
        match = _request_head(buf, pos)
        if match is None:
            return self._parse_head_careful()
        method, target, minor = match.groups()
        start = match.end()  # the first field line
        fields = _plain_field_lines(buf, start, end + 2)
        if start - 2 - pos > self.max_line or len(fields) != lines or lines > self.max_fields:
            return self._parse_head_careful()
        # No scan mark means no partial head was seen, so _scan and
        # _line_checked are as a head's end leaves them; empty lines before
        # this request may have been counted, though.
        self._empty_lines = 0
        # RFC 9110 6.2: a 1.x request with a higher minor is answered as 1.1.
        http_version = "1.0" if minor == b"0" else "1.1"

        # Names lowercased in the loop that spots the framing headers. Any
        # framing header besides Host, a first well-formed Content-Length and
        # a first Connection of close or keep-alive goes to _interpret, which
        # walks every field again from the first.
        headers: list[tuple[bytes, bytes]] = []
        host_count = 0
        content_length: int | None = None
        keep_alive = minor != b"0"
        connection: bytes | None = None
        for name, value in fields:
            name = name.lower()
            # Not a bound ``append`` kept aside: 3.11 runs list.append called
            # as a method without a call at all.
            headers.append((name, value))
            if name not in _SPECIAL_HEADERS:
                continue
            if name == b"host":
                host_count += 1
            elif (
                name == b"content-length"
                and content_length is None
                # bytes.isdigit: ASCII digits only, and False when empty: the
                # same test as abnf.CONTENT_LENGTH without a regex call.
                and value.isdigit()
                and len(value) <= 18
            ):
                content_length = int(value)
            elif (
                # One Connection with the single token close or keep-alive
                # (the close scenario's request): what _interpret decides.
                name == b"connection"
                and connection is None
                and ((connection := value.lower()) == b"close" or connection == b"keep-alive")
            ):
                keep_alive = connection == b"keep-alive"
            else:
                self._pos = end + 4
                request = self.request = self._interpret(
                    method, target, http_version, headers, fields
                )
                return request
        if http_version == "1.1":
            if host_count != 1:
                raise BadRequest(
                    "Missing Host header" if host_count == 0 else "Duplicate Host header"
                )
        elif host_count > 1:
            raise BadRequest("Duplicate Host header")
        if content_length is None:
            self._remaining = 0
            has_body = False
        else:
            max_body = self.max_body
            if max_body is not None and content_length > max_body:
                raise ContentTooLarge("Request body too large")
            self._remaining = content_length
            has_body = content_length != 0
        if rest is not None and (
            not rest or (content_length is not None and len(rest) <= content_length)
        ):
            # What follows the head is nothing, or this request's body: it
            # becomes the buffer, and the body is handed on without a second
            # copy. (Anything longer may hold pipelined heads, which must not
            # be partitioned, copied, again: they stay behind an offset.)
            self._buf = rest
            self._pos = 0
        else:
            self._pos = end + 4
        if target[0] == 0x2F and method != b"CONNECT":  # origin-form, the common case
            path, _, query = target.partition(b"?")
        else:
            path, query = self._split_target(method, target)
        self._state = _BODY
        request = self.request = _new_event(Request)
        request.method = method
        request.target = target
        request.path = path
        request.query = query
        request.http_version = http_version
        request.headers = headers
        request.keep_alive = keep_alive
        request.content_length = content_length
        request.chunked = False
        request.expect_continue = False
        request.te_trailers = False
        request.upgrade = None
        request.has_body = has_body
        return request

    def _parse_head_careful(self) -> Event:
        """Any head the fast path does not take: in pieces, after empty lines,
        too long, malformed, fields with trailing whitespace. Decides every
        rejection, in the order the checks have always run."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if pos >= size:
            return NEED_DATA
        if buf[pos] == 13:  # "\r": empty lines before the request line
            while buf[pos : pos + 2] == b"\r\n":
                self._empty_lines += 1
                if self._empty_lines > _MAX_LEADING_EMPTY_LINES:
                    raise BadRequest("Too many empty lines before the request line")
                pos += 2
            self._pos = pos
            if pos >= size:
                return NEED_DATA
        scan = self._scan
        end = buf.find(b"\r\n\r\n", scan - 3 if scan - 3 > pos else pos)
        if end == -1:
            return self._check_partial_head(buf, pos)
        if end + 4 - pos > self.max_head:
            raise HeaderFieldsTooLarge("Request head too large")
        if type(buf) is not bytes:
            # Header names and values must come out as bytes: convert what is
            # buffered once, then go on by offset as usual.
            buf = self._buf = bytes(buf[pos:])
            end -= pos
            pos = 0

        line_end = buf.find(b"\r\n", pos)
        if line_end - pos > self.max_line:
            raise URITooLong("Request line too long")
        match = abnf.REQUEST_LINE.fullmatch(buf, pos, line_end)
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
            fields = abnf.FIELD_LINE.findall(buf, line_end + 2, block_end)
            if len(fields) != buf.count(b"\n", line_end + 2, block_end):
                raise BadRequest("Invalid header line")
            if len(fields) > self.max_fields:
                raise HeaderFieldsTooLarge("Too many header fields")
        self._pos = end + 4
        self._scan = 0
        self._line_checked = False
        self._empty_lines = 0

        request = self.request = self._interpret(method, target, http_version, [], fields)
        return request

    def _check_new_bytes(self, buf: bytes | bytearray, pos: int, what: str) -> int:
        """Refuse bare LF among the bytes not checked before; return where they start."""
        scan = self._scan
        start = scan if scan > pos else pos
        if buf.count(b"\n", start) != buf.count(b"\r\n", start - 1 if start > pos else pos):
            raise BadRequest(f"Bare LF in {what}")
        return start

    def _check_partial_head(self, buf: bytes | bytearray, pos: int) -> Event:
        # The head is incomplete: fail as soon as the bytes so far are already
        # over a limit or malformed, rather than waiting for the timeout.
        size = len(buf)
        start = self._check_new_bytes(buf, pos, "request head")
        if not self._line_checked:
            line_end = buf.find(b"\r\n", start - 1 if start > pos else pos)
            if line_end == -1:
                # A CR at the very end may be the first half of the line's CRLF.
                if size - pos - buf.endswith(b"\r") > self.max_line:
                    raise URITooLong("Request line too long")
            elif line_end - pos > self.max_line:
                raise URITooLong("Request line too long")
            else:
                match = abnf.REQUEST_LINE.fullmatch(buf, pos, line_end)
                if match is None:
                    raise BadRequest("Invalid request line")
                if match.group(3) != b"1":
                    raise VersionNotSupported("HTTP version not supported")
                self._line_checked = True
        if size - pos >= self.max_head:
            raise HeaderFieldsTooLarge("Request head too large")
        self._scan = size
        return NEED_DATA

    def _interpret(
        self,
        method: bytes,
        target: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        fields: list[tuple[bytes, bytes]],
    ) -> Request:
        """The request of a validated head with framing headers besides one Content-Length.

        ``headers`` holds the fields `_parse_head` lowercased before it met
        one it leaves to this careful walk; the rest of ``fields`` is
        lowercased here. Every field is interpreted from the first, so the
        first error in field order is the one raised, as it always was.
        """
        host_count = 0
        content_length: int | None = None
        transfer_encoding: bytes | None = None
        keep_alive = http_version == "1.1"
        close = False
        expect_continue = False
        te_trailers = False
        upgrade: bytes | None = None
        connection_upgrade = False

        append = headers.append
        for name, value in fields[len(headers) :]:
            append((name.lower(), value))
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

        if target[0] == 0x2F and method != b"CONNECT":  # origin-form, the common case
            path, _, query = target.partition(b"?")
        else:
            path, query = self._split_target(method, target)
        if not connection_upgrade:
            upgrade = None
        if chunked:
            self._state = _CHUNK_SIZE
            self._body_total = 0
            self._chunk_ext_total = 0
        else:
            self._state = _BODY
            self._remaining = content_length or 0
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

    def whole_body(self) -> bytes | None:
        """All of a Content-Length body at once, when all of it is buffered.

        Called right after its `Request`: the body is taken as the `Data`
        (``last``) and `EndOfMessage` events it would otherwise come as, and
        `start_next_cycle` is allowed. None, taking nothing, when the body is
        chunked, empty, or not all here yet; the events then follow as usual.
        A request with a small body nearly always arrives in one read with
        its head, and an adapter that has it before the app starts needs no
        loop turn, no event and no wake-up to hand it over.
        """
        remaining = self._remaining
        if self._state != _BODY or not remaining:
            return None
        buf = self._buf
        pos = self._pos
        end = pos + remaining
        size = len(buf)
        if size < end:
            return None
        self._remaining = 0
        self._pos = end
        self.buffered = size - end
        # A fresh buffer of just the body (what the head's fast path leaves
        # when nothing follows the body) is handed on whole: slicing all of a
        # bytes object returns the object itself.
        return buf[pos:end] if type(buf) is bytes else bytes(memoryview(buf)[pos:end])

    def _read_body(self) -> Event:
        remaining = self._remaining
        if remaining == 0:
            self._state = _DONE
            return _END
        buf = self._buf
        pos = self._pos
        size = end = len(buf)
        if end == pos:
            return NEED_DATA
        if end - pos < remaining:
            remaining -= end - pos
        else:
            end = pos + remaining
            remaining = 0
        self._remaining = remaining
        self._pos = end
        self.buffered = size - end
        # _take and Data.__init__ inline: this runs for every request body.
        event = _new_event(Data)
        event.data = buf[pos:end] if type(buf) is bytes else bytes(memoryview(buf)[pos:end])
        event.last = remaining == 0
        return event

    def _read_chunked(self) -> Event:
        state = self._state
        buf = self._buf
        pos = self._pos
        if state == _CHUNK_DATA:
            available = len(buf) - pos
            if not available:
                return NEED_DATA
            remaining = self._remaining
            if available <= remaining:
                data = self._take(len(buf))
                remaining -= available
            else:
                data = self._take(pos + remaining)
                remaining = 0
            self._remaining = remaining
            if remaining == 0:
                self._state = _CHUNK_CRLF
            return Data(data)
        if state == _CHUNK_CRLF:
            if len(buf) - pos < 2:
                if len(buf) > pos and buf[pos] != 13:
                    raise BadRequest("Chunk data not followed by CRLF")
                return NEED_DATA
            if buf[pos : pos + 2] != b"\r\n":
                raise BadRequest("Chunk data not followed by CRLF")
            self._pos = pos = pos + 2
            self._state = state = _CHUNK_SIZE
            self._scan = 0
        if state == _CHUNK_SIZE:
            max_line = _MAX_CHUNK_SIZE_DIGITS + self.max_chunk_ext + 2
            scan = self._scan
            line_end = buf.find(b"\r\n", scan - 1 if scan - 1 > pos else pos)
            if line_end == -1:
                self._check_new_bytes(buf, pos, "chunk size line")
                digits = abnf.HEX_PREFIX.match(buf, pos)
                if digits is not None and len(digits.group().lstrip(b"0")) > _MAX_CHUNK_SIZE_DIGITS:
                    raise ContentTooLarge("Chunk size too large")
                if len(buf) - pos - buf.endswith(b"\r") > max_line:
                    raise BadRequest("Chunk size line too long")
                self._scan = len(buf)
                return NEED_DATA
            if line_end - pos > max_line:
                raise BadRequest("Chunk size line too long")
            match = abnf.CHUNK_LINE.fullmatch(buf, pos, line_end + 2)
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
            self._pos = pos = line_end + 2
            self._scan = 0
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
        if buf[pos : pos + 2] == b"\r\n":
            self._pos = pos + 2
            self._state = _DONE
            return _END
        scan = self._scan
        end = buf.find(b"\r\n\r\n", scan - 3 if scan - 3 > pos else pos)
        if end == -1:
            self._check_new_bytes(buf, pos, "trailer section")
            if len(buf) - pos >= self.max_head:
                raise HeaderFieldsTooLarge("Trailer section too large")
            self._scan = len(buf)
            return NEED_DATA
        if end + 4 - pos > self.max_head:
            raise HeaderFieldsTooLarge("Trailer section too large")
        if abnf.HEADER_BLOCK.fullmatch(buf, pos, end + 2) is None:
            raise BadRequest("Invalid trailer field")
        fields = abnf.HEADER_FIELD.findall(buf, pos, end + 2)
        if len(fields) > self.max_fields:
            raise HeaderFieldsTooLarge("Too many trailer fields")
        self._pos = end + 4
        self._scan = 0
        self._state = _DONE
        return EndOfMessage([(bytes(name).lower(), bytes(value)) for name, value in fields])
