#!/usr/bin/env python3
"""Run the Autobahn WebSocket conformance cases against hurtle, with PyPI's `kosoku`.

    .venv/bin/python scripts/autobahn.py                  # the whole suite (12 and 13 too)
    .venv/bin/python scripts/autobahn.py --cases '1.*' --cases '9.*' -p 4
    .venv/bin/python scripts/autobahn.py --quick          # sections 1-7, 9 and 10

`kosoku` (``pip install -e '.[dev]'``) drives Autobahn's own case files from
Python against a server on loopback. This script serves its echo `app` with
``python -m hurtle autobahn:app --app-dir scripts`` on a free port, runs the
cases, prints the count of each verdict, and exits 1 if any case FAILED (or
errored). The HTML and JSON reports are written to ``--outdir``.

A case is a pass when kosoku says OK, NON-STRICT (the server failed the
connection later than it could have, e.g. on a whole frame instead of its
first bad byte) or INFORMATIONAL (nothing to judge). The compression
sections (12 and 13) echo a thousand messages of up to 128 KiB each and are
bound by zlib: they run one case at a time by default so that a busy machine
does not push a case past kosoku's time limit.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Echo every message back, as Autobahn's fuzzing client expects."""
    if scope["type"] != "websocket":
        return  # lifespan: nothing to set up
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(extra_args: list[str] | None = None) -> Iterator[int]:
    """``python -m hurtle autobahn:app`` on a free loopback port, stopped afterwards."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "hurtle",
        "autobahn:app",
        "--app-dir",
        str(ROOT / "scripts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "2",
        *(extra_args or []),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("hurtle did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kosoku() -> str:
    candidate = Path(sys.executable).parent / "kosoku"
    if candidate.exists():
        return str(candidate)
    raise SystemExit("kosoku is not installed: pip install -e '.[dev]'")


def run_cases(
    cases: list[str],
    parallelism: int = 4,
    outdir: Path | None = None,
    timeout: float = 1800,
) -> dict[str, dict[str, Any]]:
    """Run the matching cases against a fresh server; return kosoku's verdict per case id."""
    with contextlib.ExitStack() as stack:
        if outdir is None:
            outdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        port = stack.enter_context(serve())
        cmd = [_kosoku(), f"127.0.0.1:{port}", "-p", str(parallelism), "-o", str(outdir)]
        for pattern in cases:
            cmd += ["-i", pattern]
        subprocess.run(cmd, check=False, timeout=timeout, stdout=subprocess.DEVNULL)
        index = json.loads((outdir / "index.json").read_text())
    results: dict[str, dict[str, Any]] = next(iter(index.values()))
    return results


def failures(results: dict[str, dict[str, Any]]) -> list[str]:
    """Case ids whose behaviour or closing behaviour is not a pass."""
    return sorted(
        (
            case
            for case, result in results.items()
            if result["behavior"] not in PASSING or result["behaviorClose"] not in PASSING
        ),
        key=lambda case: [int(part) for part in case.split(".")],
    )


def summary(results: dict[str, dict[str, Any]]) -> str:
    counts = collections.Counter(result["behavior"] for result in results.values())
    parts = [f"{count} {verdict}" for verdict, count in sorted(counts.items())]
    return f"{len(results)} cases: " + ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", action="append", help="case id or glob (repeatable)")
    parser.add_argument("--quick", action="store_true", help="sections 1-7, 9 and 10 only")
    parser.add_argument("-p", "--parallelism", type=int, default=4)
    parser.add_argument(
        "-o", "--outdir", type=Path, default=Path(tempfile.gettempdir()) / "hurtle-autobahn"
    )
    args = parser.parse_args()
    outdir: Path = args.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    if args.cases:
        batches = [(args.cases, args.parallelism)]
    elif args.quick:
        batches = [(QUICK, args.parallelism)]
    else:
        # Compression cases one at a time: see the module docstring.
        batches = [(QUICK, args.parallelism), (["12.*", "13.*"], 1)]
    results: dict[str, dict[str, Any]] = {}
    for number, (cases, parallelism) in enumerate(batches):
        started = time.monotonic()
        batch = run_cases(cases, parallelism, outdir / str(number))
        print(f"{' '.join(cases)}: {summary(batch)} in {time.monotonic() - started:.0f} s")
        results.update(batch)
    print(f"total: {summary(results)}")
    failed = failures(results)
    for case in failed:
        result = results[case]
        print(f"  {case}: {result['behavior']} / close {result['behaviorClose']}")
    print(f"reports: {outdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
