"""The ASGI floor: the least an ASGI server over HTTP/1.1 can do per request.

``raw_server.py`` is the ceiling of the machine (no parser, no ASGI). This is
the floor of the *design*: what issue 3's "throwaway pure-Python prototype
with real parsing, a real scope and a task per request" does, written as
lean as possible, to tell how much of hurtle's cost any pure-Python ASGI
server must pay and how much is hurtle's own.

It does, per request, what every ASGI server must:

- find the head, match the request line, split every field line with one
  regex call and check that each line was taken, lowercase the names;
- read a Content-Length body, honour ``Connection: close`` and HTTP/1.0;
- build the full ``http`` scope (every key the spec requires, a decoded
  path) and run ``app(scope, receive, send)`` in a Task of its own;
- answer with one write: status line, a cached ``date``, the app's headers,
  the body; chunked framing when the app gives no Content-Length.

What it leaves out on purpose (each is part of hurtle, and part of what makes
a server safe to expose): checks of the response headers and the body's
length, limits on head and body sizes, timeouts, flow control, pipelining
beyond one buffered request at a time, HTTP/1.1 error statuses beyond 400,
Expect: 100-continue, lifespan, access logs, graceful shutdown. Never use it
for anything but measuring.

    python floor_server.py --app plaintext --port 8000 [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apps

HEAD_END = b"\r\n\r\n"
REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^ \x00-\x1f\x7f]+) HTTP/1\.([01])\r\n")
FIELD_LINE = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*\r\n"
)
STATUS_LINES = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, phrase.encode())
    for code, phrase in [
        (200, "OK"),
        (201, "Created"),
        (204, "No Content"),
        (400, "Bad Request"),
        (404, "Not Found"),
        (500, "Internal Server Error"),
    ]
}
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
ASGI = {"version": "3.0", "spec_version": "2.4"}

App = Callable[..., Any]


class Clock:
    """The ``date`` line, rebuilt once a second by a timer, not per request."""

    line = b""

    @classmethod
    def tick(cls) -> None:
        cls.line = b"date: " + formatdate(time.time(), usegmt=True).encode() + b"\r\n"


Clock.tick()


class FloorProtocol(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self.app = app
        self.buffer = b""
        self.busy = False
        self.closed = False
        self.lost: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        # hurtle's own trick: a Task made directly, on a loop looked up once
        # per connection (on 3.11 each lookup of the running loop is a getpid()).
        self.loop = asyncio.get_running_loop()
        self.scope_base = {
            "type": "http",
            "asgi": ASGI,
            "http_version": "1.1",
            "server": transport.get_extra_info("sockname")[:2],
            "client": transport.get_extra_info("peername")[:2],
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [],
        }

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if not self.busy:
            self.next_request()

    def bad_request(self) -> None:
        self.transport.write(BAD_REQUEST)
        self.transport.close()

    def next_request(self) -> None:
        buf = self.buffer
        end = buf.find(HEAD_END)
        if end < 0:
            return
        match = REQUEST_LINE.match(buf)
        if match is None:
            return self.bad_request()
        method, target, minor = match.groups()
        start = match.end()
        fields = FIELD_LINE.findall(buf, start, end + 2)
        if len(fields) != buf.count(b"\n", start, end + 2):
            return self.bad_request()
        headers = [(name.lower(), value) for name, value in fields]
        length = 0
        keep_alive = minor == b"1"
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    return self.bad_request()
                length = int(value)
            elif name == b"connection":
                token = value.lower()
                keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
        body_end = end + 4 + length
        if len(buf) < body_end:
            return  # the rest of the body is still to come
        body = buf[end + 4 : body_end]
        self.buffer = buf[body_end:]
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("latin-1")
        # A copy of the connection's fixed fields and six stores cost less
        # than a twelve-key literal (as in hurtle).
        scope = self.scope_base.copy()
        if minor == b"0":
            scope["http_version"] = "1.0"
        scope["method"] = method.decode("ascii")
        scope["path"] = unquote(path) if "%" in path else path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = headers
        self.busy = True
        cycle = Cycle(self, body, keep_alive)
        # Not kept anywhere (hurtle keeps its tasks for a graceful shutdown): a
        # task that waits is held by what it waits on.
        asyncio.Task(self.app(scope, cycle.receive, cycle.send), loop=self.loop)

    def response_done(self, keep_alive: bool) -> None:
        self.busy = False
        if not keep_alive:
            self.transport.close()
        elif self.buffer:
            self.next_request()


class Cycle:
    __slots__ = ("body", "chunked", "head", "keep_alive", "protocol", "read")
    last: tuple[Any, ...] = (None, None, None, None, b"", False)

    def __init__(self, protocol: FloorProtocol, body: bytes, keep_alive: bool) -> None:
        self.protocol = protocol
        self.body = body
        self.keep_alive = keep_alive
        self.read = False
        self.head: bytes | None = None
        self.chunked = False

    async def receive(self) -> dict[str, Any]:
        if not self.read:
            self.read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        protocol = self.protocol
        if not protocol.closed:
            if protocol.lost is None:
                protocol.lost = protocol.loop.create_future()
            await protocol.lost
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        protocol = self.protocol
        if protocol.closed:
            return
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = message.get("headers", ())
            keep_alive = self.keep_alive
            last = Cycle.last
            # The last head built, reused when the same response comes again
            # (hurtle remembers its last head the same way).
            if (
                status == last[0]
                and keep_alive == last[2]
                and Clock.line is last[3]
                and headers == last[1]
            ):
                self.head = last[4]
                self.chunked = last[5]
                return
            lines = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, Clock.line]
            framed = False
            for name, value in headers:
                lines.append(name + b": " + value + b"\r\n")
                framed = framed or name.lower() == b"content-length"
            if not framed:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            if not keep_alive:
                lines.append(b"connection: close\r\n")
            lines.append(b"\r\n")
            self.head = b"".join(lines)
            Cycle.last = (status, list(headers), keep_alive, Clock.line, self.head, self.chunked)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.chunked:
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (
                b"" if more else b"0\r\n\r\n"
            )
        if self.head is not None:
            body = self.head + body
            self.head = None
        if body:
            protocol.transport.write(body)
        if not more:
            protocol.response_done(self.keep_alive)


async def serve(app: App, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()

    def tick() -> None:
        Clock.tick()
        loop.call_later(1.0, tick)

    loop.call_later(1.0, tick)
    server = await loop.create_server(
        lambda: FloorProtocol(app), host, port, backlog=2048, reuse_address=True
    )
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--app", default="plaintext", help="an attribute of apps.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args(argv)
    app = getattr(apps, args.app)
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415  (only when asked for)

        uvloop.run(serve(app, args.host, args.port))
    else:
        asyncio.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
