"""Records every delivery from Lookout's errbot service, for tests/errbot.rs.

Each webhook appends one JSON line to the file named by LOOKOUT_ERRBOT_RECORD: which
route was hit, the payload as Errbot decoded it, and the token header. The test compares
them with what it sent.
"""

import json
import os

from flask import request

from errbot import BotPlugin, webhook


class LookoutTest(BotPlugin):
    def callback_connect(self):
        # Errbot calls this once the webhooks are routed. Flask refuses new routes after
        # its first request, so the test must not probe the web server before this file
        # exists.
        super().callback_connect()
        with open(os.environ["LOOKOUT_ERRBOT_READY"], "w", encoding="utf-8"):
            pass

    def record(self, route, payload):
        line = {
            "route": route,
            "content_type": request.headers.get("Content-Type"),
            "token": request.headers.get("X-Lookout-Token"),
            "payload": payload,
        }
        with open(os.environ["LOOKOUT_ERRBOT_RECORD"], "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        return "recorded"

    @webhook("/sprintly")
    def sprintly_json(self, payload):
        return self.record("json", payload)

    @webhook("/sprintly/form", form_param="payload")
    def sprintly_form(self, payload):
        return self.record("form", payload)
