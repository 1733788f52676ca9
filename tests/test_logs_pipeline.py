"""The logs pipeline end to end (issue 13), on a real collector process: OTLP logs from the
OpenTelemetry SDK's logs/events API over HTTP and gRPC, OTLP/JSON, `POST /v1/scores`, tenant-bound
tokens, `genai_scores` joined to spans that arrive later, and kill -9 while log records stream in."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from support.harness import CollectorProcess
from instrumentation import evaluation
from instrumentation.processor import GenAISpanProcessor

pytestmark = pytest.mark.timeout(240)

ACME, GLOBEX = "acme-token-0123456789", "globex-token-0123456789"

CONFIG = """
extensions:
  health_check: {{endpoint: "127.0.0.1:{health_port}"}}
  file_storage: {{directory: "{data}/queue"}}
  sqlquery: {{endpoint: "127.0.0.1:{query_port}", exporter: clickhouse}}
  bearertokenauth:
    tenants:
      acme: {{token: "%s"}}
      globex: {{token: "%s"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", auth: {{authenticator: bearertokenauth}}}}
      http: {{endpoint: "127.0.0.1:{http_port}", auth: {{authenticator: bearertokenauth}}}}
processors:
  batch: {{send_batch_size: 8192, timeout: 50ms}}
  memory_limiter: {{limit_mib: 4096, spike_limit_mib: 512}}
exporters:
  clickhouse:
    endpoint: "chdb://{data}/chdb"
    database: otel
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
    retry_on_failure: {{initial_interval: 200ms, max_interval: 1s}}
service:
  extensions: [health_check, file_storage, bearertokenauth, sqlquery]
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [clickhouse]
    logs:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [clickhouse]
""" % (ACME, GLOBEX)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    process = CollectorProcess(tmp_path_factory.mktemp("logs"), config_text=CONFIG).start()
    yield process
    process.stop()


def base(collector) -> str:
    return f"http://127.0.0.1:{collector.http_port}"


def sdk(collector, token: str, claimed_tenant: str, grpc_logs: bool = False):
    resource = Resource.create({"service.name": "support-bot", "tenant.id": claimed_tenant})
    headers = {"authorization": f"Bearer {token}"}
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(GenAISpanProcessor())  # baggage (conversation, user) onto every span
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base(collector) + "/v1/traces", headers=headers)))
    log_exporter = (GrpcLogExporter(endpoint=collector.grpc_endpoint, insecure=True, headers=tuple(headers.items()))
                    if grpc_logs else HttpLogExporter(endpoint=base(collector) + "/v1/logs", headers=headers))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    return tracer_provider, logger_provider


def hexid(span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def scores_of(collector, trace_id: str, count: int) -> list[dict]:
    return collector.wait_for_rows(
        f"SELECT name, value, label, value_type, source, tenant, SpanId, origin FROM otel.genai_scores "
        f"WHERE TraceId = '{trace_id}' ORDER BY name", lambda rows: len(rows) >= count, timeout=60)


@pytest.mark.parametrize("grpc_logs", [False, True], ids=["http", "grpc"])
def test_sdk_events_of_every_value_type_are_scores_of_the_tokens_tenant(collector, grpc_logs):
    # globex's token, data claiming acme: the token's tenant wins
    tracer_provider, logger_provider = sdk(collector, GLOBEX, "acme", grpc_logs)
    with tracer_provider.get_tracer("app").start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
    for result, source in ((evaluation.Result("helpfulness", 4.5), "human"),
                           (evaluation.Result("safety", False, explanation="PII"), "heuristic"),
                           (evaluation.Result("tone", None, label="friendly"), "llm-judge")):
        evaluation.record(result, span=span, source=source, logger_provider=logger_provider)
    logger_provider.force_flush()
    trace_id, span_id = hexid(span)
    rows = scores_of(collector, trace_id, 3)
    assert [(r["name"], r["value"], r["label"], r["value_type"]) for r in rows] == [
        ("helpfulness", 4.5, "", "numeric"), ("safety", 0.0, "false", "boolean"), ("tone", None, "friendly", "categorical")]
    assert {(r["tenant"], r["SpanId"], r["origin"]) for r in rows} == {("globex", span_id, "log")}


def test_logs_without_a_known_token_are_refused(collector):
    response = httpx.post(base(collector) + "/v1/logs", content=b"", headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 401
    response = httpx.post(base(collector) + "/v1/scores", json={"trace_id": "1" * 32, "name": "x", "value": 1})
    assert response.status_code == 401


def test_otlp_json_logs(collector):
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
                              "scopeLogs": [{"scope": {"name": "json"}, "logRecords": [{
                                  "timeUnixNano": str(time.time_ns()), "traceId": trace_id, "spanId": span_id,
                                  "eventName": "gen_ai.evaluation.result",
                                  "attributes": [{"key": "gen_ai.evaluation.name", "value": {"stringValue": "json_score"}},
                                                 {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.75}}]}]}]}]}
    response = httpx.post(base(collector) + "/v1/logs", json=body, headers={"authorization": f"Bearer {ACME}"})
    assert response.status_code == 200, response.text
    rows = scores_of(collector, trace_id, 1)
    assert (rows[0]["name"], rows[0]["value"], rows[0]["SpanId"], rows[0]["tenant"]) == ("json_score", 0.75, span_id, "acme")


def test_post_scores_for_a_span_that_arrives_later(collector):
    headers = {"authorization": f"Bearer {ACME}"}
    response = httpx.post(base(collector) + "/v1/scores", headers=headers, json={"scores": [
        {"response_id": "chatcmpl-later-42", "name": "thumbs", "value": True},
        {"response_id": "chatcmpl-later-42", "name": "stars", "value": 2, "explanation": "slow"}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2}
    collector.wait_for_rows("SELECT count() AS n FROM otel.otel_logs WHERE LogAttributes['gen_ai.response.id'] = 'chatcmpl-later-42'",
                            lambda rows: rows[0]["n"] == 2)
    unresolved = collector.query("SELECT TraceId FROM otel.genai_scores WHERE response_id = 'chatcmpl-later-42'")
    assert {r["TraceId"] for r in unresolved} == {""}
    tracer_provider, _ = sdk(collector, ACME, "acme")
    with tracer_provider.get_tracer("app").start_as_current_span("chat") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.response.id": "chatcmpl-later-42"})
    trace_id, span_id = hexid(span)
    rows = scores_of(collector, trace_id, 2)
    assert [(r["name"], r["value"], r["SpanId"], r["tenant"], r["source"]) for r in rows] == [
        ("stars", 2.0, span_id, "acme", "user-feedback"), ("thumbs", 1.0, span_id, "acme", "user-feedback")]


def test_post_scores_refuses_bad_scores_with_the_reason(collector):
    headers = {"authorization": f"Bearer {ACME}"}
    for body, reason in (({"name": "x", "value": 1}, "trace_id"), ({"trace_id": "zz", "name": "x", "value": 1}, "trace_id"),
                         ({"trace_id": "1" * 32, "name": "x"}, "value"), (["not", "an", "object"], "score")):
        response = httpx.post(base(collector) + "/v1/scores", headers=headers, json=body)
        assert response.status_code == 400 and reason in response.text, (body, response.text)
    response = httpx.post(base(collector) + "/v1/scores", headers={**headers, "content-type": "application/json"}, content=b"{")
    assert response.status_code == 400 and "malformed JSON" in response.text and "Traceback" not in response.text
    response = httpx.post(base(collector) + "/v1/scores", headers=headers, content=b"name=x")
    assert response.status_code == 415


def test_kill9_while_log_records_stream_loses_nothing_acknowledged(tmp_path):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    process = CollectorProcess(tmp_path, config_text=CONFIG).start()
    acked: list[int] = []
    stop = threading.Event()

    def send(first: int) -> None:
        seq = first
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                request = ExportLogsServiceRequest()
                records = request.resource_logs.add().scope_logs.add()
                for i in range(50):
                    record = records.log_records.add()
                    record.time_unix_nano = time.time_ns()
                    record.attributes.add(key="seq").value.int_value = seq + i
                try:
                    response = client.post(base(process) + "/v1/logs", content=request.SerializeToString(),
                                           headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {ACME}"})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acked.extend(range(seq, seq + 50))
                seq += 50

    threads = [threading.Thread(target=send, args=(n * 10_000_000,)) for n in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acked) >= 3000, process.log()[-3000:]
    process.start()
    try:
        rows = process.wait_for_rows(
            "SELECT count() AS n, uniqExact(LogAttributes['seq']) AS distinct FROM otel.otel_logs",
            lambda r: r[0]["distinct"] >= len(acked), timeout=120)
        stored = {int(r["seq"]) for r in process.query("SELECT LogAttributes['seq'] AS seq FROM otel.otel_logs")}
    finally:
        process.stop()
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged log records"
    assert rows[0]["n"] == rows[0]["distinct"], "log records stored twice"
    print(json.dumps({"acknowledged": len(acked), "stored": len(stored), "duplicates": rows[0]["n"] - rows[0]["distinct"]}))


def test_cli_score_sessions_and_session(collector):
    import subprocess
    import sys

    import instrumentation
    from support.harness import REPO

    tracer_provider, logger_provider = sdk(collector, ACME, "acme")
    tracer = tracer_provider.get_tracer("app")
    roots = []
    with instrumentation.context(conversation_id="conv-cli-1", user_id="u-cli"):
        for question in ("hello", "what is my order status?"):
            with tracer.start_as_current_span("invoke_agent support") as root:
                root.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"})
                with tracer.start_as_current_span("chat gpt-4o-mini") as call:
                    call.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                                         "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                                         "gen_ai.usage.cost_usd": 0.001, "genaitrace.cost.status": "priced"})
            roots.append((root, call))
    trace_id, span_id = hexid(roots[1][1])
    cli = [sys.executable, "-m", "collector.cli"]
    config = ["-c", str(collector.config_path)]
    sent = subprocess.run(cli + ["score", trace_id, "user_rating", "2", "--span", span_id, "--source", "human",
                                 "--explanation", "too slow", "-H", f"authorization=Bearer {ACME}"] + config,
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert sent.returncode == 0, sent.stderr
    refused = subprocess.run(cli + ["score", trace_id, "x", "1"] + config, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert refused.returncode == 1 and "401" in refused.stderr and "Traceback" not in refused.stderr
    scores_of(collector, trace_id, 1)
    collector.wait_for_rows("SELECT turns FROM otel.genai_conversations WHERE conversation_id = 'conv-cli-1'",
                            lambda rows: rows and rows[0]["turns"] == 2)
    listing = subprocess.run(cli + ["sessions", "--user", "u-cli"] + config, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert listing.returncode == 0 and "conv-cli-1" in listing.stdout, listing.stderr
    shown = subprocess.run(cli + ["session", "conv-cli-1"] + config, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "turn 1" in shown.stdout and "turn 2" in shown.stdout and "user_rating=2 (human)" in shown.stdout
    assert "chat gpt-4o-mini" in shown.stdout
    print(shown.stdout)


def test_logs_through_ingest_workers(tmp_path):
    """With service.ingest_workers the receivers run in worker processes that hand log records to
    the main process through the logs exporter's disk queue, as they do spans."""
    config = CONFIG.replace("  extensions: [health_check", "  ingest_workers: 2\n  extensions: [health_check")
    process = CollectorProcess(tmp_path, config_text=config).start()
    try:
        tracer_provider, logger_provider = sdk(process, ACME, "acme")
        with tracer_provider.get_tracer("app").start_as_current_span("chat") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
        evaluation.record(evaluation.Result("workers", 3.0), span=span, logger_provider=logger_provider)
        logger_provider.force_flush()
        trace_id, span_id = hexid(span)
        rows = scores_of(process, trace_id, 1)
    finally:
        process.stop()
    assert [(r["name"], r["value"], r["SpanId"], r["tenant"]) for r in rows] == [("workers", 3.0, span_id, "acme")]


def test_a_tenants_sql_reader_sees_only_its_scores(tmp_path):
    """sqlquery with a tenant's token: genai_scores (over otel_logs and otel_traces) shows that
    tenant's scores only, whatever the query names."""
    config = CONFIG.replace('exporter: clickhouse}}', 'exporter: clickhouse, auth: {{authenticator: bearertokenauth}}}}')
    process = CollectorProcess(tmp_path, config_text=config).start()
    try:
        for token in (ACME, GLOBEX):
            response = httpx.post(f"http://127.0.0.1:{process.http_port}/v1/scores", headers={"authorization": f"Bearer {token}"},
                                  json={"trace_id": "ab" * 16, "name": "isolation", "value": 1})
            assert response.status_code == 200, response.text

        def read(token: str) -> list:
            deadline = time.monotonic() + 60
            while True:
                response = httpx.post(process.query_url, headers={"authorization": f"Bearer {token}"}, timeout=30,
                                      json={"sql": "SELECT tenant FROM otel.genai_scores WHERE name = 'isolation' "
                                                   "UNION ALL SELECT ResourceAttributes['tenant.id'] FROM otel.otel_logs"})
                assert response.status_code == 200, response.text
                rows = sorted(row[0] for row in response.json()["rows"])
                if len(rows) >= 2 or time.monotonic() > deadline:
                    return rows
                time.sleep(0.2)

        assert read(ACME) == ["acme", "acme"]
        assert read(GLOBEX) == ["globex", "globex"]
    finally:
        process.stop()


def test_evaluation_in_an_app_bootstrapped_by_init_reaches_the_collector(collector):
    """An app that calls `instrumentation.init()` and evaluates an LLM span: the result event goes to
    the collector with the spans (a logger provider is made on first use when the app set none),
    parented to the evaluated span, and lands in genai_scores as the token's tenant."""
    from support.instrumentation_fixtures import child_env, run_python

    env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=base(collector),
                    OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer {ACME}", OTEL_SERVICE_NAME="eval-app")
    result = run_python("""
        import instrumentation
        from instrumentation import evaluation
        from opentelemetry import trace
        instrumentation.init()
        tracer = trace.get_tracer("app")
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            check = evaluation.regex_safety_check({"card": r"\\b4111"})
            evaluation.evaluate(span, check, source="heuristic", output="no card here")
            print(format(span.get_span_context().span_id, "016x"))
        instrumentation.shutdown()
    """, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    span_id = result.stdout.strip().splitlines()[-1]
    rows = collector.wait_for_rows(
        f"SELECT name, value, tenant, SpanId FROM otel.genai_scores WHERE SpanId = '{span_id}'", lambda r: len(r) == 1)
    assert rows[0]["name"] == "safety" and float(rows[0]["value"]) == 1.0 and rows[0]["tenant"] == "acme", rows
