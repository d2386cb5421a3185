"""The config file, ``HURTLE_*`` variables, their precedence and their errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hurtle.cli import config_from_args, main
from hurtle.config import Config
from hurtle.configfile import (
    ConfigError,
    env_options,
    file_options,
    find_config_file,
    render_toml,
)
from tests.utils import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no HURTLE_* variables."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("HURTLE_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)
    return tmp_path


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        config_from_args(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_precedence_cli_over_env_over_file_over_defaults(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "hurtle.toml").write_text(
        'app = "from.file:app"\nport = 7001\ntimeout-keep-alive = 11\nbacklog = 99\n'
    )
    monkeypatch.setenv("HURTLE_PORT", "7002")
    monkeypatch.setenv("HURTLE_TIMEOUT_KEEP_ALIVE", "12")
    config = config_from_args(["--port", "7003"])
    assert config.app == "from.file:app"
    assert config.port == 7003  # command line
    assert config.timeout_keep_alive == 12.0  # environment
    assert config.backlog == 99  # file
    assert config.limit_request_line == Config("x").limit_request_line  # default
    monkeypatch.setenv("HURTLE_APP", "from.env:app")
    assert config_from_args([]).app == "from.env:app"
    assert config_from_args(["cli:app"]).app == "cli:app"


def test_pyproject_tool_table(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.hurtle]\napp = "main:app"\nworkers = 3\n'
    )
    assert find_config_file() == workdir / "pyproject.toml"
    config = config_from_args([])
    assert (config.app, config.workers) == ("main:app", 3)


def test_pyproject_without_the_table_is_not_read(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config_file() is None


def test_hurtle_toml_wins_over_pyproject(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text("[tool.hurtle]\nport = 1\n")
    (workdir / "hurtle.toml").write_text("port = 2\n")
    assert config_from_args(["a:b"]).port == 2


def test_explicit_config_path_and_hurtle_config(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = workdir / "conf" / "prod.toml"
    other.parent.mkdir()
    other.write_text("[tool.hurtle]\nport = 8123\n")
    assert config_from_args(["a:b", "--config", str(other)]).port == 8123
    monkeypatch.setenv("HURTLE_CONFIG", str(other))
    assert config_from_args(["a:b"]).port == 8123


def test_missing_explicit_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "config file 'nope.toml' does not exist" in _error(
        capsys, ["a:b", "--config", "nope.toml"]
    )


def test_all_value_kinds_from_the_file(workdir: Path) -> None:
    (workdir / "hurtle.toml").write_text(
        """
