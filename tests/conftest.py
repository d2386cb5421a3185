"""Shared pytest set-up for hurtle's tests."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.h2_helpers import Certs

# The repository root on sys.path: tests import `tests.utils`, `tests.apps.*`
# and `examples.*` however pytest was started (`pytest` or `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(autouse=True)
def _no_hurtle_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from hurtle's defaults whatever the shell exports.

    ``HURTLE_*`` variables and ``WEB_CONCURRENCY`` are options (configfile.py):
    a developer's ``HURTLE_PORT`` or a host's ``WEB_CONCURRENCY`` would change
    what the CLI and the servers the tests start do. A test that wants one sets
    it itself.
    """
    for name in list(os.environ):
        if name.startswith("HURTLE_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA and a server certificate for localhost and 127.0.0.1, in files."""
    from tests.h2_helpers import make_certs  # noqa: PLC0415 - after the sys.path set-up

    return make_certs(tmp_path_factory.mktemp("certs"))


_LOGGER_NAMES = ("", "hurtle", "hurtle.error", "hurtle.access", "hurtle.asgi")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Start from unconfigured ``hurtle`` loggers; undo any configuration afterwards.

    Unconfigured means: no handlers, propagating to the root logger, so
    ``caplog`` sees every record whatever an earlier test configured.
    """
    saved = []
    for name in _LOGGER_NAMES:
        logger = logging.getLogger(name)
        saved.append(
            (logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled)
        )
        if name:
            logger.handlers = []
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
    try:
        yield
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
