#!/usr/bin/env python3
"""WebSocket echo, hurtle against uvicorn[standard], side by side (the ``ws`` scenario).

    python3 bench/ws_bench.py                       # small and 1 MiB messages, 5 runs each
    python3 bench/ws_bench.py --runs 3 --scenarios small --servers hurtle,uvicorn

Uses the runner's venv (``bench/.venv-peers``, created by ``bench/run.py``) and
its app ``apps:ws_echo``; the load comes from ``bench/ws_client.py`` (raw
frames, see there why). Method as in ``run.py``: one worker per server, access
logs off, the server pinned to the first CPU and the client to the second
(``taskset``), every server started once per scenario and measured round-robin
(the order rotates each round) so that drift hits them alike; the medians and
their ratio to uvicorn are printed.

Scenarios:

- ``small``: 64 connections, 32-byte binary messages, one in flight each;
- ``big``: 4 connections, 1 MiB binary messages, one in flight each.

To wire it into ``run.py``: the ``ws`` scenario there can call
``ws_client.run(...)`` (or this file's ``measure_once``) for its load and report
``rate`` as its requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VPY = BENCH / ".venv-peers" / "bin" / "python"
HOST = "127.0.0.1"

SCENARIOS = {
    "small": {"connections": 64, "size": 32, "duration": 8.0},
    "big": {"connections": 4, "size": 1 << 20, "duration": 8.0},
}


def server_argv(name: str, port: int) -> list[str]:
    common = ["apps:ws_echo", "--host", HOST, "--port", str(port), "--no-access-log"]
    if name == "hurtle":
        return [str(VPY), "-m", "hurtle", *common, "--loop", "uvloop", "--log-level", "warning"]
    if name == "hurtle-asyncio":
        return [str(VPY), "-m", "hurtle", *common, "--loop", "asyncio", "--log-level", "warning"]
    if name == "uvicorn":
        # uvicorn[standard]: httptools, uvloop, and the `websockets` implementation.
        return [
            str(VPY),
            "-m",
            "uvicorn",
            *common,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--ws",
            "websockets",
            "--log-level",
            "warning",
        ]
    if name == "uvicorn-sansio":
        return [
            str(VPY),
            "-m",
            "uvicorn",
            *common,
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
        ]
    raise SystemExit(f"unknown server {name!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []


class Server:
    def __init__(self, name: str, cpu: str | None) -> None:
        self.name = name
        self.port = free_port()
        env = dict(os.environ)
        if name.startswith("hurtle"):
            env["PYTHONPATH"] = str(REPO / "src")
        self.proc = subprocess.Popen(
            [*pin(cpu), *server_argv(name, self.port)],
            cwd=BENCH,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_once(port: int, scenario: dict[str, float], cpu: str | None) -> dict[str, float]:
    cmd = [
        *pin(cpu),
        str(VPY),
        str(BENCH / "ws_client.py"),
        "--port",
        str(port),
        "--connections",
        str(int(scenario["connections"])),
        "--size",
        str(int(scenario["size"])),
        "--duration",
        str(scenario["duration"]),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="hurtle,uvicorn")
    parser.add_argument("--scenarios", default="small,big")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    args = parser.parse_args()
    if not VPY.exists():
        raise SystemExit("bench/.venv-peers is missing: run python3 bench/run.py --quick once")
    names = args.servers.split(",")
    for scenario_name in args.scenarios.split(","):
        scenario = SCENARIOS[scenario_name]
        rates: dict[str, list[float]] = {name: [] for name in names}
        servers = {name: Server(name, args.server_cpu) for name in names}
        try:
            for port in (s.port for s in servers.values()):  # warm-up
                measure_once(port, {**scenario, "duration": 2.0}, args.client_cpu)
            for run in range(args.runs):
                order = names[run % len(names) :] + names[: run % len(names)]
                for name in order:
                    result = measure_once(servers[name].port, scenario, args.client_cpu)
                    if result["errors"]:
                        print(f"  {name}: {result['errors']} errors", file=sys.stderr)
                    rates[name].append(result["rate"])
                    print(f"  {scenario_name} run {run + 1} {name}: {result['rate']:.0f} msg/s")
        finally:
            for server in servers.values():
                server.stop()
        base = statistics.median(rates[names[-1]]) if "uvicorn" not in rates else None
        base = statistics.median(rates["uvicorn"]) if "uvicorn" in rates else base
        print(
            f"{scenario_name}: {int(scenario['connections'])} connections, "
            f"{int(scenario['size'])}-byte messages"
        )
        for name in names:
            median = statistics.median(rates[name])
            ratio = f"{median / base:.2f}x uvicorn" if base else ""
            low, high = min(rates[name]), max(rates[name])
            print(f"  {name:16} median {median:10.0f} msg/s ({low:.0f}-{high:.0f})  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
