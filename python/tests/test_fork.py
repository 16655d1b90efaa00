"""An engine built before a fork sends from the child and from the parent afterwards:
`multiprocessing` with fork, and a real `gunicorn --preload` whose workers dispatch."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import lookout
from conftest import ENGINE, FIXTURES

EVENT = FIXTURES[0].read_text()
# Every wait in these tests is bounded by this; a hang fails instead of blocking the suite.
BOUND = 30.0


def webhook_engine(url: str) -> lookout.Engine:
    return lookout.Engine(ENGINE + f'[services.webhook]\nurls = ["{url}/hook"]\n')


def outcomes(report: lookout.Report) -> list:
    return [row.outcome for row in report]


def dispatch_in_child(engine: lookout.Engine, answers) -> None:
    """Runs in the forked child: two sends, the second on the rebuilt runtime."""
    answers.put([outcomes(engine.dispatch(EVENT)) for _ in range(2)])


@pytest.mark.parametrize("parent_sent_first", [True, False], ids=["parent-sent", "parent-idle"])
def test_multiprocessing_fork_child_and_parent_both_send(capture, parent_sent_first):
    engine = webhook_engine(capture.url)
    if parent_sent_first:  # the runtime and a pooled connection exist when forking
        assert outcomes(engine.dispatch(EVENT)) == ["delivered"]
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=dispatch_in_child, args=(engine, answers))
    child.start()
    try:
        assert answers.get(timeout=BOUND) == [["delivered"], ["delivered"]]
    finally:
        child.join(timeout=BOUND)
    assert child.exitcode == 0, "the child must exit cleanly (no tokio panic)"
    # The parent's runtime was left alone by the child.
    assert outcomes(engine.dispatch(EVENT)) == ["delivered"]
    expected = 4 if parent_sent_first else 3
    assert len(capture.wait_for(expected, timeout=BOUND)) == expected


APP = """
import json, os
import lookout

engine = lookout.Engine(os.environ["LOOKOUT_CONFIG"])
EVENT = open(os.environ["LOOKOUT_EVENT"]).read()
# The master sends before forking: its runtime and connections exist at fork time.
assert [r.outcome for r in engine.dispatch(EVENT)] == ["delivered"]

def app(environ, start_response):
    report = engine.dispatch(EVENT)
    body = json.dumps({"pid": os.getpid(), "outcomes": [r.outcome for r in report]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


def wait_for_text(path, text: str, count: int, process: subprocess.Popen) -> str:
    """The log once `text` shows in it `count` times (bounded; fails if the process ends)."""
    deadline = time.monotonic() + BOUND
    log = ""
    while time.monotonic() < deadline and process.poll() is None:
        log = path.read_text() if path.exists() else ""
        if log.count(text) >= count:
            return log
        time.sleep(0.05)
    pytest.fail(f"{text!r} not seen {count} time(s) within {BOUND} s:\n{log}")


def test_gunicorn_preload_workers_send(capture, tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "forkapp.py").write_text(APP)
    config = tmp_path / "lookout.toml"
    config.write_text(ENGINE + f'[services.webhook]\nurls = ["{capture.url}/hook"]\n')
    log = tmp_path / "gunicorn.log"
    env = dict(os.environ, LOOKOUT_CONFIG=str(config), LOOKOUT_EVENT=str(FIXTURES[0]))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", "127.0.0.1:0",
         "--chdir", str(tmp_path), "--error-logfile", str(log), "--log-level", "info", "forkapp:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        text = wait_for_text(log, "Booting worker with pid", 2, server)
        port = int(text.split("Listening at: http://127.0.0.1:", 1)[1].split(")", 1)[0].split()[0])
        pids = set()
        for _ in range(200):  # until both workers have answered, at most 200 requests
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=BOUND) as answer:
                seen = json.loads(answer.read())
            assert seen["outcomes"] == ["delivered"], seen
            pids.add(seen["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "both forked workers answered"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=BOUND)
    assert server.returncode == 0, log.read_text()
    assert "panicked" not in log.read_text()
