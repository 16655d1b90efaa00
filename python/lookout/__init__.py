"""Lookout: deliver a product's events to outside services, in-process.

Five lines::

    import lookout

    engine = lookout.Engine("lookout.toml")
    report = engine.dispatch({"action": "created", "model": "Item",
                              "product": {"id": 1, "name": "Demo"}, "attributes": {...}})
    print(report)

``Engine`` is the Rust engine itself (the ``lookout`` crate) with every service linked
in; ``Client`` talks to a running ``lookout serve`` instead (durable delivery with
retries, an outbox, redelivery). ``services()``, ``docs()`` and ``validate()`` answer
what the CLI's ``services``, ``docs`` and ``validate`` commands do.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from . import _native
from ._errors import ConfigError, LookoutError, PayloadError, Problem
from .client import Client, ServerError

__all__ = [
    "Client",
    "ConfigError",
    "Delivery",
    "Engine",
    "LookoutError",
    "PayloadError",
    "Problem",
    "Report",
    "ServerError",
    "docs",
    "services",
    "validate",
]

ConfigSource = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A config file's path, its text (TOML, or JSON), or the same tables as a dict."""

Payload = Union[Mapping[str, Any], str, bytes]
"""The four-key event (``action``, ``product``, ``attributes``, ``model``) as a dict or
as JSON text."""


@dataclass(frozen=True)
class Delivery:
    """One row of a report: one request of one configured service, or why it sent none.

    ``outcome`` is ``delivered``, ``skipped``, ``failed`` or ``disabled`` (the target
    answered 410 Gone). ``target`` is where it went with its secrets redacted;
    ``reason`` says why it was skipped or failed (redacted too); ``duration`` is in
    seconds.
    """

    instance: str
    service: str
    outcome: str
    status: Optional[int]
    duration: float
    attempts: int
    target: Optional[str] = None
    reason: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Delivered or skipped on purpose."""
        return self.outcome in ("delivered", "skipped")

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> "Delivery":
        return cls(
            instance=row["instance"],
            service=row["service"],
            outcome=row["outcome"],
            status=row.get("status"),
            duration=row["duration_ms"] / 1000,
            attempts=row["attempts"],
            target=row.get("target"),
            reason=row.get("reason"),
        )


class Report:
    """What happened to one event: one :class:`Delivery` per request, in config order.

    Iterate over it for the rows; ``ok`` is False when any delivery failed;
    ``to_dict()`` is the CLI's ``send --json`` output.
    """

    def __init__(self, data: Dict[str, Any]) -> None:
        self._data = data
        self.kind: str = data["event"]
        """The event's ``Model.action``."""
        self.rows: Tuple[Delivery, ...] = tuple(Delivery._from_row(r) for r in data["results"])

    @property
    def ok(self) -> bool:
        """No delivery failed (skipped services do not count as failures)."""
        return all(row.ok for row in self.rows)

    def to_dict(self) -> Dict[str, Any]:
        """The report as plain data: ``{"event": ..., "results": [...]}``."""
        return json.loads(json.dumps(self._data))

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        counts: Dict[str, int] = {}
        for row in self.rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "no services"
        return f"<Report {self.kind}: {summary}>"

    def __str__(self) -> str:
        lines = [repr(self)]
        for row in self.rows:
            status = "" if row.status is None else f" {row.status}"
            where = f" {row.target}" if row.target else ""
            why = f" ({row.reason})" if row.reason else ""
            lines.append(f"  {row.instance} [{row.service}] {row.outcome}{status}{where}{why}")
        return "\n".join(lines)


