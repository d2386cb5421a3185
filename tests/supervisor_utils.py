"""Helpers for the tests of worker processes, reload and binds.

`run_group` starts ``python -m hurtle ARGS`` in a session of its own and, on
the way out, kills that whole process group, so no worker outlives a test
even when the supervisor itself was killed. `Client` makes requests on a new
connection each (a kept-alive connection could be closed by a retiring
worker between two requests, which says nothing about the server's
availability) and records every failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.utils import (
    _RUNNING_RE,
    REPO_ROOT,
    STARTUP_TIMEOUT,
    ServerProcess,
    _child_env,
    _pump,
    wait_for,
)

__all__ = ["Client", "children", "run_group", "wait_until"]

TIMEOUT = 30.0


def wait_until(predicate: object, timeout: float = TIMEOUT, interval: float = 0.05) -> bool:
    """`tests.utils.wait_for` with the longer timeout that process groups need."""
    return wait_for(predicate, timeout, interval)


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid` (Linux ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    alive = []
    for child in text.split():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            alive.append(int(child))
    return alive


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@contextlib.contextmanager
def run_group(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    pass_fds: tuple[int, ...] = (),
    wait_ready: bool = True,
    prefix: Sequence[str] = (),
    script: str | None = None,
) -> Iterator[ServerProcess]:
    """``python -m hurtle ARGS`` (after `prefix`, e.g. a shell wrapper) in its own session.

    With `script`, ``python SCRIPT ARGS`` instead (a program calling
    ``hurtle.run``). With `wait_ready`, waits for the ``running on`` line and
    takes the port (or socket path) from it. The caller chooses the address
    options.
    """
    entry = [script] if script is not None else ["-m", "hurtle"]
    command = [*prefix, sys.executable, *entry, *args]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        cwd=str(cwd) if cwd is not None else str(REPO_ROOT),
        env=_child_env(env),
        pass_fds=pass_fds,
        start_new_session=True,
    )
    child = ServerProcess(proc=proc)
    child._reader = threading.Thread(
        target=_pump, args=(proc.stdout, child._queue), name="hurtle-test-reader", daemon=True
    )
    child._reader.start()
    try:
        if wait_ready:
            match = child.wait_for_line(_RUNNING_RE.pattern, STARTUP_TIMEOUT)
            if match.group(3):
                child.uds = match.group(3)
            else:
                child.host = match.group(1)
                child.port = int(match.group(2))
        yield child
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(TIMEOUT)
        # Whatever is left of the group (workers of a killed supervisor).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        child._reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        child._drain()


@dataclass
class Client:
    """Requests `url` in a loop in a thread, each on a new connection, until stopped."""

    url: str
    pause: float = 0.0
    uds: str | None = None
    bodies: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        transport = httpx.HTTPTransport(uds=self.uds, limits=limits) if self.uds else None
        with httpx.Client(limits=limits, transport=transport, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if response.status_code == 200:
                        self.bodies.append(response.text)
                    else:
                        self.failures.append(f"status {response.status_code}")
                if self.pause:
                    self._stop.wait(self.pause)

    def __enter__(self) -> Client:
        self._thread = threading.Thread(target=self._run, name="hurtle-test-client", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def pids(self) -> set[str]:
        return set(self.bodies)

    def wait_for_responses(self, count: int, timeout: float = TIMEOUT) -> bool:
        target = len(self.bodies) + count
        return wait_until(lambda: len(self.bodies) >= target, timeout)
