"""The command line generated from `Config`: coverage of every option, parsing, errors."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import typing

import pytest

import hurtle
from hurtle.cli import _argument_for, _field_types, build_parser, config_from_args, flag_for
from hurtle.config import Config, option_fields
from tests.utils import REPO_ROOT


def _option_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    return {
        action.dest: action
        for action in parser._actions
        if action.option_strings
        and not action.dest.startswith("_")
        and action.dest not in ("help", "version")
    }


def test_every_config_field_has_an_option() -> None:
    actions = _option_actions()
    fields = {field.name for field in option_fields()}
    assert fields == set(actions), "every Config field, and nothing else, is an option"
    for field in option_fields():
        action = actions[field.name]
        assert flag_for(field.name) in action.option_strings
        assert action.help, f"{field.name} has help text"


def test_flags_follow_the_field_names() -> None:
    assert flag_for("limit_max_requests") == "--limit-max-requests"
    assert flag_for("headers") == "--header"  # Uvicorn's spelling
    help_text = build_parser().format_help()
    for flag in (
        "--access-log",
        "--no-access-log",
        "--server-header",
        "--no-server-header",
        "--date-header",
        "--no-date-header",
        "--use-colors",
        "--no-use-colors",
        "--factory",
        "--header NAME:VALUE",
        "--timeout-graceful-shutdown",
    ):
        assert flag in help_text


def test_no_options_gives_the_config_defaults() -> None:
    assert config_from_args(["main:app"]) == Config("main:app")


def test_options_reach_the_config() -> None:
    config = config_from_args(
        [
            "main:app",
            "--host",
            "::",
            "--port",
            "0",
            "--uds",
            "/tmp/x.sock",
            "--backlog",
            "16",
            "--factory",
            "--lifespan",
            "on",
            "--loop",
            "asyncio",
            "--no-access-log",
            "--no-server-header",
            "--use-colors",
            "--log-level",
            "TRACE",
            "--limit-concurrency",
            "10",
            "--limit-request-body",
            "none",
            "--timeout-keep-alive",
            "2.5",
            "--root-path",
            "/api",
            "--env-file",
            ".env",
            "--app-dir",
            "src",
        ]
    )
    assert config.app == "main:app"
    assert config.host == "::"
    assert config.port == 0
    assert config.uds == "/tmp/x.sock"
    assert config.backlog == 16
    assert config.factory is True
    assert config.lifespan == "on"
    assert config.loop == "asyncio"
    assert config.access_log is False
    assert config.server_header is False
    assert config.use_colors is True
    assert config.log_level == "trace"
    assert config.limit_concurrency == 10
    assert config.limit_request_body is None
    assert config.timeout_keep_alive == 2.5
    assert config.root_path == "/api"
    assert config.env_file == ".env"
    assert config.app_dir == "src"


def test_optional_numbers_accept_none() -> None:
    # `int | None` and `float | None` options can be unset from the command line.
    checked = 0
    for name, annotation in _field_types().items():
        inner = set(typing.get_args(annotation)) - {type(None)}
        if type(None) in typing.get_args(annotation) and inner in ({int}, {float}):
            config = config_from_args(["main:app", flag_for(name), "none"])
            assert getattr(config, name) is None, name
            config = config_from_args(["main:app", flag_for(name), "3"])
            assert getattr(config, name) == 3, name
            checked += 1
    assert checked >= 3


def test_header_option_is_repeatable() -> None:
    config = config_from_args(
        ["main:app", "--header", "x-one:1", "--header", "X-Two: two words: colon"]
    )
    assert list(config.headers) == [("x-one", "1"), ("X-Two", "two words: colon")]
    assert config.encoded_headers == [(b"x-one", b"1"), (b"x-two", b"two words: colon")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["main:app", "--port", "abc"], "--port"),
        (["main:app", "--port", "70000"], "port must be in 0..65535"),
        (["main:app", "--loop", "tokio"], "invalid choice"),
        (["main:app", "--lifespan", "maybe"], "invalid choice"),
        (["main:app", "--log-level", "loud"], "invalid choice"),
        (["main:app", "--header", "no-colon"], "NAME:VALUE"),
        (["main:app", "--header", "bad name:v"], "NAME:VALUE"),
        (["main:app", "--header", "x:a\rb"], "control characters"),
        (["main:app", "--timeout-keep-alive", "soon"], "expected a number"),
        (["main:app", "--timeout-keep-alive", "-1"], "must not be negative"),
        (["main:app", "--limit-request-line", "0"], "must be positive"),
        (["main:app", "--no-such-option"], "unrecognized arguments"),
        (["--port", "1"], "APP"),
    ],
)
def test_bad_values_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        config_from_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--version"])
    assert info.value.code == 0
    assert f"Running hurtle {hurtle.__version__} with" in capsys.readouterr().out


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "[default: 127.0.0.1]" in out
    assert "[default: 8000]" in out


def test_unknown_field_type_is_reported() -> None:
    # A new Config field whose type the generator does not know must fail
    # loudly, not silently lack an option.
    @dataclasses.dataclass
    class Odd:
        odd: complex = 1j

    field = dataclasses.fields(Odd)[0]
    with pytest.raises(TypeError, match="no command-line mapping"):
        _argument_for(field, complex)


def _python_m_hurtle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hurtle", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_python_m_hurtle_version() -> None:
    result = _python_m_hurtle("--version")
    assert result.returncode == 0
    assert "Running hurtle" in result.stdout


def test_python_m_hurtle_bad_option_exits_2() -> None:
    result = _python_m_hurtle("main:app", "--port", "nope")
    assert result.returncode == 2
    assert "usage: hurtle" in result.stderr
    assert "--port" in result.stderr


def test_python_m_hurtle_app_load_error_exits_1() -> None:
    result = _python_m_hurtle("tests.apps.nosuchmodule:app", "--port", "0")
    assert result.returncode == 1
    assert 'Could not import module "tests.apps.nosuchmodule"' in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_log_config_exits_1() -> None:
    result = _python_m_hurtle("tests.apps.basic:app", "--log-config", "/nonexistent/log.json")
    assert result.returncode == 1
    assert "does not exist" in result.stderr
