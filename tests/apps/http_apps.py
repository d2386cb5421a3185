"""ASGI apps and a raw HTTP/1.x client for the end-to-end HTTP tests.

- `app`: one router app; each path exercises one behaviour (see `ROUTES`).
- `Probe` and the ``make_*`` factories: apps that report to the test thread
  (the server runs in another thread) through `threading.Event`s.
- `RawConnection`: a blocking socket client that sends exact bytes and parses
  responses strictly, for what `httpx` would hide or refuse to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CHUNK = 65536


def pattern_chunk(index: int, size: int = CHUNK) -> bytes:
    """Deterministic bytes for chunk `index`: reordering or loss shows in a hash."""
    seed = index.to_bytes(4, "big")
    block = (seed + bytes(range(256))) * (size // 260 + 1)
    return block[:size]


def pattern_body(total: int, chunk: int = CHUNK) -> bytes:
    parts = []
    index = 0
    remaining = total
    while remaining > 0:
        size = min(chunk, remaining)
        parts.append(pattern_chunk(index, size))
        remaining -= size
        index += 1
    return b"".join(parts)


# -- helpers for apps ------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away while sending the body")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def respond(
    send: Send,
    body: bytes,
    status: int = 200,
    content_type: bytes = b"text/plain",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def query_of(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"))
    return {k: v[-1] for k, v in parsed.items()}


def scope_as_json(scope: Scope) -> dict[str, Any]:
    return {
        "type": scope["type"],
        "asgi": scope["asgi"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "client": list(scope["client"]) if scope["client"] else None,
        "server": list(scope["server"]) if scope["server"] else None,
        "state": {k: v for k, v in scope.get("state", {}).items() if isinstance(v, str)},
        "extensions": sorted(scope.get("extensions") or {}),
        "types": {
            "raw_path": type(scope["raw_path"]).__name__,
            "query_string": type(scope["query_string"]).__name__,
            "headers": [type(h).__name__ for h in scope["headers"][:1]],
        },
    }


# -- the router -------------------------------------------------------------------------


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"hello")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    await respond(
        send,
        body,
        content_type=b"application/octet-stream",
        headers=[(b"x-method", scope["method"].encode())],
    )


async def scope_view(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, json.dumps(scope_as_json(scope)).encode(), content_type=b"application/json")


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """``?n=&size=``: n pieces of `size` bytes, no Content-Length."""
    query = query_of(scope)
    count = int(query.get("n", "5"))
    size = int(query.get("size", "10"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(count):
        await send(
            {"type": "http.response.body", "body": pattern_chunk(i, size), "more_body": True}
        )
    await send({"type": "http.response.body", "body": b""})


async def big_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """``?size=``: a large streamed body of `pattern_body` pieces, no Content-Length."""
    total = int(query_of(scope).get("size", str(5 * 1024 * 1024)))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    index = 0
    remaining = total
    while remaining > 0:
        size = min(CHUNK, remaining)
        await send(
            {"type": "http.response.body", "body": pattern_chunk(index, size), "more_body": True}
        )
        remaining -= size
        index += 1
    await send({"type": "http.response.body", "body": b""})


async def slow_read(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body slowly; answers with its length, hash and the biggest piece."""
    digest = hashlib.sha256()
    total = 0
    pieces = 0
    biggest = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        digest.update(body)
        total += len(body)
        pieces += 1
        biggest = max(biggest, len(body))
        await asyncio.sleep(0.005)
        if not message.get("more_body", False):
            break
    result = {"length": total, "sha256": digest.hexdigest(), "pieces": pieces, "biggest": biggest}
    await respond(send, json.dumps(result).encode(), content_type=b"application/json")


