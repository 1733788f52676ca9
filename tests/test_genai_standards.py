"""The GenAI conventions' operations and conditionally required attributes on the collector side
(issue 14), with spans and log records made by the OpenTelemetry SDK and encoded by its own OTLP
encoders, run through the collector's processors (genai_normalizer -> genai_cost -> genai_metrics)
and stored on chdb through the collector's column conversions:

* `plan` (semantic-conventions-genai, span `gen_ai.plan.internal`): every spelling and CrewAI's
  planner agent become `plan`; a plan span with usage of its own is priced like an inference and
  counted as a `plan` call (not chat); one without usage is never unpriced; `invoke_workflow` kept.
* `gen_ai.conversation.id` from other dialects' session ids.
* `error.type` on failed GenAI spans.
* provider errors as `gen_ai.client.operation.exception` log records (and the deprecated exception
  span event), visible next to the failed span in `genai_errors`.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest

from support import seed_data
from support.sinks import Sink, Telemetry
import semconv
from collector.component import ComponentId, Host
from collector.pdata import Traces, attributes_to_dict
from collector.storage import log_columns, session_views
from collector.storage import genai_views
from collector.storage.columns import traces_to_arrow
from collector.storage.schema import SchemaOptions, logs_statements, schema_statements
from processors import genai_cost, genai_metrics, genai_normalizer
from processors.pricing import PriceBook

BOOK = PriceBook.load()
# gpt-4o-mini in the bundled price map: 1.5e-7 per input token, 6e-7 per output token.
MODEL, IN_PRICE, OUT_PRICE = "gpt-4o-mini", 1.5e-7, 6e-7
DB = "standards_t"


class App:
    """An SDK tracer and logger provider; `collect()` runs what they exported through the
    collector's GenAI processors and returns the stored form."""

    def __init__(self, service: str = "planner-app"):
        resource = Resource.create({"service.name": service, "tenant.id": "acme"})
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.tracer_provider.get_tracer("app")
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.logger = self.logger_provider.get_logger("app")
        self.sink = Sink()
        telemetry = Telemetry()
        self.registry = telemetry.registry
        self.metrics = genai_metrics.factory.create(ComponentId("genai_metrics"), genai_metrics.GenAIMetricsConfig(), self.sink)
        self.metrics.start(Host(telemetry=telemetry))
        cost = genai_cost.GenAICostProcessor(ComponentId("genai_cost"), genai_cost.GenAICostConfig(), self.metrics, book=BOOK)
        self.pipeline = genai_normalizer.GenAINormalizerProcessor(
            ComponentId("genai_normalizer"), genai_normalizer.GenAINormalizerConfig(), cost)

    def span(self, name: str, attributes: dict, **kwargs):
        return self.tracer.start_as_current_span(name, attributes=attributes, **kwargs)

    def collect(self) -> Traces:
        """The spans exported so far, as OTLP bytes through the processors, as the receiver hands them on."""
        request = encode_spans(self.spans.get_finished_spans())
        self.spans.clear()
        self.pipeline.consume(Traces.from_protobuf(request.SerializeToString()))
        return self.sink.batches[-1]

    def counter(self, name: str, **labels) -> float:
        total = 0.0
        for family in text_string_to_metric_families(generate_latest(self.registry).decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


def by_name(traces: Traces) -> dict[str, dict]:
    return {span.name: attributes_to_dict(span.attributes) for _, _, span in traces.spans()}


def usage(inp: int, out: int) -> dict:
    return {"gen_ai.request.model": MODEL, "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}


def chat(inp: int = 1000, out: int = 200) -> dict:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", **usage(inp, out)}


# --- plan ---------------------------------------------------------------------------------------

def test_plan_spellings_and_planner_agents_become_plan():
    app = App()
    with app.span("invoke_workflow trip", {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "trip"}):
        with app.span("plan researcher", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "researcher"}):
            pass
        with app.span("plan writer", {"gen_ai.agent.name": "writer"}):  # the span name says it (semconv's name format)
            pass
        with app.span("decompose", {"gen_ai.operation.name": "planning", "gen_ai.agent.name": "editor"}):
            pass
        # CrewAI's crew planning under traceloop (opentelemetry-instrumentation-crewai): an agent span
        # for the fixed planner role, carrying the planner's summed usage.
        with app.span("Task Execution Planner.agent", {
                "traceloop.span.kind": "agent", "gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "Task Execution Planner", "gen_ai.response.model": MODEL, **usage(800, 400)}):
            pass
        with app.span("Researcher.agent", {"traceloop.span.kind": "agent", "gen_ai.operation.name": "invoke_agent",
                                           "gen_ai.agent.name": "Researcher"}):
            pass
    spans = by_name(app.collect())
    op = semconv.GEN_AI_OPERATION_NAME
    assert spans["plan researcher"][op] == "plan"
    assert spans["plan writer"][op] == "plan"
    assert spans["decompose"][op] == "plan"
    assert spans["Task Execution Planner.agent"][op] == "plan"
    assert spans["Researcher.agent"][op] == "invoke_agent"
    assert spans["invoke_workflow trip"][op] == "invoke_workflow"


def test_plan_with_its_own_usage_is_priced_like_an_inference_and_counted_as_plan():
    app = App()
    with app.span("invoke_agent planner", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
        with app.span("plan planner", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "planner",
                                       "gen_ai.provider.name": "openai", **usage(1000, 200)}):
            pass
        with app.span("chat gpt-4o-mini", chat(1000, 200)):
            pass
    spans = by_name(app.collect())
    plan, call = spans["plan planner"], spans["chat gpt-4o-mini"]
    expected = 1000 * IN_PRICE + 200 * OUT_PRICE  # 0.00027
    assert plan[semconv.COST_STATUS] == "priced" and call[semconv.COST_STATUS] == "priced"
    assert plan[semconv.COST_USD] == pytest.approx(expected) == call[semconv.COST_USD]
    assert semconv.COST_USD not in spans["invoke_agent planner"]
    # counted once each, under its own operation
    assert app.counter("llm_requests_total", operation="plan") == 1
    assert app.counter("llm_requests_total", operation="chat") == 1
    assert app.counter("llm_cost_usd_total", operation="plan") == pytest.approx(expected)
    assert app.counter("gen_ai_client_inference_usage_input_tokens_count", gen_ai_operation_name="plan") == 1


def test_plan_without_usage_is_a_container_never_unpriced():
    app = App()
    with app.span("plan researcher", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "researcher"}):
        with app.span("chat gpt-4o-mini", chat(500, 100)):
            pass
    spans = by_name(app.collect())
    assert not any(key.startswith(("genaitrace.cost.", "gen_ai.usage.cost")) for key in spans["plan researcher"])
    assert spans["chat gpt-4o-mini"][semconv.COST_STATUS] == "priced"
    assert app.counter("llm_requests_total", operation="plan") == 0
    assert app.counter("llm_unpriced_requests_total") == 0
    assert app.counter("llm_requests_total", operation="chat") == 1


def test_plan_with_usage_around_its_llm_call_is_delegated_not_counted_twice():
    # The planner agent of CrewAI under traceloop carries the summed usage of the call beneath it.
    app = App()
    with app.span("Task Execution Planner.agent", {
            "traceloop.span.kind": "agent", "gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "Task Execution Planner", **usage(1000, 200)}):
        with app.span("chat gpt-4o-mini", chat(1000, 200)):
            pass
    spans = by_name(app.collect())
    plan, call = spans["Task Execution Planner.agent"], spans["chat gpt-4o-mini"]
    assert plan[semconv.GEN_AI_OPERATION_NAME] == "plan"
    assert plan[semconv.COST_STATUS] == "delegated" and semconv.COST_USD not in plan
    assert call[semconv.COST_USD] == pytest.approx(1000 * IN_PRICE + 200 * OUT_PRICE)
    assert app.counter("llm_requests_total") == 1 and app.counter("llm_tokens_total", token_type="input") == 1000


# --- gen_ai.conversation.id ---------------------------------------------------------------------

@pytest.mark.parametrize("key", ["session.id", "traceloop.association.properties.session_id", "langfuse.session.id"])
def test_dialect_session_ids_become_the_conversation_id(key):
    app = App()
    with app.span("ChatOpenAI", {"openinference.span.kind": "LLM", "llm.model_name": MODEL, "llm.provider": "openai",
                                 "llm.token_count.prompt": 10, "llm.token_count.completion": 2, key: "conv-42"}):
        pass
    attrs = by_name(app.collect())["ChatOpenAI"]
    assert attrs[semconv.GEN_AI_CONVERSATION_ID] == "conv-42"
    assert attrs[key] == "conv-42"  # the dialect's own key is kept


def test_conversation_id_already_set_wins_and_other_spans_are_left_alone():
    app = App()
    with app.span("chat gpt-4o-mini", {**chat(), "gen_ai.conversation.id": "conv-a", "session.id": "sess-b"}):
        pass
    with app.span("GET /health", {"http.request.method": "GET", "session.id": "sess-c"}):
        pass
    spans = by_name(app.collect())
    assert spans["chat gpt-4o-mini"][semconv.GEN_AI_CONVERSATION_ID] == "conv-a"
    assert semconv.GEN_AI_CONVERSATION_ID not in spans["GET /health"]


# --- error.type ---------------------------------------------------------------------------------

class RateLimitError(Exception):
    pass


def test_failed_genai_spans_get_an_error_type():
    app = App()
    with pytest.raises(RateLimitError):  # the SDK records the exception event and the status itself
        with app.span("chat exception-event", chat()):
            raise RateLimitError("429 Too Many Requests")
    with app.span("chat status-only", chat()) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "litellm.exceptions.APIConnectionError - refused"))
    with app.span("chat http-status", {**chat(), "http.response.status_code": 503}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "upstream said no"))
    with app.span("chat nothing-known", chat()) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    with app.span("chat typed", {**chat(), "error.type": "rate_limit_exceeded"}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "ValueError: not this"))
    with app.span("execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "TimeoutError: slow"))
    with app.span("chat ok", chat()):
        pass
    with app.span("GET /x", {"http.request.method": "GET"}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, "KeyError: x"))
    spans = by_name(app.collect())
    error_type = semconv.ERROR_TYPE
    assert spans["chat exception-event"][error_type] == f"{__name__}.RateLimitError"
    assert spans["chat status-only"][error_type] == "litellm.exceptions.APIConnectionError"
    assert spans["chat http-status"][error_type] == "503"
    assert spans["chat nothing-known"][error_type] == "_OTHER"
    assert spans["chat typed"][error_type] == "rate_limit_exceeded"
    assert spans["execute_tool search"][error_type] == "TimeoutError"
    assert error_type not in spans["chat ok"]
    assert error_type not in spans["GET /x"]  # not a GenAI span: not ours to complete
    assert app.counter("llm_errors_total", error_type="503") == 1


