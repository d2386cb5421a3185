"""`Deadline` and `Timers`: connection deadlines in 1/32 s buckets under one loop timer.

Driven by a hand-moved clock: the fake loop records the timers armed on it,
and `advance` runs those that are due, as an event loop would.
"""

from __future__ import annotations

from typing import Any

import pytest

from hurtle.io.timers import Deadline, Timed, Timers

TICK = 1 / 32


class FakeHandle:
    def __init__(self, when: float, callback: Any) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.handles: list[FakeHandle] = []
        self.errors: list[dict[str, Any]] = []
        self.closed = False

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.handles.append(handle)
        return handle

    def is_closed(self) -> bool:
        return self.closed

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    @property
    def armed(self) -> list[FakeHandle]:
        return [h for h in self.handles if not h.cancelled]

    def advance(self, seconds: float) -> None:
        """Move the clock, running every armed timer that comes due on the way."""
        end = self.now + seconds
        for _ in range(1000):
            due = [h for h in self.armed if h.when <= end]
            if not due:
                break
            handle = min(due, key=lambda h: h.when)
            self.handles.remove(handle)
            self.now = max(self.now, handle.when)
            handle.callback()
        else:
            raise AssertionError("timers keep re-arming")
        self.now = end


class Expiries:
    def __init__(self) -> None:
        self.times: list[float] = []

    def deadline(self, loop: FakeLoop, timers: Timers | None) -> Deadline:
        return Deadline(loop, lambda: self.times.append(loop.now), timers)  # type: ignore[arg-type]


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.mark.parametrize("shared", [True, False])
def test_expires_within_a_tick_after_the_deadline_never_before(
    loop: FakeLoop, shared: bool
) -> None:
    fired = Expiries()
    deadline = fired.deadline(loop, Timers() if shared else None)
    deadline.set(5)
    assert deadline.when == 105.0
    loop.advance(4.99)
    assert fired.times == []
    loop.advance(1)
    assert len(fired.times) == 1
    assert 105.0 <= fired.times[0] <= 105.0 + TICK
    assert deadline.when is None
    assert loop.armed == []


