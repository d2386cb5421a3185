"""The server: binds sockets, runs lifespan, accepts connections, shuts down.

Life of a `Server` (``await server.serve()``):

1. load the environment file and the app (failure: ``exit_code = 1``);
2. lifespan startup (failure: ``exit_code = 3``, nothing is bound);
3. bind every address and start serving (failure: ``exit_code = 1``);
4. tick every 0.1 s until ``should_exit`` (a signal, the caller, or
   ``--limit-max-requests`` reached);
5. graceful shutdown: stop accepting, ask each connection to finish its
   in-flight response, wait up to ``timeout_graceful_shutdown`` seconds, then
   force-close what is left; lifespan shutdown.

A second SIGINT or SIGTERM sets ``force_exit``: waiting stops at once.

``serve`` never calls `sys.exit`: it sets ``exit_code`` and returns, so it can
be embedded; `Server.run` and `hurtle.run` turn a non-zero code into
`SystemExit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import signal
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from types import FrameType
from typing import Any, TypeVar

from hurtle.asgi.lifespan import Lifespan
from hurtle.config import AppLoadError, Config, load_app
from hurtle.io.state import ServerState

__all__ = [
    "EXIT_APP_LOAD_ERROR",
    "EXIT_STARTUP_FAILURE",
    "Server",
    "load_env_file",
    "new_event_loop",
    "run_in_new_loop",
]

logger = logging.getLogger("hurtle.error")

EXIT_APP_LOAD_ERROR = 1
# Uvicorn's STARTUP_FAILURE: lifespan startup failed, nothing was served.
EXIT_STARTUP_FAILURE = 3

# How often the main loop looks at should_exit and the request counter.
# A tenth of a second keeps shutdown prompt and costs nothing measurable.
TICK_SECONDS = 0.1

# After force-closing connections, how long app tasks get to notice the
# cancellation before lifespan shutdown goes ahead without them.
FORCE_CLOSE_GRACE_SECONDS = 1.0

# On shutdown, how long a connection accepted but without its first request
# yet is waited for before it counts as idle (Go's net/http uses 5 s).
NEW_CONNECTION_GRACE_SECONDS = 1.0

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_T = TypeVar("_T")


# -- event loops ---------------------------------------------------------------


def new_event_loop(setting: str) -> asyncio.AbstractEventLoop:
    """A fresh loop for ``--loop``: ``auto`` takes uvloop when it is importable."""
    if setting in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 - optional dependency
        except ImportError:
            if setting == "uvloop":
                raise RuntimeError(
                    "--loop uvloop was requested but uvloop is not installed (pip install uvloop)."
                ) from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception during shutdown", "exception": exc, "task": task}
            )


def run_in_new_loop(
    main: Coroutine[Any, Any, _T],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> _T:
    """`asyncio.run` with a loop factory, for Python 3.10 (no ``asyncio.Runner``).

    Unlike ``asyncio.Runner`` it installs no SIGINT handler of its own: the
    server installs its own handlers, and only in the main thread.
    """
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


# -- environment files ---------------------------------------------------------


def _parse_env_value(raw: str) -> str:
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if quote == '"':
            # A double-quoted value may contain escaped quotes: find the first
            # unescaped closing quote.
            index = 1
            while index < len(raw):
                if raw[index] == "\\":
                    index += 2
                    continue
                if raw[index] == '"':
                    break
                index += 1
            end = index if index < len(raw) else -1
        if end == -1:
            return raw  # no closing quote: keep the text as written
        value = raw[1:end]
        if quote == '"':
            value = (
                value.replace("\\\\", "\x00")
                .replace("\\n", "\n")
                .replace("\\t", "\t")
                .replace('\\"', '"')
                .replace("\x00", "\\")
            )
        return value
    # Unquoted: an inline comment starts at whitespace followed by '#'.
    for index, char in enumerate(raw):
        if char == "#" and index > 0 and raw[index - 1] in " \t":
            return raw[:index].rstrip()
    return raw


def parse_env_file(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines the way ``python-dotenv`` reads common files.

    Supports blank lines, ``#`` comments, an ``export`` prefix, single quotes
    (literal), double quotes (``\\n``, ``\\t``, ``\\"``, ``\\\\`` escapes) and
    inline comments after unquoted values. Lines without ``=`` are skipped.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export ") or stripped.startswith("export\t"):
            stripped = stripped[len("export") :].lstrip()
        key, sep, raw = stripped.partition("=")
        key = key.strip()
        if not sep or not key:
            logger.warning("Ignoring a line without KEY=VALUE in the environment file.")
            continue
        values[key] = _parse_env_value(raw)
    return values


def load_env_file(path: str) -> None:
    """Load ``path`` into `os.environ`; variables already set win (python-dotenv's rule)."""
    with open(path, encoding="utf-8") as file:
        values = parse_env_file(file.read())
    for key, value in values.items():
        os.environ.setdefault(key, value)


# -- binding -------------------------------------------------------------------


def _bind_error(exc: OSError, address: object) -> OSError:
    reason = exc.strerror.lower() if exc.strerror else str(exc)
    return OSError(
        exc.errno,
        f"[Errno {exc.errno}] error while attempting to bind on address {address!r}: {reason}",
    )


def bind_tcp(host: str, port: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bound, not yet listening, non-blocking TCP sockets for every address of `host`.

    ``::`` binds one dual-stack socket (IPv6 and IPv4-mapped). With port 0 and
    several addresses, every socket gets the port the first one was given, so
    the server has one port to report.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve host {host!r}: {exc}") from None
    seen: set[tuple[int, Any]] = set()
    unique = []
    for family, type_, proto, _, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.add((family, sockaddr))
            unique.append((family, type_, proto, sockaddr))
    has_ipv4 = any(family == socket.AF_INET for family, *_ in unique)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, sockaddr in unique:
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            if os.name != "nt":
                # Rebinding right after a restart must not wait for TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                # Workers of --reuse-port bind the same address again.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                # '::' alone means "every address": accept IPv4 too, unless an
                # IPv4 socket of the same host already covers it.
                v6only = 1 if has_ipv4 else 0
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            if port == 0 and len(sockets) > 1:
                sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                raise _bind_error(exc, sockaddr[:2]) from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: str) -> socket.socket:
    """A bound Unix socket at `path`, replacing a stale socket file left by a crash.

    A socket file someone still listens on is not stale: that is an error, as
    binding a TCP port in use is.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise OSError(errno.EEXIST, f"{path!r} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                raise OSError(errno.EADDRINUSE, f"unix socket {path!r} is in use by another server")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Like Uvicorn: the front proxy usually runs as another user.
        os.chmod(path, 0o666)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, path) from None
    return sock


def socket_from_fd(fd: int) -> socket.socket:
    """A socket on a duplicate of `fd`, so closing the server leaves the caller's fd open."""
    try:
        duplicate = os.dup(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot use file descriptor {fd}: {exc.strerror}") from None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError as exc:
        os.close(duplicate)
        raise OSError(exc.errno, f"file descriptor {fd} is not a socket") from None
    if sock.type != socket.SOCK_STREAM:
        sock.close()
        raise OSError(errno.ENOTSOCK, f"file descriptor {fd} is not a stream socket")
    sock.setblocking(False)
    return sock


def describe_socket(sock: socket.socket, scheme: str = "http") -> str:
    """``http://127.0.0.1:8000``, ``https://[::1]:8000`` or ``unix socket /path``."""
    if hasattr(socket, "AF_UNIX") and sock.family == socket.AF_UNIX:
        return f"unix socket {sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host}:{port}"


def _awaits_first_request(connection: Any) -> bool:
    # An HTTP/1 connection whose core has not produced a request yet.
    core = getattr(connection, "conn", None)
    return (
        core is not None
        and getattr(core, "request", True) is None
        and not getattr(connection, "_closing", False)
    )


def resident_memory() -> int | None:
    """This process's resident set size in bytes, or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The peak, not the current size: the best there is without /proc.
    return peak if sys.platform == "darwin" else peak * 1024


# -- the server ----------------------------------------------------------------


class Server:
    """One server process: ``await Server(config).serve()``, or ``Server(config).run()``.

    Set ``should_exit = True`` (from any thread) to stop gracefully and
    ``force_exit = True`` to stop waiting for in-flight work. ``started``
    becomes true once every socket accepts connections; ``servers`` then holds
    the `asyncio.Server` objects and `bound_addresses` / `bound_ports` say
    where they listen. ``exit_code`` is 0, or 1 (app load or bind error), or
    3 (lifespan startup failure).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = ServerState(config)
        self.servers: list[asyncio.Server] = []
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.exit_code = 0
        self.lifespan: Lifespan | None = None
        self._sockets: list[socket.socket] = []
        self._uds_inode: tuple[int, int] | None = None
        self._captured_signals: list[int] = []
        # --limit-max-requests plus this process's share of the jitter, so
        # workers started together do not all restart together.
        self.max_requests = config.limit_max_requests
        if self.max_requests is not None and config.limit_max_requests_jitter:
            self.max_requests += random.randint(0, config.limit_max_requests_jitter)
        # A supervised worker logs no "running on" line: its parent does.
        self.announce = True
        self._retiring = False
        self._next_memory_check = 0.0
        self._new_grace_until = 0.0
        self._ssl: ssl.SSLContext | None = None

    # -- public ----------------------------------------------------------------

    def run(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Run `serve` in a new event loop (``--loop``); `SystemExit` on failure."""
        try:
            loop = new_event_loop(self.config.loop)
        except RuntimeError as exc:
            logger.error("%s", exc)
            raise SystemExit(EXIT_APP_LOAD_ERROR) from None
        run_in_new_loop(self.serve(sockets=sockets), lambda: loop)
        if self.exit_code:
            raise SystemExit(self.exit_code)

    async def serve(self, sockets: Sequence[socket.socket] | None = None) -> None:
        """Serve until asked to stop; see the module docstring for the steps."""
        with self._capture_signals():
            await self._serve(sockets)

    def bound_addresses(self) -> list[Any]:
        """The ``getsockname()`` of every listening socket."""
        return [sock.getsockname() for server in self.servers for sock in server.sockets]

    def bound_ports(self) -> list[int]:
        """The TCP ports listened on (empty for Unix sockets only)."""
        return [address[1] for address in self.bound_addresses() if isinstance(address, tuple)]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: the first signal stops gracefully, the second forces."""
        self._captured_signals.append(sig)
        if self.should_exit:
            self.force_exit = True
        else:
            self.should_exit = True

    # -- steps -----------------------------------------------------------------

    async def _serve(self, sockets: Sequence[socket.socket] | None) -> None:
        pid = os.getpid()
        logger.info("Started server process [%d]", pid)

        app = self._load()
        if app is None or not self._load_protocols():
            self._close_given(sockets)
            return

        lifespan = self.lifespan = Lifespan(app, self.config.lifespan, self.state.app_state)
        if not await self._unless_forced(lifespan.startup()):
            await lifespan.cancel()
            self._close_given(sockets)
            return
        if lifespan.should_exit:
            self.exit_code = EXIT_STARTUP_FAILURE
            self._close_given(sockets)
            return
        if self.should_exit:
            # A signal arrived during startup: the app is up, so it gets its
            # shutdown too, but nothing is bound.
            await self._unless_forced(lifespan.shutdown())
            self._close_given(sockets)
            return

        try:
            await self._start_serving(app, sockets)
        except OSError as exc:
            logger.error("%s", exc)
            self.exit_code = EXIT_APP_LOAD_ERROR
            await self._close_servers()
            await self._unless_forced(lifespan.shutdown())
            return

        self.started = True
        try:
            await self._main_loop()
        finally:
            await self._shutdown()
            logger.info("Finished server process [%d]", pid)

    def _load(self) -> Callable[..., Any] | None:
        config = self.config
        if config.env_file is not None:
            logger.info("Loading environment from '%s'", config.env_file)
            try:
                load_env_file(config.env_file)
            except (OSError, UnicodeDecodeError) as exc:
                logger.error("Cannot read the environment file %r: %s", config.env_file, exc)
                self.exit_code = EXIT_APP_LOAD_ERROR
                return None
        try:
            return load_app(config)
        except AppLoadError as exc:
            logger.error("Error loading ASGI app. %s", exc)
            self.exit_code = EXIT_APP_LOAD_ERROR
            return None

    def _load_protocols(self) -> bool:
        """The TLS context and the HTTP/2 dependency; False (exit 1) with a clear error."""
        from hurtle.io.tls import TLSConfigError, create_ssl_context, h2_available  # noqa: PLC0415

        config = self.config
        if config.http == "h2" and not h2_available():
            logger.error("--http h2 needs the 'h2' package: pip install 'hurtle[standard]'")
            self.exit_code = EXIT_APP_LOAD_ERROR
            return False
        if config.is_ssl:
            try:
                self._ssl = create_ssl_context(config)
            except TLSConfigError as exc:
                logger.error("TLS configuration error: %s", exc)
                self.exit_code = EXIT_APP_LOAD_ERROR
                return False
        return True

    def _protocol_factory(self, app: Callable[..., Any]) -> Callable[[], asyncio.Protocol]:
        # Imported here: the connection module is the heavy part of the
        # package, and `hurtle.Server` should be importable without it.
        from hurtle.io.h1 import H1Protocol  # noqa: PLC0415

        config = self.config
        state = self.state
        protocol: Callable[..., asyncio.Protocol] = H1Protocol
        if config.http == "h2":
            from hurtle.io.h2 import H2Protocol  # noqa: PLC0415

            protocol = H2Protocol
        elif self._ssl is not None and "h2" in (self._ssl_alpn or ()):
            # The protocol is known only once the handshake chose one by ALPN.
            from hurtle.io.h2 import ALPNProtocol  # noqa: PLC0415

            protocol = ALPNProtocol

        def factory() -> asyncio.Protocol:
            return protocol(config, app, state)

        return factory

    @property
    def _ssl_alpn(self) -> list[str] | None:
        if self._ssl is None:
            return None
        from hurtle.io.tls import alpn_protocols  # noqa: PLC0415

        return alpn_protocols(self.config.http)

    def _bind(self, given: Sequence[socket.socket] | None) -> list[socket.socket]:
        config = self.config
        if given is not None:
            return list(given)
        if config.fd is not None:
            return [socket_from_fd(config.fd)]
        if config.uds is not None:
            sock = bind_unix(config.uds)
            os.chmod(config.uds, int(config.uds_permissions, 8))
            st = os.stat(config.uds)
            self._uds_inode = (st.st_dev, st.st_ino)
            return [sock]
        return bind_tcp(config.host, config.port)

    async def _start_serving(
        self, app: Callable[..., Any], given: Sequence[socket.socket] | None
    ) -> None:
        loop = self.state.loop = asyncio.get_running_loop()
        factory = self._protocol_factory(app)
        self._sockets = self._bind(given)
        for sock in self._sockets:
            if self._ssl is not None:
                server = await loop.create_server(
                    factory,
                    sock=sock,
                    backlog=self.config.backlog,
                    ssl=self._ssl,
                    ssl_handshake_timeout=self.config.ssl_handshake_timeout,
                )
            else:
                server = await loop.create_server(factory, sock=sock, backlog=self.config.backlog)
            self.servers.append(server)
        scheme = "https" if self._ssl is not None else "http"
        for sock in self._sockets if self.announce else ():
            logger.info(
                "hurtle running on %s (Press CTRL+C to quit)", describe_socket(sock, scheme)
            )

    async def _main_loop(self) -> None:
        # Polling, not an Event: should_exit is set from signal handlers and
        # other threads, and the request limit needs a periodic look anyway.
        while not self._should_stop():  # noqa: ASYNC110
            await asyncio.sleep(TICK_SECONDS)

    def _should_stop(self) -> bool:
        if self.should_exit or self.state.should_exit:
            return True
        self.state.refresh_date()
        self.on_tick()
        if self._retiring:
            return False
        reason = self._limit_reached()
        if reason is not None:
            self._retiring = True
            return self.retire(reason)
        return False

    def _limit_reached(self) -> str | None:
        limit = self.max_requests
        if limit is not None and self.state.total_requests >= limit:
            return f"Maximum request limit of {limit} exceeded."
        memory_limit = self.config.limit_max_memory
        if memory_limit is not None:
            now = time.monotonic()
            if now >= self._next_memory_check:
                self._next_memory_check = now + 1.0  # reading /proc is not free
                rss = resident_memory()
                if rss is not None and rss > memory_limit * 1024 * 1024:
                    return f"Memory limit of {memory_limit} MiB exceeded ({rss >> 20} MiB)."
        return None

    def on_tick(self) -> None:
        """Called every tick while serving; a supervised worker sends its heartbeat here."""

    def retire(self, reason: str) -> bool:
        """A limit was reached: log `reason`, return True to stop now.

        A supervised worker overrides this: its parent starts a replacement
        first and then stops it, so capacity never drops.
        """
        logger.warning("%s Terminating process.", reason)
        return True

    async def _shutdown(self) -> None:
        logger.info("Shutting down")
        self.should_exit = True
        self.state.should_exit = True
        # 1. Stop accepting: nothing new arrives while the old work drains.
        self._stop_listening()

        # 2. Ask every connection to finish; idle keep-alive ones close now.
        # One accepted just now whose first request is still on its way is
        # not idle: closing it would fail a request the client already sent
        # (a worker retiring under load), so it gets a moment (Go's rule).
        told: set[Any] = set()
        self._new_grace_until = asyncio.get_running_loop().time() + NEW_CONNECTION_GRACE_SECONDS
        self._tell_connections(told)

        # 3. Wait for connections and app tasks, up to the graceful timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        if self.state.connections or self.state.tasks:
            logger.info("Waiting for connections to close. (CTRL+C to force quit)")
        while (self.state.connections or self.state.tasks) and not self.force_exit:
            if loop.time() >= deadline:
                logger.warning(
                    "Cancel %d running connection(s), timeout graceful shutdown exceeded",
                    len(self.state.connections) + len(self.state.tasks),
                )
                break
            await asyncio.sleep(TICK_SECONDS)
            # A connection accepted just before the listeners closed may have
            # registered only now.
            self._tell_connections(told)

        # 4. Force what is left: the app gets http.disconnect, its task a cancel.
        for connection in list(self.state.connections):
            connection.force_close()
        for task in list(self.state.tasks):
            task.cancel()
        grace_deadline = loop.time() + FORCE_CLOSE_GRACE_SECONDS
        while self.state.tasks and loop.time() < grace_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

        # 5. Lifespan shutdown, unless the operator insisted on leaving now.
        lifespan = self.lifespan
        if lifespan is not None and (
            self.force_exit or not await self._unless_forced(lifespan.shutdown())
        ):
            await lifespan.cancel()
        await self._close_servers()
        self._unlink_uds()

    async def _unless_forced(self, step: Coroutine[Any, Any, None]) -> bool:
        """Run `step` unless ``force_exit`` comes first; say whether it completed.

        Lifespan handlers can hang (a database that never answers); a second
        signal must still end the process.
        """
        task = asyncio.ensure_future(step)
        while not task.done():
            if self.force_exit:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return False
            await asyncio.wait({task}, timeout=TICK_SECONDS)
        task.result()
        return True

    def _tell_connections(self, told: set[Any]) -> None:
        in_grace = asyncio.get_running_loop().time() < self._new_grace_until
        for connection in list(self.state.connections):
            if connection not in told:
                if in_grace and _awaits_first_request(connection):
                    continue
                told.add(connection)
                connection.shutdown()

    def _stop_listening(self) -> None:
        for server in self.servers:
            server.close()
        for sock in self._sockets:
            sock.close()  # a socket bound but never handed to a server

    async def _close_servers(self) -> None:
        self._stop_listening()
        # wait_closed waits for the listeners only before Python 3.12.1; later
        # it also waits for every connection, which force_close has ended.
        for server in self.servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), FORCE_CLOSE_GRACE_SECONDS)

    def _close_given(self, sockets: Sequence[socket.socket] | None) -> None:
        # Sockets handed in belong to the server from now on, even on failure.
        for sock in sockets or ():
            sock.close()

    def _unlink_uds(self) -> None:
        path = self.config.uds
        if path is None or self._uds_inode is None:
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        # Only our own socket: another server may have replaced the file.
        if (st.st_dev, st.st_ino) == self._uds_inode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    @contextlib.contextmanager
    def _capture_signals(self) -> Generator[None, None, None]:
        # Signal handlers can only be installed from the main thread; servers
        # run in other threads (tests, embedding) are stopped via should_exit.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
