"""An OTLP/HTTP trace receiver for tests/telemetry.rs, on 127.0.0.1.

Decodes each `POST /v1/traces` body (protobuf) with the official OpenTelemetry
definitions (the `opentelemetry-proto` package) and prints one JSON line per request:
the raw body (base64, to search it for secrets) and its spans, ids in hex. Prints
`ready PORT` first, once it listens. Stops when its standard input closes.
"""

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

# One request at a time onto stdout, whole lines only.
PRINTING = threading.Lock()
# An export is a few kilobytes; anything this large is not one.
MOST_BYTES = 16 * 1024 * 1024


def value_of(any_value):
    """An AnyValue as plain JSON (strings, ints, bools, doubles; arrays as lists)."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind) if kind else None


def attributes_of(key_values):
    return {kv.key: value_of(kv.value) for kv in key_values}


def spans_of(request):
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "service_name": resource.get("service.name"),
                    "scope": scope_spans.scope.name,
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                    "status": MessageToDict(span.status),
                    "attributes": attributes_of(span.attributes),
                    "links": [
                        {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                        for link in span.links
                    ],
                }


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/v1/traces" or not 0 < length <= MOST_BYTES:
            self.send_error(404 if self.path != "/v1/traces" else 400)
            return
        body = self.rfile.read(length)
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as err:  # a body that is not OTLP protobuf fails the test
            self.send_error(400, str(err))
            return
        line = json.dumps(
            {
                "content_type": self.headers.get("Content-Type"),
                "body": base64.b64encode(body).decode(),
                "spans": list(spans_of(request)),
            }
        )
        with PRINTING:
            print(line, flush=True)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {server.server_address[1]}", flush=True)
    # The test holds our stdin: when it ends (or dies), so do we.
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