async def error_before_start(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("app failure before the response (expected by the test)")


async def error_after_body(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("app failure mid-body (expected by the test)")


async def no_response(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def short_body(scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
    )
    await send({"type": "http.response.body", "body": b"12345"})


BAD_HEADERS = {
    "crlf": (b"x-bad", b"a\r\nx-injected: 1"),
    "lf": (b"x-bad", b"a\nx-injected: 1"),
    "nul": (b"x-bad", b"a\x00b"),
    "name": (b"x bad", b"v"),
    "name-crlf": (b"x-injected: 1\r\nx-bad", b"v"),
}


async def bad_header(scope: Scope, receive: Receive, send: Send) -> None:
    """``?kind=``: an invalid response header, left to escape from send()."""
    kind = query_of(scope).get("kind", "crlf")
    await send({"type": "http.response.start", "status": 200, "headers": [BAD_HEADERS[kind]]})
    await send({"type": "http.response.body", "body": b"must never be sent"})


async def bad_header_caught(scope: Scope, receive: Receive, send: Send) -> None:
    """The same, but the app catches the error and answers with its type name."""
    kind = query_of(scope).get("kind", "crlf")
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [BAD_HEADERS[kind]]})
    except Exception as exc:
        await respond(send, type(exc).__name__.encode())
        return
    await send({"type": "http.response.body", "body": b"send did not raise"})


async def trailers(scope: Scope, receive: Receive, send: Send) -> None:
    """Trailers when the extension is offered (``?force=1``: promised regardless)."""
    force = query_of(scope).get("force") == "1"
    offered = "http.response.trailers" in scope["extensions"]
    promise = offered or force
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum")],
            "trailers": promise,
        }
    )
    await send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await send({"type": "http.response.body", "body": b"def"})
    if promise:
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"sum-abcdef")]})


async def pathsend(scope: Scope, receive: Receive, send: Send) -> None:
    path = query_of(scope)["path"]
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/file")]}
    )
    await send({"type": "http.response.pathsend", "path": path})


async def zerocopy(scope: Scope, receive: Receive, send: Send) -> None:
    """``?path=&pieces=``: the file in `pieces` zerocopysend messages, no Content-Length."""
    query = query_of(scope)
    pieces = int(query.get("pieces", "1"))
    path = query["path"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    with open(path, "rb") as file:  # noqa: ASYNC230
        size = os.fstat(file.fileno()).st_size
        step = size // pieces
        offset = 0
        for i in range(pieces):
            count = step if i < pieces - 1 else size - offset
            await send(
                {
                    "type": "http.response.zerocopysend",
                    "file": file,
                    "offset": offset,
                    "count": count,
                    "more_body": i < pieces - 1,
                }
            )
            offset += count


async def early_hint(scope: Scope, receive: Receive, send: Send) -> None:
    if "http.response.early_hint" in scope["extensions"]:
        await send(
            {
                "type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"],
            }
        )
    await respond(send, b"final")


async def status(scope: Scope, receive: Receive, send: Send) -> None:
    code = int(query_of(scope).get("code", "200"))
    await send({"type": "http.response.start", "status": code, "headers": []})
    await send({"type": "http.response.body", "body": b"body that must not be sent"})


async def head_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers HEAD like GET (body included): the server must drop the body."""
    await respond(send, b"0123456789")


async def no_read(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"answered without reading")


async def sleep(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(float(query_of(scope).get("s", "0.5")))
    await respond(send, b"slept")


async def connection_close(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"bye", headers=[(b"connection", b"close")])


ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/": hello,
    "/hello": hello,
    "/echo": echo,
    "/scope": scope_view,
    "/stream": stream,
    "/big-stream": big_stream,
    "/slow-read": slow_read,
    "/error": error_before_start,
    "/error-after-body": error_after_body,
    "/no-response": no_response,
    "/short-body": short_body,
    "/bad-header": bad_header,
    "/bad-header-caught": bad_header_caught,
    "/trailers": trailers,
    "/pathsend": pathsend,
    "/zerocopy": zerocopy,
    "/early-hint": early_hint,
    "/status": status,
    "/head-body": head_body,
    "/no-read": no_read,
    "/sleep": sleep,
    "/connection-close": connection_close,
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes on the path below ``root_path``; lifespan sets ``state['greeting']``."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    if path.startswith("/scope"):
        path = "/scope"
    handler = ROUTES.get(path)
    if handler is None:
        await respond(send, b"not found", status=404)
        return
    await handler(scope, receive, send)


# -- apps that report to the test thread --------------------------------------------------


@dataclass
class Probe:
    """What an app in the server thread tells the test thread, and when."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    receiving: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    messages: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    async def wait_release(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        # A threading.Event set from the test thread: poll it from the loop.
        while not self.release.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _with_lifespan(inner: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Any:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(scope, receive, send)
            return
        await inner(scope, receive, send)

    return wrapped


def make_gated_echo(probe: Probe) -> Any:
    """Waits for ``probe.release`` before its first receive(), then echoes the body."""

    async def gated(scope: Scope, receive: Receive, send: Send) -> None:
        probe.started.set()
        await probe.wait_release()
        probe.receiving.set()
        body = await read_body(receive)
        await respond(send, body)
        probe.done.set()

    return _with_lifespan(gated)


def make_disconnect_watcher(probe: Probe) -> Any:
    """Reads every message until http.disconnect, then tries to send (and records the error)."""

    async def watcher(scope: Scope, receive: Receive, send: Send) -> None:
        probe.started.set()
        try:
            while True:
                message = await receive()
                probe.messages.append(message)
                if message["type"] == "http.disconnect":
                    probe.disconnected.set()
                    break
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"too late"})
            except BaseException as exc:
                probe.errors.append(exc)
                raise
        finally:
            probe.done.set()

    return _with_lifespan(watcher)


