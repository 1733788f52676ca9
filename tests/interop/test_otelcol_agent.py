"""Apps -> a real otelcol agent (its `otlp` / `otlphttp` exporters with gzip, retry and sending
queue) -> our collector. Everything is delivered, and when our collector pushes back (its
memory_limiter refuses: RESOURCE_EXHAUSTED + RetryInfo / HTTP 429 + Retry-After, then it is down
for a restart) otelcol keeps the data queued and retries: nothing is dropped."""

from __future__ import annotations

import time

import pytest
from support.harness import CollectorProcess
from support.peers import Otelcol, otelcol_binary, otelcol_config, send_genai_traces  # noqa: F401 (fixture)

TRACES = 100
SPANS = TRACES * 3

AGENT = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
processors:
  batch:
    send_batch_size: 100
    timeout: 200ms
exporters:
  otlp:
    endpoint: {grpc_target}
    tls:
      insecure: true
    compression: gzip
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 120s
    sending_queue:
      enabled: true
      queue_size: 1000
  otlphttp:
    traces_endpoint: {http_target}
    compression: gzip
    retry_on_failure:
      enabled: true
      initial_interval: 200ms
      max_interval: 1s
      max_elapsed_time: 120s
    sending_queue:
      enabled: true
      queue_size: 1000
"""


def stored_spans(collector: CollectorProcess) -> int:
    return collector.query("SELECT uniqExact(SpanId) AS n FROM otel.otel_traces")[0]["n"]


@pytest.mark.parametrize("exporter", ["otlp", "otlphttp"])
def test_otelcol_agent_retries_our_backpressure_and_delivers_everything(tmp_path, otelcol_binary, exporter):
    ours = CollectorProcess(tmp_path / "ours")
    normal_config = ours.config_path.read_text()
    # A 1 MiB memory limit: our memory_limiter refuses every request (retryable answers).
    refusing_config = normal_config.replace("limit_mib: 4096", "limit_mib: 1").replace("spike_limit_mib: 512", "spike_limit_mib: 0")
    assert refusing_config != normal_config, "tests/support/harness.py's memory_limiter settings changed"
    ours.config_path.write_text(refusing_config)
    ours.start()
    agent = Otelcol(otelcol_binary, tmp_path / "agent", otelcol_config(
        AGENT, f"    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [{exporter}]\n"),
        grpc_target=ours.grpc_endpoint, http_target=ours.http_url)
    try:
        agent.start()
        trace_ids = send_genai_traces(agent.grpc_endpoint, TRACES)
        assert len(set(trace_ids)) == TRACES

        # Refused, retried, not dropped: our limiter answered at least twice (a retry), nothing is
        # stored yet, and otelcol counts no failed span.
        deadline = time.monotonic() + 30
        while ours.metric("otelcol_memory_limiter_refused_requests_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = ours.metric("otelcol_memory_limiter_refused_requests_total")
        assert refused >= 2, ours.log()[-3000:]
        assert stored_spans(ours) == 0
        assert agent.metric("otelcol_exporter_send_failed_spans_total") == 0

        # Down for a restart (connection refused), then back with a normal limit.
        ours.stop()
        time.sleep(1.5)
        ours.config_path.write_text(normal_config)
        ours.start()
        ours.wait_for_rows("SELECT uniqExact(SpanId) AS n FROM otel.otel_traces", lambda rows: rows[0]["n"] >= SPANS, timeout=90)
        time.sleep(1)
        rows = ours.query("SELECT count() AS spans, uniqExact(SpanId) AS unique_spans, uniqExact(TraceId) AS traces,"
                          " countIf(ParentSpanId = '') AS roots FROM otel.otel_traces")[0]
        assert rows == {"spans": SPANS, "unique_spans": SPANS, "traces": TRACES, "roots": TRACES}
        sent = agent.metric("otelcol_exporter_sent_spans_total")
        failed = agent.metric("otelcol_exporter_send_failed_spans_total")
        assert (sent, failed) == (SPANS, 0)
        # Priced on arrival: otelcol passed the GenAI attributes through untouched.
        priced = ours.query("SELECT count() AS n FROM otel.otel_traces WHERE SpanAttributes['gen_ai.usage.cost_usd'] != ''")
        assert priced[0]["n"] == TRACES
        print(f"\n{exporter}: sent {SPANS} spans to otelcol, our limiter refused {refused:.0f} requests,"
              f" otelcol sent {sent:.0f} failed {failed:.0f}, stored {rows['spans']}")
    finally:
        agent.stop()
        ours.stop()
