#!/usr/bin/env bash
# Runs the whole test suite: doc tests, then every test target under a throwaway
# PostgreSQL cluster (scripts/with-postgres.sh), then the Python package's pytest suite
# (built into .venv by scripts/python.sh; it drives the `lookout` binary the cargo tests
# built). Ends with one line: "N passed, N failed", cargo's and pytest's counts together.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
log=$(mktemp)
trap 'rm -f "$log" "$log.py"' EXIT

status=0
"$cargo" test --workspace --doc 2>&1 | tee -a "$log" || status=$?
if [ "$status" = 0 ]; then
    bash scripts/with-postgres.sh "$cargo" test --workspace --all-targets 2>&1 | tee -a "$log" || status=$?
fi

if [ "$status" = 0 ]; then
    bash scripts/python.sh 2>&1 | tee -a "$log" || status=$?
fi
if [ "$status" = 0 ]; then
    "${LOOKOUT_VENV:-.venv}/bin/pytest" -q -p no:cacheprovider python/tests 2>&1 | tee "$log.py" || status=$?
fi

passed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s += $6} END {print s + 0}')
# pytest's last line: "3 failed, 41 passed in 15.2s" (or "44 passed in …"); errors count
# as failures.
pytest_count() { # the number before each word matching $1 on pytest's last line
    tail -n 1 "$log.py" | awk -v word="^($1),?$" \
        '{ for (i = 2; i <= NF; i++) if ($i ~ word) s += $(i - 1) } END { print s + 0 }'
}
if [ -s "$log.py" ]; then
    passed=$((passed + $(pytest_count passed)))
    failed=$((failed + $(pytest_count 'failed|error|errors')))
fi
echo
echo "$passed passed, $failed failed"
exit "$status"
