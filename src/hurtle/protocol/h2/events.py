"""HTTP/2 events: the HTTP/1.1 core's vocabulary (`Request`, `Data`, `EndOfMessage`)
with a stream id, plus what only HTTP/2 has (resets, windows, connection end).

One small slotted object per event, as for HTTP/1.1.
"""

from __future__ import annotations

from hurtle.protocol.events import Data, EndOfMessage, Request


class StreamRequest(Request):
    """A request head on stream ``stream_id``.

    ``http_version`` is ``"2"``; ``headers`` holds no pseudo-header, and
    ``:authority`` is its first ``host`` header. ``protocol`` is the
    ``:protocol`` of an extended CONNECT (RFC 8441), else None.
    """

    __slots__ = ("authority", "protocol", "scheme", "stream_ended", "stream_id")

    def __init__(
        self,
        stream_id: int,
        method: bytes,
        target: bytes,
        path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        scheme: bytes | None,
        authority: bytes | None,
        protocol: bytes | None,
        content_length: int | None,
        expect_continue: bool,
        stream_ended: bool,
    ) -> None:
        # Not through Request.__init__: a call with twelve arguments per stream.
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.http_version = "2"
        self.headers = headers
        self.keep_alive = True
        self.content_length = content_length
        self.chunked = False
        self.expect_continue = expect_continue
        # HTTP/2 has no TE but "trailers" (the core refuses others).
        self.te_trailers = True
        self.upgrade = None
        self.stream_id = stream_id
        self.scheme = scheme
        self.authority = authority
        self.protocol = protocol
        self.stream_ended = stream_ended
        # HTTP/2 frames the body itself: a body follows unless HEADERS ended the stream.
        self.has_body = not stream_ended


class StreamData(Data):
    """Request body bytes; ``flow_length`` (padding included) is what to acknowledge."""

    __slots__ = ("flow_length", "stream_id")

    def __init__(self, stream_id: int, data: bytes, flow_length: int) -> None:
        super().__init__(data)
        self.stream_id = stream_id
        self.flow_length = flow_length

    def __repr__(self) -> str:
        return f"StreamData({self.stream_id}, {self.data!r})"


class StreamEnded(EndOfMessage):
    """The request body of ``stream_id`` is complete (``trailers``: its trailer fields)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(trailers)
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamEnded({self.stream_id})"


class StreamReset:
    """Stream ``stream_id`` ended abnormally: by the client (``remote``) or by this side."""

    __slots__ = ("error_code", "remote", "stream_id")

    def __init__(self, stream_id: int, error_code: int, remote: bool) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, {self.error_code}, remote={self.remote})"


class StreamWritable:
    """Everything queued on ``stream_id`` left: flow-control window opened enough."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamWritable({self.stream_id})"


class ConnectionClosed:
    """The connection is over: a GOAWAY went out (``remote`` False) or came in.

    Send what `H2Core.data_to_send` still holds, then close the transport.
    """

    __slots__ = ("error_code", "reason", "remote")

    def __init__(self, error_code: int, reason: str, remote: bool) -> None:
        self.error_code = error_code
        self.reason = reason
        self.remote = remote

    def __repr__(self) -> str:
        return f"ConnectionClosed({self.error_code}, {self.reason!r}, remote={self.remote})"


H2Event = StreamRequest | StreamData | StreamEnded | StreamReset | StreamWritable | ConnectionClosed
