"""The event vocabulary every protocol core speaks (HTTP/1.1 now, HTTP/2 later).

One small slotted object per request head; body bytes travel as they are.
"""

from __future__ import annotations


class Request:
    """A complete, validated request head.

    ``headers`` keeps the order and duplicates of the wire with names
    lowercased. ``path`` and ``query`` are the raw bytes of the target's path
    and query (for absolute-form targets, the part after the authority).
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "has_body",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "te_trailers",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        path: bytes,
        query: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        content_length: int | None = None,
        chunked: bool = False,
        expect_continue: bool = False,
        te_trailers: bool = False,
        upgrade: bytes | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.te_trailers = te_trailers
        self.upgrade = upgrade
        self.has_body = chunked or bool(content_length)

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, target={self.target!r}, "
            f"http_version={self.http_version!r}, headers={self.headers!r})"
        )


class Data:
    """A piece of request body.

    ``last`` is True when it ends a body framed by Content-Length: the
    `EndOfMessage` that follows carries no trailers, so a consumer may take
    the message as complete here without pulling it (the HTTP/1.1 parser
    allows ``start_next_cycle`` from this point). Chunked bodies end only with
    their `EndOfMessage`.
    """

    __slots__ = ("data", "last")

    def __init__(self, data: bytes, last: bool = False) -> None:
        self.data = data
        self.last = last

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Data) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    """The request body is complete; ``trailers`` holds chunked trailers, if any."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.trailers = trailers or []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndOfMessage) and other.trailers == self.trailers

    def __hash__(self) -> int:
        return hash(tuple(self.trailers))

    def __repr__(self) -> str:
        return f"EndOfMessage({self.trailers!r})"


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The core needs more bytes before it can produce the next event.
NEED_DATA = _Sentinel("NEED_DATA")
#: The current request is complete; the core waits for ``start_next_cycle()``
#: before parsing a pipelined request, so responses stay in request order.
PAUSED = _Sentinel("PAUSED")

Event = Request | Data | EndOfMessage | _Sentinel