# --- exceptions as log records, next to the failed span -----------------------------------------

@pytest.fixture(scope="module")
def store():
    store, _ = seed_data.shared_store()  # the process's chdb session; a database of our own in it
    options = SchemaOptions(database=DB)
    for statement in schema_statements(options) + logs_statements(options):
        store.command(statement)
    genai_views.create(store, options)
    session_views.create(store, options)
    return store


def rows(store, sql: str) -> list[dict]:
    result = store.query(sql)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def save(store, app: App) -> tuple[Traces, int]:
    traces = app.collect()
    store.insert_arrow(f"{DB}.otel_traces", traces_to_arrow(traces))
    records = app.logs.get_finished_logs()
    app.logs.clear()
    if records:
        store.insert_arrow(f"{DB}.otel_logs", log_columns.logs_to_arrow(encode_logs(records)))
    return traces, len(records)


def provider_error(app: App, exc: Exception) -> None:
    """What current GenAI instrumentations emit on a provider error: a WARN event in the failed
    operation's context (semantic-conventions-genai events.yaml)."""
    app.logger.emit(event_name=semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT, severity_number=SeverityNumber.WARN,
                    severity_text="WARN", attributes={semconv.EXCEPTION_TYPE: type(exc).__qualname__,
                                                      semconv.EXCEPTION_MESSAGE: str(exc)})


