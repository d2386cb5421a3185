"""Connection deadlines: one per connection, all of a server's served by one loop timer.

A connection's deadline (keep-alive idle, head-read limit, HTTP/2 idle) is set
on every connection and almost never expires: the client sends its request,
or goes, first. A loop timer per connection cost more than any other part of
setting one up (uvloop allocates, starts, closes and frees a libuv handle for
each: about 8k instructions of a 150k-instruction `Connection: close`
request), so deadlines are kept in buckets of 1/32 s instead, and `Timers`
arms one loop timer for the earliest bucket: setting a deadline is a set
insertion, cancelling it a removal. A connection may be its own deadline
(`Timed`, as the HTTP/1.1 one is) rather than hold a `Deadline`: one object
fewer per connection, and no reference cycle between the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from heapq import heappop, heappush

# Bucket width: a deadline expires up to 1/32 s after it passes (a power of two,
# so tick boundaries are exact floats). Timeouts are whole or tenths of seconds.
TICKS_PER_SECOND = 32
# asyncio treats a timer due within its clock resolution as due now; so do we,
# else a timer fired a fraction of a millisecond early (uvloop rounds to the
# millisecond) would re-arm itself for the same instant until the clock moves.
_SLACK = 0.001
_NO_TIMER = 1 << 62  # `_armed_tick` when no loop timer is armed


class Timers:
    """The deadlines of one server's connections on one event loop, bucketed by tick.

    The loop timer is armed for the earliest bucket; a bucket emptied by
    cancellations stays until its tick (a wake-up that finds nothing), so
    connections that come and go neither cancel nor re-arm the loop timer,
    and cancelling is one set removal. The event loop is the first
    deadline's; a deadline from another loop (a server run again in a new
    loop) drops what the old loop left behind.
    """

    __slots__ = ("_armed_tick", "_handle", "_ticks", "buckets", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        #: tick -> the deadlines filed under it.
        self.buckets: dict[int, set[Timed]] = {}
        # The keys of `buckets` as a heap: a wake-up finds the due buckets and
        # the next one to arm without going over every bucket (with a 5 s
        # keep-alive and connections arriving all the time, 160 of them).
        self._ticks: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed_tick = _NO_TIMER

    def file(self, deadline: Timed, when: float) -> None:
        """File ``deadline``, whose ``when`` was just set, in the bucket it needs.

        Its owner calls this (through `Timed.arm`) only when the bucket it
        sits in, if any, comes too late for ``when``: moving a deadline later
        is the owner's plain store, done after every keep-alive response.
        """
        bucket = deadline._bucket
        if bucket is not None:
            bucket.discard(deadline)
        if deadline.loop is not self.loop:
            self._rebind(deadline.loop)
        tick = int(when * TICKS_PER_SECOND) + 1
        bucket = self.buckets.get(tick)
        if bucket is None:
            # A new bucket, perhaps the earliest.
            bucket = self.buckets[tick] = set()
            heappush(self._ticks, tick)
            if tick < self._armed_tick:
                self._arm(tick)
        bucket.add(deadline)
        deadline._bucket = bucket
        deadline._earliest = (tick - 1) / TICKS_PER_SECOND

    def _arm(self, tick: int) -> None:
        assert self.loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._armed_tick = tick
        self._handle = self.loop.call_at(tick / TICKS_PER_SECOND, self._fire)

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None and self.loop is not None and not self.loop.is_closed():
            self._handle.cancel()
        self.loop = loop
        self.buckets = {}
        self._ticks = []
        self._handle = None
        self._armed_tick = _NO_TIMER

    def _fire(self) -> None:
        assert self.loop is not None
        self._handle = None
        # No arming while buckets are processed (deadlines moved later are
        # filed again): the earliest remaining bucket is armed at the end.
        self._armed_tick = -1
        buckets = self.buckets
        ticks = self._ticks
        try:
            now = self.loop.time() + _SLACK
            last = now * TICKS_PER_SECOND
            # Taken before any expiry runs: a bucket that an expiry makes is
            # served by the next wake-up, never by this one.
            due = []
            while ticks and ticks[0] <= last:
                due.append(heappop(ticks))
            for tick in due:
                # A copy: an expiry may cancel a deadline of this bucket (a set
                # removal); pop(tick, ()): or have rebound the timers.
                for deadline in tuple(buckets.pop(tick, ())):
                    deadline._bucket = None
                    when = deadline.when
                    if when is None:
                        continue  # cancelled by a plain store (`when = None`)
                    if when > now:  # moved later since it was filed
                        self.file(deadline, when)
                        continue
                    deadline.when = None
                    try:
                        deadline._on_deadline()
                    except Exception as exc:  # one connection's bug must not stop the others'
                        self.loop.call_exception_handler(
                            {"message": "Exception in a connection deadline", "exception": exc}
                        )
        finally:
            self._armed_tick = _NO_TIMER
            if self._ticks:  # not ``ticks``: an expiry may have rebound the timers
                self._arm(self._ticks[0])


class Timed:
    """An object that is its own deadline, for classes with exactly one.

    A connection that subclasses this carries its deadline in three slots of
    its own instead of a `Deadline` beside it: no second object, no bound
    method of its own held by it, so no reference cycle to break at the end.
    The subclass provides ``loop`` and ``_on_deadline()`` (run once the
    deadline passes; ``when`` is then None again) and sets it by storing
    ``when`` and, when the bucket it sits in comes too late (``_bucket`` is
    None or ``_earliest > when``), calling `Timers.file`. Storing ``when = None``
    cancels as well as `cancel()` (the deadline is dropped when its bucket
    comes). ``_earliest`` is only read while ``_bucket`` is set.
    """

    __slots__ = ("_bucket", "_earliest", "when")

    loop: asyncio.AbstractEventLoop
    _bucket: set[Timed] | None
    # While in a bucket: the earliest ``when`` it serves in time, one tick
    # before it comes. A deadline moved later never needs another bucket (it
    # moves on when its bucket comes); one moved earlier only past this.
    _earliest: float
    when: float | None

    def arm(self, timers: Timers, seconds: float) -> None:
        """Expire ``seconds`` from now, filed in ``timers``."""
        when = self.loop.time() + seconds
        self.when = when
        # A float compare: this runs after every keep-alive response, which
        # moves the deadline later and so leaves it in its bucket (it moves on
        # when that comes).
        if self._bucket is None or self._earliest > when:
            timers.file(self, when)

    def cancel(self) -> None:
        self.when = None
        bucket = self._bucket
        if bucket is not None:
            bucket.discard(self)
            self._bucket = None

    def _on_deadline(self) -> None:
        raise NotImplementedError


class Deadline(Timed):
    """A deadline that costs an attribute store to move, not a timer per request.

    Setting ``when`` later than the bucket it sits in leaves it there: when
    the bucket's tick comes it moves to its new one. Only a deadline moved
    earlier changes bucket at once. ``on_expiry`` runs once the deadline
    passes (``when`` is then None again). Storing ``when = None`` cancels as
    well as `cancel()` (the deadline is dropped when its bucket comes).

    Without ``timers``, the deadline gets a `Timers` of its own (one loop
    timer, as for a connection that owns its timer).
    """

    __slots__ = ("_on_expiry", "_timers", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_expiry: Callable[[], None],
        timers: Timers | None = None,
    ) -> None:
        self.loop = loop
        self._on_expiry = on_expiry
        self._timers = timers if timers is not None else Timers(loop)
        self._bucket = None
        self.when = None

    def set(self, seconds: float) -> None:
        self.arm(self._timers, seconds)

    def _on_deadline(self) -> None:
        self._on_expiry()

    def close(self) -> None:
        """Cancel for good: also drop ``on_expiry``, which refers back to the owner.

        The owner holds its Deadline and the Deadline holds the owner's bound
        method; breaking that cycle when the connection ends lets reference
        counting free the connection at once instead of the cyclic GC later.
        """
        self._on_expiry = _expired
        self.cancel()


def _expired() -> None:
    """What a closed Deadline calls, should it still be set and expire."""
