#!/usr/bin/env bash
# Install hurtle with its test tools and run every check: ruff, mypy, pytest with
# coverage, and pytest again under a newer Python when the machine has one.
#
# Idempotent: creates .venv when missing, reinstalls the project in editable mode
# (cheap when nothing changed), then runs the checks. Exits non-zero on the first
# failure. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k tasks -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the suite needs (none yet). Installed only when missing and
# only when running as root; list the command name and the package providing it.
#   e.g. DEBIAN_NEEDS=("curl:curl")
DEBIAN_NEEDS=()
missing=()
for need in "${DEBIAN_NEEDS[@]+"${DEBIAN_NEEDS[@]}"}"; do
    command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need##*:}")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "warning: missing Debian packages (not root, not installing): ${missing[*]}" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/pip ]]; then
    rm -rf .venv
    if ! "$PYTHON" -m venv .venv; then
        # Debian ships venv's ensurepip separately; add it once when we may.
        [[ $(id -u) -eq 0 ]] || exit 1
        rm -rf .venv
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
VENV=.venv/bin
"$VENV/python" -m pip install --quiet -e '.[dev,standard]'

echo "== ruff"
"$VENV/ruff" check src tests examples scripts

echo "== mypy"
"$VENV/mypy"

echo "== pytest"
# Data files of earlier runs (and of killed subprocesses) must not leak into this one.
rm -f .coverage .coverage.*
# pytest-cov measures this process; `patch = ["subprocess"]` in pyproject.toml makes
# every Python child (servers started with `python -m hurtle`) write its own data
# file, and pytest-cov combines them all before the report and the gate.
"$VENV/python" -m pytest \
    --cov=hurtle \
    --cov-report=term-missing \
    --cov-fail-under=90 \
    "$@"

# The suite again under each newer interpreter this machine has (ALSO_PYTHONS,
# default python3.13): from 3.12 on, app tasks start eagerly, inside the
# protocol's own callbacks, a path the first run does not take. Each gets a venv
# of its own (.venv-X.Y); no coverage gate there, the first run has it.
main_version=$("$VENV/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for extra in ${ALSO_PYTHONS-python3.13}; do
    if ! "$extra" -c '' >/dev/null 2>&1; then
        # pyenv's shim exists for every version it holds but runs only the
        # selected ones: look for the interpreter among its versions.
        found=""
        pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
        for candidate in "$pyenv_root"/versions/"${extra#python}"*/bin/"$extra"; do
            [[ -x $candidate ]] && found=$candidate
        done
        if [[ -z $found ]]; then
            echo "== pytest on $extra: not on this machine, skipped"
            continue
        fi
        extra=$found
    fi
    version=$("$extra" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ $version == "$main_version" ]] && continue
    echo "== pytest on Python $version ($extra)"
    if [[ ! -x .venv-$version/bin/pip ]]; then
        rm -rf ".venv-$version"
        "$extra" -m venv ".venv-$version"
    fi
    ".venv-$version/bin/python" -m pip install --quiet -e '.[dev,standard]'
    ".venv-$version/bin/python" -m pytest -q -p no:cacheprovider "$@"
done
