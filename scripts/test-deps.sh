#!/usr/bin/env bash
# Installs what the test suite needs beyond Cargo, into .venv/ (idempotent, quick when
# already done). Tests that need these tools find them through LOOKOUT_VENV or .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "test dependencies: nothing beyond cargo yet"
