"""A tiny OTLP/HTTP trace receiver for tests and the demo (127.0.0.1, protobuf or JSON).

    with OTLPCapture() as cap:          # cap.endpoint == "http://127.0.0.1:<port>"
        ...                             # OTEL_EXPORTER_OTLP_ENDPOINT=cap.endpoint
        spans = cap.wait_for(lambda s: len(s) >= 10)

Spans are flat dicts: trace_id, span_id, parent_span_id (hex), name, kind (SERVER,
CLIENT, INTERNAL...), service (resource service.name), attributes, status, start/end ns.
Also ``print_tree(spans)``: the trace tree as text.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _any_value(v) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def spans_from_request(body: bytes, content_type: str) -> list[dict]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    if "json" in content_type:
        from google.protobuf import json_format

        json_format.Parse(body.decode(), req)
    else:
        req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        res = {kv.key: _any_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append({
                    "trace_id": sp.trace_id.hex(),
                    "span_id": sp.span_id.hex(),
                    "parent_span_id": sp.parent_span_id.hex() or None,
                    "name": sp.name,
                    "kind": _KINDS.get(sp.kind, str(sp.kind)),
                    "service": res.get("service.name"),
                    "resource": res,
                    "scope": ss.scope.name,
                    "attributes": {kv.key: _any_value(kv.value) for kv in sp.attributes},
                    "status": {0: "UNSET", 1: "OK", 2: "ERROR"}.get(sp.status.code, "UNSET"),
                    "start_ns": sp.start_time_unix_nano,
                    "end_ns": sp.end_time_unix_nano,
                })
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if (self.headers.get("content-encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        cap: OTLPCapture = self.server.capture  # type: ignore[attr-defined]
        if cap.delay_s:
            time.sleep(cap.delay_s)
        if not self.path.startswith("/v1/traces"):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        try:
            spans = spans_from_request(body, self.headers.get("content-type") or "")
        except Exception as exc:  # pragma: no cover
            msg = str(exc).encode()
            self.send_response(400)
            self.send_header("content-length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        with cap.lock:
            cap.spans.extend(spans)
            cap.headers.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


class OTLPCapture:
    def __init__(self, port: int = 0, delay_s: float = 0.0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.capture = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.spans: list[dict] = []
        self.headers: list[dict] = []
        self.delay_s = delay_s

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "OTLPCapture":
        threading.Thread(target=self.httpd.serve_forever, name="otlp-capture", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)


def tree_lines(spans: list[dict], trace_id: str | None = None,
               keys: tuple[str, ...] = ("gen_ai.agent.name", "tenant.id", "gen_ai.usage.input_tokens",
                                        "gen_ai.usage.output_tokens")) -> list[str]:
    if trace_id:
        spans = [s for s in spans if s["trace_id"] == trace_id]
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(s, depth):
        short = {"gen_ai.usage.input_tokens": "in", "gen_ai.usage.output_tokens": "out",
                 "gen_ai.agent.name": "agent", "tenant.id": "tenant"}
        extra = ", ".join(f"{short.get(k, k)}={s['attributes'][k]}" for k in keys if k in s["attributes"])
        err = " ERROR" if s["status"] == "ERROR" else ""
        orphan = " (parent missing!)" if depth == 0 and s["parent_span_id"] else ""
        lines.append(f"{'  ' * depth}{s['name']} [{s['kind']}, {s['service']}]{err}{orphan}"
                     + (f"  {{{extra}}}" if extra else ""))
        for c in sorted(children.get(s["span_id"], []), key=lambda x: x["start_ns"]):
            walk(c, depth + 1)

    for root in sorted(children.get(None, []), key=lambda x: x["start_ns"]):
        walk(root, 0)
    return lines


def print_tree(spans: list[dict], trace_id: str | None = None) -> None:
    print("\n".join(tree_lines(spans, trace_id)))


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser(description="Capture OTLP/HTTP traces and print them as JSON lines")
    ap.add_argument("--port", type=int, default=4318)
    args = ap.parse_args()
    cap = OTLPCapture(args.port).start()
    print(f"listening on {cap.endpoint}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(1)
            spans = cap.snapshot()
            for s in spans[seen:]:
                print(json.dumps(s, default=str), flush=True)
            seen = len(spans)
    except KeyboardInterrupt:
        cap.stop()
