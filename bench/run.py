#!/usr/bin/env python3
"""hurtle's benchmark runner: hurtle against its peers, side by side, on this machine.

    python3 bench/run.py                 # every default scenario x every server (40-70 min)
    python3 bench/run.py --quick         # ~1 minute check after a change
    python3 bench/run.py --servers hurtle,uvicorn,raw --scenarios plaintext,json --runs 5
    python3 bench/run.py --profile hurtle --scenarios plaintext   # py-spy, no table
    python3 bench/run.py --list

Standard library only, so any python3 runs it. On first use it creates
``bench/.venv-peers`` with the peers (uvicorn[standard], hypercorn, granian,
daphne, py-spy) and hurtle itself (editable, from this repository), and installs
Debian's ``wrk`` and ``nghttp2-client`` (h2load) with apt when they are missing.

Method: one worker per server, access logs off, the server pinned to one CPU and
the load generator to the other (``taskset``), loopback only. Per scenario every
selected server is started (each on its own free port, all pinned to the same
CPU, idle while another one is measured), checked with one real request,
warmed up, then measured ``--runs`` times round-robin (the order rotates every
round) so that drift of the machine hits every server alike and the ratios hold.
Medians and min-max spread of requests/s are reported; a run with socket errors
or non-2xx/3xx answers is marked failed. RSS is the sum of VmRSS over the
server's process group, read after the scenario's last run.

Results are printed and saved as Markdown under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import http.client
import io
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv-peers"
VPY = VENV / "bin" / "python"
# The interpreter the peers' venv is made with (--python; the runner's by default).
VENV_PYTHON = sys.executable
LOGS = BENCH / "logs"
RESULTS = BENCH / "results"
README = BENCH / "README.md"
WS_CLIENT = BENCH / "ws_client.py"
# where hurtle's servers import hurtle from: the checkout's src/, or a snapshot of it
HURTLE_SRC = REPO / "src"  # raw WebSocket load generator for the ws scenario

sys.path.insert(0, str(BENCH))
import apps  # noqa: E402  (stdlib only; used for the expected answers)

PEER_PACKAGES = ["uvicorn[standard]", "hypercorn", "granian", "daphne", "py-spy"]
# import names that must work in the venv for the peers to run
PEER_IMPORTS = ["uvicorn", "httptools", "uvloop", "h11", "hypercorn", "granian", "daphne"]
# distributions whose versions go into the results
VERSION_DISTS = [
    "hurtle",
    "uvicorn",
    "httptools",
    "uvloop",
    "h11",
    "hypercorn",
    "granian",
    "daphne",
    "twisted",
    "h2",
    "websockets",
]

START_TIMEOUT = 15.0  # seconds for a server to accept and answer correctly
STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL
HOST = "127.0.0.1"

README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# servers


def _py(*args: str) -> list[str]:
    return [str(VPY), *args]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    title: str
    argv: Callable[[str, int], list[str]]  # (app name, port) -> command
    hurtle: bool = False  # run with this repository's src/ first on PYTHONPATH
    src: Path | None = None  # for hurtle@REF: the extracted src/ of that commit
    h2c: bool = False  # serves HTTP/2 over cleartext with prior knowledge (h2load)
    ws: bool = True
    default: bool = True  # part of a full run (an opt-in server is named in --servers)


def _bench_script(script: str) -> Callable[[str, int], list[str]]:
    """The command of a server kept in bench/ (raw_server.py, floor_server.py), on uvloop."""
    return lambda app, port: _py(
        str(BENCH / script), "--app", app, "--host", HOST, "--port", str(port), "--loop", "uvloop"
    )


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in [
        ServerSpec(
            "hurtle",
            "hurtle on uvloop",
            lambda app, port: _py(
                "-m",
                "hurtle",
                f"apps:{app}",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
            ),
            hurtle=True,
            h2c=True,
        ),
        ServerSpec(
            "hurtle-asyncio",
            "hurtle on plain asyncio",
            lambda app, port: _py(
                "-m",
                "hurtle",
                f"apps:{app}",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                "--loop",
                "asyncio",
                "--log-level",
                "warning",
            ),
            hurtle=True,
            h2c=True,
        ),
        ServerSpec(
            "uvicorn",
            "uvicorn[standard] (httptools + uvloop)",
            lambda app, port: _py(
                "-m",
                "uvicorn",
                f"apps:{app}",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
            ),
        ),
        ServerSpec(
            "uvicorn-h11",
            "uvicorn h11 on asyncio",
            lambda app, port: _py(
                "-m",
                "uvicorn",
                f"apps:{app}",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                "--http",
                "h11",
                "--loop",
                "asyncio",
                "--log-level",
                "warning",
            ),
        ),
        ServerSpec(
            "hypercorn",
            "hypercorn (uvloop worker)",
            # no --access-logfile: access log off; hypercorn.toml lifts the default cap of
            # 1000 requests per connection (HTTP/1.1 and HTTP/2; h2load does not reconnect)
            lambda app, port: _py(
                "-m",
                "hypercorn",
                "--config",
                "hypercorn.toml",
                f"apps:{app}",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                "1",
                "--worker-class",
                "uvloop",
                "--log-level",
                "warning",
            ),
            h2c=True,
        ),
        ServerSpec(
            "granian",
            "granian (Rust), ASGI interface",
            lambda app, port: _py(
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                f"apps:{app}",
            ),
            h2c=True,
        ),
        ServerSpec(
            "daphne",
            "daphne (Twisted)",
            # -v 0: no access log (daphne logs access to stdout at verbosity >= 1)
            lambda app, port: [
                str(VENV / "bin" / "daphne"),
                "-b",
                HOST,
                "-p",
                str(port),
                "-v",
                "0",
                f"apps:{app}",
            ],
        ),
        ServerSpec(
            "raw",
            "raw asyncio.Protocol on uvloop, no ASGI (ceiling)",
            _bench_script("raw_server.py"),
            ws=False,
        ),
        ServerSpec(
            "floor",
            "the ASGI floor: real parsing, scope and a Task per request, no checks",
            _bench_script("floor_server.py"),
            ws=False,
            default=False,
        ),
    ]
}
DEFAULT_SERVERS = [name for name, spec in SERVERS.items() if spec.default]  # a full run
QUICK_SERVERS = ["hurtle", "uvicorn", "granian", "raw"]


# --------------------------------------------------------------------------------------
# scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    title: str
    kind: str = "wrk"  # "wrk" | "h2load" | "ws"
    connections: int | None = None  # fixed; None means --connections
    extra: tuple[str, ...] = ()  # extra load-generator arguments
    default: bool = True  # part of a full run
    quick: bool = False  # part of --quick
    method: str = "GET"
    request_headers: tuple[tuple[str, str], ...] = ()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("plaintext", "plaintext", 'GET "Hello, world!", keep-alive', quick=True),
        Scenario("json", "json", "GET small JSON (serialised per request), keep-alive"),
        Scenario(
            "post",
            "echo",
            "POST echo of a 4 KiB body, keep-alive",
            method="POST",
            extra=("-s", str(BENCH / "wrk" / "post.lua")),
            quick=True,
        ),
        Scenario("stream", "stream", "GET streaming 32 x 1 KiB body events (chunked)", quick=True),
        Scenario("big", "big", "GET 1 MiB response, keep-alive"),
        Scenario(
            "close",
            "plaintext",
            'GET "Hello, world!", new connection per request',
            extra=("-H", "Connection: close"),
            request_headers=(("Connection", "close"),),
        ),
        Scenario(
            "sleep", "sleep", "GET with a 10 ms asyncio.sleep in the handler", connections=256
        ),
        # HTTP/2: h2load with prior-knowledge h2c against servers with h2c=True
        # (hurtle, hypercorn, granian; the others are marked as skipped).
        Scenario(
            "h2",
            "plaintext",
            'HTTP/2 (h2c) GET "Hello, world!", 10 streams/connection',
            kind="h2load",
            extra=("-m", "10"),
        ),
        # The same with the post scenario's 4 KiB body (h2load -d: a file, made when
        # the load starts); opt-in: it shows HTTP/2 flow control and body handling.
        Scenario(
            "h2-post",
            "echo",
            "HTTP/2 (h2c) POST echo of a 4 KiB body, 10 streams/connection",
            kind="h2load",
            extra=("-m", "10", "-d", str(LOGS / "h2-post-body")),
            default=False,
        ),
        # WebSocket echo: load from ws_client.py (raw frames; the `websockets` library
        # saturates its own core near 38k msg/s, see PERF-NOTES); req/s = echoed messages/s.
        Scenario(
            "ws",
            "ws_echo",
            "WebSocket echo of 32-byte binary messages, one in flight per connection",
            kind="ws",
            extra=("--size", "32"),
        ),
    ]
}


def expected_answer(scenario: Scenario) -> tuple[bytes | None, bytes]:
    """(request body, expected response body) for the sanity check."""
    if scenario.app in ("plaintext", "sleep", "ws_echo"):
        return None, apps.PLAINTEXT_BODY
    if scenario.app == "json":
        return None, apps.JSON_BODY
    if scenario.app == "echo":
        body = b"a" * apps.ECHO_REQUEST_SIZE
        return body, body
    if scenario.app == "stream":
        return None, apps.STREAM_CHUNK * apps.STREAM_CHUNKS
    if scenario.app == "big":
        return None, apps.BIG_BODY
    raise ValueError(scenario.app)


# --------------------------------------------------------------------------------------
# setup


def run_quiet(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def venv_has(imports: list[str]) -> bool:
    if not VPY.exists():
        return False
    code = "import " + ", ".join(imports)
    return run_quiet([str(VPY), "-c", code]).returncode == 0


def use_python(python: str) -> None:
    """Serve under another interpreter: its own venv beside the default one, so
    switching back and forth reinstalls nothing."""
    global VENV, VPY, VENV_PYTHON
    found = shutil.which(python)
    if found is None:
        raise SystemExit(f"--python: {python} not found")
    done = run_quiet([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if done.returncode != 0:
        raise SystemExit(f"--python: {found} does not run: {done.stderr.strip()}")
    VENV_PYTHON = found
    VENV = BENCH / f".venv-peers-{done.stdout.strip()}"
    VPY = VENV / "bin" / "python"


def ensure_venv(upgrade: bool = False) -> None:
    if not VPY.exists():
        log(f"setup: creating {VENV.relative_to(REPO)} with {VENV_PYTHON}")
        subprocess.run([VENV_PYTHON, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VPY), "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    if upgrade or not venv_has(PEER_IMPORTS):
        log(f"setup: installing peers into the venv: {' '.join(PEER_PACKAGES)}")
        cmd = [str(VPY), "-m", "pip", "install", "-q", *(["-U"] if upgrade else []), *PEER_PACKAGES]
        subprocess.run(cmd, check=True)
    probe = run_quiet([str(VPY), "-c", "import hurtle, sys; sys.stdout.write(hurtle.__file__)"])
    # reinstall when hurtle is missing, installed from elsewhere, or its pyproject changed
    stamp = VENV / ".hurtle-pyproject"
    pyproject = (
        (REPO / "pyproject.toml").read_bytes() if (REPO / "pyproject.toml").exists() else b""
    )
    stale = not stamp.exists() or stamp.read_bytes() != pyproject
    if probe.returncode != 0 or not probe.stdout.startswith(str(REPO)) or stale:
        log(f"setup: pip install -e {REPO}[standard] into the venv")
        done = run_quiet([str(VPY), "-m", "pip", "install", "-q", "-e", f"{REPO}[standard]"])
        if done.returncode == 0:
            stamp.write_bytes(pyproject)
        else:
            # Not fatal: hurtle's servers run with the repository's src/ on PYTHONPATH anyway.
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            log(
                "setup: WARNING: editable install of hurtle failed; running it from "
                f"{REPO / 'src'} via PYTHONPATH instead:\n{tail}"
            )


def ensure_tools(need_h2load: bool) -> None:
    missing = [t for t in ("wrk", "h2load", "taskset") if not shutil.which(t)]
    if not missing:
        return
    packages = {"wrk": "wrk", "h2load": "nghttp2-client", "taskset": "util-linux"}
    wanted = sorted({packages[t] for t in missing})
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"setup: apt-get install {' '.join(wanted)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *wanted],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    still = [t for t in missing if not shutil.which(t)]
    fatal = [t for t in still if t != "h2load" or need_h2load]
    if fatal:
        raise SystemExit(
            f"missing tools: {', '.join(fatal)} (install: apt-get install "
            f"{' '.join(packages[t] for t in fatal)})"
        )


# --------------------------------------------------------------------------------------
# process handling


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env(hurtle: bool, src: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(BENCH)]
    if hurtle:
        paths.insert(0, str(src or HURTLE_SRC))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    for key in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "VIRTUAL_ENV"):
        env.pop(key, None)
    return env


def snapshot_hurtle() -> Path:
    """Copy src/hurtle so the whole run measures one version of it.

    Others may edit the working tree while a run goes on; without a snapshot a
    half-saved file would show up as a start failure or a hang in some scenarios.
    """
    global HURTLE_SRC
    dest = LOGS / "hurtle-snapshot"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        REPO / "src" / "hurtle",
        dest / "hurtle",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    HURTLE_SRC = dest
    return dest


def add_baseline(ref: str) -> str:
    """Register server ``hurtle@REF``: hurtle on uvloop from ``git archive REF src/hurtle``."""
    commit = run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", ref]).stdout.strip()
    if not commit:
        raise SystemExit(f"--baseline: {ref!r} is not a commit of {REPO}")
    dest = LOGS / f"hurtle-{commit}"
    if not (dest / "src" / "hurtle").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src/hurtle"],
            capture_output=True,
            check=True,
        )
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)  # our own repository's archive
    name = f"hurtle@{ref}"
    base = SERVERS["hurtle"]
    SERVERS[name] = replace(
        base, name=name, title=f"hurtle at {ref} ({commit}) on uvloop", src=dest / "src"
    )
    return name


def pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None else []


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ... ; comm may contain spaces/parens
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids


def rss_kib(pgid: int) -> tuple[int, int]:
    """(sum of VmRSS in KiB, number of processes) over a process group."""
    total = count = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        count += 1
                        break
        except OSError:
            continue
    return total, count


def parse_cpulist(text: str | None) -> set[int]:
    cpus: set[int] = set()
    for part in (text or "").split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        elif part.strip():
            cpus.add(int(part))
    return cpus


def cpu_ticks(cpus: set[int]) -> tuple[int, int, int]:
    """(total, user+nice+system, steal) clock ticks of these CPUs (all CPUs if empty)."""
    total = busy = steal = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *values = line.split()
            if name == "cpu" or (cpus and int(name[3:]) not in cpus):
                continue
            if not cpus and name == "cpu":
                continue
            v = [int(x) for x in values]
            total += sum(v[:8])
            busy += v[0] + v[1] + v[2]
            steal += v[7]
    return total, busy, steal


def process_ticks() -> dict[int, tuple[int, int, bool]]:
    """pid -> (utime+stime ticks, process group, is a kernel thread) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        out[pid] = (int(fields[11]) + int(fields[12]), int(fields[2]), pid == 2 or ppid == 2)
    return out


