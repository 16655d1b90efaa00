"""A real SMTP server for tests/smtp_real.rs: aiosmtpd (from PyPI, in .venv), listening
on 127.0.0.1 on a free port. It prints `listening on PORT` once ready, then one JSON line
per message it accepts, as Python's standard `email` parser reads that message.

    smtp_sink.py plain                  # no TLS, no STARTTLS offered
    smtp_sink.py smtps CERT KEY         # TLS from the first byte (implicit TLS)
    smtp_sink.py https CERT KEY         # not SMTP: an HTTPS server (for the HTTP client)
"""

import asyncio
import email
import email.policy
import http.server
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Parsing:
    """Parses every message with the standard library and prints what a mail client
    would show of its header fields, and its plain-text body."""

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        fields = {name.lower(): str(value) for name, value in message.items()}
        plain = message.get_body(preferencelist=("plain",))
        text = plain.get_content() if plain is not None else ""
        print(json.dumps({"headers": fields, "rcpt": envelope.rcpt_tos, "text": text}), flush=True)
        return "250 OK"


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve_smtp(context):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Parsing(), hostname="sink.test"), "127.0.0.1", 0, ssl=context
    )
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


class Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(200)
        self.end_headers()


def serve_https(context):
    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    mode = sys.argv[1]
    if mode == "plain":
        asyncio.run(serve_smtp(None))
    elif mode == "smtps":
        asyncio.run(serve_smtp(tls_context(sys.argv[2], sys.argv[3])))
    elif mode == "https":
        serve_https(tls_context(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
