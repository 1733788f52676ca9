"""Provider errors as `gen_ai.client.operation.exception` log records (issue 14), end to end: an app
run with `opentelemetry-instrument` and env vars only, whose LiteLLM, OpenAI SDK and Anthropic SDK
calls fail at the (fake) provider, exports them over OTLP to a real collector process with a logs
pipeline; each record is stored in `otel_logs` with the failed span's TraceId/SpanId."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import semconv
from support.harness import CollectorProcess
from support.instrumentation_fixtures import child_env, fake_llm  # noqa: F401

pytestmark = pytest.mark.timeout(600)

CANARY = "zqcanary"

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
  genai_normalizer: {{}}
  genai_cost: {{}}
exporters:
  clickhouse:
    endpoint: "chdb://{data}/chdb"
    database: otel
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
    retry_on_failure: {{initial_interval: 200ms, max_interval: 1s}}
service:
  extensions: [health_check, file_storage, sqlquery]
  telemetry: {{metrics: {{address: "127.0.0.1:{metrics_port}"}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [genai_normalizer, genai_cost, batch]
      exporters: [clickhouse]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouse]
"""

APP = textwrap.dedent('''
    import asyncio, os, sys
    import anthropic, litellm, openai

    litellm.suppress_debug_info = True
    base, root = sys.argv[1], sys.argv[2]
    prompt = [{"role": "user", "content": "[fail:500] zqcanary-prompt"}]
    try:
        litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x", num_retries=0, messages=prompt)
    except Exception as exc:
        print("litellm:", type(exc).__name__)
    try:
        openai.OpenAI(base_url=base, api_key="x", max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=prompt)
    except openai.APIStatusError as exc:
        print("openai:", exc.status_code)
    try:
        anthropic.Anthropic(base_url=root, api_key="x", max_retries=0).messages.create(
            model="claude-3-5-haiku-latest", max_tokens=50, messages=prompt)
    except anthropic.APIStatusError as exc:
        print("anthropic:", exc.status_code)
    ok = litellm.completion(model="openai/gpt-4o-mini", api_base=base, api_key="x",
                            messages=[{"role": "user", "content": "fine zqcanary-ok"}])
    print("ok:", bool(ok.choices))
''')

EXPECTED_OUTPUT = "litellm: InternalServerError\nopenai: 500\nanthropic: 500\nok: True\n"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    process = CollectorProcess(tmp_path_factory.mktemp("events"), config_text=CONFIG).start()
    yield process
    process.stop()


def run_app(tmp_path: Path, fake, collector, service: str, **env: str) -> subprocess.CompletedProcess:
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = child_env(OTEL_SERVICE_NAME=service,
                            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.http_port}",
                            OTEL_PYTHON_DISTRO="genaitrace", OTEL_PYTHON_CONFIGURATOR="genaitrace", **env)
    instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    return subprocess.run([instrument, sys.executable, str(app), fake.base_url, fake.url], env=environment,
                          capture_output=True, text=True, timeout=400, cwd=tmp_path)


def failed_llm_spans(collector, service: str, expected: int) -> list[dict]:
    where = (f"ServiceName = '{service}' AND StatusCode = 'Error' "
             "AND SpanAttributes['gen_ai.operation.name'] = 'chat'")
    collector.wait_for_rows(f"SELECT count() AS n FROM otel.otel_traces WHERE {where}",
                            lambda r: r[0]["n"] >= expected, timeout=90)
    return collector.query("SELECT TraceId, SpanId, SpanAttributes, `Events.Name` AS events "
                           f"FROM otel.otel_traces WHERE {where}")


def test_provider_errors_are_exception_log_records_of_the_failed_spans(tmp_path, fake_llm, collector):
    service = "events-app"
    r = run_app(tmp_path, fake_llm, collector, service, OTEL_LOGS_EXPORTER="otlp")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == EXPECTED_OUTPUT and "Traceback" not in r.stderr, (r.stdout, r.stderr[-3000:])
    spans = failed_llm_spans(collector, service, 3)
    assert len(spans) == 3, spans
    collector.wait_for_rows(
        f"SELECT count() AS n FROM otel.otel_logs WHERE ServiceName = '{service}' "
        f"AND EventName = '{semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT}'", lambda rows: rows[0]["n"] >= 3,
        timeout=90)
    logs = collector.query("SELECT TraceId, SpanId, SeverityNumber, SeverityText, EventName, LogAttributes "
                           f"FROM otel.otel_logs WHERE ServiceName = '{service}'")
    by_span = {(log["TraceId"], log["SpanId"]): log for log in logs}
    assert len(logs) == 3 and len(by_span) == 3, logs  # one per failed call, none for the call that worked
    for span in spans:
        attrs = dict(span["SpanAttributes"])
        log = by_span[(span["TraceId"], span["SpanId"])]  # parented to the failed span
        record = dict(log["LogAttributes"])
        assert log["EventName"] == semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT
        assert log["SeverityNumber"] == semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_SEVERITY, log
        assert attrs["error.type"] and record["error.type"] == attrs["error.type"], (attrs, record)
        assert record[semconv.EXCEPTION_TYPE], record
        assert semconv.EXCEPTION_MESSAGE not in record, record  # capture off: no provider message
        assert record["gen_ai.operation.name"] == "chat" and record["gen_ai.provider.name"], record
        assert semconv.EXCEPTION_SPAN_EVENT not in span["events"], span  # the record replaces the event
    providers = sorted(dict(log["LogAttributes"])["gen_ai.provider.name"] for log in logs)
    assert providers == ["anthropic", "openai", "openai"], providers
    assert CANARY not in str(logs) and CANARY not in str(spans)


def test_without_a_logs_exporter_nothing_is_emitted_and_spans_keep_their_exception(tmp_path, fake_llm, collector):
    service = "events-app-no-logs"
    r = run_app(tmp_path, fake_llm, collector, service)  # OTEL_LOGS_EXPORTER unset: the distro's "none"
    assert r.returncode == 0 and r.stdout == EXPECTED_OUTPUT, (r.stdout, r.stderr[-3000:])
    spans = failed_llm_spans(collector, service, 3)
    assert len(spans) == 3 and all(dict(s["SpanAttributes"])["error.type"] for s in spans), spans
    litellm_span = [s for s in spans if semconv.EXCEPTION_SPAN_EVENT in s["events"]]
    assert litellm_span, spans  # the exception stays on the span (openinference records it there)
    logs = collector.query(f"SELECT count() AS n FROM otel.otel_logs WHERE ServiceName = '{service}'")
    assert logs[0]["n"] == 0, logs
