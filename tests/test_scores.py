"""Scores, conversations and users (issue 13) on chdb: the `otel_logs` table, `genai_scores` and the
session views, fed with real OTLP from the OpenTelemetry SDK (spans through the trace SDK, scores
through the logs API's events), encoded by the SDK's own OTLP encoders and stored through the
collector's column conversions."""

from __future__ import annotations

import json
import re

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import instrumentation
from support import seed_data
import semconv
from collector.pdata import Traces
from collector.storage import log_columns, session_views
from collector.storage.columns import traces_to_arrow
from collector.storage.schema import LOGS_COLUMNS, SchemaOptions, logs_statements, schema_statements
from instrumentation import evaluation
from instrumentation.fakellm import FakeLLMServer
from instrumentation.processor import GenAISpanProcessor

DB = "scores_t"


@pytest.fixture(scope="module")
def store():
    store, _ = seed_data.shared_store()  # the process's chdb session; a database of our own in it
    options = SchemaOptions(database=DB, text_indexes=True)
    for statement in schema_statements(options) + logs_statements(options):
        store.command(statement)
    session_views.create(store, options)
    return store


class Pipeline:
    """An SDK tracer and logger provider whose output the test stores as the collector does."""

    def __init__(self, store, tenant: str = "acme", service: str = "support-bot"):
        self.store = store
        resource = Resource.create({"service.name": service, "tenant.id": tenant})
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(GenAISpanProcessor())
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.tracer_provider.get_tracer("app")
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def flush_spans(self) -> None:
        finished = self.spans.get_finished_spans()
        self.spans.clear()
        if finished:
            request = encode_spans(finished)
            self.store.insert_arrow(f"{DB}.otel_traces", traces_to_arrow(Traces(request)))

    def flush_logs(self) -> None:
        records = self.logs.get_finished_logs()
        self.logs.clear()
        if records:
            self.store.insert_arrow(f"{DB}.otel_logs", log_columns.logs_to_arrow(encode_logs(records)))

    def llm_call(self, question: str, answer: str, cost: float, tokens: tuple[int, int], response_id: str = "",
                 error: bool = False):
        with self.tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": tokens[0],
                                 "gen_ai.usage.output_tokens": tokens[1], "gen_ai.usage.cost_usd": cost,
                                 "genaitrace.cost.status": "priced",
                                 "gen_ai.input.messages": json.dumps([{"role": "user", "content": question}]),
                                 "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": answer}])})
            if response_id:
                span.set_attribute("gen_ai.response.id", response_id)
            if error:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            return span

    def turn(self, question: str, answer: str, cost: float = 0.01, tokens=(100, 20), response_id: str = "",
             error: bool = False):
        with self.tracer.start_as_current_span("invoke_agent support") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "support")
            span = self.llm_call(question, answer, cost, tokens, response_id, error)
        return root, span


def rows(store, sql: str) -> list[dict]:
    result = store.query(sql)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def hexid(context) -> tuple[str, str]:
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_otel_logs_columns_are_the_contrib_exporters(store):
    described = {row[0]: row[1] for row in store.query(f"DESCRIBE {DB}.otel_logs").result_rows
                 if row[2] != "MATERIALIZED"}
    assert described == LOGS_COLUMNS
    materialized = rows(store, f"SELECT name, default_kind FROM system.columns WHERE database = '{DB}' "
                               "AND table = 'otel_logs' AND default_kind = 'MATERIALIZED'")
    assert len(materialized) == 8 and all(r["name"].startswith("__otel_materialized_") for r in materialized)


def test_every_value_type_from_the_sdk_events_api(store):
    app = Pipeline(store, tenant="t-types")
    with instrumentation.context(conversation_id="conv-types", user_id="u-types"):
        _, span = app.turn("What is 2+2?", "4")
    trace_id, span_id = hexid(span.get_span_context())
    results = [(evaluation.Result("helpfulness", 4.5, explanation="clear"), "human"),
               (evaluation.Result("safety", False, explanation="PII"), "heuristic"),
               (evaluation.Result("relevance", None, label="relevant"), "llm-judge"),
               (evaluation.Result("thumbs", True), "user-feedback")]
    for result, source in results:
        evaluation.record(result, span=span, source=source, logger_provider=app.logger_provider)
    app.flush_spans()
    app.flush_logs()
    got = {r["name"]: r for r in rows(store, f"SELECT * FROM {DB}.genai_scores WHERE TraceId = '{trace_id}'")}
    assert set(got) == {"helpfulness", "safety", "relevance", "thumbs"}
    assert all(r["SpanId"] == span_id and r["origin"] == "log" and r["tenant"] == "t-types" for r in got.values())
    assert (got["helpfulness"]["value"], got["helpfulness"]["value_type"], got["helpfulness"]["source"],
            got["helpfulness"]["explanation"]) == (4.5, "numeric", "human", "clear")
    assert (got["safety"]["value"], got["safety"]["label"], got["safety"]["value_type"]) == (0.0, "false", "boolean")
    assert (got["thumbs"]["value"], got["thumbs"]["value_type"]) == (1.0, "boolean")
    assert (got["relevance"]["value"], got["relevance"]["label"], got["relevance"]["value_type"]) == \
           (None, "relevant", "categorical")


