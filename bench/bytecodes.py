"""Bytecodes executed per request, by function, on hurtle's HTTP/1.1 and HTTP/2 paths.

    .venv/bin/python bench/bytecodes.py [--scenario plaintext|json|post|close|h2|h2-post]
                                        [--requests 500]
                                        [--lines FUNC]   # FUNC split by source line
                                        [--loop asyncio]  # plain asyncio, not uvloop
                                        [--server floor]  # bench/floor_server.py instead

Runs the same fake-transport harness as `instructions.py` (run.py's apps,
wrk's request bytes, uvloop when installed) under an opcode tracer and prints
(bytecodes for N+1 requests - bytecodes for 1) / N per function. Deterministic
and quick (seconds): with `instructions.py`'s callgrind counts it shows which
function a hot-path change should aim at (about 40 % of a request's
instructions are the eval loop itself, so fewer bytecodes is most of the game).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
from types import FrameType
from typing import Any

import instructions  # bench/instructions.py, beside this file

Key = tuple[str, str]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", choices=sorted([*instructions.REQUESTS, "h2", "h2-post"]), default="plaintext"
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--server",
        choices=("hurtle", "floor"),
        default="hurtle",
        help="floor: bench/floor_server.py, the ASGI floor, split the same way",
    )
    parser.add_argument(
        "--lines", metavar="FUNC", help="split FUNC (a function name) by source line"
    )
    args = parser.parse_args()
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    sys.path.insert(0, src)

    counts: collections.Counter[Key] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            code = frame.f_code
            name = code.co_name
            if name == args.lines:
                name = f"{name}:{frame.f_lineno}"
            counts[(os.path.basename(code.co_filename), name)] += 1
        return tracer

    def run(requests: int) -> collections.Counter[Key]:
        try:
            if args.loop == "asyncio":
                raise ImportError
            import uvloop  # noqa: PLC0415

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        counts.clear()
        sys.settrace(tracer)
        try:
            loop.run_until_complete(instructions.serve(requests, args.server, args.scenario))
        finally:
            sys.settrace(None)
            loop.close()
        return counts.copy()

    run(50)  # imports and first-use caches
    base = run(1)
    total = run(args.requests + 1)
    rows = []
    for key, value in total.items():
        per = (value - base.get(key, 0)) / args.requests
        if per >= 0.5:
            rows.append((per, key))
    rows.sort(reverse=True)
    print(f"{args.scenario}: {sum(per for per, _ in rows):.0f} bytecodes per request")
    for per, (filename, name) in rows[: args.top]:
        print(f"{per:8.1f}  {filename}:{name}")


if __name__ == "__main__":
    main()
