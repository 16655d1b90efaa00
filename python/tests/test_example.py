"""examples/python: the Flask app works both ways (in-process and through `lookout
serve`), and the Django app announces saved items."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
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


def run_django(tmp_path, *args, **env):
    """`manage.py ARGS` of examples/python/django, with its database in tmp_path."""
    environment = dict(os.environ, SHOP_DATABASE=str(tmp_path / "shop.sqlite3"), **env)
    for name in ("LOOKOUT_CONFIG", "LOOKOUT_URL", "LOOKOUT_TOKEN"):
        if name not in env:
            environment.pop(name, None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO / "examples" / "python" / "django",
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_django_example_announces_saved_items(capture, tmp_path):
    pytest.importorskip("django")
    config = tmp_path / "lookout.toml"
    config.write_text(ENGINE + f'[services.webhook]\nurls = ["{capture.url}/hook"]\n')
    run_django(tmp_path, "migrate", "--run-syncdb", "--verbosity", "0", LOOKOUT_CONFIG=str(config))
    save = (
        "from django.db import transaction\n"
        "from shop.models import Item\n"
        "item = Item.objects.create(title='Outbound hooks')\n"
        "item.status = 'started'; item.save()\n"
        "try:\n"
        "    with transaction.atomic():\n"
        "        Item.objects.create(title='Rolled back'); raise RuntimeError\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    run_django(tmp_path, "shell", "--command", save, LOOKOUT_CONFIG=str(config))
    sent = [json.loads(r.body) for r in capture.take()]
    assert [(e["action"], e["attributes"]["title"], e["attributes"]["status"]) for e in sent] == [
        ("created", "Outbound hooks", "backlog"),
        ("updated", "Outbound hooks", "started"),
    ]
