"""What a new user meets first: the README's two commands, CI, the docs, the wheel."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hurtle.cli import flag_for
from hurtle.config import option_fields

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """The commands of the README's first code block, trailing comments removed."""
    match = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert match, "README.md has no ```sh block"
    commands = []
    for line in match.group(1).splitlines():
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command:
            assert shlex.split(command), command  # well-formed shell words
            commands.append(command)
    return commands


def test_readme_opens_with_a_title_then_the_two_commands() -> None:
    lines = README.splitlines()
    assert lines[0].startswith("# hurtle")
    assert lines[1] == ""
    assert lines[2] == "```sh"
    serve, test = readme_commands()
    assert serve.startswith("python3 -m venv .venv && ")
    assert "pip install -e '.[standard]'" in serve
    assert serve.endswith("hurtle examples.tasks:app")
    assert test == "bash scripts/test.sh"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert commands == [readme_commands()[1]]


def test_options_tables_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_options.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_option_is_documented_with_its_cli_flag() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "hurtle", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    options_doc = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    for field in option_fields():
        flag = flag_for(field.name)
        assert f"`{flag}" in README, f"{flag} missing from README.md"
        assert f"`{flag}" in options_doc, f"{flag} missing from docs/options.md"
        assert re.search(rf"{re.escape(flag)}\b", help_text), f"{flag} missing from --help"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("hurtle-*.whl")
    return path


def test_wheel_ships_the_package_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "hurtle/py.typed" in names
    assert "hurtle/__init__.py" in names
    assert "hurtle/protocol/h1/__init__.py" in names
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)
    assert "hurtle = hurtle.cli:main" in scripts