def hexids(span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_provider_errors_as_log_records_and_span_events_are_next_to_the_failed_span(store):
    app = App(service="errors-app")
    with app.span("invoke_agent support", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                                           "gen_ai.conversation.id": "conv-err"}):
        # current convention: the span fails, the exception is a log record in its context
        with app.span("chat logged", chat()) as logged:
            exc = RateLimitError("429 Too Many Requests")
            provider_error(app, exc)
            logged.set_status(trace.Status(trace.StatusCode.ERROR, "RateLimitError: 429"))
        # deprecated: the exception as a span event (the SDK's record_exception)
        with pytest.raises(TimeoutError):
            with app.span("chat span-event", chat()) as evented:
                raise TimeoutError("read timed out")
        # a retried attempt failed (its log record) but the call succeeded: an exception, no error
        with app.span("chat retried", chat()) as retried:
            provider_error(app, ConnectionResetError("reset by peer"))
        # a failure nobody reported an exception for
        with app.span("chat silent", chat()) as silent:
            silent.set_status(trace.Status(trace.StatusCode.ERROR))
    _, logged_records = save(store, app)
    assert logged_records == 2

    errors = {r["SpanName"]: r for r in rows(store, f"SELECT * FROM {DB}.genai_errors WHERE ServiceName = 'errors-app'")}
    assert set(errors) == {"chat logged", "chat span-event", "chat silent"}
    logged_row = errors["chat logged"]
    assert (logged_row["TraceId"], logged_row["SpanId"]) == hexids(logged)
    assert logged_row["error_type"] == "RateLimitError" and logged_row["operation"] == "chat"
    assert logged_row["conversation_id"] == "" and logged_row["model"] == MODEL
    assert (logged_row["exceptions"], logged_row["exception_type"], logged_row["exception_message"]) == \
        (1, "RateLimitError", "429 Too Many Requests")
    assert logged_row["exception_origins"] == ["log"]
    evented_row = errors["chat span-event"]
    assert (evented_row["TraceId"], evented_row["SpanId"]) == hexids(evented)
    assert evented_row["error_type"] == "TimeoutError"  # the SDK's exception.type of a builtin
    assert (evented_row["exceptions"], evented_row["exception_type"], evented_row["exception_origins"]) == \
        (1, "TimeoutError", ["span_event"])
    assert "read timed out" in evented_row["exception_message"]
    assert (errors["chat silent"]["exceptions"], errors["chat silent"]["error_type"]) == (0, "_OTHER")

    exceptions = rows(store, f"SELECT * FROM {DB}.genai_exceptions WHERE ServiceName = 'errors-app' ORDER BY Timestamp")
    assert [(r["origin"], r["exception_type"]) for r in exceptions] == [
        ("log", "RateLimitError"), ("span_event", "TimeoutError"), ("log", "ConnectionResetError")]
    retried_row = exceptions[2]
    assert (retried_row["TraceId"], retried_row["SpanId"]) == hexids(retried)
    assert retried_row["severity"] == "WARN" and retried_row["tenant"] == "acme"


