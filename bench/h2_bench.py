"""HTTP/2 benchmark: hurtle against hypercorn and granian with h2load, side by side.

    python3 bench/h2_bench.py                       # both scenarios, 5 runs x 5 s each
    python3 bench/h2_bench.py --scenarios plaintext --runs 3 --duration 3

Uses the peers' venv that ``bench/run.py`` sets up (``bench/.venv-peers``, with
hurtle installed from this checkout; this checkout's ``src/`` goes first on
PYTHONPATH) and Debian's ``h2load`` (nghttp2-client). Every server runs under
``taskset -c 1`` with one worker and no access log, h2load under ``taskset -c 0``
with one thread and prior knowledge (h2c). Runs of the servers alternate
(hurtle, hypercorn, granian, hurtle, ...) so a noisy moment hits all of them;
the table gives the median req/s of each and the ratios of hurtle to the others.

On a shared machine req/s follows whatever else runs; the server's own CPU time
per request (utime+stime of its process group, all threads, over the measured
requests, warm-up included on both sides) is far steadier, so the table gives
that too, with its ratio: how many requests each server answers per CPU-second.

Scenarios:

- ``plaintext``: GET "Hello, world!", 16 connections x 32 concurrent streams;
- ``big``: GET a 1 MiB body, 4 connections x 4 streams, 16 MiB windows (h2load
  ``-w 24 -W 24``) so that flow control is not what is measured.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VPY = BENCH / ".venv-peers" / "bin" / "python"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Scenario:
    app: str
    h2load: tuple[str, ...]


SCENARIOS = {
    "plaintext": Scenario("plaintext", ("-c16", "-m32")),
    "big": Scenario("big", ("-c4", "-m4", "-w24", "-W24")),
}


def server_argv(name: str, app: str, port: int) -> list[str]:
    if name == "hurtle":
        return [
            str(VPY), "-m", "hurtle", f"apps:{app}", "--host", HOST, "--port", str(port),
            "--no-access-log", "--loop", "uvloop", "--log-level", "warning",
            "--http", "h2", "--h2-max-concurrent-streams", "128",
        ]  # fmt: skip
    if name == "hypercorn":
        # hypercorn.toml lifts its cap of 1000 requests per connection.
        return [
            str(VPY), "-m", "hypercorn", "--config", "hypercorn.toml", f"apps:{app}",
            "--bind", f"{HOST}:{port}", "--workers", "1", "--worker-class", "uvloop",
            "--log-level", "warning",
        ]  # fmt: skip
    if name == "granian":
        return [
            str(VPY), "-m", "granian", "--interface", "asgi", "--host", HOST,
            "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "2",
            "--log-level", "warning", f"apps:{app}",
        ]  # fmt: skip
    raise ValueError(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen in time")


def group_ticks(pgid: int) -> int:
    """utime+stime (clock ticks) of every live process in process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


@dataclass
class Result:
    rate: float
    problem: str
    cpu_us: float = float("nan")  # server CPU microseconds per request


def h2load(port: int, scenario: Scenario, duration: float, warmup: float) -> tuple[float, int, str]:
    argv = [
        "taskset", "-c", "0", "h2load", "-t1", f"-D{duration:g}",
        f"--warm-up-time={warmup:g}", *scenario.h2load, f"http://{HOST}:{port}/",
    ]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + warmup + 60, check=False
    ).stdout
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    failed = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed", out
    )
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    if rate is None or done is None:
        return 0.0, 0, "no result: " + out[-300:]
    problem = f"{failed.group(1)} failed" if failed and int(failed.group(1)) else ""
    return float(rate.group(1)), int(done.group(1)), problem


def run_one(name: str, scenario: Scenario, duration: float, warmup: float) -> Result:
    port = free_port()
    env = dict(os.environ)
    if name == "hurtle":
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
        )
    proc = subprocess.Popen(
        ["taskset", "-c", "1", *server_argv(name, scenario.app, port)],
        cwd=BENCH,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_port(port, proc)
        ticks = group_ticks(proc.pid)
        rate, done, problem = h2load(port, scenario, duration, warmup)
        ticks = group_ticks(proc.pid) - ticks
        # h2load's "done" counts the measured requests only; warm-up ones are
        # in the CPU time too, so scale by the measured share of the time.
        measured = done * (duration + warmup) / duration
        cpu_us = ticks / os.sysconf("SC_CLK_TCK") / measured * 1e6 if done else float("nan")
        return Result(rate, problem, cpu_us)
    except RuntimeError as exc:
        return Result(0.0, str(exc))
    finally:
        with_group = proc.pid
        try:
            os.killpg(with_group, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(with_group, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="hurtle,hypercorn,granian")
    parser.add_argument("--scenarios", default="plaintext,big")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if not VPY.exists():
        print(
            "bench/.venv-peers is missing: run `python3 bench/run.py --list` once", file=sys.stderr
        )
        return 1
    servers = args.servers.split(",")
    status = 0
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for scenario_name in args.scenarios.split(","):
        scenario = SCENARIOS[scenario_name]
        rates: dict[str, list[float]] = {name: [] for name in servers}
        cpus: dict[str, list[float]] = {name: [] for name in servers}
        for run in range(args.runs):
            for name in servers:
                result = run_one(name, scenario, args.duration, args.warmup)
                print(f"{scenario_name} run {run + 1} {name}: {result.rate:.0f} req/s, "
                      f"{result.cpu_us:.0f} us CPU/request {result.problem}",
                      file=sys.stderr)  # fmt: skip
                if result.problem:
                    status = 1
                rates[name].append(result.rate)
                cpus[name].append(result.cpu_us)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        cpu_medians = {name: statistics.median(values) for name, values in cpus.items()}
        print(f"\n{scenario_name} ({' '.join(scenario.h2load)}), median of {args.runs} runs:")
        print(
            "| server | req/s (median) | runs | hurtle / server "
            "| CPU us/request (median) | runs | hurtle / server, by CPU |"
        )
        print("|---|---|---|---|---|---|---|")
        base = medians.get("hurtle", 0.0)
        cpu_base = cpu_medians.get("hurtle", float("nan"))
        for name in servers:
            ratio = base / medians[name] if medians[name] else float("nan")
            runs = ", ".join(f"{v:.0f}" for v in rates[name])
            cpu_runs = ", ".join(f"{v:.0f}" for v in cpus[name])
            cpu_ratio = cpu_medians[name] / cpu_base
            print(
                f"| {name} | {medians[name]:.0f} | {runs} | {ratio:.2f} "
                f"| {cpu_medians[name]:.0f} | {cpu_runs} | {cpu_ratio:.2f} |"
            )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return status


if __name__ == "__main__":
    sys.exit(main())
