"""Autobahn conformance, sections 1 to 7, 9 and 10 (about 300 cases, seconds), through kosoku.

The whole suite, compression sections 12 and 13 included, runs from
``scripts/autobahn.py``; see the README.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("kosoku")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "autobahn.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hurtle_autobahn_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_autobahn_sections_1_to_10(tmp_path: Path) -> None:
    autobahn = _load_script()
    results = autobahn.run_cases(autobahn.QUICK, parallelism=4, outdir=tmp_path, timeout=240)
    assert len(results) == 301, autobahn.summary(results)
    assert autobahn.failures(results) == [], autobahn.summary(results)
