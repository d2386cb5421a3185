"""Stand-ins shared by the tests that drive a protocol object without sockets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hurtle.config import Config
from hurtle.io.h1 import H1Protocol
from hurtle.io.state import ServerState


class FakeTransport:
    """An asyncio transport that records what a protocol does with it.

    ``writes`` holds each `write` call's bytes (``written`` joins them),
    ``vectors`` each `writelines` call's parts; pausing and resuming are
    counted and ``reading`` tells the current state.
    """

    def __init__(self) -> None:
        self.protocol: Any = None
        self.writes: list[bytes] = []
        self.vectors: list[tuple[bytes, ...]] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.paused = 0
        self.resumed = 0

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def writelines(self, data: Iterable[bytes]) -> None:
        assert not self.closed, "write after close"
        self.vectors.append(tuple(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused += 1
        self.reading = False

    def resume_reading(self) -> None:
        self.resumed += 1
        self.reading = True


def connect_h1(app: Any, **options: Any) -> tuple[H1Protocol, FakeTransport, ServerState]:
    """An HTTP/1.1 connection to ``app`` (Config ``options``) over a `FakeTransport`."""
    config = Config(app, **options)
    state = ServerState(config)
    protocol = H1Protocol(config, app, state)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, state
