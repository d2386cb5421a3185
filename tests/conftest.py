"""Shared pytest set-up for hurtle's tests."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The repository root on sys.path: tests import `tests.utils`, `tests.apps.*`
# and `examples.*` however pytest was started (`pytest` or `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


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