def test_plan_calls_have_their_own_operation_in_the_views(store):
    app = App(service="plan-views")
    with app.span("invoke_agent planner", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}):
        with app.span("plan planner", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "planner",
                                       "gen_ai.provider.name": "openai", **usage(1000, 200)}):
            pass
        with app.span("plan empty", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "planner"}):
            with app.span("chat gpt-4o-mini", chat(2000, 100)):
                pass
    save(store, app)
    calls = rows(store, f"SELECT operation, cost_usd, cost_status, input_tokens FROM {DB}.genai_calls "
                        "WHERE ServiceName = 'plan-views' ORDER BY operation")
    assert [(r["operation"], r["cost_status"], r["input_tokens"]) for r in calls] == [
        ("chat", "priced", 2000), ("plan", "priced", 1000)]
    assert calls[1]["cost_usd"] == pytest.approx(1000 * IN_PRICE + 200 * OUT_PRICE)
    subtree = {r["kind"]: r for r in rows(
        store, f"SELECT kind, name, calls, cost_usd FROM {DB}.genai_subtree_costs(from_ts = now() - INTERVAL 1 DAY, "
               "to_ts = now() + INTERVAL 1 DAY) WHERE TraceId IN (SELECT TraceId FROM "
               f"{DB}.otel_traces WHERE ServiceName = 'plan-views')")}
    assert subtree["plan"]["calls"] == 1 and subtree["plan"]["name"] == "planner"
    assert subtree["plan"]["cost_usd"] == pytest.approx(2000 * IN_PRICE + 100 * OUT_PRICE)
    assert subtree["invoke_agent"]["calls"] == 2  # the plan call and the chat beneath the other plan
