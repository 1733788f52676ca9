"""Our collector -> Jaeger v1.75 (the `jaeger` v2 program: otelcol's OTLP receiver, the same code
Tempo's distributor runs, into Jaeger's in-memory store). Each trace is fetched back by id through
Jaeger's query API (api_v3, OTLP JSON) and compared with what our own store holds: the same spans,
the same parent links, the same attributes, the GenAI and cost attributes our processors added
included."""

from __future__ import annotations

import time

import httpx
from support.harness import CollectorProcess
from support.peers import Jaeger, jaeger_binary, send_genai_traces  # noqa: F401 (fixture)

TRACES = 5


def jaeger_trace(jaeger: Jaeger, trace_id: str, spans: int, timeout: float = 60) -> dict[str, dict]:
    """span id -> {parent, name, attributes} of one trace as Jaeger's api_v3 returns it."""
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{jaeger.query_url}/api/v3/traces/{trace_id}", timeout=10)
        if answer.status_code == 200:
            found = {}
            for resource_spans in answer.json()["result"]["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        found[span["spanId"]] = {
                            "parent": span.get("parentSpanId", ""), "name": span["name"],
                            "attributes": {kv["key"]: otlp_json_value(kv["value"]) for kv in span.get("attributes", [])},
                        }
            if len(found) >= spans:
                return found
        time.sleep(0.5)
    raise AssertionError(f"trace {trace_id}: Jaeger has {len(found)} of {spans} spans after {timeout}s")


def otlp_json_value(value: dict) -> str:
    """An OTLP/JSON AnyValue as our store writes it in SpanAttributes (a string)."""
    (kind, item), = value.items()
    if kind == "doubleValue":
        return repr(float(item)).removesuffix(".0") if float(item).is_integer() else repr(float(item))
    if kind == "boolValue":
        return "true" if item else "false"
    return str(item)


def test_traces_fetched_back_from_jaeger_match_our_store(tmp_path, jaeger_binary):
    jaeger = Jaeger(jaeger_binary, tmp_path / "jaeger")
    exporters = f"""
  clickhouse:
    endpoint: chdb://{{data}}/chdb
    database: otel
    ttl: 0s
  otlp/jaeger:
    endpoint: {jaeger.grpc_endpoint}
    tls: {{insecure: true}}
"""
    with jaeger, CollectorProcess(tmp_path / "ours", exporters_yaml=exporters, exporter_ids="clickhouse, otlp/jaeger") as ours:
        trace_ids = send_genai_traces(ours.grpc_endpoint, TRACES)
        stored = ours.wait_for_rows(
            "SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanAttributes FROM otel.otel_traces",
            lambda rows: len(rows) == TRACES * 3, timeout=60)
        compared = 0
        for trace_id in trace_ids:
            ours_spans = {row["SpanId"]: row for row in stored if row["TraceId"] == trace_id}
            theirs = jaeger_trace(jaeger, trace_id, len(ours_spans))
            assert theirs.keys() == ours_spans.keys()
            for span_id, row in ours_spans.items():
                assert theirs[span_id]["parent"] == row["ParentSpanId"]
                assert theirs[span_id]["name"] == row["SpanName"]
                assert theirs[span_id]["attributes"] == row["SpanAttributes"], span_id
                compared += 1
        costs = [row["SpanAttributes"]["gen_ai.usage.cost_usd"] for row in stored if "gen_ai.usage.cost_usd" in row["SpanAttributes"]]
        assert len(costs) == TRACES  # one priced chat span per trace reached Jaeger with its cost
    print(f"\n{TRACES} traces / {compared} spans fetched back from Jaeger's api_v3, identical to our store")