class CpuMeter:
    """What the server and everything else on the machine did during one run.

    The server's share is its process group's utime+stime against the ticks of the
    CPU(s) it is pinned to. Noise is the CPU time of every other user-space process
    (other sessions' tests or servers, say; not the load generator, which starts and
    ends between the two snapshots), as a % of one CPU. Processes that both start and
    end inside the run are not seen.
    """

    def __init__(self, server_cpus: set[int], pgid: int) -> None:
        self.server_cpus, self.pgid = server_cpus, pgid
        self.me = os.getpid()
        self.server_start = cpu_ticks(server_cpus)
        self.procs_start = process_ticks()
        self.t0 = time.monotonic()

    def finish(self, run: Run) -> None:
        elapsed = (time.monotonic() - self.t0) * os.sysconf("SC_CLK_TCK")
        total, _busy, steal = (
            b - a for a, b in zip(self.server_start, cpu_ticks(self.server_cpus), strict=True)
        )
        mine = other = kernel = 0
        for pid, (ticks, pgid, is_kernel) in process_ticks().items():
            delta = ticks - self.procs_start.get(pid, (0, 0, False))[0]
            if pgid == self.pgid:
                mine += delta
            elif is_kernel:
                kernel += delta
            elif pid != self.me:
                other += delta
        if total <= 0 or elapsed <= 0:
            return
        run.server_cpu = 100.0 * mine / total
        run.server_seconds = mine / os.sysconf("SC_CLK_TCK")
        run.other_cpu = 100.0 * other / elapsed
        run.kernel_cpu = 100.0 * kernel / elapsed
        run.steal = 100.0 * steal / total


