#!/usr/bin/env bash
# Installs what the test suite needs beyond Cargo, into .venv/ (idempotent, quick when
# already done). Tests that need these tools find them through LOOKOUT_VENV or .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LOOKOUT_VENV:-.venv}"

# --- Standard Webhooks (issue 6): the official Python library verifies the webhook
# --- service's signatures independently (tests/signatures.rs).
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import standardwebhooks" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "standardwebhooks==1.1.0"
fi
echo "test dependencies: standardwebhooks $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("standardwebhooks"))') in $VENV"
# --- end Standard Webhooks
