"""Options from a TOML file and from ``HURTLE_*`` environment variables.

Both readers derive from the fields of `hurtle.config.Config` through the
command line built from them (`hurtle.cli.build_parser`): a value written as a
string goes through the very parser the CLI uses for that option, so
``port = "80"``, ``HURTLE_PORT=80`` and ``--port 80`` accept and refuse the same
text. Precedence: command line > environment > file > `Config` defaults.

The file is, in order: ``--config PATH`` (or ``HURTLE_CONFIG``), else
``hurtle.toml`` in the working directory, else the ``[tool.hurtle]`` table of
``pyproject.toml`` there. Keys are the option names with ``_`` or ``-``
(``limit_max_requests`` or ``limit-max-requests``), plus ``app``. TOML types
are checked against the option's type; strings are parsed as on the command
line.

Environment variables are ``HURTLE_`` + the upper-cased option name
(``HURTLE_TIMEOUT_KEEP_ALIVE=10``, ``HURTLE_APP=main:app``); other
``HURTLE_*`` names are left to the app unless they look like a misspelt
option. Booleans take
``1/true/yes/on`` and ``0/false/no/off``; lists (``HURTLE_BIND``,
``HURTLE_RELOAD_DIRS``...) are comma-separated, except ``HURTLE_HEADERS``
which takes one ``NAME:VALUE`` per line. ``WEB_CONCURRENCY`` sets ``workers``
unless ``HURTLE_WORKERS`` does (the Heroku convention Uvicorn follows).

Every mistake raises `ConfigError` with one line naming the source and key.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hurtle.cli import _field_types, _split_optional, build_parser
from hurtle.config import Config, option_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "env_options",
    "file_options",
    "find_config_file",
    "render_toml",
]

ENV_PREFIX = "HURTLE_"
# Names that the readers take besides the options.
CONFIG_ENV = ENV_PREFIX + "CONFIG"
_EXTRA_KEYS = ("app",)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(Exception):
    """A configuration file or variable that cannot be used; the message names the key."""


def _actions() -> dict[str, argparse.Action]:
    return {
        action.dest: action
        for action in build_parser()._actions
        if action.option_strings
        and not action.dest.startswith("_")
        and action.dest not in ("help", "version")
    }


def _unknown(source: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{source}: unknown option {key!r}{hint}")


def _parse_bool(source: str, key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{source}: {key}: expected true or false, got {text!r}")


def _parse_text(source: str, key: str, action: argparse.Action, text: str) -> Any:
    """One string value through the option's command-line parser."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return _parse_bool(source, key, text)
    convert = action.type if callable(action.type) else str
    try:
        value = convert(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        if convert is int:
            reason = f"expected an integer, got {text!r}"
        else:
            reason = str(exc) or f"invalid value {text!r}"
        raise ConfigError(f"{source}: {key}: {reason}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise ConfigError(f"{source}: {key}: {text!r} is not one of {choices}")
    return value


# -- environment ---------------------------------------------------------------


def env_options(environ: Mapping[str, str] | None = None) -> tuple[str | None, dict[str, Any]]:
    """``(app, options)`` from ``HURTLE_*`` variables (and ``WEB_CONCURRENCY``)."""
    env = os.environ if environ is None else environ
    actions = _actions()
    app: str | None = None
    options: dict[str, Any] = {}
    for variable, raw in env.items():
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_ENV:
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name == "app":
            app = raw
            continue
        action = actions.get(name)
        if action is None:
            # Apps name their own variables HURTLE_SOMETHING too, so an unknown
            # name is only an error when it looks like a misspelt option.
            known = [ENV_PREFIX + n.upper() for n in (*actions, *_EXTRA_KEYS, "config")]
            if difflib.get_close_matches(variable, known, n=1, cutoff=0.85):
                raise _unknown("environment", variable, known)
            continue
        if isinstance(action, argparse._AppendAction):
            separator = "\n" if name == "headers" else ","
            items = [item.strip() for item in raw.split(separator)]
            options[name] = [
                _parse_text("environment", variable, action, item) for item in items if item
            ]
        else:
            options[name] = _parse_text("environment", variable, action, raw)
    if "workers" not in options and env.get("WEB_CONCURRENCY"):
        options["workers"] = _parse_text(
            "environment", "WEB_CONCURRENCY", actions["workers"], env["WEB_CONCURRENCY"]
        )
    return app, options


# -- file ----------------------------------------------------------------------


def find_config_file(explicit: str | None = None, cwd: str | None = None) -> Path | None:
    """The file to read: `explicit` (which must exist), ``hurtle.toml``, or a pyproject."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {explicit!r} does not exist")
        return path
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidate = base / "hurtle.toml"
    if candidate.is_file():
        return candidate
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # not ours to judge: a broken pyproject is reported by its tools
        tool = document.get("tool")
        if isinstance(tool, dict) and "hurtle" in tool:
            return pyproject
    return None


def _load_table(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        table = document.get("tool", {}).get("hurtle")
        if table is None:
            raise ConfigError(f"{path}: no [tool.hurtle] table")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.hurtle] must be a table")
        return table
    # hurtle.toml: the options at the top level, or under [tool.hurtle] as in
    # a pyproject, so one block can be moved between the two files.
    tool = document.get("tool")
    if set(document) == {"tool"} and isinstance(tool, dict) and set(tool) == {"hurtle"}:
        return dict(tool["hurtle"])
    return document


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _file_value(source: str, key: str, action: argparse.Action, tp: Any, value: Any) -> Any:
    """Check one TOML value against the option's type; parse strings as the CLI does."""
    inner, _ = _split_optional(tp)

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: expected {expected}, got {_type_name(value)}")

    if isinstance(action, argparse._AppendAction):
        if key == "headers" and isinstance(value, dict):
            value = [f"{name}:{text}" for name, text in value.items()]
        elif isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise wrong("an array of strings")
        items = []
        for item in value:
            if key == "headers" and isinstance(item, list) and len(item) == 2:
                item = f"{item[0]}:{item[1]}"
            if not isinstance(item, str):
                raise wrong("an array of strings")
            items.append(_parse_text(source, key, action, item))
        return items
    if isinstance(value, str):
        return _parse_text(source, key, action, value)
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if key == "log_config" and isinstance(value, dict):
        return value  # a dictConfig mapping written as a TOML table
    if key == "log_level" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    raise wrong("a string")


def file_options(path: Path) -> tuple[str | None, dict[str, Any]]:
    """``(app, options)`` from the TOML file at `path`."""
    source = str(path)
    table = _load_table(path)
    actions = _actions()
    types = _field_types()
    app: str | None = None
    options: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key == "app":
            if not isinstance(value, str):
                raise ConfigError(f"{source}: app: expected a string, got {_type_name(value)}")
            app = value
            continue
        action = actions.get(key)
        if action is None:
            raise _unknown(source, raw_key, [*actions, *_EXTRA_KEYS])
        if key in options:
            raise ConfigError(f"{source}: {key} is given twice")
        options[key] = _file_value(source, key, action, types[key], value)
    return app, options


# -- output --------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return json.dumps(f"{value[0]}:{value[1]}")  # a header
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_toml(config: Config) -> str:
    """The effective configuration as a ``hurtle.toml`` that gives the same `Config`."""
    lines = ["# hurtle: effective configuration (command line > environment > file > defaults)"]
    if isinstance(config.app, str):
        lines.append(f"app = {_toml_value(config.app)}")
    for field in option_fields():
        value = getattr(config, field.name)
        if value is None and field.default is not None:
            # Unset where the default is a limit: the CLI's word for it.
            lines.append(f'{field.name} = "none"')
        elif value is None:
            lines.append(f"# {field.name} is unset")
        else:
            lines.append(f"{field.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def merged_options(
    cli_options: Mapping[str, Any],
    cli_app: str | None,
    config_path: str | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, dict[str, Any], Path | None]:
    """``(app, options, file)``: the three layers merged, command line first."""
    env = os.environ if environ is None else environ
    path = find_config_file(config_path or env.get(CONFIG_ENV) or None)
    file_app, from_file = file_options(path) if path is not None else (None, {})
    env_app, from_env = env_options(env)
    options = {**from_file, **from_env, **cli_options}
    app = cli_app or env_app or file_app
    return app, options, path
