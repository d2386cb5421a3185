"""Instructions per request on hurtle's HTTP/1.1 path, counted by callgrind.

Wall-clock figures on a shared 2-core machine swing by 20 % or more; an
instruction count does not, so this is the tool for A/B-ing a change to the
hot path before confirming it with `run.py` against the peers.

    .venv/bin/python bench/instructions.py [--scenario plaintext|json|post|close|h2|h2-post]
        [--server hurtle --server uvicorn --server raw --server floor]    # needs valgrind

It serves N requests of a run.py scenario (the same apps, wrk's request bytes)
through the server's protocol object over a fake transport that feeds the
next request as soon as a response is written (no sockets, no client), on
uvloop when installed, and prints (instructions for N+M requests - for N) / M.
``raw`` is an `asyncio.Protocol` that answers without parsing: the harness's
own cost. ``floor`` is `floor_server.py`'s protocol: the least an ASGI server
does per request (see bench/README.md). ``uvicorn`` runs uvicorn's httptools
protocol under the peers' interpreter (bench/.venv-peers, made by run.py;
PEERS_PYTHON=path overrides it, e.g. to compare on another Python version). Use the project's venv
interpreter: without uvloop the loop's own cost swamps the comparison.

``--scenario h2`` (hurtle only) is run.py's h2 scenario: plaintext GETs over
HTTP/2 with prior knowledge, H2_STREAMS streams in flight in one read (as
``h2load -m10`` keeps them), the next batch fed when all their answers are
written; the header blocks are h2load's, HPACK-encoded once. ``h2-post`` is
the same with the post scenario's 4 KiB echo (HEADERS, then one DATA frame).
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

import apps  # bench/apps.py, beside this file

# What wrk sends for each scenario of run.py (wrk adds Host; post.lua the rest).
REQUESTS = {
    "plaintext": b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
    "json": b"GET /json HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
    "post": (
        b"POST / HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 4096\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + b"a" * 4096
    ),
    "close": b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n",
}
APPS = {
    "plaintext": apps.plaintext,
    "json": apps.json,
    "post": apps.echo,
    "close": apps.plaintext,
    "h2": apps.plaintext,
    "h2-post": apps.echo,
}
# The last bytes of each scenario's response.
ENDINGS = {
    "plaintext": apps.PLAINTEXT_BODY,
    "json": apps.JSON_BODY,
    "post": b"a" * 64,
    "close": apps.PLAINTEXT_BODY,
}
# Longer than any counted run: a keep-alive deadline that expires inside the
# counted window (a close run under valgrind lasts about 5 s) would make the
# count depend on how loaded the machine was.
KEEP_ALIVE = 60
RAW_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nHello, world!"


class PingPongTransport:
    """Answers each response with the next request, on the next loop turn.

    For the ``close`` scenario every response is followed by the server's
    close, connection_lost, and a new protocol and connection.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, requests: int, scenario: str, factory: Any
    ) -> None:
        self.loop = loop
        self.left = requests
        self.done = loop.create_future()
        self.request = REQUESTS[scenario]
        self.ending = ENDINGS[scenario]
        self.reconnect = scenario == "close"
        self.factory = factory
        self.protocol: Any = None
        self.closing = False

    def connect(self) -> None:
        self.closing = False
        self.protocol = self.factory()
        self.protocol.connection_made(self)
        self.protocol.data_received(self.request)

    def write(self, data: bytes) -> None:
        # A response ends with its body; a server that writes the head and
        # the body apart (uvicorn) must not be fed two requests per response.
        if not data.endswith(self.ending):
            return
        self.left -= 1
        if self.left <= 0:
            self.done.set_result(None)
        elif not self.reconnect:
            self.loop.call_soon(self.protocol.data_received, self.request)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.loop.call_soon(self._lost)

    def _lost(self) -> None:
        self.protocol.connection_lost(None)
        if self.left > 0:
            self.connect()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


H2_STREAMS = 10
H2_REQUEST_FIELDS = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8080"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
]
H2_POST_FIELDS = [
    (b":method", b"POST"),
    *H2_REQUEST_FIELDS[1:],
    (b"content-length", b"4096"),
    (b"content-type", b"application/octet-stream"),
]
H2_POST_BODY = b"a" * 4096


def _h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


class H2PingPongTransport(PingPongTransport):
    """An HTTP/2 client in bytes: batches of GETs, the next when all are answered."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, requests: int, factory: Any, post: bool
    ) -> None:
        super().__init__(loop, requests, "plaintext", factory)
        self.post = post
        if post:
            self.ending = H2_POST_BODY
        fields = H2_POST_FIELDS if post else H2_REQUEST_FIELDS
        import hpack  # noqa: PLC0415 - h2's own dependency, only in the measured child

        encoder = hpack.Encoder()
        # The first block fills the server's dynamic table; the rest refer to it.
        self.blocks = [encoder.encode(fields), encoder.encode(fields)]
        self.next_stream = 1
        self.answered = 0

    def _batch(self) -> bytes:
        out = []
        for _ in range(min(H2_STREAMS, self.left)):
            block = self.blocks[0 if self.next_stream == 1 else 1]
            if self.post:
                # HEADERS (END_HEADERS), then the body in one DATA (END_STREAM).
                out.append(_h2_frame(0x1, 0x4, self.next_stream, block))
                out.append(_h2_frame(0x0, 0x1, self.next_stream, H2_POST_BODY))
            else:
                # HEADERS with END_STREAM | END_HEADERS: a whole GET.
                out.append(_h2_frame(0x1, 0x5, self.next_stream, block))
            self.next_stream += 2
        self.answered = 0
        return b"".join(out)

    def connect(self) -> None:
        self.protocol = self.factory()
        self.protocol.connection_made(self)
        preface = (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _h2_frame(0x4, 0, 0, b"")  # our SETTINGS: the defaults
            + _h2_frame(0x4, 0x1, 0, b"")  # ACK of the server's
            # The connection window opened all the way: 13-byte answers
            # would exhaust the default 64 KiB after about 5,000 of them.
            + _h2_frame(0x8, 0, 0, (2**31 - 1 - 65535).to_bytes(4, "big"))
        )
        self.protocol.data_received(preface + self._batch())

    def write(self, data: bytes) -> None:
        answers = data.count(self.ending)
        if not answers:
            return
        self.left -= answers
        self.answered += answers
        if self.left <= 0:
            if not self.done.done():
                self.done.set_result(None)
        elif self.answered >= H2_STREAMS:
            self.loop.call_soon(self.protocol.data_received, self._batch())


class RawProtocol(asyncio.Protocol):
    """The harness's own cost: answers on a blank line, no parsing, no ASGI."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data.find(b"\r\n\r\n") != -1:
            self.transport.write(RAW_RESPONSE)


