"""Log set-up: default config, levels, colours, log-config files, escaping."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hurtle.config import Config
from hurtle.logging import (
    TRACE_LOG_LEVEL,
    AccessFormatter,
    DefaultFormatter,
    LogConfigError,
    configure_logging,
    escape_control,
    log_level_number,
)
from tests.utils import run_server_process

pytestmark = pytest.mark.usefixtures("restore_logging")


def _record(
    msg: str, args: Any = (), level: int = logging.INFO, name: str = "hurtle.error"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


# -- escaping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("/plain/path?x=1", "/plain/path?x=1"),
        ("caf\u00e9", "caf\u00e9"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\r\nINFO: forged", "a\\r\\nINFO: forged"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85", "c1\\x85"),
        ("bidi\u202e", "bidi\\u202e"),
        ("\U000e0001", "\\U000e0001"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_escape_control(raw: str, escaped: str) -> None:
    assert escape_control(raw) == escaped
    assert escape_control(raw).isprintable()


def test_escape_control_returns_printable_text_unchanged() -> None:
    text = "GET /index.html HTTP/1.1"
    assert escape_control(text) is text


# -- levels --------------------------------------------------------------------


def test_log_levels() -> None:
    assert log_level_number("trace") == TRACE_LOG_LEVEL == 5
    assert log_level_number("DEBUG") == logging.DEBUG
    assert log_level_number("critical") == logging.CRITICAL
    assert log_level_number(12) == 12
    assert logging.getLevelName(TRACE_LOG_LEVEL) == "TRACE"
    with pytest.raises(ValueError):
        log_level_number("loud")


def test_default_configuration() -> None:
    configure_logging(Config("main:app"))
    parent = logging.getLogger("hurtle")
    access = logging.getLogger("hurtle.access")
    error = logging.getLogger("hurtle.error")
    assert parent.handlers and not parent.propagate
    assert isinstance(parent.handlers[0].formatter, DefaultFormatter)
    assert access.handlers and isinstance(access.handlers[0].formatter, AccessFormatter)
    assert error.getEffectiveLevel() == logging.INFO
    assert access.isEnabledFor(logging.INFO)


@pytest.mark.parametrize(("level", "number"), [("trace", 5), ("warning", 30), (10, 10)])
def test_log_level_option(level: str | int, number: int) -> None:
    configure_logging(Config("main:app", log_level=level))
    assert logging.getLogger("hurtle.error").level == number
    assert logging.getLogger("hurtle.access").level == number


def test_no_access_log_disables_the_access_logger() -> None:
    configure_logging(Config("main:app", access_log=False))
    access = logging.getLogger("hurtle.access")
    assert access.handlers == []
    assert not access.isEnabledFor(logging.CRITICAL)
    # Configuring again with the access log on brings it back.
    configure_logging(Config("main:app"))
    assert access.isEnabledFor(logging.INFO)


# -- formatters ----------------------------------------------------------------


def test_default_formatter_plain() -> None:
    formatter = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False)
    assert formatter.format(_record("hello %s", ("world",))) == "INFO:     hello world"
    warning = _record("careful", level=logging.WARNING)
    assert formatter.format(warning) == "WARNING:  careful"
    trace = _record("detail", level=TRACE_LOG_LEVEL)
    assert formatter.format(trace) == "TRACE:    detail"


def test_default_formatter_colours() -> None:
    formatter = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=True)
    line = formatter.format(_record("hello"))
    assert line == "\x1b[32mINFO\x1b[0m:     hello"


def test_colours_default_to_off_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert DefaultFormatter("%(message)s").use_colors is False


def test_no_color_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", FakeTTY())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert DefaultFormatter("%(message)s").use_colors is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert DefaultFormatter("%(message)s").use_colors is False


ACCESS_FMT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'


def test_access_formatter_plain() -> None:
    formatter = AccessFormatter(ACCESS_FMT, use_colors=False)
    record = _record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/items?id=1", "1.1", 200),
        name="hurtle.access",
    )
    assert (
        formatter.format(record) == 'INFO:     127.0.0.1:5000 - "GET /items?id=1 HTTP/1.1" 200 OK'
    )


@pytest.mark.parametrize(
    ("status", "colour", "text"),
    [
        (101, "\x1b[37m", "101 Switching Protocols"),
        (204, "\x1b[32m", "204 No Content"),
        (304, "\x1b[33m", "304 Not Modified"),
        (404, "\x1b[31m", "404 Not Found"),
        (503, "\x1b[91m", "503 Service Unavailable"),
        (599, "\x1b[91m", "599"),
    ],
)
def test_access_formatter_colours_the_status(status: int, colour: str, text: str) -> None:
    formatter = AccessFormatter(ACCESS_FMT, use_colors=True)
    args = ("1.2.3.4:1", "GET", "/", "1.1", status)
    record = _record('%s - "%s %s HTTP/%s" %d', args, name="hurtle.access")
    assert formatter.format(record).endswith(f"{colour}{text}\x1b[0m")


def test_access_formatter_tolerates_other_records() -> None:
    formatter = AccessFormatter(ACCESS_FMT, use_colors=False)
    assert formatter.format(_record("odd message")) == 'INFO:     - - "-" -'


def test_use_colors_option_reaches_the_formatters() -> None:
    configure_logging(Config("main:app", use_colors=True))
    formatter = logging.getLogger("hurtle").handlers[0].formatter
    assert isinstance(formatter, DefaultFormatter) and formatter.use_colors is True
    configure_logging(Config("main:app", use_colors=False))
    formatter = logging.getLogger("hurtle.access").handlers[0].formatter
    assert isinstance(formatter, AccessFormatter) and formatter.use_colors is False


# -- log-config files ----------------------------------------------------------

MARKER_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"marker": {"class": "logging.NullHandler"}},
    "loggers": {"hurtle.error": {"handlers": ["marker"], "level": "WARNING"}},
}


def _assert_marker_applied() -> None:
    logger = logging.getLogger("hurtle.error")
    assert logger.level == logging.WARNING
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_log_config_dict() -> None:
    configure_logging(Config("main:app", log_config=MARKER_CONFIG))
    _assert_marker_applied()


def test_log_config_json(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps(MARKER_CONFIG))
    configure_logging(Config("main:app", log_config=str(path)))
    _assert_marker_applied()


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_log_config_yaml(tmp_path: Path, suffix: str) -> None:
    yaml = pytest.importorskip("yaml")
    path = tmp_path / f"log{suffix}"
    path.write_text(yaml.safe_dump(MARKER_CONFIG))
    configure_logging(Config("main:app", log_config=str(path)))
    _assert_marker_applied()


def test_log_config_yaml_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = tmp_path / "log.yaml"
    path.write_text("version: 1\n")
    with pytest.raises(LogConfigError, match="PyYAML is not installed"):
        configure_logging(Config("main:app", log_config=str(path)))


def test_log_config_ini(tmp_path: Path) -> None:
    path = tmp_path / "log.ini"
    path.write_text(
        "[loggers]\nkeys=root,error\n\n"
        "[handlers]\nkeys=null\n\n"
        "[formatters]\nkeys=\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_error]\nlevel=WARNING\nhandlers=null\nqualname=hurtle.error\n\n"
        "[handler_null]\nclass=NullHandler\nargs=()\n"
    )
    configure_logging(Config("main:app", log_config=str(path)))
    _assert_marker_applied()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "does not exist"),
        ("broken.json", "{not json", "Cannot apply log config file"),
        ("wrong.json", '{"version": 99}', "Cannot apply log config file"),
        ("broken.ini", "[nothing]\n", "Cannot apply log config file"),
    ],
)
def test_log_config_errors(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(LogConfigError, match=message):
        configure_logging(Config("main:app", log_config=str(path)))


def test_bad_log_config_dict() -> None:
    with pytest.raises(LogConfigError, match="Cannot apply log config"):
        configure_logging(Config("main:app", log_config={"version": 99}))


# -- end to end ----------------------------------------------------------------


def test_access_log_line_from_a_real_process() -> None:
    with run_server_process(["tests.apps.basic:app"]) as child:
        httpx.get(child.url + "/path?q=1", timeout=10)
        child.wait_for_line(r'"GET /path\?q=1 HTTP/1.1" 200 OK')
    assert "\x1b[" not in child.output, "no colours when not on a terminal"


def test_no_access_log_from_a_real_process() -> None:
    with run_server_process(["tests.apps.basic:app", "--no-access-log"]) as child:
        httpx.get(child.url, timeout=10)
        child.send_signal(15)
        child.wait()
    assert "HTTP/1.1" not in child.output


def test_use_colors_and_trace_from_a_real_process() -> None:
    args = ["tests.apps.basic:app", "--use-colors", "--log-level", "trace"]
    with run_server_process(args) as child:
        httpx.get(child.url, timeout=10)
        child.wait_for_line("200 OK")
    assert "\x1b[32mINFO\x1b[0m:" in child.output


def test_access_log_line_for_http2_from_a_real_process() -> None:
    # Prior-knowledge HTTP/2 over cleartext: the same line, with the version 2.
    with (
        run_server_process(["tests.apps.basic:app"]) as child,
        httpx.Client(http1=False, http2=True, timeout=10) as client,
    ):
        response = client.get(child.url + "/two?x=%1b")
        assert response.http_version == "HTTP/2"
        child.wait_for_line(r'"GET /two\?x=%1b HTTP/2" 200 OK')
