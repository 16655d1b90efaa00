"""A client for a running ``lookout serve``: durable delivery through its HTTP API.

Pure Python (``urllib.request``), no dependency. Retries 503 (the server's store is
busy: nothing was stored) and connection errors with bounded exponential backoff;
every other answer is final. ``AsyncClient`` is the same for asyncio applications.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, TypeVar, Union

from ._errors import LookoutError, PayloadError

Payload = Union[Mapping[str, Any], str, bytes]


class ServerError(LookoutError):
    """``lookout serve`` refused a request (or could not be reached): ``status`` is the
    HTTP status (None when no answer came), the message the server's ``error``."""

    def __init__(self, message: str, status: Optional[int] = None, path: Optional[str] = None):
        super().__init__(message, path)
        self.status = status


class Accepted(Dict[str, Any]):
    """What ``send`` answers: the stored event (``{"id": ..., "deliveries": [...]}``),
    and ``replayed``: True when the server had already stored an event under the same
    idempotency key and answered with it again, nothing new stored."""

    def __init__(self, body: Mapping[str, Any], replayed: bool) -> None:
        super().__init__(body)
        self.replayed = replayed


class Client:
    """``Client(url, token)`` for the ``lookout serve`` at ``url`` (e.g.
    ``http://127.0.0.1:8080``), authenticating with its ``LOOKOUT_TOKEN``.

    ``send(product, payload)`` queues an event for a product's services and returns
    ``{"id": ..., "deliveries": [...]}`` once the server has stored it; the workers
    deliver it, retrying for hours if need be. ``products()``, ``product(id)``,
    ``deliveries()``, ``delivery(id)`` and ``redeliver(id)`` manage and inspect.

    ``retries`` bounds the extra tries after a 503 or a connection error, waiting
    ``backoff``, then twice that, and so on (capped at 5 s, with jitter); ``timeout`` is
    per try, in seconds.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.1,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def __repr__(self) -> str:  # never the token
        return f"<lookout.Client {self.url}>"

    def send(self, product: str, payload: Payload, idempotency_key: Optional[str] = None) -> Accepted:
        """Queues the event for ``product``'s services. With ``idempotency_key``, the
        key goes out as the ``Idempotency-Key`` header, so that a retried send can be
        recognized as the same event (the answer's ``replayed`` then says so)."""
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        seen: Dict[str, str] = {}
        body = self._call("POST", f"/v1/products/{_segment(product)}/events", _body(payload), headers, seen)
        return Accepted(body or {}, seen.get("idempotent-replayed") == "true")

    def products(self) -> List[Dict[str, Any]]:
        """Every product with its services (secrets redacted)."""
        return self._call("GET", "/v1/products")

    def product(self, id: str) -> Dict[str, Any]:
        """One product with its services (secrets redacted)."""
        return self._call("GET", f"/v1/products/{_segment(id)}")

    def put_product(self, id: str, services: Mapping[str, Any]) -> Dict[str, Any]:
        """Sets a product's services: the config file's ``[services]`` tables as a dict."""
        body = json.dumps({"services": services}).encode()
        return self._call("PUT", f"/v1/products/{_segment(id)}", body, {"Content-Type": "application/json"})

    def deliveries(
        self,
        status: Optional[str] = None,
        *,
        service: Optional[str] = None,
        product: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Deliveries, newest first; ``status`` is ``pending``, ``delivered``, ``dead``…"""
        query = {k: v for k, v in {"status": status, "service": service, "product": product, "limit": limit}.items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._call("GET", f"/v1/deliveries{suffix}")

    def delivery(self, id: str) -> Dict[str, Any]:
        """One delivery with its attempts."""
        return self._call("GET", f"/v1/deliveries/{_segment(id)}")

    def redeliver(self, id: str) -> Dict[str, Any]:
        """Makes a delivery (typically a dead one) due again now."""
        return self._call("POST", f"/v1/deliveries/{_segment(id)}/redeliver", b"")

    def _call(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
        answer_headers: Optional[Dict[str, str]] = None,
    ) -> Any:
        """The answer's JSON; its headers (lower-cased) into ``answer_headers`` if given."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if answer_headers is not None:
                        answer_headers.update((k.lower(), v) for k, v in response.headers.items())
                    text = response.read()
                    return json.loads(text) if text else None
            except urllib.error.HTTPError as err:
                if err.code != 503 or last:
                    raise _refusal(err) from None
                err.close()
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                if last:
                    reason = getattr(err, "reason", err)
                    raise ServerError(f"cannot reach {self.url}: {reason}") from None
            time.sleep(min(self.backoff * 2**attempt, 5.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")


T = TypeVar("T")


class AsyncClient:
    """:class:`Client` for asyncio: the same constructor and methods, as coroutines.

    Each request runs on a thread of the event loop's default executor, so the loop is
    never blocked, not even while a 503 is retried::

        client = lookout.AsyncClient("http://127.0.0.1:8080", token)
        accepted = await client.send("1", payload, idempotency_key="item-1-created")
    """

    def __init__(self, url: str, token: str, **options: Any) -> None:
        self._client = Client(url, token, **options)

    @property
    def url(self) -> str:
        return self._client.url

    def __repr__(self) -> str:  # never the token
        return f"<lookout.AsyncClient {self.url}>"

    async def send(self, product: str, payload: Payload, idempotency_key: Optional[str] = None) -> Accepted:
        """See :meth:`Client.send`."""
        return await _off_loop(self._client.send, product, payload, idempotency_key)

    async def products(self) -> List[Dict[str, Any]]:
        return await _off_loop(self._client.products)

    async def product(self, id: str) -> Dict[str, Any]:
        return await _off_loop(self._client.product, id)

    async def put_product(self, id: str, services: Mapping[str, Any]) -> Dict[str, Any]:
        return await _off_loop(self._client.put_product, id, services)

    async def deliveries(self, status: Optional[str] = None, **filters: Any) -> List[Dict[str, Any]]:
        """See :meth:`Client.deliveries` (``service``, ``product``, ``limit``)."""
        return await _off_loop(functools.partial(self._client.deliveries, status, **filters))

    async def delivery(self, id: str) -> Dict[str, Any]:
        return await _off_loop(self._client.delivery, id)

    async def redeliver(self, id: str) -> Dict[str, Any]:
        return await _off_loop(self._client.redeliver, id)


def _off_loop(call: Callable[..., T], *args: Any) -> "Awaitable[T]":
    return asyncio.get_running_loop().run_in_executor(None, call, *args)


def _refusal(err: urllib.error.HTTPError) -> LookoutError:
    try:
        body = json.loads(err.read() or b"{}")
    except ValueError:
        body = {}
    finally:
        err.close()
    message = body.get("error") or f"HTTP {err.code}"
    if err.code == 400 and "path" in body:
        return PayloadError(message, body["path"])
    return ServerError(message, err.code, body.get("path"))


def _segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def _body(payload: Payload) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