SERVERS = {
    "hurtle": "hurtle H1Protocol",
    "raw": "raw asyncio.Protocol (plaintext only)",
    "uvicorn": "uvicorn HttpToolsProtocol (httptools)",
    "proto": "throwaway prototype (PROTO env var: a module with Proto(app))",
    "floor": "the ASGI floor (floor_server.py: real parsing, scope, Task; no checks)",
}


def protocol_factory(server: str, app: Any, scenario: str = "plaintext") -> Any:
    if server == "raw":
        return RawProtocol
    if server == "uvicorn":
        from uvicorn.config import Config as UvicornConfig  # noqa: PLC0415 - peers' venv only
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
        from uvicorn.server import ServerState as UvicornState  # noqa: PLC0415

        uconfig = UvicornConfig(
            app, access_log=False, http="httptools", lifespan="off", timeout_keep_alive=KEEP_ALIVE
        )
        uconfig.load()
        ustate = UvicornState()
        return lambda: HttpToolsProtocol(uconfig, ustate, {})
    if server == "floor":
        from floor_server import FloorProtocol  # noqa: PLC0415 - bench/, beside this file

        return lambda: FloorProtocol(app)
    if server == "proto":
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.spec_from_file_location("proto", os.environ["PROTO"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return lambda: module.Proto(app)
    from hurtle.config import Config  # noqa: PLC0415 - only in the measured child
    from hurtle.io.h1 import H1Protocol  # noqa: PLC0415
    from hurtle.io.state import ServerState  # noqa: PLC0415

    config = Config(app, access_log=False, timeout_keep_alive=KEEP_ALIVE)
    state = ServerState(config)
    if scenario.startswith("h2"):
        from hurtle.io.h2 import H2Protocol  # noqa: PLC0415

        return lambda: H2Protocol(config, app, state)
    return lambda: H1Protocol(config, app, state)


async def serve(requests: int, server: str, scenario: str) -> None:
    loop = asyncio.get_running_loop()
    factory = protocol_factory(server, APPS[scenario], scenario)
    transport: PingPongTransport
    if scenario.startswith("h2"):
        transport = H2PingPongTransport(loop, requests, factory, scenario == "h2-post")
    else:
        transport = PingPongTransport(loop, requests, scenario, factory)
    transport.connect()
    await transport.done


def child(requests: int, server: str, scenario: str) -> None:
    try:
        if os.environ.get("BENCH_LOOP") == "asyncio":
            raise ImportError
        import uvloop  # noqa: PLC0415

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    loop.run_until_complete(serve(max(requests, 1), server, scenario))


def count(requests: int, server: str, scenario: str, python: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/out",
            python,
            __file__,
            "--child",
            str(requests),
            "--server",
            server,
            "--scenario",
            scenario,
        ]
        # A fixed hash seed: dict and set layouts, so counts, repeat run to run.
        env = dict(os.environ, PYTHONHASHSEED="0")
        done = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--server",
        action="append",
        choices=sorted(SERVERS),
        help="what to count (repeatable; default: hurtle and raw). 'uvicorn' runs"
        " uvicorn's httptools protocol under the peers' interpreter (bench/.venv-peers)",
    )
    parser.add_argument(
        "--scenario", choices=sorted([*REQUESTS, "h2", "h2-post"]), default="plaintext"
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop of hurtle, raw, floor and proto (uvicorn always runs on uvloop)",
    )
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.server[0], args.scenario)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    bench = os.path.dirname(os.path.abspath(__file__))
    peers = os.environ.get("PEERS_PYTHON") or os.path.join(bench, ".venv-peers", "bin", "python")
    servers = args.server or (["hurtle", "raw"] if args.scenario == "plaintext" else ["hurtle"])
    if "raw" in servers and args.scenario != "plaintext":
        raise SystemExit("the raw protocol answers plaintext only")
    if args.scenario.startswith("h2") and servers != ["hurtle"]:
        raise SystemExit("the h2 scenarios count hurtle only (uvicorn has no HTTP/2)")
    for server in servers:
        python = sys.executable
        if server == "uvicorn":
            if not os.path.exists(peers):
                raise SystemExit("no peers' venv: run bench/run.py once to create it")
            python = peers
        os.environ["BENCH_LOOP"] = "uvloop" if server == "uvicorn" else args.loop
        base = count(1, server, args.scenario, python)
        total = count(1 + args.requests, server, args.scenario, python)
        per = (total - base) // args.requests
        loop = os.environ["BENCH_LOOP"]
        what = "hurtle H2Protocol" if args.scenario.startswith("h2") else SERVERS[server]
        print(f"{args.scenario}: {what} on {loop}: {per} instructions per request")


if __name__ == "__main__":
    main()
