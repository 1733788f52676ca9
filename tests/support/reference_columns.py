"""The plain reference conversion OTLP -> `otel_traces` Arrow table (span by span into Python rows,
the obvious way) that the fast native path must equal, and spans built to hit every edge of it:
every AnyValue kind, empty resources and scopes, odd kinds and status codes (tests/test_columns.py,
tests/test_native.py, tests/test_convert_workers.py)."""

from __future__ import annotations

import math
import random

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.pdata import Traces, any_value_to_str
from collector.storage import columns

KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUSES = ["Unset", "Ok", "Error"]


def reference_rows(traces: Traces) -> list[dict]:
    rows = []
    for rs in traces.request.resource_spans:
        resource = [(kv.key, any_value_to_str(kv.value)) for kv in rs.resource.attributes]
        service = next((v for k, v in resource if k == "service.name"), "")
        for ss in rs.scope_spans:
            for span in ss.spans:
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                rows.append({
                    "Timestamp": start,
                    "TraceId": span.trace_id.hex(),
                    "SpanId": span.span_id.hex(),
                    "ParentSpanId": span.parent_span_id.hex(),
                    "TraceState": span.trace_state,
                    "SpanName": span.name,
                    "SpanKind": KINDS[span.kind] if 0 <= span.kind < len(KINDS) else "Unspecified",
                    "ServiceName": service,
                    "ResourceAttributes": list(resource),
                    "ScopeName": ss.scope.name,
                    "ScopeVersion": ss.scope.version,
                    "SpanAttributes": [(kv.key, any_value_to_str(kv.value)) for kv in span.attributes],
                    "Duration": end - start if end > start else 0,
                    "StatusCode": STATUSES[span.status.code] if 0 <= span.status.code < 3 else "Unset",
                    "StatusMessage": span.status.message,
                    "Events.Timestamp": [e.time_unix_nano for e in span.events],
                    "Events.Name": [e.name for e in span.events],
                    "Events.Attributes": [[(kv.key, any_value_to_str(kv.value)) for kv in e.attributes] for e in span.events],
                    "Links.TraceId": [ln.trace_id.hex() for ln in span.links],
                    "Links.SpanId": [ln.span_id.hex() for ln in span.links],
                    "Links.TraceState": [ln.trace_state for ln in span.links],
                    "Links.Attributes": [[(kv.key, any_value_to_str(kv.value)) for kv in ln.attributes] for ln in span.links],
                })
    return rows


def reference_table(traces: Traces) -> pa.Table:
    rows = reference_rows(traces)
    arrays = []
    for field in columns.ARROW_SCHEMA:
        values = [row[field.name] for row in rows]
        if field.type == pa.timestamp("ns"):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        elif field.type == pa.list_(pa.timestamp("ns")):
            arrays.append(pa.array(values, pa.list_(pa.int64())).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=columns.ARROW_SCHEMA)


def every_value_kind() -> list[tuple[str, AnyValue]]:
    values = []

    def add(key, **kw):
        v = AnyValue(**kw)
        values.append((key, v))

    add("s", string_value="hello")
    add("s.empty", string_value="")
    add("s.unicode", string_value="héllo ✓ 日本")
    add("s.quote", string_value='a "quoted"\nline\\')
    add("i", int_value=42)
    add("i.zero", int_value=0)
    add("i.neg", int_value=-(2**63))
    add("d", double_value=0.5)
    add("d.zero", double_value=0.0)
    add("d.int", double_value=3.0)
    add("d.small", double_value=1.25e-7)
    add("d.big", double_value=1e21)
    add("d.nan", double_value=math.nan)
    add("d.inf", double_value=math.inf)
    add("d.ninf", double_value=-math.inf)
    add("b.true", bool_value=True)
    add("b.false", bool_value=False)
    add("bytes", bytes_value=b"\x00\xffabc")
    add("bytes.empty", bytes_value=b"")
    unset = AnyValue()
    values.append(("unset", unset))
    arr = AnyValue()
    for item in (AnyValue(string_value="x"), AnyValue(int_value=1), AnyValue(double_value=2.5),
                 AnyValue(bool_value=False), AnyValue()):
        arr.array_value.values.add().CopyFrom(item)
    values.append(("array", arr))
    empty_arr = AnyValue()
    empty_arr.array_value.SetInParent()
    values.append(("array.empty", empty_arr))
    kvl = AnyValue()
    kvl.kvlist_value.values.add(key="k", value=AnyValue(string_value="v"))
    kvl.kvlist_value.values.add(key="n", value=arr)
    values.append(("kvlist", kvl))
    empty_kvl = AnyValue()
    empty_kvl.kvlist_value.SetInParent()
    values.append(("kvlist.empty", empty_kvl))
    return values


def varied_request(seed: int = 7) -> ExportTraceServiceRequest:
    rng = random.Random(seed)
    kinds = every_value_kind()
    request = ExportTraceServiceRequest()
    request.resource_spans.add()  # a resource with no scopes at all
    for r in range(4):
        rs = request.resource_spans.add()
        if r != 1:  # resource 1 has no service.name
            rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=f"svc-{r}"))
        for key, value in rng.sample(kinds, 5):
            rs.resource.attributes.add(key=f"res.{key}", value=value)
        rs.scope_spans.add()  # a scope with no spans
        for s in range(3):
            ss = rs.scope_spans.add()
            if s:
                ss.scope.name, ss.scope.version = f"scope-{s}", "" if s == 1 else "1.2.3"
            for i in range(rng.randint(0, 6)):
                span = ss.spans.add()
                span.trace_id = rng.getrandbits(128).to_bytes(16, "big")
                span.span_id = rng.getrandbits(64).to_bytes(8, "big")
                if rng.random() < 0.7:
                    span.parent_span_id = rng.getrandbits(64).to_bytes(8, "big")
                span.name = rng.choice(["", "chat gpt-4o", "GET /x", "ünïcode"])
                span.kind = rng.choice([0, 1, 2, 3, 4, 5, 9])
                span.trace_state = rng.choice(["", "k=v"])
                span.start_time_unix_nano = rng.randint(0, 2**63 - 1)
                span.end_time_unix_nano = rng.choice([0, span.start_time_unix_nano + rng.randint(0, 10**9)])
                span.status.code = rng.choice([0, 1, 2, 7])
                span.status.message = rng.choice(["", "boom"])
                for key, value in rng.sample(kinds, rng.randint(0, len(kinds))):
                    span.attributes.add(key=key, value=value)
                for _ in range(rng.choice([0, 0, 1, 3])):
                    ev = span.events.add(name=rng.choice(["", "exception"]), time_unix_nano=rng.randint(0, 2**62))
                    for key, value in rng.sample(kinds, rng.randint(0, 4)):
                        ev.attributes.add(key=key, value=value)
                for _ in range(rng.choice([0, 0, 1, 2])):
                    ln = span.links.add(trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                                        span_id=rng.getrandbits(64).to_bytes(8, "big"),
                                        trace_state=rng.choice(["", "a=b"]))
                    for key, value in rng.sample(kinds, rng.randint(0, 3)):
                        ln.attributes.add(key=key, value=value)
    return request
