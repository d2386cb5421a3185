"""Log set-up: the ``hurtle`` loggers, their formatters and ``--log-config``.

Loggers (Uvicorn's layout, renamed):

- ``hurtle``: parent of the others; the default handler writes to stderr.
- ``hurtle.error``: server messages (startup, shutdown, app errors).
- ``hurtle.access``: one line per response, written to stdout. Records carry
  the arguments ``(client_addr, method, path_with_query, http_version, status)``
  so a formatter can lay them out, as Uvicorn's ``AccessFormatter`` does.

`configure_logging` is called by `hurtle.run` and the command line, not by
`hurtle.Server`: an embedding application keeps control of its logging.
"""

from __future__ import annotations

import copy
import http
import json
import logging
import logging.config
import os
import sys
from typing import Any, Literal, TextIO

from hurtle.config import LOG_LEVELS, Config

__all__ = [
    "LOGGING_CONFIG",
    "TRACE_LOG_LEVEL",
    "AccessFormatter",
    "ColourizedFormatter",
    "DefaultFormatter",
    "LogConfigError",
    "access_logger",
    "configure_logging",
    "error_logger",
    "escape_control",
    "log_level_number",
]

# Below DEBUG, for protocol-level detail (Uvicorn's ``trace``); registered at
# import so ``--log-level trace`` and ``%(levelname)s`` both work.
TRACE_LOG_LEVEL = 5
logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

error_logger = logging.getLogger("hurtle.error")
access_logger = logging.getLogger("hurtle.access")


class LogConfigError(Exception):
    """``--log-config`` names a file that cannot be read or applied."""


def log_level_number(level: str | int) -> int:
    """``"info"`` -> ``logging.INFO``, ``"trace"`` -> 5; numbers pass through."""
    if isinstance(level, int):
        return level
    name = level.lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    return TRACE_LOG_LEVEL if name == "trace" else int(logging.getLevelName(name.upper()))


# -- escaping ------------------------------------------------------------------

_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(char: str) -> str:
    if char.isprintable():
        return char
    special = _ESCAPES.get(char)
    if special is not None:
        return special
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def log_access(
    client: tuple[str, int] | None, scope: dict[str, Any], status: int, method: str = ""
) -> None:
    """One access-log line in Uvicorn's format, for HTTP of any version and WebSocket.

    ``client`` is the connection's peer, passed apart from the scope so that an
    app that rewrites ``scope["client"]`` cannot change what is logged.
    ``method`` stands in for the scope's (``"WebSocket"``: that scope has none).
    """
    if not access_logger.isEnabledFor(logging.INFO):
        return
    client_addr = f"{client[0]}:{client[1]}" if client else "-"
    path = scope["path"]
    query = scope["query_string"]
    full_path = path + "?" + query.decode("latin-1") if query else path
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d',
        client_addr,
        escape_control(method or scope["method"]),
        escape_control(full_path),
        scope["http_version"],
        status,
    )


def escape_control(text: str) -> str:
    """Escape control and other non-printable characters (``"\\x1b"`` -> ``"\\\\x1b"``).

    Request targets, header values and peer-supplied names can hold terminal
    escape sequences or line breaks; written raw, they could forge log lines
    or drive the reader's terminal. Printable text, the common case, is
    returned as it is after a single C-level scan.
    """
    if text.isprintable():
        return text
    return "".join(_escape_char(char) for char in text)


# -- formatters ----------------------------------------------------------------

