#!/usr/bin/env bash
# Installs what the test suite needs beyond Cargo, into .venv/ (idempotent, quick when
# already done). Tests that need these tools find them through LOOKOUT_VENV or .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${LOOKOUT_VENV:-.venv}"

if [ ! -x "$venv/bin/python" ]; then
    echo "test dependencies: creating $venv"
    python3 -m venv "$venv"
fi

# Errbot 6.x for tests/errbot.rs, which runs a real bot with its Webserver plugin.
# pytest is needed because Errbot's Null backend imports its test backend.
if "$venv/bin/python" -c 'import pytest; from errbot.version import VERSION; assert VERSION.startswith("6.")' \
    2>/dev/null; then
    echo "test dependencies: errbot and pytest already in $venv"
else
    echo "test dependencies: installing errbot 6.x and pytest into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        'errbot>=6,<7' pytest
fi
