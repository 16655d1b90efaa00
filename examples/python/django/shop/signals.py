"""Hands every saved Item to Lookout: in-process, or through `lookout serve`."""

import logging
import os

from django.db import transaction
from django.db.models.signals import post_save

import lookout

from .models import PRODUCT, Item

log = logging.getLogger(__name__)


def make_notifier():
    """In-process engine when LOOKOUT_CONFIG is set; else the `lookout serve` client.
    Built once per process: an engine pools connections (and survives a fork)."""
    if os.environ.get("LOOKOUT_CONFIG"):
        engine = lookout.Engine.from_path(os.environ["LOOKOUT_CONFIG"])

        def notify(item: Item, action: str) -> None:
            report = engine.dispatch(item.payload(action))  # bounded by the deadline
            if not report.ok:
                log.warning("lookout: %s", report)

        return notify

    client = lookout.Client(os.environ["LOOKOUT_URL"], os.environ["LOOKOUT_TOKEN"])

    def notify(item: Item, action: str) -> None:
        # Stored durably by serve; the key makes a retried save recognizable.
        client.send(str(PRODUCT["id"]), item.payload(action), idempotency_key=f"item-{item.pk}-{action}")

    return notify


def connect() -> None:
    """Announces every saved Item once its transaction commits (a rolled-back save is
    never announced)."""
    notify = make_notifier()

    def announce(sender, instance: Item, created: bool, **kwargs) -> None:
        action = "created" if created else "updated"
        transaction.on_commit(lambda: notify(instance, action))

    post_save.connect(announce, sender=Item, weak=False, dispatch_uid="lookout-announce")
