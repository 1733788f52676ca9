"""Provider errors end to end on a real collector process (issue 14): an app made with the
OpenTelemetry SDK sends, over OTLP/HTTP, a failed LLM call and the `gen_ai.client.operation.exception`
log record of the provider's error (the current GenAI convention), a second failed call that reports
its exception the deprecated way (a span event), and a plan span that reports the planner's usage.
The collector's traces pipeline normalises and prices them, its logs pipeline stores the record,
and `genai_errors` shows each failed call next to its exception; `plan` is a call of its own."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import semconv
from support.harness import CollectorProcess

pytestmark = pytest.mark.timeout(240)

CONFIG = """
extensions:
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
  file_storage: {{directory: "{data}/queue"}}
  sqlquery: {{endpoint: "127.0.0.1:{query_port}", exporter: clickhouse}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
      http: {{endpoint: "127.0.0.1:{http_port}"}}
processors:
  batch: {{send_batch_size: 8192, timeout: 50ms}}
  memory_limiter: {{limit_mib: 4096, spike_limit_mib: 512}}
  genai_normalizer: {{}}
  genai_cost: {{}}
exporters:
  clickhouse:
    endpoint: "chdb://{data}/chdb"
    database: otel
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
service:
  extensions: [health_check, file_storage, sqlquery]
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, genai_normalizer, genai_cost, batch]
      exporters: [clickhouse]
    logs:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [clickhouse]
"""


class RateLimitError(Exception):
    """What a provider SDK raises on HTTP 429."""


def hexids(span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_failed_calls_are_stored_next_to_their_exceptions_and_plan_is_its_own_operation(tmp_path):
    collector = CollectorProcess(tmp_path, config_text=CONFIG).start()
    try:
        base = f"http://127.0.0.1:{collector.http_port}"
        resource = Resource.create({"service.name": "e2e-errors", "tenant.id": "acme"})
        tracer_provider = TracerProvider(resource=resource)
        # generous export timeouts: a loaded machine (the suite runs beside other work) must not drop a span
        tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base + "/v1/traces", timeout=60)))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=base + "/v1/logs", timeout=60)))
        tracer, logger = tracer_provider.get_tracer("app"), logger_provider.get_logger("app")
        chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}

        with tracer.start_as_current_span("invoke_agent support", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support", "session.id": "sess-9"}):
            with tracer.start_as_current_span("plan support", attributes={
                    "gen_ai.operation.name": "plan", "gen_ai.agent.name": "support", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 200}):
                pass
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=chat) as logged:
                error = RateLimitError("Error code: 429 - rate limit reached for gpt-4o-mini")
                logger.emit(event_name=semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT,
                            severity_number=SeverityNumber.WARN, severity_text="WARN",
                            attributes={semconv.EXCEPTION_TYPE: "openai.RateLimitError",
                                        semconv.EXCEPTION_MESSAGE: str(error)})
                logged.set_status(trace.Status(trace.StatusCode.ERROR, "openai.RateLimitError: 429"))
            with pytest.raises(TimeoutError):
                with tracer.start_as_current_span("chat gpt-4o-mini", attributes=chat) as evented:
                    raise TimeoutError("read timed out")
        tracer_provider.force_flush()
        logger_provider.force_flush()

        rows = collector.wait_for_rows(
            "SELECT SpanId, error_type, exceptions, exception_type, exception_message, exception_origins, tenant "
            "FROM otel.genai_errors WHERE ServiceName = 'e2e-errors' ORDER BY Timestamp",
            lambda rows: len(rows) == 2 and all(r["exceptions"] == 1 for r in rows), timeout=120)
        assert [(r["SpanId"], r["error_type"], r["exception_type"], r["exception_origins"], r["tenant"]) for r in rows] == [
            (hexids(logged)[1], "openai.RateLimitError", "openai.RateLimitError", ["log"], "acme"),
            (hexids(evented)[1], "TimeoutError", "TimeoutError", ["span_event"], "acme")]
        assert "429" in rows[0]["exception_message"] and "read timed out" in rows[1]["exception_message"]

        calls = collector.wait_for_rows("SELECT operation, cost_status, round(cost_usd, 8) AS cost_usd, error_type "
                                        "FROM otel.genai_calls WHERE ServiceName = 'e2e-errors' ORDER BY operation, error_type",
                                        lambda rows: len(rows) >= 3, timeout=120)
        # the failed calls reported no usage: unpriced for that reason, never priced at 0
        assert [(r["operation"], r["cost_status"], r["error_type"]) for r in calls] == [
            ("chat", "unpriced", "TimeoutError"), ("chat", "unpriced", "openai.RateLimitError"), ("plan", "priced", "")]
        assert calls[2]["cost_usd"] == pytest.approx(1000 * 1.5e-7 + 200 * 6e-7)  # gpt-4o-mini's prices
        # the agent span ends (and is exported) last: wait for it as well
        conversations = collector.wait_for_rows(
            "SELECT DISTINCT SpanAttributes['gen_ai.conversation.id'] AS c FROM otel.otel_traces "
            "WHERE ServiceName = 'e2e-errors' AND SpanName = 'invoke_agent support'", lambda rows: len(rows) >= 1, timeout=120)
        assert conversations == [{"c": "sess-9"}]
    finally:
        collector.stop()
