"""Verifies captured webhook requests with the official Standard Webhooks library.

Used by tests/signatures.rs: reads {"secret": "whsec_...", "requests": [{"headers": {...},
"body": "..."}]} on standard input, verifies every request, and checks that a tampered
body and a wrong secret are refused (so that a verifier accepting anything would fail).
Prints one line per request; exits non-zero on the first problem.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def refused(webhook, body, headers):
    try:
        webhook.verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def main():
    given = json.load(sys.stdin)
    webhook = Webhook(given["secret"])
    stranger = Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    for number, request in enumerate(given["requests"], 1):
        headers, body = request["headers"], request["body"]
        payload = webhook.verify(body, headers)
        # A digest's body is an array of events, signed as one message.
        events = payload if isinstance(payload, list) and payload else [payload]
        if not all(isinstance(event, dict) and "model" in event for event in events):
            sys.exit(f"request {number}: verified, but the body is not an event: {payload!r}")
        if not refused(webhook, body + " ", headers):
            sys.exit(f"request {number}: a tampered body was accepted")
        if not refused(stranger, body, headers):
            sys.exit(f"request {number}: another secret was accepted")
        print(f"request {number}: verified (webhook-id {headers['webhook-id']})")


if __name__ == "__main__":
    main()