NOISY = 10.0  # % of the server CPU used by other processes that marks a run as noisy


class ServerError(Exception):
    pass


RUNNING: list[RunningServer] = []


class RunningServer:
    """One started server: its own session/process group, killed as a group."""

    def __init__(self, spec: ServerSpec, scenario: Scenario, cpu: str | None) -> None:
        self.spec = spec
        self.scenario = scenario
        self.port = free_port()
        self.cmd = pin(cpu) + spec.argv(scenario.app, self.port)
        LOGS.mkdir(exist_ok=True)
        self.log_path = LOGS / f"{scenario.name}-{spec.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=BENCH,
                env=server_env(spec.hurtle, spec.src),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise ServerError(f"could not be started: {exc}") from exc
        self.pgid = self.proc.pid  # leader of its own session and group
        RUNNING.append(self)

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the port accepts and one real request is answered correctly."""
        deadline = time.monotonic() + timeout
        last = "no connection accepted"
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerError(f"exited with code {self.proc.returncode} during start-up")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                break
            except OSError as exc:
                last = f"port {self.port} refuses: {exc}"
                time.sleep(0.05)
        else:
            raise ServerError(f"did not accept connections within {timeout:.0f} s ({last})")
        while True:
            if not self.alive():
                raise ServerError(f"exited with code {self.proc.returncode} during start-up")
            try:
                self.check()
                return
            except ServerError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                last = f"request failed: {exc!r}"
            if time.monotonic() >= deadline:
                raise ServerError(f"did not answer within {timeout:.0f} s ({last})")
            time.sleep(0.1)

    def check(self) -> None:
        """One request of the scenario; raises ServerError on a wrong answer."""
        if self.scenario.kind != "wrk":
            return  # h2/ws: readiness is the port; the load tool reports failures
        body, expected = expected_answer(self.scenario)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            headers = dict(self.scenario.request_headers)
            if body is not None:
                headers["Content-Type"] = "application/octet-stream"
            conn.request(self.scenario.method, "/", body=body, headers=headers)
            response = conn.getresponse()
            got = response.read()
        finally:
            conn.close()
        if response.status != 200 or got != expected:
            raise ServerError(
                f"wrong answer to {self.scenario.method} /: status {response.status}, "
                f"{len(got)} body bytes (expected 200 and {len(expected)} bytes"
                f"{'' if got == expected else ', content differs'})"
            )

    def rss(self) -> tuple[int, int]:
        return rss_kib(self.pgid)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            self.proc.poll()
            if not group_pids(self.pgid):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"WARNING: {self.spec.name} (pid {self.proc.pid}) did not exit after SIGKILL")
        for _ in range(50):  # children re-parented elsewhere still carry our pgid
            if not group_pids(self.pgid):
                break
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self._log.close()
        if self in RUNNING:  # only once it is gone: a stop cut short is retried at exit
            RUNNING.remove(self)


def stop_all() -> None:
    for server in list(RUNNING):
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others
            log(f"WARNING: stopping {server.spec.name}: {exc!r}")


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------
# load generators


@dataclass
class Run:
    rps: float = 0.0
    requests: int = 0
    seconds: float = 0.0
    socket_errors: dict[str, int] = field(default_factory=dict)
    non2xx: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    error: str = ""  # the load tool failed or its output made no sense
    server_cpu: float | None = None  # % of the server CPU(s) used by the server's processes
    other_cpu: float | None = None  # % of one CPU used by other user-space processes
    kernel_cpu: float | None = None  # % of one CPU used by kernel threads (softirq, ...)
    server_seconds: float | None = None  # CPU seconds the server's processes used

    @property
    def cpu_us(self) -> float | None:
        """Server CPU time per request, in microseconds: robust to a slowed client."""
        if self.server_seconds is None or not self.requests:
            return None
        return self.server_seconds * 1e6 / self.requests

    @property
    def noisy(self) -> bool:
        return self.other_cpu is not None and self.other_cpu > NOISY

    steal: float | None = None  # % of the server CPU(s) stolen by the hypervisor

    @property
    def failed(self) -> bool:
        return bool(
            self.error or self.non2xx or any(self.socket_errors.values()) or self.requests == 0
        )

    def problems(self) -> str:
        parts = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non2xx:
            parts.append(f"non-2xx {self.non2xx}")
        if self.error:
            parts.append(self.error)
        if not parts and self.requests == 0:
            parts.append("no requests")
        return ", ".join(parts)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(out: str) -> Run:
    run = Run()
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        run.rps = float(m.group(1))
    else:
        run.error = "no Requests/sec in wrk output"
    if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out):
        run.requests = int(m.group(1))
        run.seconds = _ms(m.group(2), m.group(3)) / 1000
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        run.socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        run.non2xx = int(m.group(1))
    if m := re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        run.p50_ms = _ms(*m.groups())
    if m := re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        run.p99_ms = _ms(*m.groups())
    return run


def parse_h2load(out: str) -> Run:
    run = Run()
    if m := re.search(r"finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s", out):
        run.seconds = _ms(m.group(1), m.group(2)) / 1000
        run.rps = float(m.group(3))
    else:
        run.error = "no req/s in h2load output"
    if m := re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        out,
    ):
        _total, _started, _done, succeeded, failed, errored, timeout = map(int, m.groups())
        run.requests = succeeded
        run.socket_errors = {"failed": failed, "errored": errored, "timeout": timeout}
    if m := re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out):
        run.non2xx = int(m.group(3)) + int(m.group(4))
    return run


def parse_ws_client(out: str) -> Run:
    """ws_client.py prints one JSON line: messages, seconds, rate, errors, ..."""
    run = Run()
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                break
            run.rps = float(data.get("rate", 0.0))
            run.requests = int(data.get("messages", 0))
            run.seconds = float(data.get("seconds", 0.0))
            run.socket_errors = {"ws errors": int(data.get("errors", 0))}
            return run
    run.error = "no result line from ws_client.py"
    return run


@dataclass
class LoadCommand:
    argv: list[str]
    parse: Callable[[str], Run]
    timeout: float


def load_command(
    scenario: Scenario, port: int, duration: int, connections: int, cpu: str | None
) -> LoadCommand:
    conns = scenario.connections or connections
    url = f"http://{HOST}:{port}/"
    if scenario.kind == "wrk":
        argv = [
            *pin(cpu),
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{duration:g}s",
            "--timeout",
            "2s",
            "--latency",
            *scenario.extra,
            url,
        ]
        return LoadCommand(argv, parse_wrk, duration + 30)
    if scenario.kind == "h2load":
        if "-d" in scenario.extra:
            body = Path(scenario.extra[scenario.extra.index("-d") + 1])
            body.parent.mkdir(parents=True, exist_ok=True)
            body.write_bytes(expected_answer(scenario)[0] or b"")
        argv = [
            *pin(cpu),
            "h2load",
            "-t1",
            f"-c{conns}",
            f"-D{duration:g}",
            "--warm-up-time=0",
            *scenario.extra,
            url,
        ]
        return LoadCommand(argv, parse_h2load, duration + 30)
    if scenario.kind == "ws" and WS_CLIENT.exists():
        argv = [
            *pin(cpu), str(VPY), str(WS_CLIENT), "--host", HOST, "--port", str(port),
            "--connections", str(conns), "--duration", str(duration), "--warmup", "0",
            *scenario.extra,
        ]  # fmt: skip
        return LoadCommand(argv, parse_ws_client, duration + 30)
    raise NotImplementedError(
        f"scenario {scenario.name!r} ({scenario.kind}) has no load generator yet"
        + (f" ({WS_CLIENT.name} is missing)" if scenario.kind == "ws" else "")
    )


def run_load(cmd: LoadCommand, log_path: Path | None = None) -> Run:
    try:
        done = subprocess.run(
            cmd.argv, capture_output=True, text=True, timeout=cmd.timeout, cwd=BENCH, check=False
        )
    except subprocess.TimeoutExpired:
        return Run(error=f"load generator exceeded {cmd.timeout:.0f} s and was killed")
    out = done.stdout + done.stderr
    if log_path is not None:
        with open(log_path, "a") as f:
            f.write(f"$ {shlex.join(cmd.argv)}\n{out}\n")
    run = cmd.parse(out)
    if done.returncode != 0 and not run.error:
        run.error = f"exit code {done.returncode}"
    return run


# --------------------------------------------------------------------------------------
# measuring


@dataclass
class Cell:
    """Everything measured for one server in one scenario."""

    runs: list[Run] = field(default_factory=list)
    error: str = ""  # did not start / died / wrong answer
    rss_kib: int = 0
    processes: int = 0

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if not r.failed]

    @property
    def failed_runs(self) -> list[Run]:
        return [r for r in self.runs if r.failed]

    def median(self) -> float | None:
        values = [r.rps for r in self.runs if r.rps]
        return statistics.median(values) if values else None

    def spread(self) -> tuple[float, float] | None:
        values = [r.rps for r in self.runs if r.rps]
        return (min(values), max(values)) if values else None

    def server_cpu(self) -> float | None:
        values = [r.server_cpu for r in self.runs if r.server_cpu is not None]
        return statistics.median(values) if values else None

    def cpu_us(self) -> float | None:
        values = [r.cpu_us for r in self.runs if r.cpu_us is not None]
        return statistics.median(values) if values else None

    def max_other(self) -> float | None:
        values = [r.other_cpu for r in self.runs if r.other_cpu is not None]
        return max(values) if values else None

    def p99(self) -> float | None:
        values = [r.p99_ms for r in self.runs if r.p99_ms is not None]
        return statistics.median(values) if values else None

    @property
    def usable(self) -> bool:
        """A median that may be quoted in ratios: no start error, no failed run."""
        return not self.error and bool(self.runs) and not self.failed_runs


@dataclass
class Options:
    servers: list[str]
    scenarios: list[str]
    duration: int  # whole seconds: wrk takes no fractions
    runs: int
    warmup: int
    connections: int
    server_cpu: str | None
    client_cpu: str | None
    quick: bool
    retry_noisy: int = 0
    hurtle_commit: str = ""  # git state of src/ when the run started
    hurtle_dirty: bool = False


def measure_scenario(
    scenario: Scenario, opts: Options, cells: dict[str, Cell] | None = None
) -> dict[str, Cell]:
    """Measure every server on one scenario, filling ``cells`` as runs finish."""
    if cells is None:
        cells = {}
    for name in opts.servers:
        cells.setdefault(name, Cell())
    started: dict[str, RunningServer] = {}
    try:
        for name in opts.servers:
            spec = SERVERS[name]
            if scenario.kind == "h2load" and not spec.h2c:
                cells[name].error = "no h2c support (skipped)"
                continue
            if scenario.kind == "ws" and not spec.ws:
                cells[name].error = "no WebSocket support (skipped)"
                continue
            try:
                server = RunningServer(spec, scenario, opts.server_cpu)
            except ServerError as exc:
                cells[name].error = str(exc)
                log(f"  {name}: FAILED TO START: {exc}")
                continue
            try:
                server.wait_ready()
            except ServerError as exc:
                tail = server.log_tail()
                server.stop()
                cells[name].error = str(exc)
                log(
                    f"  {name}: FAILED TO START: {exc}\n    log {server.log_path}:\n"
                    + "\n".join("      " + line for line in tail.splitlines())
                )
                continue
            started[name] = server
        log_path = {name: LOGS / f"{scenario.name}-{name}.wrk.log" for name in started}
        for path in log_path.values():
            path.write_text("")
        if opts.warmup > 0:
            for name, server in started.items():
                cmd = load_command(
                    scenario, server.port, opts.warmup, opts.connections, opts.client_cpu
                )
                warm = run_load(cmd, log_path[name])
                if warm.failed:
                    log(f"  {name}: warm-up had problems: {warm.problems()}")
        order = list(started)
        for round_no in range(opts.runs):
            shift = round_no % len(order) if order else 0
            for name in order[shift:] + order[:shift]:
                server = started[name]
                cell = cells[name]
                if cell.error:
                    continue
                if not server.alive():
                    cell.error = (
                        f"died during the runs (exit code {server.proc.returncode}); "
                        f"log: {server.log_path.relative_to(REPO)}"
                    )
                    log(f"  {name}: {cell.error}")
                    continue
                attempts: list[Run] = []
                for attempt in range(opts.retry_noisy + 1):
                    cmd = load_command(
                        scenario, server.port, opts.duration, opts.connections, opts.client_cpu
                    )
                    meter = CpuMeter(parse_cpulist(opts.server_cpu), server.pgid)
                    run = run_load(cmd, log_path[name])
                    meter.finish(run)
                    note = f"  FAILED: {run.problems()}" if run.failed else ""
                    if run.server_cpu is not None:
                        note = (
                            f"  (server {run.server_cpu:.0f} % CPU"
                            f"{f', {run.cpu_us:.1f} µs/req' if run.cpu_us else ''}; "
                            f"other processes {run.other_cpu:.0f} %, kernel threads "
                            f"{run.kernel_cpu:.0f} %"
                            f"{f', steal {run.steal:.0f} %' if run.steal else ''})"
                        ) + note
                    retry = run.noisy and attempt < opts.retry_noisy
                    if run.noisy:
                        note += "  NOISY" + (", again" if retry else "")
                    log(
                        f"  {scenario.name:<9} {name:<15} run {round_no + 1}/{opts.runs}: "
                        f"{run.rps:>10,.0f} req/s{note}"
                    )
                    attempts.append(run)
                    if not retry:
                        break
                # keep the least disturbed attempt
                cell.runs.append(min(attempts, key=lambda r: r.other_cpu or 0.0))
        for name, server in started.items():
            if server.alive():
                cells[name].rss_kib, cells[name].processes = server.rss()
            elif not cells[name].error:
                cells[name].error = f"exited (code {server.proc.returncode}) before the end"
    finally:
        for server in started.values():
            server.stop()
    return cells


# --------------------------------------------------------------------------------------
# reporting


def fmt_rps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB" if kib else "-"


def ratio(cells: dict[str, Cell], a: str, b: str) -> float | None:
    if a not in cells or b not in cells or not cells[a].usable or not cells[b].usable:
        return None
    ma, mb = cells[a].median(), cells[b].median()
    return ma / mb if ma and mb else None


def cost_ratio(cells: dict[str, Cell], a: str, b: str) -> str:
    """a's server CPU time per request over b's: how many times cheaper b is per request."""
    if a not in cells or b not in cells or not cells[a].usable or not cells[b].usable:
        return "-"
    ua, ub = cells[a].cpu_us(), cells[b].cpu_us()
    return f"{ua / ub:.2f}x" if ua and ub else "-"


def scenario_table(scenario: Scenario, cells: dict[str, Cell], opts: Options) -> str:
    conns = scenario.connections or opts.connections
    lines = [
        f"### {scenario.name}: {scenario.title}, {conns} connections",
        "",
        "| server | req/s (median) | spread (min-max) | p99 latency | hurtle ÷ this "
        "| hurtle-asyncio ÷ this | this ÷ raw | server CPU | CPU µs/req | RSS after | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    hurtle = cells.get("hurtle")
    hurtle_a = cells.get("hurtle-asyncio")
    raw = cells.get("raw")

    def usable_median(cell: Cell | None) -> float | None:
        return cell.median() if cell is not None and cell.usable else None

    for name, cell in cells.items():
        median = cell.median()
        spread = cell.spread()
        if spread and median:
            width = (spread[1] - spread[0]) / median * 100
            spread_s = f"{spread[0]:,.0f}-{spread[1]:,.0f} (±{width / 2:.1f} %)"
        else:
            spread_s = "-"
        p99 = cell.p99()
        if cell.error and "(skipped)" in cell.error:
            status = cell.error
        elif cell.error:
            status = f"**FAILED**: {cell.error}"
        elif cell.failed_runs:
            problems = "; ".join(r.problems() for r in cell.failed_runs)
            status = f"**FAILED** {len(cell.failed_runs)}/{len(cell.runs)} runs: {problems}"
        else:
            status = f"ok ({len(cell.runs)} runs)"
        other = cell.max_other()
        if other is not None and other > NOISY:
            status += f"; noisy: other processes took up to {other:.0f} % of a CPU"
        cpu = cell.server_cpu()
        cpu_us = cell.cpu_us()
        mine = usable_median(cell)
        lines.append(
            f"| {name} | {fmt_rps(median)} | {spread_s} | "
            f"{'-' if p99 is None else f'{p99:.2f} ms'} | "
            f"{fmt_ratio(usable_median(hurtle), mine) if name != 'hurtle' else ''} | "
            f"{fmt_ratio(usable_median(hurtle_a), mine) if name != 'hurtle-asyncio' else ''} | "
            f"{fmt_ratio(mine, usable_median(raw)) if name != 'raw' else ''} | "
            f"{'-' if cpu is None else f'{cpu:.0f} %'} | "
            f"{'-' if cpu_us is None else f'{cpu_us:.1f}'} | "
            f"{fmt_mib(cell.rss_kib)}{f' ({cell.processes} procs)' if cell.processes > 1 else ''}"
            f" | {status} |"
        )
    return "\n".join(lines)


# the targets of issue 3: (label, scenario, numerator, denominator, minimum)
TARGETS = [
    ("plaintext: hurtle ≥ 2.0x uvicorn[standard]", "plaintext", "hurtle", "uvicorn", 2.0),
    ("json: hurtle ≥ 2.0x uvicorn[standard]", "json", "hurtle", "uvicorn", 2.0),
    ("post: hurtle ≥ 1.5x uvicorn[standard]", "post", "hurtle", "uvicorn", 1.5),
    ("stream: hurtle ≥ 1.5x uvicorn[standard]", "stream", "hurtle", "uvicorn", 1.5),
    ("close: hurtle ≥ 1.5x uvicorn[standard]", "close", "hurtle", "uvicorn", 1.5),
    ("sleep: hurtle ≥ 1.5x uvicorn[standard]", "sleep", "hurtle", "uvicorn", 1.5),
    ("big: hurtle ≥ 0.95x raw", "big", "hurtle", "raw", 0.95),
    (
        "plaintext: hurtle-asyncio ≥ 1.2x uvicorn[standard]",
        "plaintext",
        "hurtle-asyncio",
        "uvicorn",
        1.2,
    ),
    (
        "plaintext: hurtle-asyncio ≥ 4x uvicorn-h11",
        "plaintext",
        "hurtle-asyncio",
        "uvicorn-h11",
        4.0,
    ),
]


def sleep_ceiling_row(cells: dict[str, Cell]) -> str:
    """What no server can beat on the sleep scenario, as a ratio to uvicorn.

    Each connection waits out the handler's sleep for every request, so no
    server exceeds connections / sleep requests per second (256 / 10 ms =
    25,600): a target above that ratio cannot be met by any server.
    """
    connections = SCENARIOS["sleep"].connections or 0
    ceiling = connections / apps.SLEEP_SECONDS
    uvicorn = cells.get("uvicorn")
    med = uvicorn.median() if uvicorn and uvicorn.usable else None
    value = "-" if not med else f"{ceiling / med:.2f}x"
    return (
        f"| sleep: ceiling for any server ({connections} connections / "
        f"{apps.SLEEP_SECONDS * 1000:.0f} ms = {ceiling:,.0f} req/s) ÷ uvicorn[standard] "
        f"| {value} | - |"
    )


def summary(results: dict[str, dict[str, Cell]]) -> str:
    # The floor (opt-in) gets two columns when it ran: how close hurtle is to
    # it, and where it lands against uvicorn (what 2x asks for, see README).
    floor = any("floor" in cells for cells in results.values())
    lines = [
        # ÷ hypercorn: the one Python peer in the h2 scenario (uvicorn has no HTTP/2).
        "| scenario | hurtle req/s | ÷ uvicorn | ÷ granian | ÷ hypercorn | ÷ raw "
        + ("| ÷ floor | floor ÷ uvicorn " if floor else "")
        + "| hurtle-asyncio ÷ uvicorn | hurtle-asyncio ÷ uvicorn-h11 "
        "| CPU per request: uvicorn ÷ hurtle |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if floor else ""),
    ]
    for name, cells in results.items():
        hurtle = cells.get("hurtle")
        med = hurtle.median() if hurtle and hurtle.usable else None

        def r(a, b, cells=cells):
            value = ratio(cells, a, b)
            return "-" if value is None else f"{value:.2f}x"

        lines.append(
            f"| {name} | {fmt_rps(med)} | {r('hurtle', 'uvicorn')} | "
            f"{r('hurtle', 'granian')} | {r('hurtle', 'hypercorn')} | {r('hurtle', 'raw')} | "
            + (f"{r('hurtle', 'floor')} | {r('floor', 'uvicorn')} | " if floor else "")
            + f"{r('hurtle-asyncio', 'uvicorn')} | {r('hurtle-asyncio', 'uvicorn-h11')} | "
            f"{cost_ratio(cells, 'uvicorn', 'hurtle')} |"
        )
    lines += ["", "| target (issue 3) | measured | met |", "|---|---:|:---:|"]
    for label, scen, a, b, minimum in TARGETS:
        if scen not in results:
            continue
        value = ratio(results[scen], a, b)
        met = "-" if value is None else ("yes" if value >= minimum else "**no**")
        lines.append(f"| {label} | {'-' if value is None else f'{value:.2f}x'} | {met} |")
        if scen == "sleep":
            lines.append(sleep_ceiling_row(results[scen]))
    plain = results.get("plaintext", {})
    if "hurtle" in plain and "uvicorn" in plain:
        h, u = plain["hurtle"].rss_kib, plain["uvicorn"].rss_kib
        met = "-" if not (h and u) else ("yes" if h <= u else "**no**")
        lines.append(
            f"| plaintext: hurtle RSS ≤ uvicorn RSS | {fmt_mib(h)} vs {fmt_mib(u)} | {met} |"
        )
    return "\n".join(lines)


def machine_description(opts: Options) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    vpy = run_quiet([str(VPY), "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for d in {VERSION_DISTS!r}:\n"
        "    try: out[d] = m.version(d)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))"
    )
    try:
        versions = json.loads(run_quiet([str(VPY), "-c", code]).stdout)
    except ValueError:
        versions = {}
    wrk = run_quiet(["wrk", "-v"])
    wrk_v = (wrk.stdout + wrk.stderr).strip().splitlines()[0] if wrk.stdout + wrk.stderr else "?"
    h2 = shutil.which("h2load")
    h2_v = run_quiet(["h2load", "--version"]).stdout.strip() if h2 else "not installed"
    commit, dirty = opts.hurtle_commit, opts.hurtle_dirty
    pin_s = (
        f"server pinned to CPU {opts.server_cpu}, load generator to CPU {opts.client_cpu}"
        if opts.server_cpu is not None
        else "no CPU pinning (fewer than 2 CPUs)"
    )
    return [
        f"- machine: {cpu}, {os.cpu_count()} CPUs{mem}; {pin_s}",
        f"- kernel: {platform.system()} {platform.release()}; Python {vpy} (servers), "
        f"{platform.python_version()} (runner)",
        f"- hurtle: commit {commit}{' + uncommitted changes in src/' if dirty else ''}"
        + (", copied at the start of the run" if HURTLE_SRC != REPO / "src" else ""),
        "- packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- load generators: {wrk_v}; {h2_v}",
        f"- method: {opts.runs} runs x {opts.duration:g} s per server and scenario after a "
        f"{opts.warmup:g} s warm-up, servers interleaved round-robin (order rotated each "
        f"round); one worker each, access logs off, loopback; {opts.connections} connections "
        "unless the scenario says otherwise; wrk -t1"
        + (
            f"; a run during which other processes used more than {NOISY:.0f} % of a CPU was "
            f"repeated up to {opts.retry_noisy} time(s), keeping the least disturbed attempt"
            if opts.retry_noisy
            else ""
        ),
    ]


def display(argv: list[str]) -> str:
    text = shlex.join(argv)
    return text.replace(str(BENCH) + "/", "").replace(str(REPO) + "/", "")


_PORT_MARK = 65432  # stands for the port in the commands shown


def commands_section(opts: Options, scenarios: list[Scenario]) -> str:
    lines = [
        f"All commands run from `bench/` (`{VENV.name}` is `bench/{VENV.name}`); PORT is a "
        "free port picked per start, APP is the scenario's app in `apps.py`.",
        "",
        "Servers:",
        "",
        "```",
    ]
    for name in opts.servers:
        spec = SERVERS[name]
        cmd = display(pin(opts.server_cpu) + spec.argv("APP", _PORT_MARK))
        cmd = re.sub(rf"(?<=[ :]){_PORT_MARK}(?=\s|$)", "PORT", cmd)
        src = spec.src or HURTLE_SRC
        where = os.path.relpath(src, BENCH) if spec.hurtle else ""
        env = f" (PYTHONPATH={where}:.)" if spec.hurtle else " (PYTHONPATH=.)"
        lines.append(f"# {name}{env}")
        lines.append(cmd)
    lines += ["```", "", "Load per scenario:", "", "```"]
    for scenario in scenarios:
        try:
            cmd = load_command(scenario, 0, opts.duration, opts.connections, opts.client_cpu)
        except NotImplementedError:
            continue
        text = display(cmd.argv).replace(f"{HOST}:0/", f"{HOST}:PORT/")
        text = re.sub(r"(?<=--port )0(?=\s|$)", "PORT", text)
        lines.append(f"# {scenario.name} (APP={scenario.app})")
        lines.append(text)
    lines.append("```")
    return "\n".join(lines)


def report(results: dict[str, dict[str, Cell]], opts: Options, started: float) -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    scenarios = [SCENARIOS[s] for s in results]
    parts = [
        f"# hurtle benchmark {now:%Y-%m-%d %H:%M} UTC{' (--quick)' if opts.quick else ''}",
        "",
        *machine_description(opts),
        f"- wall time: {time.monotonic() - started:.0f} s",
        "",
        "Ratios are medians of requests/s; a ratio is only given when neither side had a "
        "failed run. `hurtle` is hurtle on uvloop. 'CPU µs/req' is the server's own CPU time "
        "per request (less sensitive than req/s to other load on the machine); 'CPU per "
        "request: uvicorn ÷ hurtle' is how many times less CPU hurtle spends per request.",
        "",
        "## Summary",
        "",
        summary(results),
        "",
        "## Scenarios",
        "",
    ]
    for name, cells in results.items():
        parts += [scenario_table(SCENARIOS[name], cells, opts), ""]
    parts += ["## Commands", "", commands_section(opts, scenarios), ""]
    return "\n".join(parts)


def save(text: str, label: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    day = _dt.date.today().isoformat()
    path = RESULTS / f"{day}-{label}.md"
    n = 2
    while path.exists():
        path = RESULTS / f"{day}-{label}-{n}.md"
        n += 1
    path.write_text(text)
    return path


def update_readme(text: str, saved: Path) -> None:
    if not README.exists():
        return
    content = README.read_text()
    if README_START not in content or README_END not in content:
        log(f"README: markers {README_START} / {README_END} missing; not updated")
        return
    head, rest = content.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = text.split("\n", 1)[1]  # drop the H1
    body = body.split("## Scenarios", 1)[0].rstrip()  # the per-scenario tables stay in the file
    body = body.replace("\n## ", "\n#### ").replace("\n### ", "\n##### ")
    block = (
        f"{README_START}\nFrom [`{saved.relative_to(BENCH)}`]({saved.relative_to(BENCH)})"
        f" (every scenario's table and the exact commands are there):\n{body}\n{README_END}"
    )
    README.write_text(head + block + tail)
    log(f"README: latest results updated from {saved.relative_to(REPO)}")


# --------------------------------------------------------------------------------------
# profiling


def profile(
    server_name: str, scenarios: list[Scenario], opts: Options, fmt: str, native: bool = False
) -> None:
    pyspy = VENV / "bin" / "py-spy"
    if not pyspy.exists():
        subprocess.run([str(VPY), "-m", "pip", "install", "-q", "py-spy"], check=True)
    spec = SERVERS[server_name]
    for scenario in scenarios:
        try:
            server = RunningServer(spec, scenario, opts.server_cpu)
        except ServerError as exc:
            log(f"profile: {server_name}: {exc}")
            continue
        try:
            server.wait_ready()
            cmd = load_command(
                scenario, server.port, opts.warmup or 1, opts.connections, opts.client_cpu
            )
            run_load(cmd)
            ext = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[fmt]
            out = LOGS / f"profile-{server_name}-{scenario.name}.{ext}"
            out.unlink(missing_ok=True)
            spy = [
                *pin(opts.client_cpu),
                str(pyspy),
                "record",
                "--pid",
                str(server.proc.pid),
                "--subprocesses",
                "--rate",
                "1000",
                "--duration",
                f"{max(1, int(opts.duration))}",
                "--format",
                fmt,
                "--output",
                str(out),
                # --native needs to pause the process; otherwise sample without pausing
                *(["--native"] if native else ["--nonblocking"]),
            ]
            log(f"profile: {display(spy)}")
            spy_proc = subprocess.Popen(
                spy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            time.sleep(0.5)
            cmd = load_command(
                scenario, server.port, opts.duration, opts.connections, opts.client_cpu
            )
            run = run_load(cmd)
            try:
                spy_out, _ = spy_proc.communicate(timeout=opts.duration + 30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_out, _ = spy_proc.communicate()
            log(
                f"profile: {scenario.name} {server_name}: {run.rps:,.0f} req/s under py-spy "
                f"(not comparable); py-spy said: {spy_out.strip().splitlines()[-1:]}"
            )
            if not out.exists():
                log(f"profile: py-spy wrote nothing (exit code {spy_proc.returncode})")
            elif fmt == "raw":
                summary_path = out.with_suffix(".top.txt")
                summary_path.write_text(summarize_collapsed(out.read_text()))
                log(f"profile: wrote {out.relative_to(REPO)} and {summary_path.relative_to(REPO)}")
                print(summary_path.read_text())
            else:
                log(f"profile: wrote {out.relative_to(REPO)}")
        except ServerError as exc:
            log(f"profile: {server_name} did not start: {exc}\n{server.log_tail()}")
        finally:
            server.stop()


_LINE = re.compile(r":\d+\)$")
_FILE = re.compile(r"\(([^():]+)(?::\d+)?\)$")


def summarize_collapsed(text: str, top: int = 30) -> str:
    """Self and inclusive sample shares per function (lines merged) from py-spy's raw output."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    file_counts: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        frames = [
            _LINE.sub(")", f)
            for f in stack.split(";")
            if not f.startswith("process ") and "<frozen runpy>" not in f
        ]
        if not frames:
            continue
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        where = _FILE.search(frames[-1])
        key = where.group(1) if where else frames[-1]
        file_counts[key] = file_counts.get(key, 0) + count
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + count
    if not total:
        return "no samples\n"
    out = [
        f"{total} samples (run_in_new_loop / run_forever self time is the event loop "
        "itself: C code, syscalls included, unless --profile-native)",
        "",
        "self %  function",
    ]
    for name, count in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * count / total:6.1f}  {name}")
    out += ["", "self %  file (where the time is spent, by module)"]
    for name, count in sorted(file_counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * count / total:6.1f}  {name}")
    out += ["", "incl %  function"]
    for name, count in sorted(incl_counts.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{100 * count / total:6.1f}  {name}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark hurtle against its peers (see bench/README.md)."
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"~1 minute: servers {','.join(QUICK_SERVERS)}, scenarios "
        f"{','.join(s.name for s in SCENARIOS.values() if s.quick)}, "
        "2 runs x 2 s, 1 s warm-up (each overridable)",
    )
    p.add_argument("--servers", help="comma-separated: " + ",".join(SERVERS))
    p.add_argument("--scenarios", help="comma-separated: " + ",".join(SCENARIOS))
    p.add_argument("--duration", type=int, help="seconds per measured run (10; quick 2)")
    p.add_argument("--runs", type=int, help="measured runs per server and scenario (3; quick 2)")
    p.add_argument("--warmup", type=int, help="warm-up seconds per server, 0 for none (2; quick 1)")
    p.add_argument(
        "--connections",
        type=int,
        default=64,
        help="wrk connections where the scenario fixes none (64)",
    )
    p.add_argument(
        "--retry-noisy",
        type=int,
        metavar="N",
        help="repeat a run up to N times while other processes used more than "
        f"{NOISY:.0f} %% of a CPU during it (1; quick 0)",
    )
    p.add_argument("--server-cpu", default="1", help="CPU list for servers (taskset -c)")
    p.add_argument("--client-cpu", default="0", help="CPU list for wrk/h2load")
    p.add_argument(
        "--label",
        help="results file label: results/DATE-LABEL.md (default: git short hash, plus -quick)",
    )
    p.add_argument("--no-save", action="store_true", help="print only, save nothing")
    p.add_argument(
        "--update-readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put the summary into README.md (default: only for a full run of "
        "every default server and scenario)",
    )
    p.add_argument(
        "--baseline",
        metavar="REF",
        help="also run hurtle (uvloop) as committed at REF (e.g. HEAD, HEAD~3, a hash), as "
        "server hurtle@REF, to compare a change with its base in the same run",
    )
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run hurtle from the live src/ instead of a copy taken at the start",
    )
    p.add_argument(
        "--skip-setup", action="store_true", help="do not check/install the venv and tools"
    )
    p.add_argument("--upgrade-peers", action="store_true", help="pip install -U the peers")
    p.add_argument(
        "--python",
        metavar="PATH",
        help="run every server under this interpreter (e.g. python3.13), from a venv of "
        "its own, bench/.venv-peers-X.Y (default: the runner's, bench/.venv-peers)",
    )
    p.add_argument(
        "--profile",
        metavar="SERVER",
        help="profile SERVER with py-spy under each selected scenario's load "
        "instead of benchmarking; output in bench/logs/",
    )
    p.add_argument(
        "--profile-format",
        default="raw",
        choices=["raw", "flamegraph", "speedscope"],
        help="py-spy output; 'raw' also writes a top-functions summary (default)",
    )
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy --native: include C frames (uvloop, httptools, syscalls)",
    )
    p.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    return p.parse_args(argv)


