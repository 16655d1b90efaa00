"""The in-process engine: parity with the CLI, the GIL, asyncio, errors, secrets."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import subprocess
import threading
import time

import pytest

import lookout
from conftest import (
    ENGINE,
    FIXTURES,
    SIGNING_SECRET,
    URL_KEY,
    CaptureServer,
    assert_no_secret,
    every_service_config,
    lookout_binary,
)

# What differs between two sends of one event by design: the delivery id (a fresh UUID
# per delivery, in headers, paths and bodies) and the signature's clock.
DELIVERY_ID = re.compile(rb"msg_[0-9a-f]{32}")
PER_SEND_HEADERS = {"webhook-timestamp", "webhook-signature"}


def normalized(requests):
    shown = []
    for r in requests:
        headers = tuple(
            (name, DELIVERY_ID.sub(b"msg_ID", value.encode()).decode())
            for name, value in r.headers
            if name not in PER_SEND_HEADERS
        )
        path = DELIVERY_ID.sub(b"msg_ID", r.path.encode()).decode()
        shown.append((r.method, path, headers, DELIVERY_ID.sub(b"msg_ID", r.body)))
    return sorted(shown)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_the_binding_sends_what_the_cli_sends(fixture: pathlib.Path, capture, tmp_path):
    config = tmp_path / "lookout.toml"
    config.write_text(every_service_config(capture.url))

    cli = subprocess.run(
        [lookout_binary(), "send", "--payload", fixture, "--config", config, "--json"],
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode in (0, 1), cli.stderr.decode()
    by_cli = normalized(capture.take())

    report = lookout.Engine(config).dispatch(fixture.read_bytes())
    by_binding = normalized(capture.take())

    assert by_cli, "the CLI sent nothing"
    assert by_binding == by_cli
    # The same rows, too (durations aside).
    cli_rows = [(r["instance"], r["outcome"], r.get("status")) for r in json.loads(cli.stdout)["results"]]
    assert [(r.instance, r.outcome, r.status) for r in report] == cli_rows


def test_a_dict_a_str_and_bytes_are_the_same_event(capture):
    engine = lookout.Engine(ENGINE + f'[services.webhook]\nurls = ["{capture.url}/hook"]\n')
    text = FIXTURES[0].read_text()
    for payload in (json.loads(text), text, text.encode()):
        report = engine.dispatch(payload)
        assert report.ok and [r.outcome for r in report] == ["delivered"]
    bodies = [json.loads(r.body) for r in capture.take()]
    assert bodies == [json.loads(text)] * 3


def test_the_report():
    engine = lookout.Engine(ENGINE + '[services.webhook]\nurls = ["http://127.0.0.1:9/hook/' + URL_KEY + '"]\n')
    report = engine.dispatch(FIXTURES[0].read_text())
    assert not report.ok
    (row,) = report.rows
    assert (row.instance, row.service, row.outcome, row.status) == ("webhook", "webhook", "failed", None)
    assert row.target == "http://127.0.0.1:9/[redacted]"
    assert "connection" in row.reason and row.duration >= 0 and row.attempts >= 1
    data = report.to_dict()
    assert data["event"] == report.kind == "Block.created"
    assert data["results"][0]["outcome"] == "failed"
    assert repr(report) == "<Report Block.created: 1 failed>"


def test_dispatch_releases_the_gil():
    slow = CaptureServer(delay=0.2)
    try:
        engine = lookout.Engine(ENGINE + f'[services.webhook]\nurls = ["{slow.url}/hook"]\n')
        payload = FIXTURES[0].read_text()
        engine.dispatch(payload)  # warm: the connection pool
        reports = []
        threads = [threading.Thread(target=lambda: reports.append(engine.dispatch(payload))) for _ in range(2)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert all(r.ok for r in reports) and len(reports) == 2
        assert elapsed < 0.35, f"two dispatches took {elapsed:.3f} s: the GIL was held"
    finally:
        slow.close()


def test_dispatch_async_runs_on_the_engines_runtime():
    slow = CaptureServer(delay=0.2)
    try:
        engine = lookout.Engine(ENGINE + f'[services.webhook]\nurls = ["{slow.url}/hook"]\n')
        payload = FIXTURES[0].read_text()

        async def main():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            beat = asyncio.ensure_future(ticker())
            started = time.perf_counter()
            reports = await asyncio.gather(*(engine.dispatch_async(payload) for _ in range(3)))
            elapsed = time.perf_counter() - started
            beat.cancel()
            return reports, elapsed, ticks

        reports, elapsed, ticks = asyncio.run(main())
        assert [r.ok for r in reports] == [True] * 3
        assert elapsed < 0.35, f"three async dispatches took {elapsed:.3f} s"
        assert ticks >= 5, "the event loop was blocked"
    finally:
        slow.close()


def test_dispatch_async_raises_a_bad_payload():
    engine = lookout.Engine({"services": {}})
    with pytest.raises(lookout.PayloadError) as caught:
        asyncio.run(engine.dispatch_async({"model": "Item"}))
    assert caught.value.path == "product"


def test_preview_is_the_dry_run(tmp_path):
    config = tmp_path / "lookout.toml"
    config.write_text(every_service_config("https://example.org"))
    fixture = FIXTURES[0]
    cli = subprocess.run(
        [lookout_binary(), "send", "--dry-run", "--json", "--payload", fixture, "--config", config],
        capture_output=True,
        check=True,
    )
    preview = lookout.Engine(str(config)).preview(fixture.read_text())
    assert preview == json.loads(cli.stdout)
    assert_no_secret(json.dumps(preview))


@pytest.mark.parametrize(
    "payload, path",
    [
        ("{not json", None),
        ("[1, 2]", "(root)"),
        ({"product": {"id": 1, "name": "p"}, "attributes": {}}, "model"),
        ({"model": 3, "product": {"id": 1, "name": "p"}, "attributes": {}}, "model"),
        ({"model": "Item", "attributes": {}}, "product"),
        ({"model": "Item", "product": {"id": 1, "name": "p"}, "attributes": []}, "attributes"),
        (b"\xff\xfe", None),
        ({"model": "Item", "when": object()}, None),
        ('{"model": "Item\ud800"}', None),
        ({"model": "Item", "attributes": {"title": "\udfff"}}, None),
    ],
)
def test_a_bad_payload_raises_with_its_path(payload, path, tmp_path):
    engine = lookout.Engine({"services": {}})
    with pytest.raises(lookout.PayloadError) as caught:
        engine.dispatch(payload)
    assert caught.value.path == path
    with pytest.raises(lookout.PayloadError):
        engine.preview(payload)
    if "surrogate" in caught.value.message:
        return  # not writable to a file for the CLI
    if isinstance(payload, str) or (isinstance(payload, dict) and "when" not in payload):
        # The CLI's message, word for word.
        file = tmp_path / "bad.json"
        file.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        (tmp_path / "empty.toml").write_text("")
        cli = subprocess.run(
            [lookout_binary(), "send", "--payload", file, "--config", tmp_path / "empty.toml"],
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 2
        assert cli.stderr.strip() == f"error: {file}: {caught.value}"


def test_an_attributes_problem_is_reported_per_service_as_the_cli_does(capture):
    engine = lookout.Engine(
        ENGINE + f'[services.slack]\nurl = "{capture.url}/s/{URL_KEY}"\n[services.webhook]\nurls = ["{capture.url}/w"]\n'
    )
    payload = json.loads(REPO_FIXTURE("item.json"))
    del payload["attributes"]["created_by"]["first_name"]
    report = engine.dispatch(payload)
    slack, webhook = report.rows
    assert slack.outcome == "failed" and "attributes.created_by.first_name" in slack.reason
    assert webhook.outcome == "delivered"  # a forwarder needs no field


def REPO_FIXTURE(name: str) -> str:
    return next(p for p in FIXTURES if p.name == name).read_text()


@pytest.mark.parametrize(
    "config, path",
    [
        ({"services": {"slack": {"url": "not a url"}}}, "services.slack.url"),
        ({"services": {"nope": {}}}, "services.nope"),
        ({"services": {"discord": {"url": "https://x.example", "colour": 1}}}, "services.discord.colour"),
        ('[services.slack]\nurl = "https://x.example"\nenabled = "yes"\n', "services.slack.enabled"),
        ("[services.slack\n", None),
        ("[bogus]\nx = 1\n", "bogus"),
        ({"engine": {"deadline": "soon"}}, "engine.deadline"),
        ({"worker": {"lease": "x"}}, "worker.lease"),
        ({"server": {"trusted_proxies": ["nope"]}}, "server.trusted_proxies"),
        (pathlib.Path("/nonexistent/lookout.toml"), None),
    ],
)
def test_a_bad_config_raises_with_its_path(config, path):
    with pytest.raises(lookout.ConfigError) as caught:
        lookout.Engine(config)
    assert caught.value.path == path
    assert [p.path for p in lookout.validate(config)][:1] == [path]


def test_every_config_problem_at_once(tmp_path):
    config = {"services": {"slack": {"url": 3}, "zulip": {"site": "https://z.example"}}}
    with pytest.raises(lookout.ConfigError) as caught:
        lookout.Engine(config)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["services.slack.url", "services.zulip.bot_email", "services.zulip.api_key", "services.zulip.stream"]
    assert str(caught.value).count("\n") == 3
    assert [p.path for p in lookout.validate(config)] == paths
    # The CLI says the same.
    file = tmp_path / "lookout.json"
    file.write_text(json.dumps(config))
    cli = subprocess.run([lookout_binary(), "validate", "--config", file], capture_output=True, text=True)
    assert cli.stderr.strip() == f"error: {caught.value}"
    assert lookout.validate(ENGINE) == []


@pytest.mark.parametrize("payload", [[1, 2], 3, None, 1.5])
def test_a_payload_of_another_type_raises_type_error(payload):
    engine = lookout.Engine({"services": {}})
    for call in (engine.dispatch, engine.preview):
        with pytest.raises(TypeError, match="payload: expected a dict, str or bytes"):
            call(payload)


def test_validate_reports_every_table_at_once_as_the_cli_does(tmp_path):
    config = {
        "engine": {"deadline": "soon"},
        "services": {"slack": {"channel": "ops"}},
        "worker": {"lease": "x"},
        "server": {"trusted_proxies": ["nope"]},
    }
    problems = lookout.validate(config)
    assert [p.path for p in problems] == ["engine.deadline", "services.slack.url", "worker.lease", "server.trusted_proxies"]
    # A dict's problems name its paths, not a place in JSON the caller never wrote.
    assert not any(re.search(r"line \d|column \d", p.message) for p in problems)
    file = tmp_path / "lookout.json"
    file.write_text(json.dumps(config))
    cli = subprocess.run([lookout_binary(), "validate", "--config", file], capture_output=True, text=True)
    assert cli.returncode == 2
    assert cli.stderr.strip() == "error: " + "\n".join(p.message for p in problems)
    assert lookout.validate(file) == problems
    assert lookout.validate({"worker": {"lease": "2m"}, "server": {"trusted_proxies": ["10.0.0.0/8"]}}) == []


def test_explicit_constructors(tmp_path):
    folder = tmp_path / "env=prod"
    folder.mkdir()
    file = folder / "lookout.toml"
    text = '[services.slack]\nurl = "https://hooks.example/x"\n'
    file.write_text(text)
    for engine in (
        lookout.Engine.from_path(str(file)),
        lookout.Engine.from_path(file),
        lookout.Engine.from_toml(text),
        lookout.Engine.from_dict({"services": {"slack": {"url": "https://hooks.example/x"}}}),
    ):
        assert isinstance(engine, lookout.Engine) and engine.services == [("slack", "slack")]
    with pytest.raises(lookout.ConfigError) as caught:
        lookout.Engine.from_toml("[services.slack]\n", origin="settings.LOOKOUT")
    assert caught.value.path == "services.slack.url"
    with pytest.raises(lookout.ConfigError) as caught:
        lookout.Engine.from_toml("[services.slack\n", origin="settings.LOOKOUT")
    assert "settings.LOOKOUT" in str(caught.value)
    with pytest.raises(TypeError):
        lookout.Engine.from_dict("[services.slack]")


def test_the_version():
    import importlib.metadata

    assert lookout.__version__ == importlib.metadata.version("lookout-engine")


def test_config_from_a_path_text_or_dict(tmp_path):
    text = '[services.slack]\nurl = "https://hooks.example/x"\n'
    file = tmp_path / "lookout.toml"
    file.write_text(text)
    for config in (file, str(file), text, {"services": {"slack": {"url": "https://hooks.example/x"}}}):
        assert lookout.Engine(config).services == [("slack", "slack")]
    with pytest.raises(TypeError):
        lookout.Engine(42)


def test_no_secret_in_any_repr_str_or_exception(tmp_path):
    config = every_service_config("http://127.0.0.1:9")
    engine = lookout.Engine(config)
    report = engine.dispatch(FIXTURES[0].read_text())
    shown = [repr(engine), repr(report), str(report), json.dumps(report.to_dict())]
    shown += [repr(row) for row in report]
    shown.append(json.dumps(engine.preview(FIXTURES[0].read_text())))
    # A secret in an invalid option: the problem names the option, not the value.
    bad = config.replace(f'url = "http://127.0.0.1:9/slack/{URL_KEY}"', f'url = "::{URL_KEY}"')
    bad = bad.replace(f'secret = "{SIGNING_SECRET}"', 'secret = 7')
    with pytest.raises(lookout.ConfigError) as caught:
        lookout.Engine(bad)
    shown += [str(caught.value), repr(caught.value), repr(caught.value.problems)]
    shown += [repr(p) for p in lookout.validate(bad)]
    shown.append(repr(lookout.Client("http://127.0.0.1:9", "tok-0000-secret-0000")))
    for text in shown:
        assert_no_secret(text)


def test_services_and_docs():
    catalogue = lookout.services()
    names = [s["name"] for s in catalogue]
    assert names == sorted(names) and {"slack", "webhook", "email"} <= set(names)
    slack = next(s for s in catalogue if s["name"] == "slack")
    url = next(o for o in slack["options"] if o["name"] == "url")
    assert url["kind"] == "url" and url["secret"] and url["required"]
    assert lookout.docs("slack").startswith("# Slack")
    assert "<h1>Slack" in lookout.docs("slack", html=True)
    with pytest.raises(KeyError):
        lookout.docs("nope")


def test_help_is_useful():
    assert "dispatch" in lookout.Engine.__doc__ and "GIL" in lookout.Engine.__doc__
    assert lookout.Engine.dispatch_async.__doc__
    assert lookout.Report.__doc__ and lookout.Delivery.__doc__ and lookout.Client.__doc__