_RESET = "\x1b[0m"
_LEVEL_COLOURS = {
    TRACE_LOG_LEVEL: "\x1b[34m",  # blue
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[91m",  # bright red
}


def _colour(text: str, code: str) -> str:
    return f"{code}{text}{_RESET}"


def _default_use_colors(stream_name: str) -> bool:
    # https://no-color.org: an explicit opt-out wins over terminal detection.
    if os.environ.get("NO_COLOR"):
        return False
    # Looked up now, not at import: sys.stdout and sys.stderr may be replaced.
    stream: TextIO | None = getattr(sys, stream_name, None)
    if stream is None:  # pythonw and detached services have no console streams
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # stand-in or closed streams
        return False


class ColourizedFormatter(logging.Formatter):
    """A formatter adding ``%(levelprefix)s``: ``"INFO:     "``, coloured on a terminal.

    ``use_colors=None`` decides from whether the stream the default
    configuration gives it (stderr; stdout for access lines) is a terminal.
    """

    stream_name = "stderr"

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        self.use_colors = (
            use_colors if use_colors in (True, False) else _default_use_colors(self.stream_name)
        )
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def color_level_name(self, level_name: str, level_no: int) -> str:
        code = _LEVEL_COLOURS.get(level_no)
        return _colour(level_name, code) if code else level_name

    def formatMessage(self, record: logging.LogRecord) -> str:
        recordcopy = copy.copy(record)
        levelname = recordcopy.levelname
        # Pad to the width of "CRITICAL:" so messages line up; the colour
        # codes must not count towards the padding.
        separator = " " * (8 - len(levelname))
        if self.use_colors:
            levelname = self.color_level_name(levelname, recordcopy.levelno)
        recordcopy.__dict__["levelprefix"] = levelname + ":" + separator
        return super().formatMessage(recordcopy)


class DefaultFormatter(ColourizedFormatter):
    """The formatter of the ``hurtle`` and ``hurtle.error`` loggers."""


class AccessFormatter(ColourizedFormatter):
    """Lays out access records: ``127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK``.

    Adds ``%(client_addr)s``, ``%(request_line)s`` and ``%(status_code)s``
    (the status with its reason phrase, coloured by class on a terminal).
    Records whose arguments are not the access tuple are formatted plainly.
    """

    stream_name = "stdout"

    def get_status_code(self, status_code: int) -> str:
        try:
            phrase = http.HTTPStatus(status_code).phrase
        except ValueError:
            phrase = ""
        status_and_phrase = f"{status_code} {phrase}".rstrip()
        if not self.use_colors:
            return status_and_phrase
        if status_code < 200:
            code = "\x1b[37m"  # 1xx: white
        elif status_code < 300:
            code = "\x1b[32m"  # 2xx: green
        elif status_code < 400:
            code = "\x1b[33m"  # 3xx: yellow
        elif status_code < 500:
            code = "\x1b[31m"  # 4xx: red
        else:
            code = "\x1b[91m"  # 5xx: bright red
        return _colour(status_and_phrase, code)

    def formatMessage(self, record: logging.LogRecord) -> str:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            for key in ("client_addr", "request_line", "status_code"):
                record.__dict__.setdefault(key, "-")
            return super().formatMessage(record)
        recordcopy = copy.copy(record)
        client_addr, method, full_path, http_version, status_code = args
        recordcopy.__dict__.update(
            client_addr=client_addr,
            request_line=f"{method} {full_path} HTTP/{http_version}",
            status_code=self.get_status_code(int(status_code)),  # type: ignore[call-overload]
        )
        return super().formatMessage(recordcopy)


# -- configuration -------------------------------------------------------------

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "hurtle.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "hurtle.logging.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            "use_colors": None,
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "hurtle": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "hurtle.error": {"level": "INFO"},
        "hurtle.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def _load_file_config(path: str) -> None:
    if not os.path.exists(path):
        raise LogConfigError(f"Log config file {path!r} does not exist.")
    lower = path.lower()
    try:
        if lower.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif lower.endswith((".yaml", ".yml")):
            try:
                import yaml  # noqa: PLC0415 - optional dependency
            except ImportError:
                raise LogConfigError(
                    f"Log config file {path!r} is YAML, but PyYAML is not installed "
                    "(pip install PyYAML)."
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            # The oldest format: .ini / .conf files for logging.config.fileConfig.
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except LogConfigError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        raise LogConfigError(f"Cannot apply log config file {path!r}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError, configparser.Error and friends
        raise LogConfigError(f"Cannot apply log config file {path!r}: {exc}") from exc


def configure_logging(config: Config) -> None:
    """Apply the logging options of `config`: ``log_config``, ``log_level``,
    ``access_log`` and ``use_colors``.

    Raises `LogConfigError` when ``log_config`` cannot be applied.
    """
    log_config = config.log_config
    if log_config is None:
        log_config = copy.deepcopy(LOGGING_CONFIG)
    if isinstance(log_config, dict):
        if config.use_colors in (True, False):
            for formatter in log_config.get("formatters", {}).values():
                if formatter.get("()", "").startswith("hurtle.logging."):
                    formatter["use_colors"] = config.use_colors
        try:
            logging.config.dictConfig(log_config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise LogConfigError(f"Cannot apply log config: {exc}") from exc
    else:
        _load_file_config(log_config)

    if config.log_level is not None:
        level = log_level_number(config.log_level)
        for name in ("hurtle", "hurtle.error", "hurtle.access", "hurtle.asgi"):
            logging.getLogger(name).setLevel(level)

    access = logging.getLogger("hurtle.access")
    if config.access_log:
        access.disabled = False
    else:
        # Disabled, not only handler-less: `isEnabledFor` then answers False,
        # so the connection can skip building the log arguments altogether.
        access.handlers = []
        access.propagate = False
        access.disabled = True