class Engine(_native.Engine):
    """The delivery engine, in this process.

    ``Engine(config)`` takes a config file's path (``str`` or ``pathlib.Path``), the
    config's text (TOML, or JSON), or a dict of the same tables::

        lookout.Engine({"engine": {"deadline": "10s"},
                        "services": {"slack": {"url": "https://hooks.slack.com/..."}}})

    A ``str`` is taken as text when it has a newline, ``=`` or starts with ``[`` or
    ``{``; otherwise it is a path. Invalid config raises :class:`ConfigError` listing
    every problem.

    ``dispatch(payload)`` sends one event to every configured service at once and
    returns a :class:`Report`; it releases the GIL while it runs, so threads dispatch in
    parallel. ``await dispatch_async(payload)`` does the same on the engine's own
    runtime without blocking the event loop. ``preview(payload)`` shows what would be
    sent, secrets redacted. A bad payload raises :class:`PayloadError` with its path; a
    problem inside ``attributes`` does not raise but shows, with its path, in the rows of
    the services that need that field (forwarders still deliver), as in the CLI.

    An engine holds a connection pool and a runtime: make one and reuse it.
    """

    def __new__(cls, config: ConfigSource) -> "Engine":
        return super().__new__(cls, **_config_args(config))

    def __init__(self, config: ConfigSource) -> None:
        pass

    def dispatch(self, payload: Payload) -> Report:  # type: ignore[override]
        """Sends the event to every configured service; waits for the report."""
        return Report(json.loads(super().dispatch(_payload_text(payload))))

    async def dispatch_async(self, payload: Payload) -> Report:
        """:meth:`dispatch` for asyncio: sends on the engine's runtime; awaits the report."""
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[str]" = loop.create_future()

        def done(report: str) -> None:
            try:
                loop.call_soon_threadsafe(_settle, future, report)
            except RuntimeError:  # the loop was closed meanwhile: nobody is waiting
                pass

        super().dispatch_then(_payload_text(payload), done)
        return Report(json.loads(await future))

    def preview(self, payload: Payload) -> List[Dict[str, Any]]:  # type: ignore[override]
        """What each service would send (``send --dry-run --json``), secrets redacted:
        one dict per configured service, with its ``requests`` (method, url, headers,
        body) or, when it would send nothing, ``not_sent``."""
        return json.loads(super().preview(_payload_text(payload)))

    @property
    def services(self) -> List[Tuple[str, str]]:
        """The configured services as (name in the config, service) pairs."""
        return super().instances()

    def __repr__(self) -> str:
        names = ", ".join(name for name, _ in self.services)
        return f"<lookout.Engine services=[{names}]>"


def services() -> List[Dict[str, Any]]:
    """The catalogue: every service with the events it listens to and its options
    (``name``, ``kind``, ``secret``, ``required``, ``default``, ``help``)."""
    return json.loads(_native.catalogue())


def docs(name: str, html: bool = False) -> str:
    """A service's install docs in Markdown (or rendered to HTML)."""
    text = _native.docs(name, html)
    if text is None:
        raise KeyError(f"unknown service `{name}` (see lookout.services())")
    return text


def validate(config: ConfigSource) -> List[Problem]:
    """Every problem with a config (empty when it is valid), each with its ``path``
    (``services.slack.url``) and ``message``."""
    return [Problem(path, message) for path, message in _native.validate(**_config_args(config))]


def _config_args(config: ConfigSource) -> Dict[str, str]:
    if isinstance(config, os.PathLike):
        return {"path": os.fspath(config)}
    if isinstance(config, Mapping):
        return {"text": json.dumps(config), "origin": "<dict>"}
    if isinstance(config, str):
        looks_like_text = "\n" in config or "=" in config or config.lstrip()[:1] in ("[", "{")
        return {"text": config, "origin": "<string>"} if looks_like_text else {"path": config}
    raise TypeError(f"config: expected a path, TOML text or a dict, not {type(config).__name__}")


def _payload_text(payload: Payload) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError as err:
            raise PayloadError(f"payload is not UTF-8 text: {err.reason}") from None
    if isinstance(payload, Mapping):
        try:
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise PayloadError(f"payload is not JSON: {err}") from None
    raise TypeError(f"payload: expected a dict, str or bytes, not {type(payload).__name__}")


def _settle(future: "asyncio.Future[str]", report: str) -> None:
    if not future.done():  # it may have been cancelled
        future.set_result(report)
