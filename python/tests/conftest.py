"""Shared parts of the binding's tests: a capture server on 127.0.0.1, the fixtures, the
CLI binary, and a config that points every HTTP service at the capture server."""

from __future__ import annotations

import http.server
import os
import pathlib
import threading
import time
from typing import List, NamedTuple, Optional, Tuple

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = sorted(REPO.joinpath("lookout", "samples").glob("*.json")) + sorted(
    REPO.joinpath("testkit", "fixtures").glob("*.json")
)

# Secrets the tests configure; none may ever be shown.
URL_KEY = "T000/B000/urlkey0000secret"
TOKEN = "tok-0000-secret-0000"
SIGNING_SECRET = "whsec_c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ="
SECRETS = (URL_KEY, TOKEN, "c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ=")

ENGINE = '[engine]\ndeadline = "5s"\nrequest_timeout = "4s"\nrate_limits = false\nallow_networks = ["127.0.0.0/8"]\n'


class Captured(NamedTuple):
    method: str
    path: str
    headers: Tuple[Tuple[str, str], ...]
    body: bytes


class CaptureServer:
    """Records every request and answers 200 `{"ok": true}` after `delay` seconds."""

    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.requests: List[Captured] = []
        self.delay = delay
        self.status = status
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _capture(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with lock:
                    server.requests.append(
                        Captured(self.command, self.path, tuple((k.lower(), v) for k, v in self.headers.items()), body)
                    )
                if server.delay:
                    time.sleep(server.delay)
                answer = b'{"ok":true,"event_id":"$e","id":"1"}'
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_GET = _capture

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def take(self) -> List[Captured]:
        taken, self.requests = self.requests, []
        return taken

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Captured]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def capture():
    server = CaptureServer()
    yield server
    server.close()


def every_service_config(base: str) -> str:
    """Every HTTP service (email needs SMTP: left out), each aimed at `base`."""
    return ENGINE + f"""
[services.slack]
url = "{base}/slack/{URL_KEY}"
[services.discord]
url = "{base}/discord/{URL_KEY}"
[services.errbot]
url = "{base}/errbot/{URL_KEY}"
[services.flowdock]
auth_token = "{TOKEN}"
base_url = "{base}/flowdock"
[services.googlechat]
url = "{base}/googlechat/{URL_KEY}"
[services.hipchat]
auth_token = "{TOKEN}"
room_id = "ops"
base_url = "{base}/hipchat"
[services.matrix]
homeserver = "{base}/matrix"
access_token = "{TOKEN}"
room_id = "!room:example.org"
[services.mattermost]
url = "{base}/mattermost/{URL_KEY}"
[services.msteams]
url = "{base}/msteams/{URL_KEY}"
[services.ntfy]
server = "{base}/ntfy"
topic = "{TOKEN}"
[services.pagerduty]
routing_key = "{TOKEN}"
api_url = "{base}/pagerduty"
[services.rocketchat]
url = "{base}/rocketchat/{URL_KEY}"
[services.telegram]
bot_token = "{TOKEN}"
chat_id = "42"
api_url = "{base}/telegram"
[services.webhook]
urls = ["{base}/webhook/{URL_KEY}"]
secret = "{SIGNING_SECRET}"
[services.zulip]
site = "{base}/zulip"
bot_email = "bot@example.org"
api_key = "{TOKEN}"
stream = "ops"
"""


def lookout_binary() -> pathlib.Path:
    """The CLI that `make test` built (target/debug/lookout), or $LOOKOUT_BIN."""
    path = pathlib.Path(os.environ.get("LOOKOUT_BIN") or REPO / "target" / "debug" / "lookout")
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --bin lookout` first")
    return path


def assert_no_secret(text: Optional[str]) -> None:
    for secret in SECRETS:
        assert secret not in (text or ""), f"a secret shows in: {text}"
