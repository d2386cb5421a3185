"""The physical ceiling: an asyncio.Protocol with no ASGI, no real HTTP parser.

It answers each request with the same bytes the apps in ``apps.py`` send (plus
a ``date`` header, formatted once a second, as every server adds one), so the
gap between a server and this one is what the server's HTTP/ASGI work costs.

Parsing is minimal on purpose: a request ends at ``\\r\\n\\r\\n`` (pipelined
requests are counted and answered in one write); for ``echo`` the
``Content-Length`` body is read and sent back; ``Connection: close`` in a head
closes the connection after the answer. ``stream`` is sent as the chunked bytes
a server writes for 32 x 1 KiB body events, in one write.

    python raw_server.py --app plaintext --port 8000 [--loop uvloop|asyncio]

stdlib + (optionally) uvloop; run it from the bench/ folder or with it on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from email.utils import formatdate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apps

CRLF2 = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


def _head(headers: list[tuple[bytes, bytes]], date: bytes, close: bool = False) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"date: " + date]
    if close:
        lines.append(b"connection: close")
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + CRLF2


def _chunked(chunks: list[bytes]) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c]
    return b"".join(out) + b"0\r\n\r\n"


def build_response(app: str, date: bytes, close: bool = False) -> bytes:
    """The full response bytes for one GET request of ``app`` (not used for echo).

    ``close`` adds ``connection: close``, as a server does when the request asked
    for it (without it, wrk expects the connection to stay open and counts the
    close as a read error).
    """
    if app in ("plaintext", "sleep"):
        return _head(apps.PLAINTEXT_HEADERS, date, close) + apps.PLAINTEXT_BODY
    if app == "json":
        body = apps.JSON_BODY
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        return _head(headers, date, close) + body
    if app == "stream":
        headers = [*apps.STREAM_HEADERS, (b"transfer-encoding", b"chunked")]
        return _head(headers, date, close) + _chunked([apps.STREAM_CHUNK] * apps.STREAM_CHUNKS)
    if app == "big":
        return _head(apps.BIG_HEADERS, date, close) + apps.BIG_BODY
    raise SystemExit(f"raw_server: unknown app {app!r}")


class State:
    """Responses rebuilt once a second so the date header stays right."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.refresh()

    def refresh(self) -> None:
        self.date = formatdate(time.time(), usegmt=True).encode()
        self.echo_head = (
            b"HTTP/1.1 200 OK\r\ndate: "
            + self.date
            + b"\r\ncontent-type: "
            + apps.ECHO_CONTENT_TYPE
            + b"\r\ncontent-length: "
        )
        get = self.app != "echo"
        self.response = build_response(self.app, self.date) if get else b""
        self.response_close = build_response(self.app, self.date, close=True) if get else b""


class FixedProtocol(asyncio.Protocol):
    """GET apps: every complete head gets ``state.response``."""

    __slots__ = ("buffer", "transport")
    state: State

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        count = data.count(CRLF2)
        if not count:
            self.buffer = data
            return
        end = data.rfind(CRLF2) + 4
        self.buffer = data[end:]
        state = self.state
        if CLOSE.search(data, 0, end):  # answer up to the closing request, then close
            self.transport.write(state.response * (count - 1) + state.response_close)
            self.transport.close()
        else:
            self.transport.write(state.response if count == 1 else state.response * count)


class SleepProtocol(FixedProtocol):
    """Like FixedProtocol, but each answer leaves 10 ms after its request."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        count = data.count(CRLF2)
        if not count:
            self.buffer = data
            return
        end = data.rfind(CRLF2) + 4
        self.buffer = data[end:]
        close = CLOSE.search(data, 0, end) is not None
        asyncio.get_running_loop().call_later(apps.SLEEP_SECONDS, self._answer, count, close)

    def _answer(self, count: int, close: bool) -> None:
        if self.transport.is_closing():
            return
        state = self.state
        if close:
            self.transport.write(state.response * (count - 1) + state.response_close)
            self.transport.close()
        else:
            self.transport.write(state.response * count)


class EchoProtocol(asyncio.Protocol):
    """POST echo: reads each Content-Length body and sends it back."""

    __slots__ = ("buffer", "transport")
    state: State

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        out = []
        pos = 0
        close = False
        while True:
            end = data.find(CRLF2, pos)
            if end < 0:
                break
            match = CONTENT_LENGTH.search(data, pos, end)
            length = int(match.group(1)) if match else 0
            stop = end + 4 + length
            if stop > len(data):
                break
            body = data[end + 4 : stop]
            closing = CLOSE.search(data, pos, end) is not None
            pos = stop
            if closing:
                out.append(
                    self.state.echo_head + b"%d\r\nconnection: close\r\n\r\n" % length + body
                )
                close = True
                break
            out.append(self.state.echo_head + b"%d\r\n\r\n" % length + body)
        self.buffer = data[pos:]
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()


async def serve(app: str, host: str, port: int) -> None:
    state = State(app)
    protocol = {"echo": EchoProtocol, "sleep": SleepProtocol}.get(app, FixedProtocol)
    protocol.state = state
    loop = asyncio.get_running_loop()

    def tick() -> None:
        state.refresh()
        loop.call_later(1.0, tick)

    loop.call_later(1.0, tick)
    server = await loop.create_server(protocol, host, port, backlog=2048, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--app",
        default="plaintext",
        choices=["plaintext", "json", "echo", "stream", "big", "sleep"],
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415  (only when asked for)

        uvloop.run(serve(args.app, args.host, args.port))
    else:
        asyncio.run(serve(args.app, args.host, args.port))


if __name__ == "__main__":
    main()
