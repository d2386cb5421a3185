"""Helpers to run a real hurtle server in tests.

- `run_server(app, **config)`: a server in a background thread with its own
  event loop; yields a `RunningServer` with ``host``, ``port``, ``url`` and
  ``server``.
- `run_server_process(args)`: ``python -m hurtle ARGS`` as a subprocess on
  port 0; yields a `ServerProcess` with ``port``, ``url`` and the output, for
  tests of signals and exit statuses.

Both wait for readiness by polling with a deadline and fail with the server's
own error when it does not come up.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hurtle.config import Config
from hurtle.server import Server

__all__ = [
    "REPO_ROOT",
    "RunningServer",
    "ServerProcess",
    "run_server",
    "run_server_process",
    "wait_for",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Generous: the CI machine has two cores and runs tests in parallel.
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 30.0


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll `predicate()` until true or `timeout` seconds pass; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


@dataclass
class RunningServer:
    server: Server
    host: str
    port: int | None
    uds: str | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            return "http://localhost"  # a Unix socket: use an httpx UDS transport
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextlib.contextmanager
def run_server(
    app: Any,
    *,
    startup_timeout: float = STARTUP_TIMEOUT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    **config_kwargs: Any,
) -> Iterator[RunningServer]:
    """Run `app` on ``127.0.0.1`` port 0 (by default) in a thread until the block ends.

    `config_kwargs` go to `hurtle.Config` (``loop="asyncio"`` unless given).
    On exit the server is stopped gracefully; if it does not finish within
    `shutdown_timeout` it is forced, and the test fails.
    """
    config_kwargs.setdefault("port", 0)
    config_kwargs.setdefault("loop", "asyncio")
    config = Config(app, **config_kwargs)
    server = Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except SystemExit as exc:
            if exc.code:
                errors.append(exc)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="hurtle-test-server", daemon=True)
    thread.start()
    try:
        ready = wait_for(lambda: server.started or not thread.is_alive(), startup_timeout)
        if not server.started:
            detail = f": {errors[0]!r}" if errors else f" (exit code {server.exit_code})"
            if not ready:
                detail = f" within {startup_timeout} s"
            raise RuntimeError(f"hurtle test server did not start{detail}")
        host = config.host
        port: int | None = None
        ports = server.bound_ports()
        if ports:
            port = ports[0]
            address = server.bound_addresses()[0]
            host = address[0]
        yield RunningServer(server=server, host=host, port=port, uds=config.uds)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(shutdown_timeout)
            raise RuntimeError(f"hurtle test server did not stop within {shutdown_timeout} s")
    if errors:
        raise RuntimeError("hurtle test server failed") from errors[0]


# -- subprocesses --------------------------------------------------------------

_RUNNING_RE = re.compile(r"running on (?:http://(\[[^\]]+\]|[^:\s]+):(\d+)|unix socket (\S+))")


@dataclass
class ServerProcess:
    """A ``python -m hurtle`` child; ``lines`` collects its output as it comes."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    host: str | None = None
    port: int | None = None
    uds: str | None = None
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.host is not None and self.port is not None
        return f"http://{self.host}:{self.port}"

    @property
    def output(self) -> str:
        self._drain()
        return "".join(self.lines)

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def wait_for_line(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        """Wait until a line matching the regex `pattern` is printed; fail clearly if not."""
        regex = re.compile(pattern)
        for line in self.lines:
            match = regex.search(line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:  # end of output: the process has exited
                self._queue.put(None)
                break
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        raise AssertionError(
            f"no line matching {pattern!r} within {timeout} s "
            f"(exit code {self.proc.poll()}); output:\n{self.output}"
        )

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """Wait for the exit status; fail (and kill the process) after `timeout`."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"hurtle process did not exit within {timeout} s; output:\n{self.output}"
            ) from None
        if self._reader is not None:
            self._reader.join(5)
        self._drain()
        return code


def _pump(stream: Any, sink: queue.Queue[str | None]) -> None:
    # Read in a thread so the pipe never fills and blocks the child.
    try:
        for line in stream:
            sink.put(line)
    finally:
        sink.put(None)


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    child_env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (src, str(REPO_ROOT), child_env.get("PYTHONPATH")) if p
    )
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.setdefault("NO_COLOR", "1")
    if env:
        child_env.update(env)
    return child_env


@contextlib.contextmanager
def run_server_process(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    wait_ready: bool = True,
    startup_timeout: float = STARTUP_TIMEOUT,
    pass_fds: tuple[int, ...] = (),
) -> Iterator[ServerProcess]:
    """Start ``python -m hurtle ARGS`` (``--port 0`` unless a bind option is given).

    With `wait_ready`, waits for the ``running on`` line and parses the port
    (or socket path) from it. On exit a still running process gets SIGTERM,
    then SIGKILL. The working directory defaults to the repository root, so
    ``tests.apps.<module>:app`` import strings work.
    """
    args = list(args)
    if not any(a in args for a in ("--port", "--uds", "--fd")):
        args += ["--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hurtle", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        cwd=str(cwd) if cwd is not None else str(REPO_ROOT),
        env=_child_env(env),
        pass_fds=pass_fds,
    )
    child = ServerProcess(proc=proc)
    child._reader = threading.Thread(
        target=_pump, args=(proc.stdout, child._queue), name="hurtle-test-reader", daemon=True
    )
    child._reader.start()
    try:
        if wait_ready:
            match = child.wait_for_line(_RUNNING_RE.pattern, startup_timeout)
            if match.group(3):
                child.uds = match.group(3)
            else:
                child.host = match.group(1)
                child.port = int(match.group(2))
        yield child
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        child._reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        child._drain()