def test_a_score_stored_before_its_span_joins_when_the_span_lands(store):
    app = Pipeline(store, tenant="t-late")
    _, span = app.turn("late?", "yes", response_id="chatcmpl-late-1")
    trace_id, span_id = hexid(span.get_span_context())
    # Feedback naming only the response id (a web app knows nothing else), stored first.
    evaluation.record(evaluation.Result("thumbs", False), span_context=trace.INVALID_SPAN_CONTEXT,
                      response_id="chatcmpl-late-1", source="user-feedback", logger_provider=app.logger_provider)
    app.flush_logs()
    before = rows(store, f"SELECT TraceId, SpanId FROM {DB}.genai_scores WHERE response_id = 'chatcmpl-late-1'")
    assert before == [{"TraceId": "", "SpanId": ""}]
    app.flush_spans()
    after = rows(store, f"SELECT TraceId, SpanId FROM {DB}.genai_scores WHERE response_id = 'chatcmpl-late-1'")
    assert after == [{"TraceId": trace_id, "SpanId": span_id}]


def test_feedback_by_response_id_lands_on_its_own_tenants_span(store):
    """Response ids are the provider's, not unique across tenants: the same id in two tenants'
    traces; each tenant's feedback resolves to its own span, a record with no tenant to one of them."""
    spans = {}
    for tenant in ("t-resp-a", "t-resp-b", ""):
        app = Pipeline(store, tenant=tenant)
        if tenant:
            _, span = app.turn("same id?", "yes", response_id="chatcmpl-shared-7")
            spans[tenant] = hexid(span.get_span_context())
            app.flush_spans()
        evaluation.record(evaluation.Result(f"thumbs-{tenant or 'none'}", True), span_context=trace.INVALID_SPAN_CONTEXT,
                          response_id="chatcmpl-shared-7", source="user-feedback", logger_provider=app.logger_provider)
        app.flush_logs()
    got = {r["name"]: (r["TraceId"], r["SpanId"]) for r in rows(
        store, f"SELECT name, TraceId, SpanId FROM {DB}.genai_scores WHERE response_id = 'chatcmpl-shared-7'")}
    assert got["thumbs-t-resp-a"] == spans["t-resp-a"]
    assert got["thumbs-t-resp-b"] == spans["t-resp-b"]
    assert got["thumbs-none"] in spans.values()
    assert len(got) == 3  # one row per score: no fan-out over the tenants' spans


def test_span_events_named_evaluation_result_are_scores_too(store):
    app = Pipeline(store, tenant="t-events")
    with app.tracer.start_as_current_span("chat") as span:
        span.add_event(semconv.GEN_AI_EVALUATION_RESULT_EVENT,
                       evaluation.result_attributes(evaluation.Result("groundedness", 0.25), "llm-judge"))
    app.flush_spans()
    trace_id, span_id = hexid(span.get_span_context())
    got = rows(store, f"SELECT * FROM {DB}.genai_scores WHERE TraceId = '{trace_id}'")
    assert [(r["name"], r["value"], r["SpanId"], r["origin"], r["tenant"]) for r in got] == \
           [("groundedness", 0.25, span_id, "span_event", "t-events")]


def test_scores_carry_their_tenant(store):
    acme, globex = Pipeline(store, tenant="iso-acme"), Pipeline(store, tenant="iso-globex")
    for app in (acme, globex):
        _, span = app.turn("q", "a")
        evaluation.record(evaluation.Result("quality", 3), span=span, logger_provider=app.logger_provider)
        app.flush_spans()
        app.flush_logs()
    by_tenant = rows(store, f"SELECT tenant, count() AS n FROM {DB}.genai_scores WHERE tenant LIKE 'iso-%' "
                            "GROUP BY tenant ORDER BY tenant")
    assert by_tenant == [{"tenant": "iso-acme", "n": 1}, {"tenant": "iso-globex", "n": 1}]


