"""A minimal Flask product whose item save announces the item through Lookout.

    LOOKOUT_CONFIG=lookout.toml flask --app app run            # in-process engine
    LOOKOUT_URL=http://127.0.0.1:8080 LOOKOUT_TOKEN=… \\
        flask --app app run                                     # through `lookout serve`

POST /items with a JSON body {"title": …, "type": "story"} saves an item and sends the
four-key payload (action, model, product, attributes) to the configured services.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from flask import Flask, jsonify, request

import lookout

PRODUCT = {"id": 1, "name": "Acme"}
CURRENT_USER = {"id": 7, "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}


@dataclass
class Item:
    """The product's model. `save()` stores it and announces it."""

    number: int
    title: str
    type: str = "story"
    status: str = "backlog"

    def payload(self, action: str) -> dict:
        return {
            "action": action,
            "model": "Item",
            "product": PRODUCT,
            "attributes": {
                "number": self.number,
                "title": self.title,
                "type": self.type,
                "status": self.status,
                "short_url": f"https://acme.example/i/{self.number}",
                "created_by": CURRENT_USER,
                "product": PRODUCT,
            },
        }


def make_notifier():
    """In-process engine when LOOKOUT_CONFIG is set; else the `lookout serve` client."""
    if os.environ.get("LOOKOUT_CONFIG"):
        engine = lookout.Engine(os.environ["LOOKOUT_CONFIG"])  # one per process: it pools connections

        def notify(item: Item, action: str) -> dict:
            report = engine.dispatch(item.payload(action))  # waits for every service (bounded by the deadline)
            return report.to_dict()

        return notify

    client = lookout.Client(os.environ["LOOKOUT_URL"], os.environ["LOOKOUT_TOKEN"])

    def notify(item: Item, action: str) -> dict:
        # Stored durably by serve; its workers deliver and retry. The key makes a retried
        # request recognizable as the same event.
        return client.send(str(PRODUCT["id"]), item.payload(action), idempotency_key=f"item-{item.number}-{action}")

    return notify


app = Flask(__name__)
items: dict = {}
numbers = itertools.count(1)
notify = make_notifier()


@app.post("/items")
def create_item():
    body = request.get_json(force=True)
    item = Item(number=next(numbers), title=body["title"], type=body.get("type", "story"))
    items[item.number] = item
    return jsonify(item=item.__dict__, lookout=notify(item, "created")), 201
