"""The one place where every option of hurtle is defined.

`Config` is a frozen, keyword-only dataclass: each field carries its default and
its help text (``metadata["help"]``), and the command line in `hurtle.cli` is
generated from these fields, so an option is written once. Option names match
Uvicorn's so that switching servers is a one-word change.

Constructing a `Config` has no side effects; `load_app` and the logging set-up
do their work only when the server calls them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

LoopSetting = Literal["auto", "asyncio", "uvloop"]
LifespanSetting = Literal["auto", "on", "off"]
InterfaceSetting = Literal["auto", "asgi3", "asgi2"]
# "auto" serves HTTP/1.1 and HTTP/2 (ALPN over TLS; prior knowledge and
# Upgrade: h2c in cleartext); "h1" and "h2" serve only that version.
HTTPSetting = Literal["auto", "h1", "h2"]
TLSVersionSetting = Literal["TLSv1.2", "TLSv1.3"]
# Uvicorn's implementation names are accepted so its command lines work as
# they are; every one but "none" is served by hurtle's own WebSocket layer.
WSSetting = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


def _opt_list(help: str, **extra: Any) -> Any:
    return field(default_factory=list, metadata={"help": help, **extra})


class AppLoadError(Exception):
    """The application string does not name an importable ASGI application."""


@dataclass(frozen=True)
class Config:
    """Every setting of a hurtle server.

    ``app`` is an ASGI application or an import string ``"module:attribute"``;
    everything else is keyword-only. Pass the config to `hurtle.Server` and
    ``await server.serve()``, or call `hurtle.run` with the same keywords.
    """

    app: Any
    _: KW_ONLY

    # -- where to listen -------------------------------------------------------
    host: str = _opt("127.0.0.1", "Bind socket to this host; '::' binds IPv6 and IPv4.")
    port: int = _opt(8000, "Bind socket to this port; 0 picks a free port and logs it.")
    uds: str | None = _opt(None, "Bind to a Unix domain socket at this path.")
    fd: int | None = _opt(None, "Serve an already bound socket from this file descriptor.")
    backlog: int = _opt(2048, "Maximum number of connections waiting to be accepted.")
    bind: Sequence[str] = _opt_list(
        "Listen on ADDRESS: HOST:PORT, [::]:PORT, unix:PATH or fd://N; repeatable. "
        "--host/--port are then bound only when set to other than their defaults.",
        metavar="ADDRESS",
    )
    uds_permissions: str = _opt("666", "Octal permissions of Unix sockets bound by hurtle.")
    reuse_port: bool = _opt(
        False, "Each worker binds its own SO_REUSEPORT socket; the kernel spreads connections."
    )

    # -- worker processes ------------------------------------------------------
    workers: int | None = _opt(
        None, "Number of worker processes; default: $WEB_CONCURRENCY, else 1 (no supervisor)."
    )
    # A worker's event loop writes a heartbeat every second; one blocked this
    # long (gunicorn's --timeout) is killed and replaced.
    timeout_worker_healthcheck: float = _opt(
        30.0, "Kill and replace a worker whose event loop is unresponsive this long."
    )
    # Heartbeats start once a worker serves; an import or a lifespan startup
    # that never finishes is bounded by this instead. Its own option, longer
    # than the heartbeat's: loading models or warming caches at startup is
    # legitimate where a blocked loop while serving is not.
    timeout_worker_startup: float = _opt(
        60.0,
        "Kill and replace a worker not serving this long after it started (import and "
        "lifespan startup); at the first start, stop with status 1.",
    )

    # -- reload ----------------------------------------------------------------
    reload: bool = _opt(False, "Restart the workers when a watched file changes (development).")
    reload_dirs: Sequence[str] = _opt_list(
        "Watch this directory for --reload; repeatable; default: the working directory.",
        metavar="DIR",
    )
    reload_includes: Sequence[str] = _opt_list(
        "Glob of more files that trigger --reload, besides '*.py'; repeatable.", metavar="GLOB"
    )
    reload_excludes: Sequence[str] = _opt_list(
        "Glob of more files and directories --reload ignores, besides '.*', '*.py[cod]', '~*'"
        " and '__pycache__'; repeatable.",
        metavar="GLOB",
    )
    reload_delay: float = _opt(
        0.25, "Seconds to wait for more changes before --reload restarts the workers."
    )

    # -- the application -------------------------------------------------------
    factory: bool = _opt(False, "Treat APP as a factory: call it with no argument to get the app.")
    app_dir: str = _opt(".", "Look for APP in this directory, added to sys.path.")
    interface: InterfaceSetting = _opt(
        "auto", "Application interface; 'auto' detects ASGI2 double-callables."
    )
    lifespan: LifespanSetting = _opt(
        "auto", "Lifespan protocol: 'auto' uses it when the app supports it."
    )
    root_path: str = _opt("", "ASGI root_path for an app mounted below a URL prefix.")
    env_file: str | None = _opt(None, "Load environment variables from this file first.")

    # -- the event loop and protocol --------------------------------------------
    loop: LoopSetting = _opt("auto", "Event loop: 'auto' uses uvloop when it is installed.")
    http: HTTPSetting = _opt(
        "auto", "HTTP version to serve: 'auto' is HTTP/1.1 and HTTP/2 (needs the h2 package)."
    )

    # -- TLS -------------------------------------------------------------------
    ssl_keyfile: str | None = _opt(None, "TLS private key file (PEM); serves HTTPS.")
    ssl_certfile: str | None = _opt(None, "TLS certificate chain file (PEM); serves HTTPS.")
    ssl_keyfile_password: str | None = _opt(None, "Password of an encrypted private key.")
    # Uvicorn's numbers: ssl.CERT_NONE (0), CERT_OPTIONAL (1), CERT_REQUIRED (2).
    ssl_cert_reqs: int = _opt(
        0, "Client certificates: 0 not asked, 1 optional, 2 required (needs --ssl-ca-certs)."
    )
    ssl_ca_certs: str | None = _opt(None, "CA bundle (PEM) that client certificates must chain to.")
    ssl_ciphers: str | None = _opt(
        None, "OpenSSL cipher string for TLS 1.2; default: ECDHE/DHE with AES-GCM or ChaCha20."
    )
    # RFC 9113 9.2: HTTP/2 needs TLS 1.2 or later; older versions are broken.
    ssl_min_version: TLSVersionSetting = _opt("TLSv1.2", "Lowest TLS version accepted.")
    # A client that connects and never finishes the handshake holds a socket.
    ssl_handshake_timeout: float = _opt(
        10.0, "Close a connection whose TLS handshake takes longer than this."
    )

    # -- HTTP/2 ----------------------------------------------------------------
    # Each stream may run an app task: this bounds the tasks one connection
    # can start (excess streams are refused with REFUSED_STREAM; RFC 9113
    # recommends at least 100).
    h2_max_concurrent_streams: int = _opt(
        100, "Most concurrent HTTP/2 streams per connection; more are refused."
    )
    h2_max_header_list_size: int = _opt(
        65536, "Largest HTTP/2 request header list (RFC 9113 6.5.2 size) in bytes."
    )
    # CVE-2023-44487 (rapid reset) and CVE-2025-8671 (MadeYouReset): resets,
    # by the client or caused by it, are counted over 10 seconds.
    h2_max_resets: int = _opt(
        200, "Stream resets per connection in 10 s before GOAWAY ENHANCE_YOUR_CALM."
    )

    # -- WebSocket -------------------------------------------------------------
    ws: WSSetting = _opt("auto", "WebSocket support; 'none' serves upgrade requests as plain HTTP.")
    # Bounds what one client can make the server hold for one message
    # (Uvicorn's default); counted after decompression.
    ws_max_size: int = _opt(
        16 * 1024 * 1024, "Largest WebSocket message in bytes; larger closes with 1009."
    )
    # Messages the app has not received yet; beyond this, reading pauses so a
    # fast client cannot fill memory (Uvicorn's default).
    ws_max_queue: int = _opt(32, "Unread WebSocket messages held before reading pauses.")
    ws_ping_interval: float | None = _opt(
        20.0, "Seconds between server pings on a WebSocket; 0 or unset disables them."
    )
    ws_ping_timeout: float | None = _opt(
        20.0, "Close a WebSocket with 1011 when a ping gets no pong in this many seconds."
    )
    ws_per_message_deflate: bool = _opt(
        True, "Accept the permessage-deflate WebSocket extension (RFC 7692) when offered."
    )

    # -- response headers ------------------------------------------------------
    server_header: bool = _opt(
        True, "Send a 'server: hurtle' header (an app's own, or --header server:..., replaces it)."
    )
    date_header: bool = _opt(True, "Send a 'date' header (an app's own replaces it).")
    headers: Sequence[tuple[str, str]] = _opt_list(
        "Extra response header 'name:value'; repeatable.", metavar="NAME:VALUE"
    )

    # -- logging ---------------------------------------------------------------
    log_config: str | dict[str, Any] | None = _opt(
        None, "Logging configuration file (.json, .yaml or .ini) or dictConfig mapping."
    )
    log_level: str | int | None = _opt(None, "Log level: " + ", ".join(LOG_LEVELS) + ".")
    access_log: bool = _opt(True, "Write an access log line per response.")
    use_colors: bool | None = _opt(None, "Colour the log output; default: when on a terminal.")

    # -- limits ----------------------------------------------------------------
    # Each limit bounds what one client can make the server hold. Defaults are
    # those of the mainstream servers (nginx, gunicorn) unless noted.
    limit_concurrency: int | None = _opt(
        None, "Answer 503 once this many connections and tasks are open."
    )
    limit_max_requests: int | None = _opt(
        None, "Stop gracefully after serving this many requests (workers: replace it)."
    )
    # Spreads the restarts of workers started together (gunicorn's option).
    limit_max_requests_jitter: int = _opt(
        0, "Add a random 0..N to --limit-max-requests per worker."
    )
    limit_max_memory: int | None = _opt(
        None, "Stop gracefully once the process RSS exceeds this many MiB (workers: replace it)."
    )
    limit_request_line: int = _opt(
        8190, "Longest request line in bytes; longer answers 414 (gunicorn's default)."
    )
    limit_request_fields: int = _opt(
        100, "Most header fields in a request; more answers 431 (gunicorn's default)."
    )
    limit_request_head: int = _opt(
        65536, "Largest request head (line and headers) in bytes; larger answers 431."
    )
    limit_request_body: int | None = _opt(
        1 << 30, "Largest request body in bytes; larger answers 413. Unlimited when unset."
    )
    # A chunk-extension is never needed by an ASGI app, so it is only tolerated
    # up to a small size (the chunked-extension DoS, CVE-2023-40174 style).
    limit_chunk_extensions: int = _opt(
        4096, "Most bytes of chunk extensions accepted per chunked body."
    )

    # -- timeouts --------------------------------------------------------------
    timeout_keep_alive: float = _opt(
        5.0, "Close a connection idle for this many seconds between requests."
    )
    timeout_request_header: float = _opt(
        10.0, "Answer 408 when a request head takes longer than this from its first byte."
    )
    timeout_graceful_shutdown: float = _opt(
        30.0, "On shutdown, wait this long for in-flight requests before cancelling them."
    )

    def __post_init__(self) -> None:
        # Validation only: a frozen config must be right when built, and raising
        # here names the bad option instead of failing deep in the server.
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            raise ValueError(f"loop must be auto, asyncio or uvloop, got {self.loop!r}")
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be auto, on or off, got {self.lifespan!r}")
        if self.interface not in ("auto", "asgi3", "asgi2"):
            raise ValueError(f"interface must be auto, asgi3 or asgi2, got {self.interface!r}")
        if self.http not in ("auto", "h1", "h2"):
            raise ValueError(f"http must be auto, h1 or h2, got {self.http!r}")
        if self.ssl_min_version not in ("TLSv1.2", "TLSv1.3"):
            raise ValueError(
                f"ssl_min_version must be TLSv1.2 or TLSv1.3, got {self.ssl_min_version!r}"
            )
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ValueError(f"ssl_cert_reqs must be 0, 1 or 2, got {self.ssl_cert_reqs!r}")
        if self.ws not in ("auto", "none", "websockets", "websockets-sansio", "wsproto"):
            raise ValueError(f"ws must be auto or none, got {self.ws!r}")
        for name in (
            "limit_request_line",
            "limit_request_fields",
            "limit_request_head",
            "ws_max_size",
            "ws_max_queue",
            "h2_max_concurrent_streams",
            "h2_max_header_list_size",
            "h2_max_resets",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in (
            "timeout_keep_alive",
            "timeout_request_header",
            "timeout_graceful_shutdown",
            "ssl_handshake_timeout",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        self._check_processes()
        for header in self.headers:
            name, value = header
            # Written verbatim into every response head: a CR or LF here would
            # split responses, so refuse it before the server starts.
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
                raise ValueError(f"invalid header name {name!r}")
            if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise ValueError(f"invalid value for header {name!r}")
        if isinstance(self.log_level, str) and self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")

    def _check_processes(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.limit_max_requests_jitter < 0:
            raise ValueError("limit_max_requests_jitter must not be negative")
        for name in ("limit_max_requests", "limit_max_memory"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if self.timeout_worker_healthcheck <= 0:
            raise ValueError("timeout_worker_healthcheck must be positive")
        if self.timeout_worker_startup <= 0:
            raise ValueError("timeout_worker_startup must be positive")
        if self.reload_delay < 0:
            raise ValueError("reload_delay must not be negative")
        if not re.fullmatch(r"0?o?[0-7]{1,4}", self.uds_permissions):
            raise ValueError(
                f"uds_permissions must be octal like 660, got {self.uds_permissions!r}"
            )
        if self.bind:
            from hurtle.binds import parse_bind  # noqa: PLC0415 - only when used

            for address in self.bind:
                parse_bind(address)

    @property
    def is_ssl(self) -> bool:
        """TLS is on when a certificate or key is given (Uvicorn's rule)."""
        return bool(self.ssl_keyfile or self.ssl_certfile)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def encoded_headers(self) -> list[tuple[bytes, bytes]]:
        """The ``--header`` options as lowercased header byte pairs."""
        return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in self.headers]


