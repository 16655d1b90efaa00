"""examples/python/app.py works both ways: in-process and through `lookout serve`."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from conftest import ENGINE, REPO

flask = pytest.importorskip("flask")


def load_app(monkeypatch, **env):
    for name in ("LOOKOUT_CONFIG", "LOOKOUT_URL", "LOOKOUT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(REPO / "examples" / "python"))
    sys.modules.pop("app", None)
    return importlib.import_module("app").app.test_client()


def test_in_process(monkeypatch, capture, tmp_path):
    config = tmp_path / "lookout.toml"
    config.write_text(ENGINE + f'[services.webhook]\nurls = ["{capture.url}/hook"]\n')
    client = load_app(monkeypatch, LOOKOUT_CONFIG=str(config))
    answer = client.post("/items", json={"title": "Outbound hooks"})
    assert answer.status_code == 201
    assert [r["outcome"] for r in answer.get_json()["lookout"]["results"]] == ["delivered"]
    (request,) = capture.take()
    sent = json.loads(request.body)
    assert (sent["model"], sent["action"], sent["attributes"]["title"]) == ("Item", "created", "Outbound hooks")


def test_through_serve(monkeypatch):
    seen = []

    class FakeClient:
        def __init__(self, url, token):
            seen.append((url, token))

        def send(self, product, payload, idempotency_key=None):
            seen.append((product, payload["attributes"]["title"], idempotency_key))
            return {"id": "evt_1"}

    import lookout

    monkeypatch.setattr(lookout, "Client", FakeClient)
    client = load_app(monkeypatch, LOOKOUT_URL="http://127.0.0.1:1", LOOKOUT_TOKEN="t")
    answer = client.post("/items", json={"title": "Queued"})
    assert answer.status_code == 201 and answer.get_json()["lookout"] == {"id": "evt_1"}
    assert seen == [("http://127.0.0.1:1", "t"), ("1", "Queued", "item-1-created")]


def test_the_readmes_python_use_runs(monkeypatch, capture, tmp_path, capsys):
    readme = (REPO / "README.md").read_text()
    section = readme.split("## From Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "lookout.toml").write_text(ENGINE + f'[services.webhook]\nurls = ["{capture.url}/hook"]\n')
    (tmp_path / "lookout" / "samples").mkdir(parents=True)
    (tmp_path / "lookout" / "samples" / "item.json").write_text((REPO / "lookout" / "samples" / "item.json").read_text())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out == "True [('webhook', 'delivered')]\n"
