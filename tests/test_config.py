"""`Config` validation and app loading (`load_app`, `import_from_string`)."""

from __future__ import annotations

import dataclasses
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import hurtle
from hurtle.config import (
    AppLoadError,
    ASGI2Adapter,
    Config,
    import_from_string,
    load_app,
    option_fields,
)
from hurtle.main import run
from hurtle.server import Server
from tests.apps import basic


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": -1}, "port must be in 0..65535"),
        ({"port": 65536}, "port must be in 0..65535"),
        ({"loop": "tokio"}, "loop must be"),
        ({"lifespan": "sometimes"}, "lifespan must be"),
        ({"interface": "wsgi"}, "interface must be"),
        ({"limit_request_line": 0}, "limit_request_line must be positive"),
        ({"limit_request_fields": -5}, "limit_request_fields must be positive"),
        ({"limit_request_head": 0}, "limit_request_head must be positive"),
        ({"timeout_keep_alive": -0.1}, "timeout_keep_alive must not be negative"),
        ({"timeout_graceful_shutdown": -1}, "timeout_graceful_shutdown must not be negative"),
        ({"log_level": "verbose"}, "log_level must be one of"),
    ],
)
def test_validation_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config("main:app", **options)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Config("main:app", "127.0.0.1")  # type: ignore[misc]


def test_config_is_frozen() -> None:
    config = Config("main:app")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    changed = config.replace(port=1)
    assert changed.port == 1 and config.port == 8000


def test_option_fields_have_help() -> None:
    names = [field.name for field in option_fields()]
    assert "app" not in names
    assert len(names) == len(set(names))
    for field in option_fields():
        assert field.metadata.get("help"), field.name


def test_public_names() -> None:
    assert hurtle.Config is Config
    assert hurtle.Server is Server
    assert hurtle.run is run
    assert isinstance(hurtle.__version__, str)
    with pytest.raises(AttributeError):
        _ = hurtle.no_such_name  # type: ignore[attr-defined]


def test_version_matches_the_package_metadata() -> None:
    try:
        installed = metadata.version("hurtle")
    except metadata.PackageNotFoundError:
        pytest.skip("hurtle is not installed, only on sys.path")
    assert hurtle.__version__ == installed


def test_run_takes_a_config_or_options() -> None:
    with pytest.raises(TypeError, match="not both"):
        hurtle.run(Config("main:app"), port=1)


def test_run_exits_1_on_app_load_error(restore_logging: None) -> None:
    with pytest.raises(SystemExit) as info:
        hurtle.run("tests.apps.basic:nosuchattr", loop="asyncio", port=0)
    assert info.value.code == 1


def test_run_exits_3_on_lifespan_failure(restore_logging: None) -> None:
    with pytest.raises(SystemExit) as info:
        hurtle.run(basic.startup_fails, loop="asyncio", port=0)
    assert info.value.code == 3


# -- app loading ---------------------------------------------------------------


def test_import_from_string() -> None:
    assert import_from_string("tests.apps.basic:app") is basic.app
    assert import_from_string("tests.apps.basic:factory.__name__") == "factory"


@pytest.mark.parametrize(
    ("import_string", "message"),
    [
        ("tests.apps.basic", "must be in format"),
        (":app", "must be in format"),
        ("tests.apps.basic:", "must be in format"),
        ("tests.apps.nosuchmodule:app", 'Could not import module "tests.apps.nosuchmodule"'),
        ("tests.apps.basic:missing", 'Attribute "missing" not found'),
        ("tests.apps.basic:app.missing", 'Attribute "app.missing" not found'),
    ],
)
def test_import_errors(import_string: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        import_from_string(import_string)


def test_missing_dependency_of_the_app_is_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "needs_missing.py").write_text("import hurtle_no_such_dependency\napp = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ModuleNotFoundError, match="hurtle_no_such_dependency"):
            import_from_string("needs_missing:app")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("needs_missing", None)


def test_load_app_with_app_dir(tmp_path: Path) -> None:
    (tmp_path / "hurtle_app_dir_probe.py").write_text(
        "async def app(scope, receive, send):\n    pass\n"
    )
    config = Config("hurtle_app_dir_probe:app", app_dir=str(tmp_path))
    try:
        app = load_app(config)
        assert app.__name__ == "app"
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
        sys.modules.pop("hurtle_app_dir_probe", None)


def test_load_app_factory() -> None:
    assert load_app(Config("tests.apps.basic:factory", factory=True)) is basic.app


def test_load_app_factory_not_callable() -> None:
    with pytest.raises(AppLoadError, match="factory is not callable"):
        load_app(Config("tests.apps.basic:not_callable", factory=True))


def test_load_app_factory_needing_arguments() -> None:
    def factory(settings: object) -> object:
        return basic.app

    with pytest.raises(AppLoadError, match="Error calling the app factory"):
        load_app(Config(factory, factory=True))


def test_load_app_not_callable() -> None:
    with pytest.raises(AppLoadError, match="is not callable"):
        load_app(Config("tests.apps.basic:not_callable"))


def test_load_app_asgi3_passes_through() -> None:
    assert load_app(Config(basic.app)) is basic.app


def test_load_app_detects_asgi2() -> None:
    class ASGI2App:
        def __init__(self, scope: Any) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            pass

    loaded = load_app(Config(ASGI2App))
    assert isinstance(loaded, ASGI2Adapter)
    forced = load_app(Config(basic.app, interface="asgi2"))
    assert isinstance(forced, ASGI2Adapter)