def pick(value: str | None, known: dict, default: list[str], what: str) -> list[str]:
    if not value:
        return list(default)
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("servers:")
        for s in SERVERS.values():
            flags = "" if s.default else "  [opt-in]"
            print(f"  {s.name:<15} {s.title}{flags}")
        print("scenarios:")
        for s in SCENARIOS.values():
            flags = "" if s.default else "  [opt-in]"
            print(f"  {s.name:<10} {s.title}{flags}")
        return 0

    if args.python:
        use_python(args.python)
    default_servers = QUICK_SERVERS if args.quick else DEFAULT_SERVERS
    default_scen = [s.name for s in SCENARIOS.values() if (s.quick if args.quick else s.default)]
    servers = pick(args.servers, SERVERS, default_servers, "servers")
    if args.baseline:
        LOGS.mkdir(exist_ok=True)
        name = add_baseline(args.baseline)
        if name not in servers:
            at = servers.index("hurtle") + 1 if "hurtle" in servers else 0
            servers.insert(at, name)
    scenario_names = pick(args.scenarios, SCENARIOS, default_scen, "scenarios")
    cpus = os.cpu_count() or 1
    opts = Options(
        servers=servers,
        scenarios=scenario_names,
        duration=args.duration if args.duration is not None else (2 if args.quick else 10),
        runs=args.runs if args.runs is not None else (2 if args.quick else 3),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        connections=args.connections,
        server_cpu=args.server_cpu if cpus >= 2 else None,
        client_cpu=args.client_cpu if cpus >= 2 else None,
        quick=args.quick,
        retry_noisy=(
            args.retry_noisy if args.retry_noisy is not None else (0 if args.quick else 1)
        ),
    )
    if opts.runs < 1 or opts.duration < 1 or opts.warmup < 0:
        raise SystemExit("--runs and --duration must be >= 1, --warmup >= 0")
    scenarios = [SCENARIOS[n] for n in scenario_names]

    if not args.skip_setup:
        ensure_tools(need_h2load=any(s.kind == "h2load" for s in scenarios))
        ensure_venv(upgrade=args.upgrade_peers)
    elif not VPY.exists():
        raise SystemExit(f"{VENV} does not exist; run without --skip-setup once")

    opts.hurtle_commit = run_quiet(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
    ).stdout.strip()
    opts.hurtle_dirty = bool(
        run_quiet(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"]).stdout.strip()
    )
    if not args.no_snapshot and (REPO / "src" / "hurtle").is_dir():
        LOGS.mkdir(exist_ok=True)
        where = snapshot_hurtle().relative_to(REPO)
        log(f"bench: hurtle runs from a copy of src/hurtle taken now: {where}")
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    for sig in (signal.SIGINT, signal.SIGHUP):  # keep what nohup / a background shell set
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)
    LOGS.mkdir(exist_ok=True)

    if args.profile:
        if args.profile not in SERVERS:
            raise SystemExit(f"unknown server {args.profile!r}")
        try:
            profile(args.profile, scenarios, opts, args.profile_format, args.profile_native)
        finally:
            stop_all()
        return 0

    per_server = opts.runs * opts.duration + opts.warmup + 1
    estimate = sum(len(servers) * per_server + 2 for _ in scenarios)
    log(
        f"bench: {len(scenarios)} scenarios x {len(servers)} servers, "
        f"{opts.runs} x {opts.duration:g} s each: about {estimate / 60:.1f} min; "
        f"logs in {LOGS.relative_to(REPO)}/"
    )
    started = time.monotonic()
    interrupted = False
    results: dict[str, dict[str, Cell]] = {}
    try:
        for scenario in scenarios:
            log(f"scenario {scenario.name}: {scenario.title}")
            results[scenario.name] = {}
            try:
                measure_scenario(scenario, opts, results[scenario.name])
            except NotImplementedError as exc:
                del results[scenario.name]
                log(f"  skipped: {exc}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping servers; partial results follow")
    finally:
        stop_all()
    results = {k: v for k, v in results.items() if any(c.runs or c.error for c in v.values())}

    if not results:
        return 1
    text = report(results, opts, started)
    if interrupted:
        text = text.replace("\n", " — INTERRUPTED, partial results\n", 1)
    print(text)
    if not args.no_save:
        label = args.label or (opts.hurtle_commit or "run") + ("-quick" if args.quick else "")
        path = save(text, label)
        log(f"saved {path.relative_to(REPO)}")
        full = (
            not args.quick
            and set(servers) >= set(DEFAULT_SERVERS)
            and set(scenario_names) >= {s.name for s in SCENARIOS.values() if s.default}
        )
        if args.update_readme or (args.update_readme is None and full):
            update_readme(text, path)
    bad = [
        f"{scen}/{name}"
        for scen, cells in results.items()
        for name, c in cells.items()
        if (c.error and "skipped" not in c.error) or c.failed_runs
    ]
    if bad:
        log(f"bench: failures in {', '.join(bad)} (see the status column and bench/logs/)")
    return 1 if bad or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
