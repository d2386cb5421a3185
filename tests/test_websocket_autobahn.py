"""Autobahn conformance, sections 1 to 7, 9 and 10 (about 300 cases, seconds), through kosoku.

The whole suite, compression sections 12 and 13 included, runs from
``scripts/autobahn.py``; see the README.
"""

from __future__ import annotations

import importlib.util
import json
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
    # Two cases at a time on this 2-core machine: the server (traced by
    # coverage under the suite) shares the CPUs with kosoku itself, and the
    # closing checks have timeouts of their own.
    results = autobahn.run_cases(autobahn.QUICK, parallelism=2, outdir=tmp_path, timeout=240)
    assert len(results) == 301, autobahn.summary(results)
    failed = autobahn.failures(results)
    assert failed == [], autobahn.summary(results) + "".join(
        f"\n{case}: {_why(tmp_path / results[case]['reportfile'])}" for case in failed
    )


def _why(report: Path) -> str:
    """What kosoku's report of a failed case says about its verdict and its close."""
    data = json.loads(report.read_text())
    keys = (
        "behavior",
        "behaviorClose",
        "result",
        "resultClose",
        "wasClean",
        "wasNotCleanReason",
        "wasCloseHandshakeTimeout",
        "wasServerConnectionDropTimeout",
        "localCloseCode",
        "remoteCloseCode",
    )
    return ", ".join(f"{key}={data.get(key)!r}" for key in keys)
