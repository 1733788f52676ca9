"""`genai_metrics`: Prometheus metrics from spans, right values, spec buckets, bounded labels, cheap."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from support import seed_data
from support.sinks import Sink, Telemetry
import semconv
from collector.component import ComponentId, Host, PermanentError
from collector.pdata import ExportTraceServiceRequest, Traces, set_any_value
from processors import genai_metrics as gm


def make(config: dict | None = None, sink=None):
    telemetry = Telemetry()
    proc = gm.factory.create(ComponentId("genai_metrics"), gm.GenAIMetricsConfig(**(config or {})), sink or Sink())
    proc.start(Host(telemetry=telemetry))
    return proc, telemetry.registry


def samples(registry) -> dict[str, list]:
    out = defaultdict(list)
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[s.name].append(s)
    return out


def total(registry, name: str, **labels) -> float:
    parsed = registry if isinstance(registry, dict) else samples(registry)
    return sum(s.value for s in parsed[name] if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def seeded_metrics():
    truth = seed_data.generate(days=3, traces_per_day=40, seed=7)
    proc, registry = make()
    traces = seed_data.to_traces(truth.spans)
    proc.consume(traces)
    return truth, proc, registry


def test_pass_through_unchanged(seeded_metrics):
    truth, proc, _ = seeded_metrics
    out = proc.next.batches[0]
    assert out.span_count() == len(truth.spans)
    assert out.to_protobuf() == seed_data.to_traces(truth.spans).to_protobuf()


def test_counters_match_the_spans(seeded_metrics):
    truth, _, registry = seeded_metrics
    registry = samples(registry)
    calls = truth.calls
    assert total(registry, "llm_requests_total") == len(calls)
    assert total(registry, "llm_requests_total", status="error") == sum(c.error for c in calls) > 0
    assert total(registry, "llm_errors_total") == sum(c.error for c in calls)
    assert math.isclose(total(registry, "llm_cost_usd_total"), sum(c.attrs.get("gen_ai.usage.cost_usd", 0) for c in calls), rel_tol=1e-9)
    for token_type, key in gm._TOKEN_KEYS:  # seed spans carry some counts under their earlier names
        expected = sum(next((c.attrs[k] for k in semconv.read_order(key) if k in c.attrs), 0) for c in calls)
        assert total(registry, "llm_tokens_total", token_type=token_type) == expected, token_type
    unpriced = sum(c.attrs.get("gen_ai.usage.cost.status") == "unpriced" for c in calls)
    assert total(registry, "llm_unpriced_requests_total") == unpriced > 0
    runs = [s for s in truth.spans if s.op == "invoke_agent"]
    assert total(registry, "agent_runs_total") == len(runs)
    assert total(registry, "agent_runs_total", status="error") == sum(r.error for r in runs) > 0
    # per agent and tenant labels
    acme_cost = sum(c.attrs.get("gen_ai.usage.cost_usd", 0) for c in calls if c.attrs["tenant.id"] == "acme")
    assert math.isclose(total(registry, "llm_cost_usd_total", tenant="acme"), acme_cost, rel_tol=1e-9)
    reviewer = sum(1 for c in calls if c.attrs["gen_ai.agent.name"] == "reviewer")
    assert total(registry, "llm_requests_total", agent_name="reviewer") == reviewer > 0


def test_semconv_histograms_have_the_spec_buckets(seeded_metrics):
    truth, _, registry = seeded_metrics
    s = registry = samples(registry)
    token_les = sorted({float(x.labels["le"]) for x in s["gen_ai_client_inference_usage_input_tokens_bucket"]})
    assert token_les == [float(b) for b in gm.TOKEN_BUCKETS] + [math.inf]
    duration_les = sorted({float(x.labels["le"]) for x in s["gen_ai_client_operation_duration_seconds_bucket"]})
    assert duration_les == [float(b) for b in gm.DURATION_BUCKETS] + [math.inf]
    calls = truth.calls
    assert total(registry, "gen_ai_client_operation_duration_seconds_count") == len(calls)
    assert math.isclose(total(registry, "gen_ai_client_operation_duration_seconds_sum"),
                        sum(c.duration_ms for c in calls) / 1000, rel_tol=1e-9)
    with_usage = [c for c in calls if "gen_ai.usage.input_tokens" in c.attrs]
    assert total(registry, "gen_ai_client_inference_usage_input_tokens_count") == len(with_usage)
    assert total(registry, "gen_ai_client_inference_usage_output_tokens_sum") == \
        sum(c.attrs["gen_ai.usage.output_tokens"] for c in with_usage)
    assert "gen_ai_client_token_usage_count" not in s  # the previous release's name: only with legacy_metric_names
    # agent, tool and workflow spans: their own duration histograms (semantic-conventions-genai metrics.yaml)
    for metric, op in (("gen_ai_invoke_agent_duration_seconds", "invoke_agent"), ("gen_ai_execute_tool_duration_seconds", "execute_tool"),
                       ("gen_ai_workflow_duration_seconds", "invoke_workflow")):
        spans = [x for x in truth.spans if x.op == op]
        assert total(registry, metric + "_count") == len(spans) > 0, metric
    labels = s["gen_ai_client_operation_duration_seconds_count"][0].labels
    assert {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"} <= labels.keys()
    assert {x.labels["error_type"] for x in s["gen_ai_client_operation_duration_seconds_count"]} >= set(seed_data.ERRORS)


def test_no_ids_as_labels(seeded_metrics):
    _, _, registry = seeded_metrics
    for name, rows in samples(registry).items():
        for row in rows:
            for key, value in row.labels.items():
                assert not (len(value) in (16, 32) and all(ch in "0123456789abcdef" for ch in value)), (name, key, value)


def _span(scope, *, model: str, agent: str, tenant: str = "t", op: str = "chat", extra: dict | None = None):
    sp = scope.spans.add(name=f"{op} {model}", start_time_unix_nano=1_000_000_000, end_time_unix_nano=1_500_000_000)
    sp.trace_id, sp.span_id = b"\x01" * 16, b"\x02" * 8
    attrs = {"gen_ai.operation.name": op, "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
             "gen_ai.agent.name": agent, "tenant.id": tenant, "gen_ai.usage.input_tokens": 10,
             "gen_ai.usage.output_tokens": 5, "gen_ai.usage.cost_usd": 0.001, "gen_ai.usage.cost.status": "priced",
             **(extra or {})}
    for k, v in attrs.items():
        set_any_value(sp.attributes.add(key=k).value, v)
    return sp


def test_label_cardinality_is_capped_with_other():
    proc, registry = make({"max_models": 3, "max_agents": 2, "max_tenants": 2})
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(20):
        _span(scope, model=f"model-{i}", agent=f"agent-{i}", tenant=f"tenant-{i}")
    proc.consume(Traces(request))
    rows = samples(registry)["llm_requests_total"]
    assert {r.labels["model"] for r in rows} == {"model-0", "model-1", "model-2", "other"}
    assert {r.labels["agent_name"] for r in rows} == {"agent-0", "agent-1", "other"}
    assert {r.labels["tenant"] for r in rows} == {"tenant-0", "tenant-1", "other"}
    assert total(registry, "llm_requests_total") == 20
    assert total(registry, "llm_requests_total", model="other") == 17


def test_delegated_wrappers_non_genai_spans_and_refused_batches_are_not_counted():
    sink = Sink()
    proc, registry = make(sink=sink)
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    _span(scope, model="gpt-4o", agent="a")
    _span(scope, model="gpt-4o", agent="a", extra={"gen_ai.usage.cost.status": "delegated"})
    plain = scope.spans.add(name="GET /health")
    set_any_value(plain.attributes.add(key="http.method").value, "GET")
    proc.consume(Traces(request))
    assert total(registry, "llm_requests_total") == 1
    assert total(registry, "llm_tokens_total", token_type="input") == 10
    sink.fail = PermanentError("no")
    with pytest.raises(PermanentError):
        proc.consume(Traces(request))
    assert total(registry, "llm_requests_total") == 1  # the client will retry; count it then


def test_two_processors_share_one_registry():
    telemetry = Telemetry()
    for name in ("a", "b"):
        proc = gm.factory.create(ComponentId("genai_metrics", name), gm.GenAIMetricsConfig(), Sink())
        proc.start(Host(telemetry=telemetry))
    assert "llm_requests" in str(generate_latest(telemetry.registry))


def test_skipping_non_genai_spans_is_cheap():
    """Throughput on HTTP-only spans and on GenAI spans (printed; asserted loosely)."""
    proc, _ = make()
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(20_000):
        sp = scope.spans.add(name="GET /x")
        for k, v in (("http.method", "GET"), ("http.route", "/x"), ("http.status_code", 200), ("net.peer.name", "h")):
            set_any_value(sp.attributes.add(key=k).value, v)
    traces = Traces(request)
    began = time.perf_counter()
    proc.record(traces)
    plain_rate = 20_000 / (time.perf_counter() - began)
    truth = seed_data.generate(days=1, traces_per_day=200, seed=3)
    genai = seed_data.to_traces(truth.spans)
    began = time.perf_counter()
    proc.record(genai)
    genai_rate = len(truth.spans) / (time.perf_counter() - began)
    print(f"\ngenai_metrics: {plain_rate:,.0f} non-GenAI spans/s, {genai_rate:,.0f} GenAI-mix spans/s")
    assert plain_rate > 10_000 and genai_rate > 1_000  # sanity only: the box may be busy


def test_legacy_metric_names_behind_the_switch_for_one_release():
    proc, registry = make({"legacy_metric_names": True})
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    _span(scope, model="gpt-4o", agent="a")
    proc.consume(Traces(request))
    s = samples(registry)
    assert total(registry, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == 1  # the old name, too
    assert total(registry, "gen_ai_client_inference_usage_input_tokens_count") == 1  # and the current one
    assert "gen_ai_client_token_usage_count" in s
    assert gm.GenAIMetricsConfig().legacy_metric_names is False  # off by default
