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
import logging
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from . import _native
from ._errors import ConfigError, LookoutError, PayloadError, Problem
from .client import Accepted, AsyncClient, Client, ServerError

__version__: str = _native.__version__
"""The package's version (the distribution ``lookout-engine``)."""

# The engine's log events go to this logger (see ``Engine``); silent unless the
# application configures logging.
logging.getLogger("lookout").addHandler(logging.NullHandler())

__all__ = [
    "Accepted",
    "AsyncClient",
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
    def _from_row(cls, row: Tuple[Any, ...]) -> "Delivery":
        """From the engine's row tuple (its fields in order, the duration in ms), filled in
        directly: a frozen dataclass's ``__init__`` costs a ``setattr`` call per field,
        which a report of fifty rows pays fifty times."""
        (instance, service, outcome, status, duration_ms, attempts, target, reason) = row
        delivery = object.__new__(cls)
        delivery.__dict__.update(
            instance=instance,
            service=service,
            outcome=outcome,
            status=status,
            duration=duration_ms / 1000,
            attempts=attempts,
            target=target,
            reason=reason,
        )
        return delivery


class Report:
    """What happened to one event: one :class:`Delivery` per request, in config order.

    Iterate over it for the rows; ``ok`` is False when any delivery failed;
    ``to_dict()`` is the CLI's ``send --json`` output.
    """

    def __init__(self, sent: "_native.Sent") -> None:
        self._sent = sent
        self.kind: str = sent.event()
        """The event's ``Model.action``."""
        self.rows: Tuple[Delivery, ...] = tuple(map(Delivery._from_row, sent.rows()))

    @property
    def ok(self) -> bool:
        """No delivery failed (skipped services do not count as failures)."""
        return all(row.ok for row in self.rows)

    def to_dict(self) -> Dict[str, Any]:
        """The report as plain data: ``{"event": ..., "results": [...]}``."""
        return json.loads(self._sent.json())

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

    ``Engine.from_path(path)``, ``Engine.from_toml(text)`` and ``Engine.from_dict(tables)``
    say what the config is; ``Engine(config)`` guesses: a ``pathlib.Path`` is a path, a
    dict holds the tables, and a ``str`` is taken as text when it has a newline, ``=`` or
    starts with ``[`` or ``{``, else as a path (so a path holding ``=`` needs
    ``from_path``)::

        lookout.Engine.from_dict({"engine": {"deadline": "10s"},
                                  "services": {"slack": {"url": "https://hooks.slack.com/..."}}})

    Invalid config raises :class:`ConfigError` listing every problem, as ``lookout
    validate`` does.

    ``dispatch(payload)`` sends one event to every configured service at once and
    returns a :class:`Report`; it releases the GIL while it runs, so threads dispatch in
    parallel. ``await dispatch_async(payload)`` does the same on the engine's own
    runtime without blocking the event loop. ``preview(payload)`` shows what would be
    sent, secrets redacted. A bad payload raises :class:`PayloadError` with its path; a
    problem inside ``attributes`` does not raise but shows, with its path, in the rows of
    the services that need that field (forwarders still deliver), as in the CLI.

    An engine holds a connection pool and a runtime, started at its first send: make one
    and reuse it. It survives ``fork``: built at import time in a gunicorn ``--preload``
    master, a uWSGI or Celery prefork parent or before ``multiprocessing`` forks, it
    sends from every child (each starts its own runtime and connections at its first
    send) and from the parent alike.

    Retries and finished deliveries are logged to the ``logging`` logger ``lookout``
    (INFO and DEBUG), with the reports' redaction: no secret appears.
    """

    def __new__(cls, config: ConfigSource) -> "Engine":
        return super().__new__(cls, **_config_args(config))

    def __init__(self, config: ConfigSource) -> None:
        pass

    @classmethod
    def from_path(cls, path: Union[str, "os.PathLike[str]"]) -> "Engine":
        """The engine of the config file at ``path`` (TOML, or JSON)."""
        return cls(pathlib.Path(path))

    @classmethod
    def from_toml(cls, text: str, origin: str = "<string>") -> "Engine":
        """The engine of config text (TOML, or JSON when it starts with ``{``); errors
        name it ``origin``."""
        return super().__new__(cls, text=text, origin=origin)

    @classmethod
    def from_dict(cls, tables: Mapping[str, Any]) -> "Engine":
        """The engine of a config given as its tables (``{"engine": {...}, "services":
        {...}}``); errors name the tables' paths (``services.slack.url``)."""
        return cls(_tables(tables))

    def dispatch(self, payload: Payload) -> Report:  # type: ignore[override]
        """Sends the event to every configured service; waits for the report."""
        return Report(super().dispatch(_payload_text(payload)))

    async def dispatch_async(self, payload: Payload) -> Report:
        """:meth:`dispatch` for asyncio: sends on the engine's runtime; awaits the report."""
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[_native.Sent]" = loop.create_future()

        def done(report: "_native.Sent") -> None:
            try:
                loop.call_soon_threadsafe(_settle, future, report)
            except RuntimeError:  # the loop was closed meanwhile: nobody is waiting
                pass

        super().dispatch_then(_payload_text(payload), done)
        return Report(await future)

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
    (``engine.deadline``, ``services.slack.url``, ``worker.lease``) and ``message``:
    what ``lookout validate`` reports, by the same code. ``config`` is taken as by
    :class:`Engine`."""
    return [Problem(path, message) for path, message in _native.validate(**_config_args(config))]


def _config_args(config: ConfigSource) -> Dict[str, str]:
    if isinstance(config, os.PathLike):
        return {"path": os.fspath(config)}
    if isinstance(config, Mapping):
        return {"text": json.dumps(_tables(config)), "origin": "<dict>"}
    if isinstance(config, str):
        looks_like_text = "\n" in config or "=" in config or config.lstrip()[:1] in ("[", "{")
        return {"text": config, "origin": "<string>"} if looks_like_text else {"path": config}
    raise TypeError(f"config: expected a path, TOML text or a dict, not {type(config).__name__}")


def _tables(tables: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(tables, Mapping):
        raise TypeError(f"config: expected a dict of tables, not {type(tables).__name__}")
    return tables


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


def _settle(future: "asyncio.Future[_native.Sent]", report: "_native.Sent") -> None:
    if not future.done():  # it may have been cancelled
        future.set_result(report)
