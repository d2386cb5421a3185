"""The protocol cores stay sans-IO: no module under ``src/hurtle/protocol/`` imports I/O.

DESIGN.md: the cores take bytes and give events (and back), owning no socket, no
clock and no logger, so they can be fed byte by byte and fuzzed without a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "src" / "hurtle" / "protocol"

# Top-level modules a sans-IO core must not import (nor any of their submodules).
FORBIDDEN = frozenset(
    {"asyncio", "socket", "ssl", "time", "logging", "selectors", "threading", "uvloop"}
)


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """Each forbidden import in `source`, as ``"line N: module"``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            # Dynamic imports with a literal name count too.
            modules = [node.args[0].value]
        else:
            continue
        found += [
            f"line {node.lineno}: {module}"
            for module in modules
            if module.partition(".")[0] in FORBIDDEN
        ]
    return found


def protocol_sources() -> list[Path]:
    return sorted(PROTOCOL_DIR.rglob("*.py"))


def test_protocol_package_exists() -> None:
    assert (PROTOCOL_DIR / "__init__.py").is_file()


@pytest.mark.parametrize("path", protocol_sources(), ids=lambda p: str(p.relative_to(PROTOCOL_DIR)))
def test_protocol_module_imports_no_io(path: Path) -> None:
    found = forbidden_imports(path.read_text(encoding="utf-8"), str(path))
    assert not found, f"{path} imports I/O modules: {', '.join(found)}"


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import os, socket",
        "import time as clock",
        "from logging import getLogger",
        "from asyncio.events import AbstractEventLoop",
        "import ssl.foo",
        "def f():\n    import threading",
        "if True:\n    from selectors import DefaultSelector",
        "__import__('time')",
        "importlib.import_module('socket')",
    ],
)
def test_checker_finds_forbidden_imports(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import re",
        "from . import events",
        "from .time import parse",  # a sibling module that happens to share the name
        "from hurtle.protocol import errors",
        "import timeit",
        "from typing import TYPE_CHECKING",
        "import sockets_are_fine_in_names",
    ],
)
def test_checker_allows_pure_imports(source: str) -> None:
    assert not forbidden_imports(source)
