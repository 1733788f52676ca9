"""The fast protobuf -> Arrow conversion (collector.storage.columns) against a plain reference.

The reference (support/reference_columns.py) converts span by span into Python rows, the obvious
way; the fast path must produce exactly the same Arrow table (values and schema) for every kind of
span we can think of.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from collector.pdata import Traces
from collector.storage import columns
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from support.reference_columns import every_value_kind, reference_table, varied_request


def assert_same(traces: Traces) -> pa.Table:
    fast = columns.traces_to_arrow(traces)
    ref = reference_table(traces)
    assert fast.schema.equals(ref.schema)
    assert fast.num_rows == ref.num_rows == traces.span_count()
    for name in columns.COLUMN_NAMES:
        assert fast.column(name).to_pylist() == ref.column(name).to_pylist(), name
    assert fast.equals(ref)
    return fast


@pytest.mark.parametrize("seed", range(6))
def test_varied_spans_match_reference(seed):
    table = assert_same(Traces(varied_request(seed)))
    assert table.num_rows > 0


def test_every_value_kind_renders_like_any_value_to_str():
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    for key, value in every_value_kind():
        span.attributes.add(key=key, value=value)
    table = assert_same(Traces(request))
    rendered = dict(table.column("SpanAttributes").to_pylist()[0])
    assert rendered["s"] == "hello" and rendered["s.empty"] == "" and rendered["unset"] == ""
    assert rendered["i"] == "42" and rendered["b.true"] == "true" and rendered["d"] == "0.5"
    assert rendered["array"].startswith("[")


def test_empty_request_and_empty_containers():
    assert_same(Traces())
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add()
    table = assert_same(Traces(request))
    assert table.num_rows == 0


def test_bare_span_has_empty_everything():
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add()
    row = assert_same(Traces(request)).to_pylist()[0]
    assert row["TraceId"] == "" and row["ServiceName"] == "" and row["SpanAttributes"] == []
    assert row["Events.Name"] == [] and row["Links.Attributes"] == [] and row["SpanKind"] == "Unspecified"


def test_realistic_workload_matches_reference():
    from support.workload import make_request

    assert_same(Traces(make_request(1500, seed=3)))


def test_warm_up_runs():
    columns.warm_up()
