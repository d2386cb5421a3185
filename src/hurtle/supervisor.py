"""Worker processes: ``--workers N``, ``--reload``, and what keeps them serving.

The parent (`Supervisor`) binds every socket once, then starts workers:
fresh interpreters (``sys.executable``) that inherit the listening sockets and
serve them with a `hurtle.Server` each. The parent never imports the app, so
a worker always runs the code on disk, which is what ``--reload`` needs.

A worker talks to its parent over a pipe, one byte per message:

- ``r`` ready: it serves (lifespan startup is done);
- ``h`` heartbeat: written every second *from the worker's event loop*, so a
  loop blocked for ``--timeout-worker-healthcheck`` seconds gets the worker
  killed and replaced;
- ``x`` retire: ``--limit-max-requests`` or ``--limit-max-memory`` was
  reached; the parent starts a replacement and stops the old worker once the
  new one is ready, so capacity never drops.

The parent keeps ``target`` workers serving. Its rules, applied after every
event (a message, a signal, a worker's exit):

- fewer active (starting or ready) workers than ``target``: start one, unless
  a back-off is running (a replacement that died before ready doubles it);
- a *retiring* worker (asked to retire, or old after SIGHUP or a reload)
  is stopped only when the ready active workers plus the retiring ones
  exceed ``target``, i.e. once its replacement is ready;
- a worker that dies before ready, or is killed for not being ready within
  ``--timeout-worker-startup`` (a hung import or lifespan startup, which no
  heartbeat covers): at the first boot, the parent stops with that worker's
  status (1 import error or timeout, 3 lifespan failure); during a rolling
  restart, the restart is abandoned and the old workers keep serving; under
  ``--reload``, the parent waits for the next change; otherwise it is
  replaced after a back-off.

Signals to the parent: SIGINT/SIGTERM stop every worker gracefully (a second
one forces them); SIGHUP reads the configuration again (command line,
environment, file; see `RESTART_ONLY_OPTIONS`) and restarts all workers one
replacement at a time;
SIGTTIN/SIGTTOU add or remove a worker; SIGUSR1 reopens log files here and in
every worker. Workers ignore SIGINT (a terminal's Ctrl+C reaches the whole
process group; the parent relays the stop) and stop on their own when the
parent is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from hurtle.config import Config, option_fields

if TYPE_CHECKING:
    from hurtle.binds import BoundSockets
    from hurtle.reload import Reloader

__all__ = ["Supervisor", "effective_workers", "reopen_log_files", "supervise", "worker_main"]

logger = logging.getLogger("hurtle.error")

WORKER_ENV = "_HURTLE_WORKER"
MSG_READY = b"r"
MSG_HEARTBEAT = b"h"
MSG_RETIRE = b"x"
# Written to the parent's wake-up pipe by the reloader thread; signal numbers
# (1..64) use the same pipe, so 0 cannot be mistaken for one.
_WAKE_RELOAD = 0

HEARTBEAT_SECONDS = 1.0
# How often the parent looks at its workers when nothing wakes it.
TICK_SECONDS = 0.1
# A replacement that dies before ready waits this long, doubling, up to the cap.
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
# Beyond the graceful timeout, what a stopping worker gets for lifespan
# shutdown before it is killed.
STOP_GRACE_SECONDS = 10.0

_BOOT = "from hurtle.supervisor import worker_main; worker_main()"

# Options the supervisor itself acts on once, when it starts: the sockets it
# binds and the watcher it runs. A SIGHUP that finds them changed keeps the
# old values (the workers must serve the sockets the parent holds) and says
# that they need a full restart. Every other option is the workers' own and
# the new value applies to the workers the SIGHUP starts; ``workers`` sets the
# number of workers, the timeouts apply to the supervisor's next decisions.
RESTART_ONLY_OPTIONS = frozenset(
    {
        "host",
        "port",
        "uds",
        "fd",
        "bind",
        "uds_permissions",
        "reuse_port",
        "backlog",
        "reload",
        "reload_dirs",
        "reload_includes",
        "reload_excludes",
        "reload_delay",
    }
)

HANDLED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGCHLD")
    if hasattr(signal, name)
)


def effective_workers(config: Config, environ: dict[str, str] | None = None) -> int:
    """``--workers``, else ``$WEB_CONCURRENCY``, else 1."""
    if config.workers is not None:
        return config.workers
    env = os.environ if environ is None else environ
    try:
        return max(1, int(env.get("WEB_CONCURRENCY", "1")))
    except ValueError:
        logger.warning("Ignoring WEB_CONCURRENCY=%r: not a number.", env["WEB_CONCURRENCY"])
        return 1


def reopen_log_files() -> None:
    """Reopen every logging file handler (SIGUSR1, after logrotate moved the files)."""
    handlers = {h for h in logging.getLogger().handlers}
    for logger_ in logging.Logger.manager.loggerDict.values():
        if isinstance(logger_, logging.Logger):
            handlers.update(logger_.handlers)
    for handler in handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                handler.stream = handler._open()
            finally:
                handler.release()


# -- the config on the way to a worker -----------------------------------------


def _config_to_json(config: Config) -> dict[str, Any]:
    data: dict[str, Any] = {"app": config.app}
    for field in option_fields():
        value = getattr(config, field.name)
        if field.name == "headers":
            value = [list(header) for header in value]
        elif isinstance(value, tuple):
            value = list(value)
        data[field.name] = value
    return data


def _config_from_json(data: dict[str, Any]) -> Config:
    data = dict(data)
    data["headers"] = [tuple(header) for header in data.get("headers", ())]
    app = data.pop("app")
    return Config(app, **data)


# -- the worker side -----------------------------------------------------------


def _worker_server_class() -> type[Any]:
    # Defined on use: the parent never imports the server machinery it does
    # not run (asyncio protocols, the app bridge).
    from hurtle.server import Server  # noqa: PLC0415

    class WorkerServer(Server):
        """A `Server` that reports to its parent instead of deciding alone."""

        def __init__(self, config: Config, channel: int, parent: int) -> None:
            super().__init__(config)
            self.announce = False
            self.channel = channel
            self.parent = parent
            self.reopen_logs = False
            self._ready_sent = False
            self._next_heartbeat = 0.0

        def _send(self, message: bytes) -> None:
            try:
                os.write(self.channel, message)
            except BlockingIOError:
                pass  # the parent is behind; the next heartbeat will do
            except OSError:
                logger.warning("The supervisor is gone; stopping.")
                self.should_exit = True

        def on_tick(self) -> None:
            now = time.monotonic()
            if not self._ready_sent:
                self._ready_sent = True
                self._next_heartbeat = now + HEARTBEAT_SECONDS
                self._send(MSG_READY)
            elif now >= self._next_heartbeat:
                self._next_heartbeat = now + HEARTBEAT_SECONDS
                self._send(MSG_HEARTBEAT)
            if os.getppid() != self.parent:
                # The parent was killed: nobody would ever stop this worker.
                logger.warning("The supervisor is gone; stopping.")
                self.should_exit = True
            if self.reopen_logs:
                self.reopen_logs = False
                reopen_log_files()

        def retire(self, reason: str) -> bool:
            logger.warning("%s Asking for a replacement.", reason)
            self._send(MSG_RETIRE)
            return False  # serve on until the replacement is ready

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGINT:
                return  # Ctrl+C reached the whole group: the parent relays the stop
            super().handle_exit(sig, frame)

    return WorkerServer


# The parent's "stop now" to its workers: a signal of its own, so that it can
# never merge with the SIGTERM that asked for a graceful stop.
_FORCE_SIGNAL = getattr(signal, "SIGQUIT", signal.SIGTERM)


def _force_stop(server: Any) -> None:
    server.should_exit = True
    server.force_exit = True


def worker_main() -> None:
    """Entry point of a worker process (started by `Supervisor`, never by hand)."""
    from hurtle.logging import LogConfigError, configure_logging  # noqa: PLC0415
    from hurtle.server import bind_tcp, socket_from_fd  # noqa: PLC0415

    spec = json.loads(os.environ.pop(WORKER_ENV))
    # The parent's import path first: ``python bin/serve.py`` calling
    # ``hurtle.run("serve:app", reload=True)`` from another directory finds
    # ``serve`` through the script's directory, which ``-c`` does not add here.
    sys.path[:0] = [entry for entry in spec.get("sys_path", ()) if entry not in sys.path]
    config = _config_from_json(spec["config"])
    for name in ("SIGHUP", "SIGTTIN", "SIGTTOU"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        configure_logging(config)
    except LogConfigError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    channel = spec["channel"]
    os.set_blocking(channel, False)
    sockets: list[socket.socket] = []
    for fd in spec["fds"]:
        sockets.append(socket_from_fd(fd))
        os.close(fd)
    try:
        for host, port in spec["reuse_port"]:
            sockets += bind_tcp(host, port, reuse_port=True)
    except OSError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    server = _worker_server_class()(config, channel, spec["parent"])
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda sig, frame: setattr(server, "reopen_logs", True))
    signal.signal(_FORCE_SIGNAL, lambda sig, frame: _force_stop(server))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)


# -- the parent side -----------------------------------------------------------

STARTING = "starting"
READY = "ready"
RETIRING = "retiring"
STOPPING = "stopping"


class Worker:
    """The parent's view of one worker process."""

    __slots__ = ("channel", "last_seen", "proc", "started", "state", "stop_deadline", "timed_out")

    def __init__(self, proc: subprocess.Popen[bytes], channel: int) -> None:
        self.proc = proc
        self.channel = channel
        self.started = time.monotonic()
        self.last_seen = self.started
        self.state = STARTING
        self.stop_deadline = 0.0
        # Killed for not becoming ready in time: it still counts as a worker
        # that failed to start (back-off, first-boot failure), not a crash.
        self.timed_out = False

    @property
    def pid(self) -> int:
        return self.proc.pid


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """The parent process of ``--workers`` and ``--reload``: ``Supervisor(...).run()``.

    `bound` holds the sockets, bound once here (listening, unless
    ``reuse_port`` asks each worker to bind its own). ``run`` returns the exit
    status: 0 after a requested stop, the failing worker's status when the
    first boot fails.
    """

    def __init__(
        self,
        config: Config,
        bound: BoundSockets,
        workers: int,
        reloader: Reloader | None = None,
        reread_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.bound = bound
        self.target = workers
        self.reloader = reloader
        self.reread_config = reread_config
        self.workers: list[Worker] = []
        self.exit_code = 0
        self.stopping = False
        self.forced = False
        self.ever_ready = False
        self.paused = False  # --reload: a worker failed to start; wait for a change
        self.backoff = BACKOFF_START
        self.next_spawn = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._changes: list[str] = []
        self._shared_fds: list[int] = []
        self._reuse_port: list[tuple[str, int]] = []
        for sock in bound.sockets:
            if config.reuse_port and sock.family in (socket.AF_INET, socket.AF_INET6):
                self._reuse_port.append(sock.getsockname()[:2])
            else:
                self._shared_fds.append(sock.fileno())

    # -- running ---------------------------------------------------------------

    def run(self) -> int:
        """Start the workers and supervise them until stopped; return the exit status."""
        logger.info("Started parent process [%d]", os.getpid())
        self._listen()
        with self._signals():
            if self.reloader is not None:
                self.reloader.start(self._on_change)
            try:
                self._loop()
            finally:
                if self.reloader is not None:
                    self.reloader.stop()
                self._kill_all()
                self.bound.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
        logger.info("Stopping parent process [%d]", os.getpid())
        return self.exit_code

    def _listen(self) -> None:
        from hurtle.server import describe_socket  # noqa: PLC0415

        scheme = "https" if getattr(self.config, "is_ssl", False) else "http"
        for sock in self.bound.sockets:
            if sock.fileno() in self._shared_fds:
                # Listening from now on, across every worker restart: a client
                # waits in the backlog instead of being refused.
                sock.listen(self.config.backlog)
            logger.info(
                "hurtle running on %s (Press CTRL+C to quit)", describe_socket(sock, scheme)
            )

    def _loop(self) -> None:
        while True:
            self._reconcile()
            if self.stopping and not self.workers:
                return
            channels = {w.channel: w for w in self.workers}
            try:
                readable, _, _ = select.select([self._wake_r, *channels], [], [], TICK_SECONDS)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                readable = []
            for fd in readable:
                if fd == self._wake_r:
                    self._on_wake()
                else:
                    self._on_message(channels[fd])
            self._reap()
            self._check_health()

    # -- events ----------------------------------------------------------------

    def _on_wake(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for number in data:
            if number == _WAKE_RELOAD:
                self._reload()
            else:
                self._on_signal(number)

    def _on_signal(self, number: int) -> None:
        if number in (signal.SIGINT, signal.SIGTERM):
            if self.stopping:
                logger.warning("Forcing the workers to stop.")
                self.forced = True
                # SIGQUIT, not a second SIGTERM: POSIX does not queue a signal
                # that is already pending, so a SIGTERM sent right after the
                # stopping one could merge with it and leave a busy worker
                # waiting out the whole graceful timeout (seen in CI). Workers
                # take SIGQUIT as "stop now" (gunicorn's quick shutdown).
                for worker in self.workers:
                    self._signal(worker, _FORCE_SIGNAL)
            else:
                logger.info("Stopping %d worker(s).", len(self.workers))
                self.stopping = True
                for worker in self.workers:
                    if worker.state != STOPPING:
                        self._stop(worker)
        elif self.stopping:
            return
        elif number == getattr(signal, "SIGHUP", None):
            if self.reread_config is not None and not self._reread():
                return
            logger.info("Restarting the workers (SIGHUP).")
            self._rolling_restart()
        elif number == getattr(signal, "SIGTTIN", None):
            self.target += 1
            logger.info("Adding a worker: %d now.", self.target)
        elif number == getattr(signal, "SIGTTOU", None):
            if self.target > 1:
                self.target -= 1
                logger.info("Removing a worker: %d now.", self.target)
        elif number == getattr(signal, "SIGUSR1", None):
            reopen_log_files()
            for worker in self.workers:
                self._signal(worker, signal.SIGUSR1)

    def _reread(self) -> bool:
        """SIGHUP: read the configuration again for the new workers; False if unusable."""
        assert self.reread_config is not None
        try:
            new = self.reread_config()
            json.dumps(_config_to_json(new))
        except Exception as exc:
            # Whatever is wrong with the new file, the supervisor keeps running.
            logger.error(
                "SIGHUP: the configuration cannot be used (%s); the workers keep running "
                "unchanged.",
                exc,
            )
            return False
        old = self.config
        changed: list[str] = []
        kept: dict[str, Any] = {}
        if new.app != old.app:
            changed.append(f"app {old.app!r} -> {new.app!r}")
        for field in option_fields():
            before, after = getattr(old, field.name), getattr(new, field.name)
            if before == after:
                continue
            if field.name in RESTART_ONLY_OPTIONS:
                kept[field.name] = before
                logger.warning(
                    "SIGHUP: %s changed (%r -> %r) but the supervisor uses it once, when it "
                    "starts: stop and start hurtle to apply it.",
                    field.name,
                    before,
                    after,
                )
            else:
                changed.append(f"{field.name} {before!r} -> {after!r}")
        if changed:
            logger.info("SIGHUP: configuration changed: %s.", "; ".join(changed))
        else:
            logger.info("SIGHUP: configuration unchanged.")
        workers_before, workers_after = effective_workers(old), effective_workers(new)
        if workers_after != workers_before:
            # Only when the configured count changed: SIGTTIN/SIGTTOU
            # adjustments survive a SIGHUP that does not touch it.
            self.target = workers_after
        self.config = new.replace(**kept) if kept else new
        return True

    def _on_change(self, changes: Sequence[str]) -> None:
        # Called from the reloader's thread: hand over to the main loop.
        self._changes = list(changes)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, bytes([_WAKE_RELOAD]))

    def _reload(self) -> None:
        if self.stopping:
            return
        shown = ", ".join(repr(os.path.relpath(path)) for path in self._changes[:3])
        more = f" and {len(self._changes) - 3} more" if len(self._changes) > 3 else ""
        logger.warning("Detected changes in %s%s. Reloading...", shown or "files", more)
        self.paused = False
        self.backoff = BACKOFF_START
        self.next_spawn = 0.0
        self._rolling_restart()

    def _rolling_restart(self) -> None:
        for worker in self.workers:
            if worker.state in (STARTING, READY):
                worker.state = RETIRING

    def _on_message(self, worker: Worker) -> None:
        try:
            data = os.read(worker.channel, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return  # the worker closed its end: it is exiting; _reap sees it
        worker.last_seen = time.monotonic()
        if MSG_READY in data and worker.state == STARTING and not worker.timed_out:
            worker.state = READY
            self.ever_ready = True
            self.backoff = BACKOFF_START
            active = sum(1 for w in self.workers if w.state == READY)
            logger.info("Worker process [%d] is ready (%d of %d).", worker.pid, active, self.target)
        if MSG_RETIRE in data and worker.state == READY:
            logger.info(
                "Worker process [%d] asked to retire; starting its replacement.", worker.pid
            )
            worker.state = RETIRING

    def _reap(self) -> None:
        for worker in list(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            self.workers.remove(worker)
            with contextlib.suppress(OSError):
                os.close(worker.channel)
            if worker.state == STOPPING:
                logger.info("Worker process [%d] stopped.", worker.pid)
            elif worker.state == STARTING:
                reason = (
                    f"not ready within {self.config.timeout_worker_startup:g} s,"
                    " see --timeout-worker-startup"
                    if worker.timed_out
                    else _describe_exit(code)
                )
                self._failed_to_start(worker, code, reason)
            elif not self.stopping:
                logger.error(
                    "Worker process [%d] died (%s); replacing it.", worker.pid, _describe_exit(code)
                )

    def _failed_to_start(self, worker: Worker, code: int, reason: str) -> None:
        if self.stopping:
            return
        if not self.ever_ready and self.reloader is None:
            logger.error("Worker process [%d] failed to boot (%s); stopping.", worker.pid, reason)
            self.exit_code = code if code > 0 else 1
            self._stop_all()
            return
        retiring = [w for w in self.workers if w.state == RETIRING]
        if retiring or self.reloader is not None:
            # A restart onto code that does not start: keep what serves.
            for other in self.workers:
                if other.state == STARTING:
                    self._stop(other)
            for other in retiring:
                other.state = READY
            if self.reloader is not None:
                self.paused = True
                serving = " the running workers keep serving." if retiring else ""
                logger.error(
                    "Worker process [%d] failed to start (%s);%s"
                    " Waiting for a change to try again.",
                    worker.pid,
                    reason,
                    serving,
                )
            else:
                logger.error(
                    "Worker process [%d] failed to start (%s); restart abandoned, the running "
                    "workers keep serving.",
                    worker.pid,
                    reason,
                )
            return
        logger.error(
            "Worker process [%d] failed to start (%s); retrying in %.1f s.",
            worker.pid,
            reason,
            self.backoff,
        )
        self.next_spawn = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def _check_health(self) -> None:
        now = time.monotonic()
        timeout = self.config.timeout_worker_healthcheck
        startup_timeout = self.config.timeout_worker_startup
        for worker in self.workers:
            if (
                worker.state == STARTING
                and not worker.timed_out
                and now - worker.started > startup_timeout
            ):
                # Heartbeats start once a worker serves: an import or a
                # lifespan startup that hangs would otherwise hold its place
                # (and a first boot) forever.
                logger.error(
                    "Worker process [%d] is not ready after %g s; killing it.",
                    worker.pid,
                    startup_timeout,
                )
                worker.timed_out = True
                self._signal(worker, signal.SIGKILL)
            elif worker.state in (READY, RETIRING) and now - worker.last_seen > timeout:
                logger.error(
                    "Worker process [%d] sent no heartbeat for %.0f s; killing it.",
                    worker.pid,
                    timeout,
                )
                worker.state = STOPPING
                worker.stop_deadline = float("inf")  # killed already
                self._signal(worker, signal.SIGKILL)
            elif worker.state == STOPPING and now > worker.stop_deadline:
                logger.error("Worker process [%d] did not stop in time; killing it.", worker.pid)
                worker.stop_deadline = float("inf")
                self._signal(worker, signal.SIGKILL)

    # -- keeping the count -----------------------------------------------------

    def _reconcile(self) -> None:
        if self.stopping:
            return
        active = [w for w in self.workers if w.state in (STARTING, READY)]
        ready = [w for w in active if w.state == READY]
        retiring = [w for w in self.workers if w.state == RETIRING]
        # Retire old workers as their replacements become ready.
        excess = len(ready) + len(retiring) - self.target
        for worker in retiring[: max(0, excess)]:
            self._stop(worker)
        # Too many (SIGTTOU): the ones not serving yet go first, then the oldest.
        if len(active) > self.target:
            order = [w for w in reversed(active) if w.state == STARTING] + ready
            for worker in order[: len(active) - self.target]:
                self._stop(worker)
            return
        if self.paused or time.monotonic() < self.next_spawn:
            return
        for _ in range(self.target - len(active)):
            self._spawn()

    def _spawn(self) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        spec = {
            "config": _config_to_json(self.config),
            "fds": self._shared_fds,
            "reuse_port": self._reuse_port,
            "channel": write_end,
            "parent": os.getpid(),
            "sys_path": [os.path.abspath(entry) if entry else entry for entry in sys.path],
        }
        env = dict(os.environ)
        env[WORKER_ENV] = json.dumps(spec)
        if self.reloader is not None:
            # A .pyc records its source's mtime in whole seconds: a file saved
            # twice within a second could be served from the stale one.
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The worker imports hurtle from where this process did, whatever its path.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT],
                pass_fds=(*self._shared_fds, write_end),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            os.close(read_end)
            logger.error("Cannot start a worker process: %s", exc)
            self.next_spawn = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            return
        finally:
            os.close(write_end)
        self.workers.append(Worker(proc, read_end))
        logger.info("Started worker process [%d]", proc.pid)

    def _stop(self, worker: Worker) -> None:
        worker.state = STOPPING
        worker.stop_deadline = (
            time.monotonic() + self.config.timeout_graceful_shutdown + STOP_GRACE_SECONDS
        )
        self._signal(worker, signal.SIGTERM)

    def _stop_all(self) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.state != STOPPING:
                self._stop(worker)

    def _signal(self, worker: Worker, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            worker.proc.send_signal(sig)

    def _kill_all(self) -> None:
        # Leaving by an exception: no worker may outlive the parent.
        for worker in self.workers:
            self._signal(worker, signal.SIGKILL)
        for worker in self.workers:
            worker.proc.wait()
            with contextlib.suppress(OSError):
                os.close(worker.channel)
        self.workers.clear()

    @contextlib.contextmanager
    def _signals(self) -> Any:
        def wake(sig: int, frame: FrameType | None) -> None:
            pass  # the number reaches the loop through the wake-up fd

        original = {sig: signal.signal(sig, wake) for sig in HANDLED_SIGNALS}
        previous_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in original.items():
                signal.signal(sig, handler)


def supervise(
    config: Config,
    workers: int,
    activated: Sequence[int] = (),
    reloader_factory: Callable[[Config], Reloader] | None = None,
    reread_config: Callable[[], Config] | None = None,
) -> int:
    """Bind, then run a `Supervisor` with `workers` workers; return the exit status.

    `reread_config`, when given, is called on SIGHUP for the new workers'
    configuration (see `RESTART_ONLY_OPTIONS` for what it cannot change).
    """
    from hurtle.binds import bind_sockets  # noqa: PLC0415

    try:
        json.dumps(_config_to_json(config))
    except (TypeError, ValueError) as exc:
        # The workers get the options as JSON: a log_config holding objects
        # cannot travel; a file path can.
        logger.error("The options cannot be passed to worker processes: %s", exc)
        return 1
    try:
        bound = bind_sockets(config, activated, reuse_port=config.reuse_port)
    except OSError as exc:
        logger.error("%s", exc)
        return 1
    reloader = reloader_factory(config) if reloader_factory is not None else None
    try:
        return Supervisor(config, bound, workers, reloader, reread_config).run()
    except BaseException:
        bound.close()
        raise
