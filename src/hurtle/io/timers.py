"""One lazily re-armed timer per connection, shared by the HTTP/1.1 and HTTP/2 handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """A deadline that costs an attribute store to move, not a timer per request.

    Setting ``when`` later than the armed timer leaves the timer alone; when
    it fires early it re-arms itself for the new time. Only a deadline moved
    earlier cancels and re-arms. ``on_expiry`` runs once the deadline passes
    (``when`` is then None again).
    """

    __slots__ = ("_handle", "_loop", "_on_expiry", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._handle: asyncio.TimerHandle | None = None
        self.when: float | None = None

    def set(self, seconds: float) -> None:
        when = self._loop.time() + seconds
        self.when = when
        handle = self._handle
        if handle is None or handle.when() > when:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)

    def cancel(self) -> None:
        self.when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Cancel for good: also drop ``on_expiry``, which refers back to the owner.

        The owner holds its Deadline and the Deadline holds the owner's bound
        method; breaking that cycle when the connection ends lets reference
        counting free the connection at once instead of the cyclic GC later.
        """
        self.cancel()
        self._on_expiry = _expired

    def _fire(self) -> None:
        self._handle = None
        when = self.when
        if when is None:
            return
        if self._loop.time() < when:
            self._handle = self._loop.call_at(when, self._fire)
            return
        self.when = None
        self._on_expiry()


def _expired() -> None:
    """What a closed Deadline calls, should it still be set and expire."""