def option_fields() -> list[dataclasses.Field[Any]]:
    """The fields that are options (everything but ``app``), in definition order."""
    return [f for f in dataclasses.fields(Config) if f.name not in ("app", "_")]


# -- application loading -------------------------------------------------------

ASGIApp = Callable[..., Any]


def import_from_string(import_str: str) -> Any:
    """Resolve ``"package.module:attr.sub"``; raise `AppLoadError` with a clear message."""
    module_str, sep, attrs_str = import_str.partition(":")
    if not sep or not module_str or not attrs_str:
        raise AppLoadError(
            f'Import string "{import_str}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        if exc.name != module_str and not module_str.startswith(f"{exc.name}."):
            raise  # a module the app itself imports is missing: show the real error
        raise AppLoadError(f'Could not import module "{module_str}".') from None
    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise AppLoadError(f'Attribute "{attrs_str}" not found in module "{module_str}".') from None
    return instance


def _is_asgi2(app: Any) -> bool:
    if inspect.isclass(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - instances with async __call__
    fn = app if inspect.isfunction(app) or inspect.ismethod(app) else call
    return not inspect.iscoroutinefunction(fn)


class ASGI2Adapter:
    """Runs an ASGI2 double-callable app (``app(scope)`` returns ``instance(receive, send)``)."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def load_app(config: Config) -> ASGIApp:
    """Import (or take) the app, call the factory, adapt ASGI2; raise `AppLoadError`."""
    app = config.app
    if isinstance(app, str):
        app_dir = os.path.abspath(config.app_dir)
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        app = import_from_string(app)
    if config.factory:
        if not callable(app):
            raise AppLoadError("The app factory is not callable.")
        try:
            app = app()
        except TypeError as exc:
            raise AppLoadError(f"Error calling the app factory: {exc}") from None
    if not callable(app):
        raise AppLoadError(f"The application {app!r} is not callable.")
    interface = config.interface
    if interface == "auto":
        interface = "asgi2" if _is_asgi2(app) else "asgi3"
    if interface == "asgi2":
        app = ASGI2Adapter(app)
    return app  # type: ignore[no-any-return]