def test_conversation_and_user_views(store):
    app = Pipeline(store, tenant="t-conv")
    spans = []
    with instrumentation.context(conversation_id="conv-42", user_id="u-ada"):
        spans.append(app.turn("hello", "hi", cost=0.01, tokens=(100, 10)))
        spans.append(app.turn("order status?", "shipped", cost=0.02, tokens=(200, 20), error=True))
        spans.append(app.turn("thanks", "welcome", cost=0.03, tokens=(300, 30)))
    with instrumentation.attributes(user_id="u-ada"):  # a trace of the user outside the conversation
        app.turn("other", "x", cost=0.5, tokens=(1, 1))
    evaluation.record(evaluation.Result("thumbs", True), span=spans[0][1], source="user-feedback",
                      logger_provider=app.logger_provider)
    evaluation.record(evaluation.Result("helpfulness", 0.5), span=spans[1][1], source="llm-judge",
                      logger_provider=app.logger_provider)
    app.flush_spans()
    app.flush_logs()
    turns = rows(store, f"SELECT turn, TraceId, calls, errors, total_tokens, cost_usd, scores, avg_score "
                        f"FROM {DB}.genai_conversation_traces WHERE conversation_id = 'conv-42' ORDER BY turn")
    assert [t["turn"] for t in turns] == [1, 2, 3]
    assert [t["TraceId"] for t in turns] == [hexid(root.get_span_context())[0] for root, _ in spans]
    assert [t["total_tokens"] for t in turns] == [110, 220, 330]
    assert [t["errors"] for t in turns] == [0, 1, 0]
    assert [t["scores"] for t in turns] == [1, 1, None] and turns[1]["avg_score"] == 0.5
    conversation = rows(store, f"SELECT * FROM {DB}.genai_conversations WHERE conversation_id = 'conv-42'")[0]
    assert (conversation["turns"], conversation["user_id"], conversation["tenant"], conversation["errors"],
            conversation["total_tokens"], conversation["scores"]) == (3, "u-ada", "t-conv", 1, 660, 2)
    assert conversation["cost_usd"] == pytest.approx(0.06)
    assert conversation["avg_score"] == pytest.approx(0.75)
    user = rows(store, f"SELECT * FROM {DB}.genai_users WHERE user_id = 'u-ada'")[0]
    assert (user["conversations"], user["traces"], user["calls"], user["total_tokens"]) == (1, 4, 4, 662)
    assert user["cost_usd"] == pytest.approx(0.56)


def test_enduser_id_is_read_when_user_id_is_absent(store):
    app = Pipeline(store, tenant="t-enduser")
    with app.tracer.start_as_current_span("chat") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "enduser.id": "legacy-user",
                             "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5})
    app.flush_spans()
    assert rows(store, f"SELECT traces, total_tokens FROM {DB}.genai_users WHERE user_id = 'legacy-user'") == \
           [{"traces": 1, "total_tokens": 10}]