def make_slow(probe: Probe) -> Any:
    """Signals ``probe.started``, then answers once ``probe.release`` is set."""

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            probe.started.set()
            await probe.wait_release()
        await respond(send, b"done " + scope["path"].encode())

    return _with_lifespan(slow)


# -- a raw HTTP/1.x client ----------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    chunked: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunk_sizes: list[int] = field(default_factory=list)

    def get(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


class IncompleteResponse(Exception):
    """The server closed before the response was complete (as framed)."""

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


class RawConnection:
    """A blocking client socket on loopback with a strict response reader."""

    def __init__(self, port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_slowly(self, data: bytes, sizes: list[int], pause: float = 0.01) -> None:
        """Send `data` in pieces of the given sizes (cycled), pausing between them."""
        i = 0
        k = 0
        while i < len(data):
            size = sizes[k % len(sizes)]
            self.sock.sendall(data[i : i + size])
            i += size
            k += 1
            time.sleep(pause)

    def _fill(self, size: int = 65536) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise IncompleteResponse(f"closed after {len(self.buf)} of {n} bytes", self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise IncompleteResponse("closed in the middle of a line", self.buf)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_head(self) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise IncompleteResponse("closed before the end of a response head", self.buf)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        version, status, reason = [*lines[0].split(b" ", 2), b""][:3]
        assert version == b"HTTP/1.1", f"bad status line {lines[0]!r}"
        assert len(status) == 3 and status.isdigit(), f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            assert colon and name and name == name.strip(), f"bad header line {line!r}"
            headers.append((name.lower(), value.strip(b" \t")))
        return int(status), reason, headers, head + b"\r\n\r\n"

    def read_response(self, method: bytes = b"GET", interim: bool = False) -> RawResponse:
        """The next response; 1xx ones are returned only with `interim`, else skipped."""
        while True:
            status, reason, headers, raw = self.read_head()
            if 100 <= status < 200:
                response = RawResponse(status, reason, headers, b"", raw)
                if interim:
                    return response
                continue
            break
        response = RawResponse(status, reason, headers, b"", raw)
        if method == b"HEAD" or status in (204, 304):
            return response
        te = response.get(b"transfer-encoding")
        length = response.get(b"content-length")
        if te is not None:
            assert te.lower() == b"chunked", te
            assert length is None, "both Content-Length and Transfer-Encoding"
            response.chunked = True
            parts = []
            while True:
                size_line = self._line()
                raw += size_line + b"\r\n"
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                response.chunk_sizes.append(size)
                data = self._take(size)
                parts.append(data)
                crlf = self._take(2)
                assert crlf == b"\r\n", f"chunk not followed by CRLF: {crlf!r}"
                raw += data + crlf
            while True:
                line = self._line()
                raw += line + b"\r\n"
                if not line:
                    break
                name, _, value = line.partition(b":")
                response.trailers.append((name.lower(), value.strip()))
            response.body = b"".join(parts)
        elif length is not None:
            response.body = self._take(int(length))
            raw += response.body
        else:
            while self._fill():
                pass
            response.body, self.buf = self.buf, b""
            raw += response.body
        response.raw = raw
        return response

    def read_all(self) -> bytes:
        """Everything until the server closes."""
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True once the server has closed (EOF or reset) within `timeout` seconds."""
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            with contextlib.suppress(TimeoutError):
                while self._fill():
                    pass
        finally:
            self.sock.settimeout(10.0)
        return self.eof

    def nothing_within(self, seconds: float) -> bool:
        """True when no byte arrives (and the socket stays open) for `seconds`."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(10.0)
        if not data:
            self.eof = True
        self.buf += data
        return False


def request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    """Request bytes with a Host header (on 1.1) and a Content-Length for a body."""
    lines = [f"{method} {target} HTTP/{version}"]
    names = {n.lower() for n, _ in headers or []}
    if version == "1.1" and "host" not in names:
        lines.append("Host: test")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes, trailers: bytes = b"", extensions: bytes = b"") -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extensions, p) for p in pieces if p)
    return out + b"0\r\n" + trailers + b"\r\n"
