#!/usr/bin/env bash
# `make bench`: measures Lookout in release mode and rewrites docs/BENCHMARKS.md.
#
#   1. installs the peer, Apprise, into .venv-bench/ (from PyPI; quick when done), and
#      the Python package `lookout` built in release (scripts/python.sh --release);
#   2. installs hyperfine if it is missing and we may (root), as a second clock for the
#      CLI figure (the bench times repeated runs itself either way);
#   3. runs `cargo bench --bench engine`, which builds the release `lookout` binary and
#      the bench, runs every scenario against a local sink on 127.0.0.1 and writes
#      target/bench/results.json;
#   4. renders that and the machine's description into docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
VENV=.venv-bench
OUT=target/bench
mkdir -p "$OUT"

echo "bench: Apprise in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import apprise' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet apprise
fi
LOOKOUT_VENV=$VENV bash scripts/python.sh --release

if ! command -v hyperfine >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bench: installing hyperfine"
    apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hyperfine >/dev/null 2>&1; } ||
        echo "bench: no hyperfine; the CLI figure comes from the bench's own repeated runs"
fi

# Many helpers may share this machine: record how busy it was when we started.
cat /proc/loadavg >"$OUT/loadavg-before"

echo "bench: building and running (release)"
LOOKOUT_BENCH_PYTHON="$PWD/$VENV/bin/python" LOOKOUT_BENCH_OUT="$PWD/$OUT/results.json" \
    "$CARGO" bench --quiet --bench engine

rm -f "$OUT/hyperfine.json"
if command -v hyperfine >/dev/null 2>&1; then
    echo "bench: hyperfine on the CLI"
    hyperfine --shell=none --warmup 5 --runs 50 --export-json "$OUT/hyperfine.json" \
        --output=null \
        "target/release/lookout send --dry-run --payload lookout/samples/item.json --config $OUT/cli-config.toml" \
        >/dev/null 2>"$OUT/hyperfine.log"
fi

cat /proc/loadavg >"$OUT/loadavg-after"
python3 scripts/bench_report.py "$OUT" docs/BENCHMARKS.md
echo "bench: wrote docs/BENCHMARKS.md"
