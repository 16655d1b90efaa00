"""The engine's log events reach Python's `logging` (logger `lookout`), levels mapped,
secrets never in them."""

from __future__ import annotations

import logging

import pytest

import lookout
from conftest import ENGINE, FIXTURES, SIGNING_SECRET, URL_KEY, CaptureServer, assert_no_secret

# Quick retries, so that a refused delivery logs its retries within the test.
RETRYING = ENGINE + 'attempts = 2\nbackoff = "10ms"\nmax_backoff = "20ms"\n'


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records():
    logger = logging.getLogger("lookout")
    handler = Records()
    logger.addHandler(handler)
    before = logger.level
    yield handler.records, logger
    logger.removeHandler(handler)
    logger.setLevel(before)


@pytest.fixture
def refusing():
    server = CaptureServer(status=503)
    yield server
    server.close()


def engine_for(url: str) -> lookout.Engine:
    return lookout.Engine(
        RETRYING + f'[services.webhook]\nurls = ["{url}/hook/{URL_KEY}"]\nsecret = "{SIGNING_SECRET}"\n'
    )


def test_retries_and_outcomes_are_logged_without_secrets(records, refusing):
    seen, logger = records
    logger.setLevel(logging.DEBUG)
    report = engine_for(refusing.url).dispatch(FIXTURES[0].read_text())
    assert [row.outcome for row in report] == ["failed"]
    levels = [(r.levelname, r.getMessage().split(" target=")[0]) for r in seen]
    assert levels == [("INFO", "delivery failed, trying again"), ("DEBUG", "delivery done")]
    assert all(r.name == "lookout" for r in seen)
    assert "attempt=1" in seen[0].getMessage() and "503" in seen[0].getMessage()
    for record in seen:
        assert_no_secret(record.getMessage())


def test_nothing_below_the_loggers_level(records, refusing):
    seen, logger = records
    logger.setLevel(logging.WARNING)
    engine_for(refusing.url).dispatch(FIXTURES[0].read_text())
    assert seen == []
