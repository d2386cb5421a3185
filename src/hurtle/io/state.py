"""State shared by every connection of one server process."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from hurtle.io.timers import Timers

if TYPE_CHECKING:
    from hurtle.config import Config


class ServerState:
    """What the server and its connections share: counters, open work, fixed headers.

    ``connections`` holds every open connection protocol (each has ``shutdown()``
    for a graceful stop and ``force_close()`` once the graceful timeout ran out);
    ``tasks`` holds every running app task; ``app_state`` is the lifespan state
    dict that each request scope receives a shallow copy of.
    """

    __slots__ = (
        "_date_second",
        "_fixed_headers",
        "app_state",
        "connections",
        "date_header",
        "header_block",
        "loop",
        "should_exit",
        "tasks",
        "timers",
        "total_requests",
    )

    def __init__(self, config: Config) -> None:
        self.total_requests = 0
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.app_state: dict[str, Any] = {}
        self.should_exit = False
        #: The loop the server serves on, set when it starts. Protocols take it
        #: from here: asyncio.get_event_loop() costs a getpid() system call on
        #: 3.11, once per connection (they fall back to it when this is None).
        self.loop: asyncio.AbstractEventLoop | None = None
        # Every connection's deadline, served by one loop timer (io/timers.py).
        self.timers = Timers()
        fixed = b""
        extra = config.encoded_headers
        # A --header server:... replaces the default one (as Uvicorn's does).
        if config.server_header and all(name != b"server" for name, _ in extra):
            fixed += b"server: hurtle\r\n"
        for name, value in extra:
            fixed += name + b": " + value + b"\r\n"
        self._fixed_headers = fixed
        self.date_header = config.date_header
        self._date_second = -1
        #: The server-added header lines, each ending in CRLF.
        self.header_block = fixed
        self.refresh_date()

    def refresh_date(self) -> None:
        """Rebuild `header_block` when the second has changed.

        The server calls this on its 0.1 s tick (and it runs once here at
        construction), so a response reads an attribute instead of asking the
        clock: the ``date`` line may lag by one tick, as Uvicorn's does.
        """
        if not self.date_header:
            return
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            date = formatdate(now, usegmt=True).encode("ascii")
            self.header_block = b"date: " + date + b"\r\n" + self._fixed_headers


def over_concurrency_limit(limit: int, state: ServerState) -> bool:
    """``--limit-concurrency``: whether one more request, stream or WebSocket is too many.

    Counted over open connections (the asking one included) and running app
    tasks; HTTP/1.1, HTTP/2 and WebSocket all answer 503 past it.
    """
    return len(state.connections) > limit or len(state.tasks) >= limit