def test_many_deadlines_one_loop_timer(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    deadlines = [fired.deadline(loop, timers) for _ in range(100)]
    for deadline in deadlines:
        deadline.set(5)
    assert len(loop.armed) == 1
    for deadline in deadlines[:60]:
        deadline.cancel()
    loop.advance(6)
    assert len(fired.times) == 40


def test_cancelled_by_cancel_close_or_a_plain_store(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    a, b, c = (fired.deadline(loop, timers) for _ in range(3))
    for deadline in (a, b, c):
        deadline.set(1)
    a.cancel()
    b.close()
    c.when = None  # what the connection does when a request starts
    loop.advance(2)
    assert fired.times == []
    assert loop.armed == []


def test_moved_later_is_rearmed_lazily(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    deadline = fired.deadline(loop, timers)
    deadline.set(1)
    loop.advance(0.5)
    deadline.set(1)  # now due at 101.5: the loop timer is not touched
    assert len(loop.handles) == 1
    loop.advance(0.75)
    assert fired.times == []
    loop.advance(1)
    assert len(fired.times) == 1
    assert 101.5 <= fired.times[0] <= 101.5 + TICK


def test_moved_earlier_rearms_at_once(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    idle = fired.deadline(loop, timers)
    idle.set(5)
    head = fired.deadline(loop, timers)
    head.set(5)
    head.set(0.5)  # a head started: its shorter limit applies
    loop.advance(1)
    assert len(fired.times) == 1
    assert 100.5 <= fired.times[0] <= 100.5 + TICK
    loop.advance(5)
    assert len(fired.times) == 2


def test_an_expiry_may_set_and_cancel_deadlines(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    other = fired.deadline(loop, timers)
    later = fired.deadline(loop, timers)

    def expire() -> None:
        fired.times.append(loop.now)
        other.cancel()  # due in this same wake-up, not yet processed
        later.set(2)

    first = Deadline(loop, expire, timers)  # type: ignore[arg-type]
    first.set(1)
    other.set(1 + 2 * TICK)  # the next bucket but one
    loop.advance(1.5)
    assert len(fired.times) == 1
    loop.advance(3)
    assert len(fired.times) == 2  # `later`, armed from inside the first expiry
    assert loop.armed == []


def test_an_expiry_may_cancel_the_rest_of_its_own_bucket(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    deadlines: list[Deadline] = []

    def expire() -> None:
        fired.times.append(loop.now)
        for deadline in deadlines:
            deadline.cancel()

    for _ in range(10):
        deadlines.append(Deadline(loop, expire, timers))  # type: ignore[arg-type]
        deadlines[-1].set(1)
    loop.advance(2)
    assert len(fired.times) == 1


def test_a_failing_expiry_does_not_stop_the_others(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()

    def broken() -> None:
        raise RuntimeError("boom")

    Deadline(loop, broken, timers).set(1)  # type: ignore[arg-type]
    fired.deadline(loop, timers).set(1)
    fired.deadline(loop, timers).set(3)
    loop.advance(2)
    assert len(fired.times) == 1
    assert isinstance(loop.errors[0]["exception"], RuntimeError)
    loop.advance(2)
    assert len(fired.times) == 2


def test_a_new_loop_drops_what_the_old_one_left(loop: FakeLoop) -> None:
    timers = Timers()
    fired = Expiries()
    fired.deadline(loop, timers).set(1)  # never fires: its loop is gone
    loop.closed = True
    new = FakeLoop()
    fired.deadline(new, timers).set(1)
    new.advance(2)
    assert len(fired.times) == 1
    assert timers.loop is new


def test_early_wakeup_within_the_clock_slack_does_not_spin(loop: FakeLoop) -> None:
    # uvloop rounds timers to the millisecond: one may run a little early.
    timers = Timers()
    fired = Expiries()
    fired.deadline(loop, timers).set(1)
    (handle,) = loop.armed
    loop.handles.remove(handle)
    loop.now = handle.when - 0.0004
    handle.callback()
    assert len(fired.times) == 1


class Connection(Timed):
    """A connection that is its own deadline, as H1Protocol is."""

    __slots__ = ("expiries", "loop", "timers")

    def __init__(self, loop: FakeLoop, timers: Timers) -> None:
        self.loop = loop  # type: ignore[assignment]
        self.timers = timers
        self.expiries: list[float] = []
        self._bucket = None
        self.when = None

    def set(self, seconds: float) -> None:
        self.arm(self.timers, seconds)

    def _on_deadline(self) -> None:
        self.expiries.append(self.loop.time())


def test_an_object_that_is_its_own_deadline(loop: FakeLoop) -> None:
    timers = Timers()
    conn = Connection(loop, timers)
    gone = Connection(loop, timers)
    conn.set(1)
    gone.set(1)
    gone.cancel()
    loop.advance(0.5)
    conn.set(1)  # moved later: stays in its bucket until that comes
    assert len(loop.handles) == 1
    loop.advance(0.75)
    assert conn.expiries == []
    conn.set(0.1)  # moved earlier: filed again at once
    loop.advance(0.2)
    assert len(conn.expiries) == 1
    assert 101.35 <= conn.expiries[0] <= 101.35 + TICK
    assert conn.when is None
    loop.advance(5)
    assert len(conn.expiries) == 1
    assert gone.expiries == []
    assert loop.armed == []


def test_buckets_expire_in_order_whatever_order_they_were_made_in(loop: FakeLoop) -> None:
    timers = Timers()
    expired: list[tuple[float, float]] = []
    for seconds in (3.0, 0.5, 2.0, 1.0, 2.5, 0.25):
        Deadline(loop, lambda s=seconds: expired.append((s, loop.now)), timers).set(seconds)  # type: ignore[arg-type,misc]
    loop.advance(0.6)
    assert [s for s, _ in expired] == [0.25, 0.5]
    loop.advance(5)
    assert [s for s, _ in expired] == [0.25, 0.5, 1.0, 2.0, 2.5, 3.0]
    for seconds, at in expired:
        assert 100 + seconds <= at <= 100 + seconds + TICK
    assert loop.armed == []


def test_a_deadline_set_by_an_expiry_waits_for_the_next_wakeup(loop: FakeLoop) -> None:
    timers = Timers()
    times: list[float] = []
    again = Deadline(loop, lambda: times.append(loop.now), timers)  # type: ignore[arg-type]

    def expire() -> None:
        times.append(loop.now)
        again.set(0)  # due at once: a loop timer, not this same wake-up

    Deadline(loop, expire, timers).set(1)  # type: ignore[arg-type]
    (handle,) = loop.armed
    loop.handles.remove(handle)
    loop.now = handle.when
    handle.callback()
    assert len(times) == 1
    assert len(loop.armed) == 1
    loop.advance(TICK)
    assert len(times) == 2


def test_moved_later_within_its_tick_or_a_little_earlier_keeps_its_bucket(loop: FakeLoop) -> None:
    timers = Timers()
    conn = Connection(loop, timers)
    loop.now = 100.01
    conn.set(1)  # 101.01: served by the bucket at 101 + 1/32
    (bucket,) = timers.buckets.values()
    for _ in range(5):
        loop.now += 0.001
        conn.set(1)  # later, still within the same tick: no new filing
        assert conn._bucket is bucket
    conn.set(0.995)  # earlier, but the bucket still comes within a tick of it
    assert conn._bucket is bucket
    conn.set(0.5)  # earlier than the bucket serves: filed again
    assert conn._bucket is not bucket
    loop.advance(0.6)
    assert len(conn.expiries) == 1
    assert conn.when is None
    assert 100.515 <= conn.expiries[0] <= 100.515 + TICK
