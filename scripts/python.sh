#!/usr/bin/env bash
# Builds the Python package `lookout` (python/, PyO3 + maturin) and installs it into a
# virtualenv with pytest; quick when nothing changed (cargo is incremental).
#
#   bash scripts/python.sh            # debug build into .venv/ (what the tests use)
#   bash scripts/python.sh --release  # optimized build (what `make bench` measures)
#
# LOOKOUT_VENV picks the virtualenv. The build goes into the shared target/, so that it
# reuses the engine's compiled dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${LOOKOUT_VENV:-.venv}"
profile=dev
[ "${1:-}" = --release ] && profile=release

if [ ! -x "$venv/bin/python" ]; then
    echo "python: creating $venv"
    python3 -m venv "$venv"
fi
# flask and django for examples/python; gunicorn for the fork test (a real `--preload`
# server).
if ! "$venv/bin/python" -c 'import maturin, pytest, flask, django, gunicorn' 2>/dev/null; then
    echo "python: installing maturin, pytest, flask, django and gunicorn into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.7,<2' pytest flask \
        'django>=4.2,<7' 'gunicorn>=23'
fi

# The package was called `lookout` before it became `lookout-engine` (that name on PyPI is
# another project's): both install the `lookout` folder, so the old one goes first.
if "$venv/bin/python" -m pip show --quiet lookout >/dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall --quiet --yes lookout
fi

echo "python: building the lookout package ($profile) into $venv"
started=$(date +%s)
# No build isolation: maturin is already in the venv, and a fresh isolated build
# environment would fetch it again on every run.
PATH="$(cd "$venv" && pwd)/bin:$PATH" CARGO_TARGET_DIR="$PWD/target" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps \
    --config-settings=build-args="--profile $profile" ./python
echo "python: lookout installed in $(( $(date +%s) - started )) s"
