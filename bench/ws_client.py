#!/usr/bin/env python3
"""A minimal WebSocket echo load generator: raw frames on asyncio.Protocol (uvloop if present).

    python3 bench/ws_client.py --port 8000 --connections 64 --size 32 --duration 10

Each connection does the opening handshake, then keeps ``--depth`` messages
in flight: it sends one binary message per echo received. It prints one JSON
line: ``{"messages": N, "seconds": S, "rate": msgs_per_s, "errors": E,
"connections": C, "size": B}``; ``messages`` counts echoes received in the
measured window (after ``--warmup`` seconds).

Why raw: the `websockets` library saturates its own core near 38k messages/s
(PERF-NOTES), below what the servers reach. Here every message costs the
client one ``transport.write`` of a frame masked once in advance (the mask
need not change between frames for a benchmark; servers only have to unmask)
and a length check on what comes back; replies are parsed frame by frame so
that a server's ping or a split read never miscounts.

Standard library only (plus uvloop when importable), so the runner's venv or
any python3 runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time

MASK = b"\x12\x34\x56\x78"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = int.from_bytes((MASK * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + MASK + body


class Stats:
    def __init__(self) -> None:
        self.messages = 0
        self.errors = 0
        self.counting = False


class EchoClient(asyncio.Protocol):
    def __init__(self, frame: bytes, depth: int, stats: Stats, ready: asyncio.Future[None]):
        self.frame = frame
        self.depth = depth
        self.stats = stats
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.skip = 0  # bytes of a large echo still to come
        self.handshaken = False
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16))
        transport.write(  # type: ignore[attr-defined]
            b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        echoes = 0
        skip = self.skip
        if skip:
            # Inside a large echo: its payload is only counted, never copied.
            if len(data) < skip:
                self.skip = skip - len(data)
                return
            self.skip = 0
            data = data[skip:]
            echoes = 1
        buf = self.buf + data if self.buf else data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.stats.errors += 1
                assert self.transport is not None
                self.transport.close()
                if not self.ready.done():
                    self.ready.set_exception(RuntimeError(buf[:200].decode("latin-1")))
                return
            self.handshaken = True
            buf = buf[end + 4 :]
            if not self.ready.done():
                self.ready.set_result(None)
            assert self.transport is not None
            self.transport.write(self.frame * self.depth)
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            head = 2
            if b1 == 126:
                if end - pos < 4:
                    break
                b1 = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif b1 == 127:
                if end - pos < 10:
                    break
                b1 = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            opcode = buf[pos] & 0x0F
            if end - pos < head + b1:
                if opcode < 0x8:
                    # A data frame not all here: skip the rest of it as it comes.
                    self.skip = head + b1 - (end - pos)
                    pos = end
                break
            if opcode == 0x9:  # the server's ping: answer it
                payload = buf[pos + head : pos + head + b1]
                assert self.transport is not None
                self.transport.write(masked_frame(0xA, payload))
            elif opcode == 0x8:
                self.running = False
            else:
                echoes += 1
            pos += head + b1
        self.buf = buf[pos:] if pos < end else b""
        if echoes:
            if self.stats.counting:
                self.stats.messages += echoes
            if self.running:
                assert self.transport is not None
                self.transport.write(self.frame * echoes if echoes > 1 else self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.running:
            self.stats.errors += 1
        self.running = False
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the handshake"))


async def run(
    host: str,
    port: int,
    connections: int,
    size: int,
    duration: float,
    warmup: float,
    depth: int,
) -> dict[str, float | int]:
    loop = asyncio.get_running_loop()
    frame = masked_frame(0x2, b"x" * size)
    stats = Stats()
    clients: list[EchoClient] = []
    readies = []
    for _ in range(connections):
        ready: asyncio.Future[None] = loop.create_future()
        _, client = await loop.create_connection(
            lambda ready=ready: EchoClient(frame, depth, stats, ready), host, port
        )
        clients.append(client)
        readies.append(ready)
    await asyncio.wait_for(asyncio.gather(*readies), 30)
    await asyncio.sleep(warmup)
    stats.counting = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stats.counting = False
    elapsed = time.perf_counter() - started
    for client in clients:
        client.running = False
        if client.transport is not None:
            client.transport.abort()
    await asyncio.sleep(0.05)
    return {
        "messages": stats.messages,
        "seconds": round(elapsed, 3),
        "rate": round(stats.messages / elapsed, 1),
        "errors": stats.errors,
        "connections": connections,
        "size": size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="message size in bytes")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--depth", type=int, default=1, help="messages in flight per connection")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    if args.loop != "asyncio":
        try:
            import uvloop  # noqa: PLC0415

            uvloop.install()
        except ImportError:
            if args.loop == "uvloop":
                raise
    result = asyncio.run(
        run(
            args.host,
            args.port,
            args.connections,
            args.size,
            args.duration,
            args.warmup,
            args.depth,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
