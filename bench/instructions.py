"""Instructions per request on hurtle's HTTP/1.1 path, counted by callgrind.

Wall-clock figures on a shared 2-core machine swing by 20 % or more; an
instruction count does not, so this is the tool for A/B-ing a change to the
hot path before confirming it with `run.py` against the peers.

    python3 bench/instructions.py            # needs valgrind (apt-get install valgrind)

It serves N keep-alive GET requests through `H1Protocol` over a fake
transport that feeds the next request as soon as a response is written (no
sockets, no parsing by a client), on uvloop when installed, and prints
(instructions for N+M requests - instructions for N) / M, plus the same for a
raw `asyncio.Protocol` that answers without parsing: the harness's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

REQUEST = (
    b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
)
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, world!"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


class PingPongTransport:
    """Answers each response with the next request, on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, requests: int) -> None:
        self.loop = loop
        self.left = requests
        self.done = loop.create_future()
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set_result(None)
        else:
            self.loop.call_soon(self.protocol.data_received, REQUEST)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class RawProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data.find(b"\r\n\r\n") != -1:
            self.transport.write(RESPONSE)


async def serve(requests: int, raw: bool) -> None:
    loop = asyncio.get_running_loop()
    transport = PingPongTransport(loop, requests)
    protocol: Any
    if raw:
        protocol = RawProtocol()
    else:
        from hurtle.config import Config  # noqa: PLC0415 - only in the measured child
        from hurtle.io.h1 import H1Protocol  # noqa: PLC0415
        from hurtle.io.state import ServerState  # noqa: PLC0415

        config = Config(app, access_log=False)
        protocol = H1Protocol(config, app, ServerState(config))
    transport.protocol = protocol
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    await transport.done


def child(requests: int, raw: bool) -> None:
    try:
        import uvloop  # noqa: PLC0415

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    loop.run_until_complete(serve(max(requests, 1), raw))


def count(requests: int, raw: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/out",
            sys.executable,
            __file__,
            "--child",
            str(requests),
        ]
        if raw:
            args.append("--raw")
        done = subprocess.run(args, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.raw)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    for raw, name in ((False, "hurtle H1Protocol"), (True, "raw asyncio.Protocol")):
        base = count(1, raw)
        total = count(1 + args.requests, raw)
        print(f"{name}: {(total - base) // args.requests} instructions per request")


if __name__ == "__main__":
    main()
