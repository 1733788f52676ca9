"""Spans from the real OTel SDK in another process, over real OTLP, into a running collector, out of ClickHouse (chdb)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.harness import PYTHON, CollectorProcess

HERE = Path(__file__).parent
SPANS_SQL = """
SELECT SpanName, SpanKind, ServiceName, ScopeName, ScopeVersion, StatusCode, StatusMessage, ParentSpanId, SpanId,
       ResourceAttributes, SpanAttributes, Events.Name AS event_names, Events.Attributes AS event_attrs,
       Links.TraceId AS link_traces, Links.SpanId AS link_spans, Links.Attributes AS link_attrs, Duration
FROM otel.otel_traces WHERE TraceId = {trace_id:String} ORDER BY SpanName
"""


def send_with_sdk(protocol: str, endpoint: str, service: str) -> str:
    result = subprocess.run([PYTHON, str(HERE / "support" / "otlp_sender.py"), protocol, endpoint, service],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def wait_for_trace(collector: CollectorProcess, trace_id: str, count: int) -> dict[str, dict]:
    collector.wait_for_rows(
        f"SELECT count() AS n FROM otel.otel_traces WHERE TraceId = '{trace_id}'", lambda r: r[0]["n"] >= count
    )
    return {row["SpanName"]: row for row in collector.query(SPANS_SQL, {"trace_id": trace_id})}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_spans_land_intact(collector, protocol):
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_url
    trace_id = send_with_sdk(protocol, endpoint, f"svc-{protocol}")
    spans = wait_for_trace(collector, trace_id, 4)

    assert set(spans) == {"invoke_workflow research_crew", "invoke_agent researcher", "chat gpt-4o-mini", "execute_tool search"}
    root, agent, llm, tool = (spans[n] for n in ("invoke_workflow research_crew", "invoke_agent researcher",
                                                 "chat gpt-4o-mini", "execute_tool search"))
    # Tree structure
    assert root["ParentSpanId"] == ""
    assert agent["ParentSpanId"] == root["SpanId"]
    assert llm["ParentSpanId"] == tool["ParentSpanId"] == agent["SpanId"]
    # Resource and scope
    assert llm["ServiceName"] == f"svc-{protocol}"
    assert llm["ResourceAttributes"]["tenant.id"] == "acme"
    assert llm["ResourceAttributes"]["telemetry.sdk.language"] == "python"
    assert (llm["ScopeName"], llm["ScopeVersion"]) == ("tests.sender", "2.1.0")
    # Kinds and statuses as the contrib exporter writes them
    assert (llm["SpanKind"], root["SpanKind"]) == ("Client", "Internal")
    assert (tool["StatusCode"], tool["StatusMessage"]) == ("Error", "search backend timed out")
    assert agent["StatusCode"] == "Ok" and llm["StatusCode"] == "Unset"
    # Attribute values rendered like pcommon AsString
    attrs = llm["SpanAttributes"]
    assert attrs["gen_ai.usage.input_tokens"] == "1200"
    assert attrs["gen_ai.request.temperature"] == "0.25"
    assert attrs["gen_ai.request.stream"] == "false"
    assert json.loads(attrs["gen_ai.response.finish_reasons"]) == ["stop", "length"]
    # Events and links
    assert llm["event_names"] == ["gen_ai.content.prompt"]
    assert llm["event_attrs"] == [{"gen_ai.prompt": "hello", "index": "3"}]
    assert llm["link_traces"] == [trace_id] and llm["link_spans"] == [root["SpanId"]]
    assert llm["link_attrs"] == [{"link.reason": "follows"}]
    assert all(int(s["Duration"]) > 0 for s in spans.values())
    # Priced on the way through (gpt-4o-mini: $0.15 / $0.60 per M tokens): only the inference span.
    assert float(attrs["gen_ai.usage.cost_usd"]) == pytest.approx(1200 * 0.15e-6 + 300 * 0.60e-6)
    assert attrs["genaitrace.cost.status"] == "priced"
    assert not any("gen_ai.usage.cost_usd" in s["SpanAttributes"] for s in (root, agent, tool))
    # The trace-id lookup table (filled by the materialized view) knows the trace
    lookup = collector.query(f"SELECT count() AS n FROM otel.otel_traces_trace_id_ts WHERE TraceId = '{trace_id}'")
    assert lookup[0]["n"] >= 1


def test_otlp_json_hex_ids_are_decoded_not_base64(collector):
    body = (HERE / "data" / "otlp_request.json").read_bytes()
    response = httpx.post(collector.http_url, content=gzip.compress(body),
                          headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    rows = collector.wait_for_rows(
        "SELECT SpanId, ParentSpanId, SpanKind, StatusCode, StatusMessage, SpanAttributes, Links.TraceId AS lt, "
        "Events.Name AS ev, Duration FROM otel.otel_traces WHERE TraceId = '5b8efff798038103d269b633813fc60c' ORDER BY SpanId",
        lambda r: len(r) == 2,
    )
    planner, chat = rows
    assert planner["SpanId"] == "eee19b7ec3c1b174" and chat["ParentSpanId"] == "eee19b7ec3c1b174"
    assert chat["lt"] == ["0102030405060708090a0b0c0d0e0f10"]
    assert (planner["SpanKind"], chat["SpanKind"]) == ("Internal", "Client")
    # Values rendered as strings; the normaliser added the operation the span name implies.
    assert planner["SpanAttributes"] == {"gen_ai.agent.name": "planner", "retries": "2", "ratio": "0.5", "ok": "true",
                                         "gen_ai.operation.name": "invoke_agent"}
    assert (chat["StatusCode"], chat["StatusMessage"]) == ("Error", "overloaded")
    assert chat["ev"] == ["first_chunk"] and int(planner["Duration"]) == 1_500_000_000


def test_bad_requests_get_protocol_answers_and_collector_keeps_serving(collector):
    url = collector.http_url
    bad_proto = httpx.post(url, content=b"\x0a\xff\xff\xff\xff\x0f garbage", headers={"Content-Type": "application/x-protobuf"})
    assert bad_proto.status_code == 400
    bad_json = httpx.post(url, content=b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
                          headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "traceId" in bad_json.json()["message"]
    wrong_type = httpx.post(url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    too_large = httpx.post(url, content=b"\0" * (17 * 1024 * 1024), headers={"Content-Type": "application/x-protobuf"})
    assert too_large.status_code == 413
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))
    bombed = httpx.post(url, content=bomb, headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert bombed.status_code == 413
    empty = httpx.post(url, content=b"", headers={"Content-Type": "application/x-protobuf"})
    assert empty.status_code == 200
    # ...and a good client is still served afterwards, over both transports.
    trace_id = send_with_sdk("grpc", collector.grpc_endpoint, "after-bad-input")
    assert len(wait_for_trace(collector, trace_id, 4)) == 4


def test_partial_success_for_invalid_span_ids(collector):
    document = json.loads((HERE / "data" / "otlp_request.json").read_text())
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["spanId"] = "0000000000000000"  # all-zero ids are invalid per the spec
    response = httpx.post(collector.http_url, json=document)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "invalid span_id" in response.json()["partialSuccess"]["errorMessage"]


def test_sigterm_flushes_everything_acknowledged(tmp_path):
    collector = CollectorProcess(tmp_path).start()
    ids = [send_with_sdk("http", collector.http_url, f"flush-{i}") for i in range(3)]
    assert collector.stop() == 0
    log = collector.log()
    assert "stopped" in log
    # Reopen the store after the collector is gone: everything acknowledged is there.
    reopened = CollectorProcess(tmp_path / "second", exporters_yaml=f"""
  clickhouse:
    endpoint: chdb://{collector.data}/chdb
