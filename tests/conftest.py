"""Shared pytest set-up for hurtle's tests."""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root on sys.path: tests import `tests.utils`, `tests.apps.*`
# and `examples.*` however pytest was started (`pytest` or `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
