"""ServerState's header block: the date line follows the clock, refreshed by the server's tick."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from hurtle.config import Config
from hurtle.io.state import ServerState
from hurtle.server import Server


async def app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def test_header_block_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.2]
    monkeypatch.setattr("hurtle.io.state.time.time", lambda: now[0])
    state = ServerState(Config(app))
    first = b"date: " + formatdate(1_700_000_000, usegmt=True).encode() + b"\r\n"
    assert state.header_block == first + b"server: hurtle\r\n"
    now[0] += 0.5  # same second: nothing to rebuild
    state.refresh_date()
    assert state.header_block.startswith(first)
    now[0] += 1.0
    state.refresh_date()
    second = b"date: " + formatdate(1_700_000_001, usegmt=True).encode() + b"\r\n"
    assert state.header_block == second + b"server: hurtle\r\n"


def test_no_date_header_block_is_fixed() -> None:
    state = ServerState(Config(app, date_header=False, server_header=False, headers=[("x-a", "1")]))
    assert state.header_block == b"x-a: 1\r\n"
    state.refresh_date()
    assert state.header_block == b"x-a: 1\r\n"


def test_server_tick_refreshes_the_date(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.0]
    monkeypatch.setattr("hurtle.io.state.time.time", lambda: now[0])
    server = Server(Config(app))
    before = server.state.header_block
    now[0] += 5
    server._should_stop()  # one tick of the main loop
    assert server.state.header_block != before
    assert formatdate(1_700_000_005, usegmt=True).encode() in server.state.header_block