def test_user_and_conversation_from_the_resource_environment(store, monkeypatch):
    """The env-var way: OTEL_RESOURCE_ATTRIBUTES names the process's user and conversation; a span's
    own attribute (baggage) wins over it."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "user.id=u-env,gen_ai.conversation.id=conv-env")
    app = Pipeline(store, tenant="t-env")
    app.turn("from env", "ok", cost=0.01, tokens=(10, 1))
    with instrumentation.context(conversation_id="conv-env-own", user_id="u-env-own"):
        app.turn("own", "ok", cost=0.02, tokens=(20, 2))
    app.flush_spans()
    conversations = rows(store, f"SELECT conversation_id, user_id, turns FROM {DB}.genai_conversations "
                                "WHERE tenant = 't-env' ORDER BY conversation_id")
    assert conversations == [{"conversation_id": "conv-env", "user_id": "u-env", "turns": 1},
                             {"conversation_id": "conv-env-own", "user_id": "u-env-own", "turns": 1}]
    assert rows(store, f"SELECT traces, total_tokens FROM {DB}.genai_users WHERE user_id = 'u-env'") == \
           [{"traces": 1, "total_tokens": 11}]


def test_evaluators_respect_content_capture(store, monkeypatch):
    app = Pipeline(store)
    _, span = app.turn("mail me", "write to ada@example.com")
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    seen = []
    evaluation.evaluate(span, lambda sample: seen.append(sample) or evaluation.Result("x", 1),
                        logger_provider=app.logger_provider)
    assert (seen[0].input, seen[0].output) == (None, None)  # capture off: no content
    assert "gen_ai.input.messages" not in seen[0].attributes
    result = evaluation.evaluate(span, evaluation.regex_safety_check(), output="write to ada@example.com",
                                 logger_provider=app.logger_provider)  # the app passes it explicitly
    assert (result.score, result.explanation) == (False, "found: email")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    result = evaluation.evaluate(span, evaluation.regex_safety_check(), logger_provider=app.logger_provider)
    assert result.score is False
    ok = evaluation.evaluate(span, evaluation.regex_safety_check(), output="all fine", logger_provider=app.logger_provider)
    assert ok.score is True


def test_llm_judge_against_the_fake_server(store, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    app = Pipeline(store, tenant="t-judge")
    _, span = app.turn("What is the capital of France? [reply:SCORE: 4 because it answers]", "Paris")
    with FakeLLMServer() as server:
        result = evaluation.evaluate(span, evaluation.llm_judge(server.base_url), source="llm-judge",
                                     logger_provider=app.logger_provider)
        assert len(server.requests) == 1
    assert result.score == 4.0 and re.search("because it answers", result.explanation)
    app.flush_spans()
    app.flush_logs()
    trace_id, span_id = hexid(span.get_span_context())
    assert rows(store, f"SELECT name, value, source, SpanId FROM {DB}.genai_scores WHERE TraceId = '{trace_id}'") == \
           [{"name": "relevance", "value": 4.0, "source": "llm-judge", "SpanId": span_id}]


def test_cluster_statements_read_the_distributed_tables():
    options = SchemaOptions(cluster_name="main", table_engine="ReplicatedMergeTree")
    statements = session_views.statements(options)
    assert len(statements) == len(session_views.VIEWS)
    assert all("ON CLUSTER `main`" in s for s in statements)
    sessions = statements[session_views.VIEWS.index("genai_session_traces")]
    assert "FROM `otel`.`genai_trace_totals`" in sessions  # the Distributed one on a cluster
    scores = statements[0]
    assert "`otel_logs_dist`" in scores and "`otel_traces_dist`" in scores and "`otel_logs`" not in scores
    assert any("`otel_logs_dist`" in s and "Distributed" in s for s in logs_statements(options))


def test_seeded_scores_panels_answer_from_the_seed():
    """The dashboards' worst-scored traces are the seed's lowest scores, per name."""
    import time

    from support.grafana import ALL, expand, panels

    store, truth = seed_data.shared_store()
    panel = next(p for _, _, p in panels() if p["title"].startswith("Worst-scored traces"))
    end = int(time.time()) + 3600
    result = store.query(expand(panel["targets"][0]["rawSql"], end - 60 * 86400, end, ALL))
    got = [dict(zip(result.column_names, row)) for row in result.result_rows]
    relevance = sorted(s.attrs["gen_ai.evaluation.score.value"] for s in truth.scores
                       if s.attrs["gen_ai.evaluation.name"] == "relevance")
    assert [r["score"] for r in got if r["name"] == "relevance"] == relevance[:5]
    assert {r["name"] for r in got} == {"relevance", "thumbs"}  # categorical `tone` has no value to rank


def test_redaction_masks_log_records_in_a_logs_pipeline():
    from collector.component import ComponentId
    from collector.plogs import Logs
    from processors.redaction import RedactionConfig, factory

    received = []
    processor = factory.create_logs(ComponentId("redaction"), RedactionConfig(), type("Sink", (), {"consume": lambda self, x: received.append(x)})())
    logs = seed_data.to_logs([seed_data.ScoreRecord("ab" * 16, "cd" * 8, 1, "acme", {
        "gen_ai.evaluation.name": "thumbs", "gen_ai.evaluation.score.value": 0.0,
        "gen_ai.evaluation.explanation": "user wrote from ada@example.com"})])
    logs.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "call me at +1 415 555 0100"
    processor.consume(Logs.from_protobuf(logs.SerializeToString()))
    rows = log_columns.logs_to_rows(received[0].read())
    attrs = dict(rows["LogAttributes"][0])
    assert attrs["gen_ai.evaluation.explanation"] == "user wrote from [REDACTED:email]"
    assert rows["Body"][0] == "call me at [REDACTED:phone]"
    assert attrs["redaction.masked.types"] == "email,phone" and attrs["gen_ai.evaluation.name"] == "thumbs"


def test_readme_scores_sql_runs_on_the_seed():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Scores, conversations and users", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    store, _ = seed_data.shared_store()
    queries = [sql.strip() for sql in block.split(";") if sql.strip()]
    assert len(queries) == 2
    by_name = {row[0]: row for row in store.query(queries[0]).result_rows}
    assert {"thumbs", "relevance", "tone"} <= set(by_name) and by_name["thumbs"][1] == "boolean"
    conversation = store.query("SELECT conversation_id FROM otel.genai_conversations ORDER BY turns DESC LIMIT 1").result_rows[0][0]
    turns = store.query(queries[1].replace("session-acme-0", conversation)).result_rows
    assert [row[1] for row in turns] == list(range(1, len(turns) + 1)) and len(turns) > 1