""").start()
    try:
        rows = reopened.query("SELECT TraceId, count() AS n FROM otel.otel_traces GROUP BY TraceId")
        assert {r["TraceId"]: r["n"] for r in rows} == {t: 4 for t in ids}
    finally:
        reopened.stop()


def test_otlp_and_otlphttp_exporters_forward_to_another_collector(tmp_path):
    """Tempo speaks OTLP; a second collector is a real OTLP server standing in for it."""
    downstream = CollectorProcess(tmp_path / "downstream").start()
    try:
        upstream = CollectorProcess(tmp_path / "upstream", exporter_ids="otlp/tempo, otlphttp/tempo",
                                    extensions="health_check, file_storage", exporters_yaml=f"""
  otlp/tempo:
    endpoint: {downstream.grpc_endpoint}
    tls: {{insecure: true}}
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
  otlphttp/tempo:
    endpoint: http://127.0.0.1:{downstream.http_port}
    headers: {{X-Scope-OrgID: acme}}
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
""").start()
        try:
            trace_id = send_with_sdk("grpc", upstream.grpc_endpoint, "forwarded")
            # Both exporters deliver the trace: 4 spans each.
            downstream.wait_for_rows(f"SELECT count() AS n FROM otel.otel_traces WHERE TraceId = '{trace_id}'",
                                     lambda r: r[0]["n"] == 8)
            assert upstream.metric("otelcol_exporter_sent_spans_total", exporter="otlp/tempo") == 4
            assert upstream.metric("otelcol_exporter_sent_spans_total", exporter="otlphttp/tempo") == 4
        finally:
            upstream.stop()
    finally:
        downstream.stop()


def test_cli_sql_and_trace_go_through_the_running_collector(collector):
    trace_id = send_with_sdk("grpc", collector.grpc_endpoint, "cli-check")
    wait_for_trace(collector, trace_id, 4)
    cli = [sys.executable, "-m", "collector.cli"]
    out = subprocess.run(cli + ["sql", "SELECT count() AS n FROM otel.otel_traces", "--json", "-c", str(collector.config_path)],
                         capture_output=True, text=True, timeout=60, cwd=collector.workdir)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 4}]
    tree = subprocess.run(cli + ["trace", trace_id, "-c", str(collector.config_path)],
                          capture_output=True, text=True, timeout=60, cwd=collector.workdir)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert "4 spans" in lines[0]
    assert any("invoke_workflow research_crew" in line for line in lines)
    assert any("chat gpt-4o-mini" in line and "tokens=1200/300" in line for line in lines)
    assert any("execute_tool search" in line and "ERROR" in line for line in lines)
    # Writes are refused on the read-only path.
    write = subprocess.run(cli + ["sql", "DROP TABLE otel.otel_traces", "-c", str(collector.config_path)],
                           capture_output=True, text=True, timeout=60, cwd=collector.workdir)
    assert write.returncode == 1 and "only SELECT queries are allowed" in write.stderr
