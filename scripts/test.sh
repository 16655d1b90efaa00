#!/usr/bin/env bash
# Runs the whole test suite: doc tests, then every test target under a throwaway
# PostgreSQL cluster (scripts/with-postgres.sh). Ends with one line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
"$cargo" test --workspace --doc 2>&1 | tee -a "$log" || status=$?
if [ "$status" = 0 ]; then
    bash scripts/with-postgres.sh "$cargo" test --workspace --all-targets 2>&1 | tee -a "$log" || status=$?
fi

passed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s += $6} END {print s + 0}')
echo
echo "$passed passed, $failed failed"
exit "$status"
