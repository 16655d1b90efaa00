"""The Python binding's side of `make bench`'s binding figure (started by benches/engine).

Sends ROUNDS events through `lookout.Engine` (the Python package, built in release into
.venv-bench) to one webhook listing every URL given, one `dispatch()` per round, as the
Rust library and Apprise do in the same figure. Prints one JSON object: seconds taken for
the timed rounds.

Usage: python bench_binding.py ROUNDS PAYLOAD_FILE URL...
"""

import json
import platform
import sys
import time

import lookout


def main() -> None:
    rounds = int(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        payload = f.read()
    urls = sys.argv[3:]
    # The bench's settings (benches/engine/common.rs): defaults, a long deadline, loopback.
    engine = lookout.Engine(
        {
            "engine": {
                "deadline": "60s",
                "request_timeout": "30s",
                "allow_networks": ["127.0.0.0/8", "::1/128"],
            },
            "services": {"peer": {"service": "webhook", "urls": urls}},
        }
    )

    def round_() -> None:
        report = engine.dispatch(payload)
        delivered = sum(row.outcome == "delivered" for row in report)
        if delivered != len(urls):
            sys.exit(f"binding: {delivered} of {len(urls)} delivered: {report}")

    round_()  # untimed: connections are opened here
    started = time.perf_counter()
    for _ in range(rounds):
        round_()
    seconds = time.perf_counter() - started
    json.dump({"seconds": seconds, "notifications": rounds * len(urls), "python": platform.python_version()}, sys.stdout)


if __name__ == "__main__":
    main()
