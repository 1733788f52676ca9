"""`genaitrace demo`: the collector on the embedded store, the sample multi-agent workload through it.

1. start the collector (`genaitrace run -c otel-collector.yaml`) and wait until it is healthy;
2. run the sample workload (`python -m instrumentation.demo`): a CrewAI crew per request for
   several tenants, against the project's fake OpenAI-compatible LLM, with one agent calling a
   second service in another process over HTTP; it prints the trace ids it produced;
3. wait until those traces are stored, then print what the store holds (cost by tenant, agent and
   model; unpriced calls; errors) and one request's whole trace tree, all through the collector's
   read-only SQL endpoint, exactly as a user would query it;
3b. score every request twice, as issue 13's users do: a user's thumbs up/down through
   `POST /v1/scores` (what a web app sends later), and an automatic evaluation (a heuristic: the
   run finished without errors, within its cost) sent as an OTLP `gen_ai.evaluation.result` event
   by the OpenTelemetry SDK's logs API; then print the first request's conversation the way
   `genaitrace session` does;
4. stop the collector with SIGTERM (it flushes what it acknowledged), unless --keep-running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
from rich.console import Console

import semconv
from collector.config import load_config
from collector.confighelpers import local_url
from collector.query import QueryClient
from collector.render import TRACE_SQL, print_result, trace_tree
from collector.sessions_cli import show_session
from semconv.evaluation import SCOPE, Result, result_attributes

console = Console(width=None if sys.stdout.isatty() else 140)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

SUMMARY_QUERIES = {
    "Spans stored, by service": """
        SELECT ServiceName AS service, count() AS spans, uniqExact(TraceId) AS traces,
               countIf(StatusCode = 'Error') AS errors
        FROM {db}.{table} WHERE TraceId IN {ids} GROUP BY service ORDER BY spans DESC""",
    "LLM cost by tenant, agent and model": """
        SELECT SpanAttributes['tenant.id'] AS tenant, SpanAttributes['gen_ai.agent.name'] AS agent,
               SpanAttributes['gen_ai.request.model'] AS model, count() AS calls,
               sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens'])) AS input_tokens,
               sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens'])) AS cached_tokens,
               sum(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens'])) AS output_tokens,
               round(sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd'])), 6) AS cost_usd
        FROM {db}.{table}
        WHERE TraceId IN {ids} AND SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content', 'embeddings')
        GROUP BY tenant, agent, model ORDER BY cost_usd DESC""",
    "Inference spans by cost status (unpriced is never $0)": """
        SELECT SpanAttributes['genaitrace.cost.status'] AS status,
               SpanAttributes['genaitrace.cost.unpriced_reason'] AS reason, count() AS spans
        FROM {db}.{table}
        WHERE TraceId IN {ids} AND SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content', 'embeddings')
        GROUP BY status, reason ORDER BY spans DESC""",
}


def _http_receiver_url(cfg) -> str:
    for cid, component in cfg.receivers.items():
        http = component.config.protocols.http if cid.type == "otlp" else None
        if http is not None:
            return local_url(http.endpoint)
    raise SystemExit(f"{cfg.path}: the demo needs an otlp receiver with the http protocol")


def _health_url(cfg) -> str | None:
    for cid in cfg.service_extensions:
        if cid.type == "health_check":
            return local_url(cfg.extensions[cid].config.endpoint, "/")
    return None


def _start_collector(config_path: str, health: str | None) -> subprocess.Popen:
    log = open("genaitrace-demo-collector.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "run", "-c", config_path],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the collector exited with {proc.returncode}; see genaitrace-demo-collector.log")
        try:
            if health is None or httpx.get(health, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the collector did not become healthy in 60s; see genaitrace-demo-collector.log")


def _run_workload(collector_url: str) -> list[str]:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    env.setdefault("OTEL_SERVICE_NAME", "demo-crew-app")
    console.print("[bold]running the sample multi-agent workload[/] (CrewAI crews, two tenants, a second service over HTTP)")
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "instrumentation.demo", "--collector", collector_url],
                         capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        console.print(out.stdout[-3000:], out.stderr[-3000:])
        raise SystemExit(f"the workload failed with exit code {out.returncode}")
    ids = [line.strip() for line in out.stdout.splitlines() if _TRACE_ID.match(line.strip())]
    console.print(f"workload finished in {time.monotonic() - began:.1f}s: {len(ids)} requests, one trace each")
    return ids


def _wait_until_stored(client: QueryClient, ids: list[str], timeout_s: float = 60) -> int:
    """Spans arrive over a few seconds (batching, two processes): wait until the count settles."""
    sql = f"SELECT count() FROM {client.database}.{client.table} WHERE TraceId IN {_sql_list(ids)}"
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = client.query(sql).rows[0][0]
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > 0 and time.monotonic() - stable_since > 2.5:
            return count
        time.sleep(0.5)
    return last


def _sql_list(ids: list[str]) -> str:
    return "(" + ", ".join(f"'{i}'" for i in ids) + ")"


def run_demo(config_path: str, keep_running: bool = False) -> int:
    cfg = load_config(config_path)
    collector_url = _http_receiver_url(cfg)
    console.print(f"[bold]starting the collector[/] ({config_path}: "
                  f"{cfg.exporters[next(c for c in cfg.exporters if c.type == 'clickhouse')].config.endpoint})")
    collector = _start_collector(config_path, _health_url(cfg))
    client = QueryClient(cfg)
    try:
        ids = _run_workload(collector_url)
        if not ids:
            raise SystemExit("the workload printed no trace ids")
        stored = _wait_until_stored(client, ids)
        console.print(f"\n[bold green]{stored} spans stored[/] in {client.database}.{client.table} for {len(ids)} traces\n")
        for title, sql in SUMMARY_QUERIES.items():
            console.print(f"[bold]{title}[/]")
            print_result(client.query(sql.format(db=client.database, table=client.table, ids=_sql_list(ids))))
        console.print(f"\n[bold]One request, end to end[/] (genaitrace trace {ids[0]}):")
        tree = client.query(TRACE_SQL.format(db=client.database, table=client.table), {"trace_id": ids[0]})
        console.print(trace_tree(tree.dicts(), ids[0]))
        _score_requests(cfg, collector_url, client, ids)
        console.print(
            "\nQuery it yourself (through the running collector, or directly once it is stopped):\n"
            f"  .venv/bin/genaitrace sql \"SELECT SpanName, count() FROM otel.otel_traces GROUP BY SpanName\"\n"
            f"  .venv/bin/genaitrace trace {ids[0]}\n"
        )
    finally:
        client.close()
        if keep_running:
            console.print(f"collector still running (pid {collector.pid}); stop it with: kill {collector.pid}")
        else:
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=60)
    return 0


TRACE_FACTS_SQL = """
SELECT TraceId, argMin(SpanId, Timestamp) AS root_span_id, countIf(StatusCode = 'Error') AS errors,
       sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd'])) AS cost_usd,
       anyIf(SpanAttributes['gen_ai.conversation.id'], SpanAttributes['gen_ai.conversation.id'] != '') AS conversation_id,
       anyIf(SpanAttributes['tenant.id'], SpanAttributes['tenant.id'] != '') AS tenant
FROM {db}.{table} WHERE TraceId IN {ids} GROUP BY TraceId ORDER BY min(Timestamp)"""
MAX_COST_USD = 0.05  # the heuristic's cost budget per request


def _score_requests(cfg, collector_url: str, client: QueryClient, ids: list[str]) -> None:
    """One user-feedback score (POST /v1/scores) and one automatic evaluation (an OTLP log event
    from the SDK) per request, then the first request's conversation as `genaitrace session` prints it."""
    if not any(p.signal == "logs" for p in cfg.pipelines):
        console.print("\n(no logs pipeline in the config: scores skipped)")
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    facts = client.query(TRACE_FACTS_SQL.format(db=client.database, table=client.table, ids=_sql_list(ids))).dicts()
    provider = LoggerProvider(resource=Resource.create({"service.name": "demo-evaluator"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=collector_url + "/v1/logs")))
    evaluator = provider.get_logger(SCOPE)
    for index, row in enumerate(facts):
        feedback = {"trace_id": row["TraceId"], "span_id": row["root_span_id"], "name": "thumbs",
                    "value": index % 3 != 2, "source": "user-feedback"}  # every third user is unhappy
        httpx.post(collector_url + "/v1/scores", json=feedback, timeout=10).raise_for_status()
        ok = row["errors"] == 0 and row["cost_usd"] <= MAX_COST_USD
        why = f"{row['errors']} errors, ${row['cost_usd']:.4f} (budget ${MAX_COST_USD})"
        context = trace.SpanContext(int(row["TraceId"], 16), int(row["root_span_id"], 16), is_remote=True)
        # The demo is an app here, an evaluator: the OTel SDK emits the event; its shape is semconv's.
        evaluator.emit(event_name=semconv.GEN_AI_EVALUATION_RESULT_EVENT,
                       context=trace.set_span_in_context(trace.NonRecordingSpan(context)),
                       attributes=result_attributes(Result("run_ok", ok, explanation=why), "heuristic"))
    provider.shutdown()
    console.print(f"\n[bold]{2 * len(facts)} scores sent[/] (a thumbs up/down per request through POST /v1/scores, "
                  "an automatic run_ok evaluation per request as an OTLP log event)")
    conversation = facts[0]["conversation_id"] if facts else ""
    if conversation:
        _wait_for_scores(client, ids, 2 * len(facts))
        console.print(f"\n[bold]The first request's conversation[/] (genaitrace session {conversation}):")
        show_session(client, conversation)


def _wait_for_scores(client: QueryClient, ids: list[str], expected: int, timeout_s: float = 30) -> None:
    sql = f"SELECT count() FROM {client.database}.genai_scores WHERE TraceId IN {_sql_list(ids)}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and client.query(sql).rows[0][0] < expected:
        time.sleep(0.5)


__all__ = ["run_demo"]
