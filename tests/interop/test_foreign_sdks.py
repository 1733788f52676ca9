"""Foreign SDKs as our collector's clients: the OpenTelemetry Go SDK (interop/gosdk) and JS SDK
(interop/js, npm) send a GenAI trace (an agent span and a `chat` span on openai/gpt-4o-mini with
token usage) with their own OTLP exporters over gRPC, HTTP/protobuf and (JS) HTTP/JSON. Each trace
is stored whole, with its parent link, normalised (provider detection recorded) and priced."""

from __future__ import annotations

import subprocess

import pytest
from support.harness import CollectorProcess
from semconv.genai_mapping import GEN_AI_PROVIDER_DETECTION
from support.peers import INTEROP, gosdk_binary, js_sender  # noqa: F401 (fixtures)

# litellm's price map for gpt-4o-mini: $0.15 / 1M input tokens, $0.60 / 1M output tokens.
EXPECTED_COST = 1000 * 0.15e-6 + 500 * 0.60e-6


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    collector = CollectorProcess(tmp_path_factory.mktemp("foreign-sdks")).start()
    yield collector
    collector.stop()


def run_sender(command: list[str]) -> str:
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip().splitlines()[-1]
    assert len(trace_id) == 32, out.stdout
    return trace_id


def assert_stored_normalised_priced(ours: CollectorProcess, trace_id: str, service: str) -> None:
    rows = ours.wait_for_rows(
        "SELECT SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, ScopeName, SpanAttributes AS attrs"
        f" FROM otel.otel_traces WHERE TraceId = '{trace_id}' ORDER BY Timestamp",
        lambda rows: len(rows) == 2, timeout=90)
    spans = {row["SpanName"]: row for row in rows}
    agent, chat = spans["invoke_agent planner"], spans["chat gpt-4o-mini"]
    assert agent["ParentSpanId"] == "" and chat["ParentSpanId"] == agent["SpanId"]
    assert {agent["ServiceName"], chat["ServiceName"]} == {service}
    assert chat["SpanKind"] == "Client"
    attrs = chat["attrs"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == ("1000", "500")
    assert attrs[GEN_AI_PROVIDER_DETECTION] == "attribute"  # the normalizer read the provider off the span
    assert float(attrs["gen_ai.usage.cost_usd"]) == pytest.approx(EXPECTED_COST, rel=1e-6)
    assert "gen_ai.usage.cost_usd" not in agent["attrs"]  # only inference spans carry cost


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_go_sdk(ours, gosdk_binary, protocol):
    endpoint = ours.grpc_endpoint if protocol == "grpc" else ours.http_url.removeprefix("http://").removesuffix("/v1/traces")
    service = f"go-sdk-{protocol}"
    trace_id = run_sender([str(gosdk_binary), protocol, endpoint, service])
    assert_stored_normalised_priced(ours, trace_id, service)


@pytest.mark.parametrize("protocol", ["grpc", "http", "proto"])
def test_js_sdk(ours, js_sender, protocol):
    url = f"http://{ours.grpc_endpoint}" if protocol == "grpc" else ours.http_url
    service = f"js-sdk-{protocol}"
    trace_id = run_sender(["node", str(js_sender), protocol, url, service])
    assert_stored_normalised_priced(ours, trace_id, service)
