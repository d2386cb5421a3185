"""The command line, ``hurtle APP [options]``, generated from `hurtle.config.Config`.

Every option is a field of `Config`; this module maps each field's type to
an argparse argument and never restates a default (unset options are left
out, so `Config` supplies the default). Names follow the field:
``limit_max_requests`` is ``--limit-max-requests``; booleans come as
``--x/--no-x`` pairs; `Literal` types give choices; ``headers`` is Uvicorn's
repeatable ``--header NAME:VALUE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import operator
import platform
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn, Union

from hurtle.config import LOG_LEVELS, Config, option_fields

__all__ = ["build_parser", "config_from_args", "flag_for", "main"]

# Where the flag is not the field name with dashes: Uvicorn's spelling wins.
_FLAG_NAMES = {
    "headers": "--header",
    "reload_dirs": "--reload-dir",
    "reload_includes": "--reload-include",
    "reload_excludes": "--reload-exclude",
}

# RFC 9110 section 5.1: field-name = token; tchar excludes separators.
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 9110 section 5.5: field values are visible characters, space and tab.
_FIELD_VALUE_RE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")


def flag_for(name: str) -> str:
    """The command-line flag of the `Config` field `name`."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _version_text() -> str:
    from hurtle import __version__  # noqa: PLC0415 - hurtle/__init__ imports nothing of ours

    return (
        f"Running hurtle {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )


# -- value parsers (argparse reports their ValueError as "invalid ... value") --


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    value = value.strip()
    if not sep or not _TOKEN_RE.match(name):
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE with a token NAME, got {text!r}")
    # A CR or LF in a value would let the option inject headers of its own.
    if not _FIELD_VALUE_RE.match(value):
        raise argparse.ArgumentTypeError(f"header value holds control characters: {text!r}")
    return name, value


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _optional_float(text: str) -> float | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


# -- generation ----------------------------------------------------------------


def _literal_choices(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return None


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; other unions are returned as they are."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return functools.reduce(operator.or_, args), optional
    return tp, False


def _argument_for(field: dataclasses.Field[Any], tp: Any) -> tuple[list[str], dict[str, Any]]:
    """The argparse ``add_argument`` call for one field, or `TypeError` for an unknown type."""
    name = field.name
    flag = flag_for(name)
    help_text: str = field.metadata.get("help", "")
    default = field.default
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    metavar = field.metadata.get("metavar")
    if metavar:
        kwargs["metavar"] = metavar
    inner, optional = _split_optional(tp)

    def with_default(text: str) -> str:
        if default is dataclasses.MISSING or default is None or default == "":
            return text
        shown = str(default).lower() if isinstance(default, bool) else default
        return f"{text} [default: {shown}]"

    if inner is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        kwargs["help"] = with_default(help_text) if default is not None else help_text
        kwargs.pop("metavar", None)
        return [flag], kwargs
    choices = _literal_choices(inner)
    if choices is not None:
        kwargs["choices"] = list(choices)
        kwargs["help"] = with_default(help_text)
        return [flag], kwargs
    if name == "log_level":
        # str | int: the command line takes the names; numbers are for run().
        kwargs["choices"] = list(LOG_LEVELS)
        kwargs["type"] = str.lower
        kwargs["help"] = help_text
        return [flag], kwargs
    if name == "log_config":
        # str | dict: a mapping is for run(); the command line gives a path.
        kwargs.setdefault("metavar", "PATH")
        kwargs["help"] = help_text
        return [flag], kwargs
    if typing.get_origin(inner) in (Sequence, list, tuple) and name == "headers":
        kwargs["action"] = "append"
        kwargs["type"] = _header
        kwargs["help"] = help_text
        return [flag], kwargs
    if typing.get_origin(inner) in (Sequence, list) and typing.get_args(inner) == (str,):
        kwargs["action"] = "append"
        kwargs["type"] = str
        kwargs["help"] = help_text
        return [flag], kwargs
    if inner is int:
        kwargs["type"] = _optional_int if optional else int
        kwargs.setdefault("metavar", "INT")
        kwargs["help"] = with_default(help_text)
        return [flag], kwargs
    if inner is float:
        kwargs["type"] = _optional_float if optional else _float
        kwargs.setdefault("metavar", "SECONDS" if name.startswith("timeout") else "FLOAT")
        kwargs["help"] = with_default(help_text)
        return [flag], kwargs
    if inner is str:
        kwargs["type"] = str
        kwargs.setdefault("metavar", name.split("_")[-1].upper())
        kwargs["help"] = with_default(help_text)
        return [flag], kwargs
    raise TypeError(f"no command-line mapping for Config.{name}: {tp!r}")


def _field_types() -> dict[str, Any]:
    """Each option field's evaluated annotation.

    Not `typing.get_type_hints(Config)`: on Python 3.10 it rejects the
    ``_: KW_ONLY`` pseudo-field, so each option's annotation is evaluated on
    its own, in the namespace of the module that defines `Config`.
    """
    namespace = vars(sys.modules[Config.__module__])
    resolved: dict[str, Any] = {}
    for field in option_fields():
        annotation = field.type
        if isinstance(annotation, str):
            annotation = eval(annotation, namespace)  # our own source, not user input
        resolved[field.name] = annotation
    return resolved


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for ``hurtle``; one argument per `option_fields` entry."""
    parser = argparse.ArgumentParser(
        prog="hurtle",
        description="Serve an ASGI application.",
        epilog="APP is 'module:attribute', e.g. 'main:app'.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "app",
        metavar="APP",
        nargs="?",
        help="The ASGI application, 'module:attribute'; may come from the config file.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    files = parser.add_argument_group("configuration file")
    files.add_argument(
        "--config",
        metavar="PATH",
        dest="_config_file",
        help="Read options from this TOML file (default: hurtle.toml, else [tool.hurtle] of "
        "pyproject.toml); the environment (HURTLE_*) and the command line override it.",
    )
    files.add_argument(
        "--print-config",
        action="store_true",
        dest="_print_config",
        help="Print the effective configuration as TOML and exit.",
    )
    files.add_argument(
        "--check-config",
        action="store_true",
        dest="_check_config",
        help="Check the configuration and that the app imports, then exit.",
    )
    hints = _field_types()
    for field in option_fields():
        flags, kwargs = _argument_for(field, hints[field.name])
        parser.add_argument(*flags, **kwargs)
    return parser


_NO_APP = "the following arguments are required: APP (or 'app' in the config file)"


def _config_and_actions(
    argv: Sequence[str] | None,
) -> tuple[Config, bool, bool, Callable[[], Config]]:
    """The config, the two print/check flags, and a function that reads the config again.

    The function (SIGHUP in a supervisor) merges the same command-line
    options with the environment and the file as they are when it is called;
    it raises `ConfigError`, `ValueError` or `TypeError` instead of exiting.
    """
    parser = build_parser()
    cli_options = vars(parser.parse_args(argv))
    cli_app = cli_options.pop("app")
    config_file = cli_options.pop("_config_file")
    print_config = cli_options.pop("_print_config")
    check_config = cli_options.pop("_check_config")
    # Imported here: the file reader needs the parser built above.
    from hurtle.configfile import ConfigError, merged_options  # noqa: PLC0415

    def read() -> Config:
        app, options, _ = merged_options(cli_options, cli_app, config_file)
        if app is None:
            raise ConfigError(_NO_APP)
        return Config(app, **options)

    try:
        app, options, _ = merged_options(cli_options, cli_app, config_file)
    except ConfigError as exc:
        # One line naming the file or variable and the key; the usage would
        # only bury it.
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if app is None:
        parser.error(_NO_APP)
    try:
        return Config(app, **options), print_config, check_config, read
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    """Parse `argv` into a `Config`; bad options exit with status 2 and a message.

    Options missing from `argv` come from ``HURTLE_*`` variables, then from the
    config file (`hurtle.configfile`), then from the `Config` defaults.
    """
    return _config_and_actions(argv)[0]


def _check(config: Config) -> int:
    from hurtle.config import AppLoadError, load_app  # noqa: PLC0415

    try:
        load_app(config)
    except AppLoadError as exc:
        print(f"hurtle: error loading the app: {exc}", file=sys.stderr)
        return 1
    print("hurtle: configuration OK")
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``hurtle`` command and ``python -m hurtle``."""
    config, print_config, check_config, reread = _config_and_actions(argv)
    if print_config:
        from hurtle.configfile import render_toml  # noqa: PLC0415

        sys.stdout.write(render_toml(config))
    if check_config:
        sys.exit(_check(config))
    if print_config:
        sys.exit(0)
    # Imported after parsing: `--help` and bad options need no server code.
    from hurtle.main import serve_config  # noqa: PLC0415

    serve_config(config, reread=reread)
    sys.exit(0)
