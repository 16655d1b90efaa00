"""lookout.Client against a real `lookout serve` (and against refusals and outages)."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
import time

import pytest

import lookout
from conftest import ENGINE, FIXTURES, URL_KEY, lookout_binary

TOKEN = "serve-token-0000-secret"


@pytest.fixture
def serving(tmp_path, capture):
    """`lookout serve` on 127.0.0.1:0 with product p1 → one webhook at the capture server."""
    db = tmp_path / "lookout.db"
    subprocess.run(
        [lookout_binary(), "products", "add", "p1", "hook", "--service", "webhook",
         "--set", f"urls={capture.url}/hook/{URL_KEY}", "--database", db],
        check=True, capture_output=True,
    )
    config = tmp_path / "engine.toml"
    config.write_text(ENGINE)
    process = subprocess.Popen(
        [lookout_binary(), "serve", "--listen", "127.0.0.1:0", "--database", db, "--config", config],
        stdout=subprocess.PIPE, text=True, env={"LOOKOUT_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )
    try:
        first = process.stdout.readline()
        url = next(word for word in first.split() if word.startswith("http://"))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_send_and_inspect_through_serve(serving, capture):
    client = lookout.Client(serving, TOKEN)
    payload = json.loads(FIXTURES[0].read_text())
    accepted = client.send("p1", payload, idempotency_key="order-42-created")
    assert accepted["id"].startswith("evt_") and len(accepted["deliveries"]) == 1
    (request,) = capture.wait_for(1)
    assert json.loads(request.body) == payload

    (product,) = client.products()
    assert product["id"] == "p1" and client.product("p1") == product
    assert URL_KEY not in json.dumps(product)

    delivery_id = accepted["deliveries"][0]["id"]
    deadline = time.monotonic() + 10
    while client.delivery(delivery_id)["delivery"]["status"] != "delivered":
        assert time.monotonic() < deadline, "the delivery never finished"
        time.sleep(0.05)
    listed = client.deliveries("delivered")
    assert [d["id"] for d in listed] == [delivery_id]
    assert client.deliveries(status="dead") == []

    client.redeliver(delivery_id)
    assert len(capture.wait_for(2)) == 2, "the redelivery never arrived"


def test_a_repeated_idempotency_key_is_answered_as_replayed(serving, capture):
    client = lookout.Client(serving, TOKEN)
    first = client.send("p1", FIXTURES[0].read_text(), idempotency_key="item-7-created")
    again = client.send("p1", FIXTURES[0].read_text(), idempotency_key="item-7-created")
    assert (first.replayed, again.replayed) == (False, True)
    assert again["id"] == first["id"]
    assert not client.send("p1", FIXTURES[0].read_text()).replayed


def test_the_async_client_does_not_block_the_loop(serving, capture):
    import asyncio

    async def main():
        client = lookout.AsyncClient(serving, TOKEN)
        ticks = 0

        async def ticking():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(ticking())
        sent = await asyncio.gather(*(client.send("p1", FIXTURES[0].read_text(), idempotency_key=f"a-{n}") for n in range(5)))
        again = await client.send("p1", FIXTURES[0].read_text(), idempotency_key="a-0")
        (product,) = await client.products()
        ticker.cancel()
        return sent, again, product, ticks, repr(client)

    sent, again, product, ticks, shown = asyncio.run(main())
    assert len({accepted["id"] for accepted in sent}) == 5 and again.replayed
    assert product["id"] == "p1"
    assert ticks > 5, "the loop ran while the requests were out"
    assert TOKEN not in shown
    assert len(capture.wait_for(5)) >= 5


def test_the_idempotency_key_goes_out_as_a_header():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Idempotency-Key"))
            self.send_response(202)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    with serve(Handler) as url:
        client = lookout.Client(url, TOKEN)
        client.send("p1", FIXTURES[0].read_bytes(), idempotency_key="k-1")
        client.send("p1", FIXTURES[0].read_text())
    assert seen == ["k-1", None]


def test_refusals_raise_with_the_servers_message(serving):
    client = lookout.Client(serving, TOKEN)
    with pytest.raises(lookout.PayloadError) as caught:
        client.send("p1", {"model": "Item", "product": {"id": 1, "name": "p"}})
    assert caught.value.path == "attributes"
    with pytest.raises(lookout.ServerError) as caught:
        client.product("nope")
    assert caught.value.status == 404 and "unknown product" in str(caught.value)
    with pytest.raises(lookout.ServerError) as caught:
        lookout.Client(serving, "wrong").products()
    assert caught.value.status == 401
    with pytest.raises(lookout.ServerError) as caught:
        client.deliveries("sideways")
    assert caught.value.status == 400


def test_503_is_retried_with_backoff_then_answered():
    answers = [503, 503, 202]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0)
            body = b'{"id":"evt_1","deliveries":[]}' if status == 202 else b'{"error":"busy"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve(Handler) as url:
        assert lookout.Client(url, TOKEN, backoff=0.01).send("p1", "{}")["id"] == "evt_1"
    assert answers == []


def test_an_unreachable_server_fails_after_bounded_retries():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = lookout.Client(f"http://127.0.0.1:{port}", TOKEN, retries=3, backoff=0.01)
    started = time.perf_counter()
    with pytest.raises(lookout.ServerError) as caught:
        client.products()
    assert time.perf_counter() - started < 2
    assert caught.value.status is None and "cannot reach" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(client)


class serve:
    """A throwaway HTTP server on 127.0.0.1 with the given handler."""

    def __init__(self, handler):
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self):
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def __exit__(self, *exc):
        self.http.shutdown()
        self.http.server_close()