app = "main:app"
reload = true
access-log = false
bind = ["127.0.0.1:9000", "unix:/tmp/h.sock"]
reload_dirs = "src"
headers = {x-one = "1", x-two = "2"}
limit_request_body = "none"
timeout_graceful_shutdown = 5
lifespan = "off"
log_level = "debug"
log_config = {version = 1}
ws_ping_interval = 2.5
"""
    )
    config = config_from_args([])
    assert config.reload is True
    assert config.access_log is False
    assert list(config.bind) == ["127.0.0.1:9000", "unix:/tmp/h.sock"]
    assert list(config.reload_dirs) == ["src"]
    assert list(config.headers) == [("x-one", "1"), ("x-two", "2")]
    assert config.limit_request_body is None
    assert config.timeout_graceful_shutdown == 5.0
    assert config.lifespan == "off"
    assert config.log_level == "debug"
    assert config.log_config == {"version": 1}
    assert config.ws_ping_interval == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 80", "unknown option 'prot' (did you mean 'port'?)"),
        ("port = 'eighty'", "port: expected an integer, got 'eighty'"),
        ("port = 80.5", "port: expected an integer, got a number"),
        ("port = true", "port: expected an integer, got a boolean"),
        ("reload = 'maybe'", "reload: expected true or false, got 'maybe'"),
        ("reload = 1", "reload: expected true or false, got an integer"),
        ("lifespan = 'sometimes'", "lifespan: 'sometimes' is not one of"),
        ("bind = 5", "bind: expected an array of strings, got an integer"),
        ("headers = ['no-colon']", "headers: expected NAME:VALUE"),
        ("timeout_keep_alive = 'soon'", "timeout_keep_alive: expected a number"),
        ("app = 3", "app: expected a string, got an integer"),
        ("port = [", "invalid TOML"),
        ("port = 1\nport-x = 2", "unknown option 'port-x'"),
        ("port = 1\n'port' = 2", "invalid TOML"),
    ],
)
def test_file_errors_name_the_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (workdir / "hurtle.toml").write_text(text + "\n")
    err = _error(capsys, ["a:b"])
    assert message in err
    assert err.count("\n") == 1  # one line, no usage, no traceback


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = 70000", "port must be in 0..65535, got 70000"),
        ("bind = ['::1:80']", "write IPv6 addresses in brackets"),
        ("workers = 0", "workers must be at least 1"),
    ],
)
def test_values_refused_by_config_name_the_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (workdir / "hurtle.toml").write_text(text + "\n")
    assert message in _error(capsys, ["a:b"])


def test_the_same_key_twice_with_dash_and_underscore(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "hurtle.toml").write_text("limit_max_requests = 1\nlimit-max-requests = 2\n")
    assert "limit_max_requests is given twice" in _error(capsys, ["a:b"])


def test_environment_values() -> None:
    app, options = env_options(
        {
            "HURTLE_APP": "m:a",
            "HURTLE_RELOAD": "yes",
            "HURTLE_ACCESS_LOG": "0",
            "HURTLE_BIND": "127.0.0.1:1, unix:/tmp/x",
            "HURTLE_HEADERS": "x-a: 1, 2\nx-b: 3",
            "HURTLE_LIMIT_MAX_REQUESTS": "none",
            "HURTLE_TEST_SOMETHING_OF_THE_APP": "ignored",
            "HURTLE_CONFIG": "x.toml",
            "WEB_CONCURRENCY": "4",
            "PORT": "1",
        }
    )
    assert app == "m:a"
    assert options == {
        "reload": True,
        "access_log": False,
        "bind": ["127.0.0.1:1", "unix:/tmp/x"],
        "headers": [("x-a", "1, 2"), ("x-b", "3")],
        "limit_max_requests": None,
        "workers": 4,
    }


def test_hurtle_workers_beats_web_concurrency() -> None:
    _, options = env_options({"HURTLE_WORKERS": "2", "WEB_CONCURRENCY": "4"})
    assert options["workers"] == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HURTLE_PORT": "x"}, "environment: HURTLE_PORT: expected an integer, got 'x'"),
        ({"HURTLE_RELOAD": "sure"}, "HURTLE_RELOAD: expected true or false, got 'sure'"),
        ({"HURTLE_PROT": "80"}, "unknown option 'HURTLE_PROT' (did you mean 'HURTLE_PORT'?)"),
        ({"HURTLE_LOOP": "trio"}, "HURTLE_LOOP: 'trio' is not one of"),
        ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY: expected an integer or 'none', got 'many'"),
    ],
)
def test_environment_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_options(env)
    assert message in str(info.value)


def test_no_app_anywhere(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "required: APP" in _error(capsys, [])


def test_print_config_round_trips(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "main:app",
        "--port",
        "9001",
        "--header",
        "x-a:1",
        "--bind",
        "unix:/tmp/a.sock",
        "--no-access-log",
        "--limit-request-body",
        "none",
        "--timeout-keep-alive",
        "2.5",
    ]
    expected = config_from_args(argv)
    with pytest.raises(SystemExit) as info:
        main([*argv, "--print-config"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text)["port"] == 9001
    assert 'limit_request_body = "none"' in text
    assert "# uds is unset" in text
    (workdir / "hurtle.toml").write_text(text)
    assert config_from_args([]) == expected.replace(
        headers=[("x-a", "1")], bind=["unix:/tmp/a.sock"]
    )


def test_render_toml_of_defaults_parses() -> None:
    document = tomllib.loads(render_toml(Config("m:a")))
    assert document["app"] == "m:a"
    assert document["host"] == "127.0.0.1"


def test_check_config(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["tests.apps.basic:app", "--app-dir", str(REPO_ROOT), "--check-config"])
    assert info.value.code == 0
    assert "configuration OK" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["tests.apps.nosuchmodule:app", "--app-dir", str(REPO_ROOT), "--check-config"])
    assert info.value.code == 1
    assert "error loading the app" in capsys.readouterr().err


def test_check_config_reports_a_bad_file_with_status_2(tmp_path: Path) -> None:
    (tmp_path / "hurtle.toml").write_text('app = "m:a"\nkeep_alive = 3\n')
    result = subprocess.run(
        [sys.executable, "-m", "hurtle", "--check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "hurtle.toml: unknown option 'keep_alive'" in result.stderr


def test_file_options_reads_a_tool_table_in_hurtle_toml(tmp_path: Path) -> None:
    path = tmp_path / "hurtle.toml"
    path.write_text("[tool.hurtle]\nport = 5\n")
    assert file_options(path) == (None, {"port": 5})


def test_reread_sees_the_file_as_it_is_now(workdir: Path) -> None:
    from hurtle.cli import _config_and_actions  # noqa: PLC0415

    (workdir / "hurtle.toml").write_text('app = "main:app"\nworkers = 2\n')
    config, _, _, reread = _config_and_actions(["--port", "7000"])
    assert (config.workers, config.port) == (2, 7000)
    (workdir / "hurtle.toml").write_text('app = "main:app"\nworkers = 3\nport = 1\n')
    again = reread()
    assert (again.workers, again.port) == (3, 7000)  # the command line still wins
    (workdir / "hurtle.toml").write_text("workers = 3\n")
    with pytest.raises(ConfigError, match="APP"):
        reread()
    (workdir / "hurtle.toml").write_text('app = "main:app"\nworkers = 0\n')
    with pytest.raises(ValueError, match="workers"):
        reread()
