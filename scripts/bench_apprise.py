"""Apprise's side of `make bench`'s peer comparison (started by benches/engine).

Sends ROUNDS notifications to every json:// URL given, through Apprise's Python API in
this one process: one Apprise object holding all the URLs, `notify()` called once per
round. Apprise sends a round's notifications from its own worker thread pool. Prints one
JSON object: seconds taken for the timed rounds and how Apprise was driven.

Usage: python bench_apprise.py ROUNDS BODY_FILE TITLE URL...
"""

import json
import os
import platform
import sys
import time

import apprise


def main() -> None:
    rounds = int(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        body = f.read()
    title = sys.argv[3]
    urls = sys.argv[4:]

    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            sys.exit(f"apprise refused {url}")

    # One untimed round: imports, plugin set-up and the worker pool are made here.
    if not notifier.notify(body=body, title=title):
        sys.exit("apprise: the warm-up round failed")

    started = time.perf_counter()
    for _ in range(rounds):
        if not notifier.notify(body=body, title=title):
            sys.exit("apprise: a round failed")
    seconds = time.perf_counter() - started

    pool = getattr(apprise.apprise, "get_shared_executor", None)
    workers = getattr(pool(), "_max_workers", None) if pool else None
    json.dump(
        {
            "seconds": seconds,
            "notifications": rounds * len(urls),
            "apprise": apprise.__version__,
            "python": platform.python_version(),
            "async_mode": apprise.AppriseAsset().async_mode,
            "workers": workers,
            "cpus": os.cpu_count(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
