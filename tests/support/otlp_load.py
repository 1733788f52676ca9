"""Helpers for the reliability tests: numbered spans, senders that record what was acknowledged, and
the offered / acknowledged / stored / duplicated / lost figures of a scenario."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_counter = itertools.count(1)
_lock = threading.Lock()
RUN = os.urandom(4)  # span ids are unique across test runs that share nothing else
FIGURES = Path(__file__).resolve().parents[2] / ".pytest_cache" / "reliability.json"


def make_request(spans: int, *, tenant: str | None = None, attrs: dict | None = None) -> tuple[ExportTraceServiceRequest, list[str]]:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.name")
    kv.value.string_value = "reliability-test"
    if tenant:
        kv = rs.resource.attributes.add(key="tenant.id")
        kv.value.string_value = tenant
    ss = rs.scope_spans.add()
    now = time.time_ns()
    ids = []
    with _lock:
        numbers = [next(_counter) for _ in range(spans)]
    for n in numbers:
        span = ss.spans.add()
        span.trace_id = RUN + bytes(8) + n.to_bytes(4, "big")
        span.span_id = RUN + n.to_bytes(4, "big")
        span.name = f"span-{n}"
        span.start_time_unix_nano = now
        span.end_time_unix_nano = now + 1_000_000
        for key, value in (attrs or {}).items():
            a = span.attributes.add(key=key)
            a.value.string_value = value
        ids.append(span.span_id.hex())
    return request, ids


@dataclass
class Tally:
    offered: set = field(default_factory=set)
    acked: set = field(default_factory=set)
    refused: dict = field(default_factory=dict)  # answer -> spans
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ids: list[str], ok: bool, answer: str = "") -> None:
        with self.lock:
            self.offered.update(ids)
            if ok:
                self.acked.update(ids)
            else:
                self.refused[answer] = self.refused.get(answer, 0) + len(ids)


def grpc_send(endpoint: str, request, timeout: float = 10) -> tuple[bool, str, dict]:
    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        try:
            stub.Export(request, timeout=timeout)
            return True, "OK", {}
        except grpc.RpcError as exc:
            trailers = dict(exc.trailing_metadata() or ())
            return False, exc.code().name, trailers


def http_send(url: str, request, timeout: float = 10) -> httpx.Response:
    return httpx.post(url, content=request.SerializeToString(), headers={"content-type": "application/x-protobuf"}, timeout=timeout)


def stored_counts(collector, ids: set[str] | None = None) -> tuple[int, int]:
    """(distinct test spans stored, duplicate rows) in a collector's store."""
    rows = collector.query(
        "SELECT uniqExact(SpanId) AS distinct_spans, count() AS total FROM otel.otel_traces "
        "WHERE ServiceName = 'reliability-test' AND startsWith(SpanId, {prefix:String})",
        {"prefix": RUN.hex()},
    )
    return int(rows[0]["distinct_spans"]), int(rows[0]["total"]) - int(rows[0]["distinct_spans"])


def stored_ids(collector) -> set[str]:
    rows = collector.query(
        "SELECT DISTINCT SpanId AS id FROM otel.otel_traces WHERE startsWith(SpanId, {prefix:String})",
        {"prefix": RUN.hex()},
    )
    return {r["id"] for r in rows}


def wait_stored(collector, expected: int, timeout: float = 40) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    stored, dups = stored_counts(collector)
    while stored < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        stored, dups = stored_counts(collector)
    time.sleep(0.5)  # anything still arriving would be a duplicate: give it a moment to show
    return stored_counts(collector)


def record(scenario: str, tally: Tally, store, **extra) -> dict:
    ids = stored_ids(store)
    stored, dups = stored_counts(store)
    figures = {
        "offered": len(tally.offered),
        "acknowledged": len(tally.acked),
        "refused": dict(tally.refused),
        "stored": stored,
        "stored_unacknowledged": len(ids - tally.acked),
        "duplicated": dups,
        "lost": len(tally.acked - ids),
        **extra,
    }
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    existing[scenario] = figures
    FIGURES.write_text(json.dumps(existing, indent=2))
    print(f"\n[reliability] {scenario}: {json.dumps(figures)}")
    return figures
