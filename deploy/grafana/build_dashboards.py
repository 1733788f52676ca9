"""Writes deploy/grafana/dashboards/*.json: python deploy/grafana/build_dashboards.py

The dashboards are generated so that every panel follows the same conventions (template variables,
trace links, data source uids); tests/test_dashboards.py runs every panel's SQL against seeded data.
"""

from __future__ import annotations

import json
from pathlib import Path

CH = {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
PROM = {"type": "prometheus", "uid": "prometheus"}
TEMPO_UID = "tempo"
FORMAT = {"time_series": 0, "table": 1}

# Multi-value variables with a custom all value: `'__all__'` matches everything, including rows
# whose value is empty (calls made outside any agent).
FILTER = " AND ".join(
    f"({col} IN (${{{var}:singlequote}}) OR '__all__' IN (${{{var}:singlequote}}))"
    for var, col in (("tenant", "tenant"), ("agent", "agent"), ("model", "model"), ("provider", "provider"))
)
TENANT_FILTER = "(tenant IN (${tenant:singlequote}) OR '__all__' IN (${tenant:singlequote}))"
AGENT_FILTER = "(agent IN (${agent:singlequote}) OR '__all__' IN (${agent:singlequote}))"
CALLS = f"FROM otel.genai_calls WHERE $__timeFilter(Timestamp) AND {FILTER}"
DAILY = f"FROM otel.genai_daily WHERE $__dateFilter(day) AND {FILTER}"
# The rollup keeps the cost of calls with estimated tokens apart (`estimated_cost_usd`); panels that
# show "cost" show both, as the views' `cost_usd` does, and one panel shows the estimated part.
DAILY_COST = "sum(cost_usd) + sum(estimated_cost_usd)"

TRACE_LINK = {
    "title": "Open trace",
    "url": "/explore?schemaVersion=1&panes={\"t\":{\"datasource\":\"" + TEMPO_UID + "\",\"queries\":[{\"refId\":\"A\","
           "\"datasource\":{\"type\":\"tempo\",\"uid\":\"" + TEMPO_UID + "\"},\"queryType\":\"traceql\","
           "\"query\":\"${__value.raw}\"}],\"range\":{\"from\":\"now-7d\",\"to\":\"now\"}}}",
    "targetBlank": True,
}


def variables() -> list[dict]:
    out = []
    for name, col in (("tenant", "tenant"), ("agent", "agent"), ("model", "model"), ("provider", "provider")):
        out.append({
            "name": name, "label": name.capitalize(), "type": "query", "datasource": CH,
            "query": f"SELECT DISTINCT {col} FROM otel.genai_daily WHERE day >= today() - 90 AND {col} != '' ORDER BY {col}",
            "definition": f"distinct {col} (90 days)", "multi": True, "includeAll": True, "allValue": "'__all__'",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "refresh": 2, "sort": 1,
        })
    return out


ANNOTATIONS = {"list": [
    {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
     "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
    {"datasource": PROM, "enable": True, "name": "Budget alerts", "iconColor": "red", "step": "60s",
     "expr": 'ALERTS{alertstate="firing", alertname=~"TenantDailyBudget.*|LLMCostSpike|AgentTokenBudgetExceeded"}',
     "titleFormat": "{{alertname}}", "textFormat": "{{tenant}}{{agent_name}}", "useValueForTime": False},
]}


class Board:
    def __init__(self, uid: str, title: str, tags: list[str]):
        self.uid, self.title, self.tags, self.panels, self.y = uid, title, tags, [], 0
        self.x = 0

    def panel(self, title: str, kind: str, sql: str | None = None, *, fmt: str = "table", w: int = 12, h: int = 8,
              columns: list[str] | None = None, unit: str | None = None, expr: str | None = None,
              extra_targets: list[dict] | None = None, options: dict | None = None, transformations: list | None = None):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + h
        pid = len(self.panels) + 1
        targets = []
        if sql is not None:
            targets.append({"refId": "A", "datasource": CH, "editorType": "sql", "format": FORMAT[fmt],
                            "queryType": "timeseries" if fmt == "time_series" else "table", "rawSql": sql.strip(),
                            "expectedColumns": columns or []})
        if expr is not None:
            targets.append({"refId": "B" if targets else "A", "datasource": PROM, "expr": expr, "legendFormat": "__auto"})
        targets += extra_targets or []
        defaults: dict = {}
        if unit:
            defaults["unit"] = unit
        overrides = []
        if columns and "TraceId" in columns:
            overrides.append({"matcher": {"id": "byName", "options": "TraceId"},
                              "properties": [{"id": "links", "value": [TRACE_LINK]}]})
        panel = {"id": pid, "title": title, "type": kind, "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
                 "datasource": CH if sql is not None and expr is None else (PROM if sql is None else {"type": "datasource", "uid": "-- Mixed --"}),
                 "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": overrides},
                 "options": options or {}}
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        self.x += w

    def json(self) -> dict:
        return {"uid": self.uid, "title": self.title, "tags": ["genai", *self.tags], "schemaVersion": 39, "version": 1,
                "editable": True, "timezone": "", "refresh": "1m", "time": {"from": "now-7d", "to": "now"},
                "templating": {"list": variables()}, "annotations": ANNOTATIONS, "panels": self.panels,
                "links": [{"title": "GenAI dashboards", "type": "dashboards", "tags": ["genai"], "asDropdown": True}]}


def cost() -> Board:
    b = Board("genai-cost", "GenAI / LLM cost", ["cost"])
    b.panel("Total cost", "stat", f"SELECT sum(cost_usd) AS cost_usd {CALLS}", w=6, h=5, columns=["cost_usd"], unit="currencyUSD")
    b.panel("Unpriced calls (cost unknown)", "stat", f"SELECT countIf(cost_status = 'unpriced') AS unpriced_calls {CALLS}",
            w=6, h=5, columns=["unpriced_calls"])
    b.panel("Calls", "stat", f"SELECT count() AS calls {CALLS}", w=6, h=5, columns=["calls"])
    b.panel("Tokens", "stat", f"SELECT sum(total_tokens) AS tokens {CALLS}", w=6, h=5, columns=["tokens"])
    # Each GenAI operation on its own: planning calls (`plan`) are not chat.
    b.panel("Calls and cost by operation", "table",
            f"SELECT operation, count() AS calls, sum(total_tokens) AS tokens, sum(cost_usd) AS cost_usd {CALLS} "
            "GROUP BY operation ORDER BY cost_usd DESC", w=24, h=5, columns=["operation", "calls", "tokens", "cost_usd"])
    b.panel("Cost from estimated tokens (included in the total)", "stat",
            f"SELECT sumIf(cost_usd, usage_estimated) AS estimated_cost_usd, countIf(usage_estimated) AS estimated_calls {CALLS}",
            w=24, h=4, columns=["estimated_cost_usd", "estimated_calls"], unit="currencyUSD")
    b.panel("Cost rate per hour", "timeseries",
            f"SELECT toStartOfHour(Timestamp) AS time, sum(cost_usd) AS usd_per_hour {CALLS} GROUP BY time ORDER BY time",
            fmt="time_series", w=24, columns=["time", "usd_per_hour"], unit="currencyUSD")
    for dim in ("model", "provider", "tenant", "agent"):
        b.panel(f"Cost by {dim}", "piechart" if dim in ("provider", "tenant") else "barchart",
                f"SELECT {dim}, {DAILY_COST} AS cost_usd {DAILY} GROUP BY {dim} ORDER BY cost_usd DESC LIMIT 20",
                w=6, columns=[dim, "cost_usd"], unit="currencyUSD")
    b.panel("Month to date vs budget, with linear forecast", "table", f"""
SELECT tenant, {DAILY_COST} AS month_to_date_usd,
       month_to_date_usd / (dateDiff('second', toStartOfMonth(now()), now()) / 86400)
         * toDayOfMonth(toLastDayOfMonth(today())) AS forecast_usd
FROM otel.genai_daily
WHERE day >= toStartOfMonth(today()) AND {TENANT_FILTER}
GROUP BY tenant ORDER BY month_to_date_usd DESC""",
            w=12, columns=["tenant", "month_to_date_usd", "forecast_usd"], unit="currencyUSD",
            expr="max by (tenant) (genai:tenant_monthly_budget_usd)",
            extra_targets=[],
            transformations=[{"id": "joinByField", "options": {"byField": "tenant", "mode": "outer"}},
                             {"id": "organize", "options": {"renameByName": {"Value": "monthly_budget_usd"}}}])
    b.panel("Cost per day by tenant", "timeseries", f"""
SELECT toDateTime(day) AS time, tenant, {DAILY_COST} AS cost_usd {DAILY}
GROUP BY time, tenant ORDER BY time""", fmt="time_series", w=12, columns=["time", "tenant", "cost_usd"], unit="currencyUSD")
    b.panel("Most expensive calls", "table", f"""
SELECT Timestamp, TraceId, tenant, agent, model, total_tokens, cost_usd {CALLS}
ORDER BY cost_usd DESC LIMIT 10""", w=12, columns=["Timestamp", "TraceId", "tenant", "agent", "model", "total_tokens", "cost_usd"])
    b.panel("Most expensive traces", "table", """
SELECT TraceId, start, root_span, tenant, workflow, calls, total_tokens, cost_usd
FROM otel.genai_traces(from_ts = $__fromTime, to_ts = $__toTime)
WHERE """ + TENANT_FILTER + """
ORDER BY cost_usd DESC LIMIT 10""", w=12, columns=["TraceId", "start", "root_span", "tenant", "workflow", "calls", "total_tokens", "cost_usd"])
    b.panel("Unpriced calls", "table", f"""
SELECT provider, request_model, unpriced_reason, count() AS calls, sum(total_tokens) AS tokens, any(TraceId) AS TraceId
{CALLS} AND cost_status = 'unpriced'
GROUP BY provider, request_model, unpriced_reason ORDER BY calls DESC""", w=24,
            columns=["provider", "request_model", "unpriced_reason", "calls", "tokens", "TraceId"])
    b.panel("Cost rate $/hour (Prometheus, live)", "timeseries", None, w=24,
            expr="sum by (agent_name) (rate(llm_cost_usd_total[5m])) * 3600", unit="currencyUSD")
    return b


def agents() -> Board:
    b = Board("genai-agents", "GenAI / Agent activity", ["agents"])
    b.panel("Agent calls over time", "timeseries",
            f"SELECT $__timeInterval(Timestamp) AS time, agent, count() AS calls {CALLS} GROUP BY time, agent ORDER BY time",
            fmt="time_series", w=24, columns=["time", "agent", "calls"])
    b.panel("Top agents by tokens", "barchart",
            f"SELECT agent, sum(input_tokens + output_tokens) AS tokens {DAILY} GROUP BY agent ORDER BY tokens DESC LIMIT 10",
            w=8, columns=["agent", "tokens"])
    b.panel("Agent response time", "gauge",
            f"SELECT avg(duration_ms) AS avg_response_ms, quantile(0.95)(duration_ms) AS p95_response_ms {CALLS}",
            w=8, columns=["avg_response_ms", "p95_response_ms"], unit="ms")
    b.panel("Agent success rate", "stat",
            f"SELECT round(100 * countIf(NOT is_error) / count(), 2) AS success_rate_pct {CALLS}",
            w=8, columns=["success_rate_pct"], unit="percent")
    b.panel("Agents", "table", f"""
SELECT agent, count() AS calls, countIf(is_error) AS errors, sum(total_tokens) AS tokens, sum(cost_usd) AS cost_usd,
       round(quantile(0.95)(duration_ms)) AS p95_ms, max(Timestamp) AS last_seen
{CALLS} GROUP BY agent ORDER BY calls DESC""", w=12, columns=["agent", "calls", "errors", "tokens", "cost_usd", "p95_ms", "last_seen"])
    b.panel("Agent subtree cost (agent + the sub-agents it called)", "table", """
SELECT name AS agent, count() AS runs, sum(cost_usd) AS subtree_cost_usd, sum(total_tokens) AS tokens, sum(errors) AS errors
FROM otel.genai_subtree_costs(from_ts = $__fromTime, to_ts = $__toTime)
WHERE kind = 'invoke_agent' AND """ + TENANT_FILTER + """
GROUP BY agent ORDER BY subtree_cost_usd DESC""", w=12, columns=["agent", "runs", "subtree_cost_usd", "tokens", "errors"])
    b.panel("Task history", "table", f"""
SELECT started, agent, task, status, round(duration_ms) AS duration_ms, tenant, flow, TraceId
FROM otel.genai_agent_tasks WHERE $__timeFilter(started) AND {TENANT_FILTER} AND {AGENT_FILTER}
ORDER BY started DESC LIMIT 100""", w=24, columns=["started", "agent", "task", "status", "duration_ms", "tenant", "flow", "TraceId"])
    b.panel("Agent runs per minute (Prometheus)", "timeseries", None, w=24,
            expr='sum by (agent_name, status) (rate(agent_runs_total[5m])) * 60')
    return b


def workflows() -> Board:
    b = Board("genai-workflows", "GenAI / Workflows and flows", ["workflows"])
    b.panel("Workflows by type", "piechart", f"""
SELECT SpanAttributes['gen_ai.workflow.name'] AS workflow, count() AS runs
FROM otel.otel_traces
WHERE $__timeFilter(Timestamp) AND SpanAttributes['gen_ai.operation.name'] = 'invoke_workflow' AND
      (SpanAttributes['tenant.id'] IN (${{tenant:singlequote}}) OR '__all__' IN (${{tenant:singlequote}}))
GROUP BY workflow ORDER BY runs DESC""", w=8, columns=["workflow", "runs"])
    b.panel("Tokens and cost per flow", "table", f"""
SELECT flow, uniqExact(TraceId) AS traces, count() AS calls, sum(total_tokens) AS tokens,
       round(tokens / traces) AS tokens_per_trace, sum(cost_usd) AS cost_usd, cost_usd / traces AS cost_per_trace_usd
{CALLS} GROUP BY flow ORDER BY cost_usd DESC""", w=16,
            columns=["flow", "traces", "calls", "tokens", "tokens_per_trace", "cost_usd", "cost_per_trace_usd"])
    b.panel("Cost and duration per workflow", "table", """
SELECT workflow, count() AS traces, sum(cost_usd) AS cost_usd, cost_usd / traces AS avg_cost_usd,
       round(quantile(0.5)(duration_ms)) AS p50_duration_ms, round(quantile(0.95)(duration_ms)) AS p95_duration_ms,
       countIf(errors > 0) AS traces_with_errors
FROM otel.genai_traces(from_ts = $__fromTime, to_ts = $__toTime)
WHERE workflow != '' AND """ + TENANT_FILTER + """
GROUP BY workflow ORDER BY cost_usd DESC""", w=24,
            columns=["workflow", "traces", "cost_usd", "avg_cost_usd", "p50_duration_ms", "p95_duration_ms", "traces_with_errors"])
    b.panel("Workflow duration", "histogram", """
SELECT duration_ms / 1000 AS duration_s FROM otel.genai_traces(from_ts = $__fromTime, to_ts = $__toTime)
WHERE workflow != '' AND """ + TENANT_FILTER, w=12, columns=["duration_s"])
    b.panel("Failed workflows over time", "timeseries", """
SELECT $__timeInterval(Timestamp) AS time, SpanAttributes['gen_ai.workflow.name'] AS workflow, count() AS failed
FROM otel.otel_traces
WHERE $__timeFilter(Timestamp) AND SpanAttributes['gen_ai.operation.name'] = 'invoke_workflow' AND StatusCode = 'Error'
GROUP BY time, workflow ORDER BY time""", fmt="time_series", w=12, columns=["time", "workflow", "failed"])
    b.panel("Most expensive workflow runs", "table", """
SELECT TraceId, start, workflow, tenant, flow, calls, total_tokens, cost_usd
FROM otel.genai_traces(from_ts = $__fromTime, to_ts = $__toTime)
WHERE workflow != '' AND """ + TENANT_FILTER + """
ORDER BY cost_usd DESC LIMIT 20""", w=24, columns=["TraceId", "start", "workflow", "tenant", "flow", "calls", "total_tokens", "cost_usd"])
    return b


def latency() -> Board:
    b = Board("genai-latency", "GenAI / Latency and errors", ["latency", "errors"])
    b.panel("Latency per model (p50 / p90 / p99)", "table", f"""
SELECT model, count() AS calls, round(quantile(0.5)(duration_ms)) AS p50_ms, round(quantile(0.9)(duration_ms)) AS p90_ms,
       round(quantile(0.99)(duration_ms)) AS p99_ms
{CALLS} GROUP BY model ORDER BY p99_ms DESC""", w=12, columns=["model", "calls", "p50_ms", "p90_ms", "p99_ms"])
    b.panel("p99 latency per model over time", "timeseries", f"""
SELECT $__timeInterval(Timestamp) AS time, model, quantile(0.99)(duration_ms) AS p99_ms
{CALLS} GROUP BY time, model ORDER BY time""", fmt="time_series", w=12, columns=["time", "model", "p99_ms"], unit="ms")
    b.panel("Time to first chunk (streaming)", "table", f"""
SELECT model, count() AS streams, round(quantile(0.5)(time_to_first_chunk_ms)) AS p50_ttfc_ms,
       round(quantile(0.95)(time_to_first_chunk_ms)) AS p95_ttfc_ms
{CALLS} AND streaming AND time_to_first_chunk_ms IS NOT NULL GROUP BY model ORDER BY streams DESC""",
            w=12, columns=["model", "streams", "p50_ttfc_ms", "p95_ttfc_ms"])
    b.panel("Errors by provider and type", "barchart", f"""
SELECT provider, error_type, count() AS errors {CALLS} AND is_error
GROUP BY provider, error_type ORDER BY errors DESC""", w=12, columns=["provider", "error_type", "errors"])
    b.panel("Error rate by provider", "timeseries", f"""
SELECT $__timeInterval(Timestamp) AS time, provider, round(100 * countIf(is_error) / count(), 2) AS error_rate_pct
{CALLS} GROUP BY time, provider ORDER BY time""", fmt="time_series", w=12, columns=["time", "provider", "error_rate_pct"], unit="percent")
    b.panel("Recent errors", "table", f"""
SELECT Timestamp, TraceId, provider, model, agent, error_type, status_message
{CALLS} AND is_error ORDER BY Timestamp DESC LIMIT 50""", w=12,
            columns=["Timestamp", "TraceId", "provider", "model", "agent", "error_type", "status_message"])
    b.panel("Failed GenAI operations and the exceptions reported for them", "table", f"""
SELECT Timestamp, TraceId, operation, provider, model, agent, error_type, exceptions, exception_type, exception_message
FROM otel.genai_errors WHERE $__timeFilter(Timestamp) AND {FILTER} ORDER BY Timestamp DESC LIMIT 50""", w=24,
            columns=["Timestamp", "TraceId", "operation", "provider", "model", "agent", "error_type", "exceptions",
                     "exception_type", "exception_message"])
    b.panel("p99 latency per model (Prometheus, semconv histogram)", "timeseries", None, w=24, unit="s",
            expr="histogram_quantile(0.99, sum by (gen_ai_request_model, le) "
                 "(rate(gen_ai_client_operation_duration_seconds_bucket[5m])))")
    return b


def usage() -> Board:
    b = Board("genai-usage", "GenAI / Tokens and cache", ["tokens", "cache"])
    b.panel("Token usage by model", "timeseries", f"""
SELECT $__timeInterval(Timestamp) AS time, model, sum(total_tokens) AS tokens
{CALLS} GROUP BY time, model ORDER BY time""", fmt="time_series", w=24, columns=["time", "model", "tokens"])
    b.panel("Cache hit ratio (cache-read share of input tokens)", "gauge", f"""
SELECT sum(cache_read_input_tokens) / nullIf(sum(input_tokens), 0) AS cache_hit_ratio {DAILY}""",
            w=8, columns=["cache_hit_ratio"], unit="percentunit")
    b.panel("Cache hit ratio by model", "table", f"""
SELECT model, sum(cache_read_input_tokens) AS cache_read_tokens, sum(cache_creation_input_tokens) AS cache_creation_tokens,
       sum(input_tokens) AS input_tokens, cache_read_tokens / nullIf(input_tokens, 0) AS cache_hit_ratio
{DAILY} GROUP BY model ORDER BY input_tokens DESC""", w=16,
            columns=["model", "cache_read_tokens", "cache_creation_tokens", "input_tokens", "cache_hit_ratio"])
    b.panel("Tokens by type", "piechart", f"""
SELECT sum(input_tokens - cache_read_input_tokens - cache_creation_input_tokens) AS uncached_input,
       sum(cache_read_input_tokens) AS cache_read, sum(cache_creation_input_tokens) AS cache_creation,
       sum(output_tokens - reasoning_output_tokens) AS output, sum(reasoning_output_tokens) AS reasoning {DAILY}""",
            w=8, columns=["uncached_input", "cache_read", "cache_creation", "output", "reasoning"])
    b.panel("Tokens per day by model", "barchart", f"""
SELECT toString(day) AS date, model, sum(input_tokens + output_tokens) AS tokens {DAILY} GROUP BY date, model ORDER BY date""",
            w=16, columns=["date", "model", "tokens"])
    return b


def collector_health() -> Board:
    b = Board("genai-collector", "GenAI / Collector health", ["collector"])
    for title, expr in (
        ("Spans received /s", "sum by (instance) (rate(otelcol_receiver_accepted_spans_total[1m]))"),
        ("Spans refused /s", "sum by (instance, reason) (rate(otelcol_receiver_refused_spans_total[1m]))"),
        ("Spans exported /s", "sum by (instance, exporter) (rate(otelcol_exporter_sent_spans_total[1m]))"),
        ("Spans failed /s", "sum by (instance, exporter) (rate(otelcol_exporter_send_failed_spans_total[1m]))"),
        ("Queue size (requests)", "max by (instance, exporter) (otelcol_exporter_queue_size)"),
        ("Queue fill", "max by (instance, exporter) (otelcol_exporter_queue_bytes / otelcol_exporter_queue_capacity_bytes)"),
    ):
        b.panel(title, "timeseries", None, w=12, expr=expr)
    return b


# Scores (issue 13): `genai_scores` rows, the evaluated call's model and agent when the score is on
# an inference span (llm-judge scores usually are), else the trace's first call's.
SCORES = f"""FROM otel.genai_scores AS s
LEFT JOIN (SELECT TraceId, SpanId, model, agent FROM otel.genai_calls WHERE $__timeFilter(Timestamp)) AS c
    ON s.TraceId = c.TraceId AND s.SpanId = c.SpanId
LEFT JOIN (SELECT TraceId, argMin(model, Timestamp) AS model, argMin(agent, Timestamp) AS agent
           FROM otel.genai_calls WHERE $__timeFilter(Timestamp) GROUP BY TraceId) AS t ON s.TraceId = t.TraceId
WHERE $__timeFilter(s.Timestamp) AND (s.tenant IN (${{tenant:singlequote}}) OR '__all__' IN (${{tenant:singlequote}}))"""
SCORED = "if(c.model != '', c.model, t.model) AS model, if(c.agent != '', c.agent, t.agent) AS agent"
SCORE_FILTER = ("(model IN (${model:singlequote}) OR '__all__' IN (${model:singlequote})) AND "
                "(agent IN (${agent:singlequote}) OR '__all__' IN (${agent:singlequote}))")


def scores() -> Board:
    b = Board("genai-scores", "GenAI / Scores and evaluations", ["scores", "quality"])
    b.panel("Scores recorded", "stat", f"SELECT count() AS scores {SCORES}", w=6, h=5, columns=["scores"])
    b.panel("Thumbs-up rate (user feedback)", "stat", f"""
SELECT avgIf(s.value, s.value_type = 'boolean' AND s.source = 'user-feedback') AS thumbs_up_rate {SCORES}""",
            w=6, h=5, columns=["thumbs_up_rate"], unit="percentunit")
    b.panel("Scores by source", "piechart", f"SELECT s.source AS source, count() AS scores {SCORES} GROUP BY source",
            w=6, h=5, columns=["source", "scores"])
    b.panel("Categorical labels", "barchart", f"""
SELECT s.label AS label, count() AS scores {SCORES} AND s.value_type = 'categorical' GROUP BY label ORDER BY scores DESC""",
            w=6, h=5, columns=["label", "scores"])
    b.panel("Average score by agent and model over time", "timeseries", f"""
SELECT $__timeInterval(s.Timestamp) AS time, concat(s.name, ' / ', if(agent != '', agent, '(no agent)'), ' / ', model) AS series, avg(s.value) AS avg_score
FROM (SELECT s.Timestamp, s.name, s.value, {SCORED} {SCORES} AND s.value IS NOT NULL) AS s
WHERE {SCORE_FILTER} GROUP BY time, series ORDER BY time""", fmt="time_series", w=24,
            columns=["time", "series", "avg_score"])
    b.panel("Score distribution per agent and model", "table", f"""
SELECT name, agent, model, count() AS scores, round(avg(value), 3) AS avg_score, min(value) AS min_score,
       round(quantile(0.1)(value), 3) AS p10_score, round(quantile(0.5)(value), 3) AS median_score
FROM (SELECT s.name AS name, s.value AS value, {SCORED} {SCORES} AND s.value IS NOT NULL)
WHERE {SCORE_FILTER} GROUP BY name, agent, model ORDER BY name, avg_score""", w=24,
            columns=["name", "agent", "model", "scores", "avg_score", "min_score", "p10_score", "median_score"])
    b.panel("Worst-scored traces (5 lowest per score name)", "table", f"""
SELECT name, TraceId, score, label, source, agent, model, explanation, Timestamp
FROM (SELECT s.name AS name, s.TraceId AS TraceId, s.value AS score, s.label AS label, s.source AS source,
             s.explanation AS explanation, s.Timestamp AS Timestamp, {SCORED} {SCORES} AND s.value IS NOT NULL)
WHERE {SCORE_FILTER}
ORDER BY name, score, Timestamp DESC
LIMIT 5 BY name""", w=24, h=10,
            columns=["name", "TraceId", "score", "label", "source", "agent", "model", "explanation", "Timestamp"])
    return b


# Conversations and users (issue 13): per-trace rows of `genai_session_traces` in the time range.
SESSION_TRACES = f"FROM otel.genai_session_traces WHERE $__timeFilter(start) AND {TENANT_FILTER}"
# The same rows for a query that aggregates a column into an alias of the same name (`any(tenant) AS tenant`).
SESSION_ROWS = f"FROM (SELECT * {SESSION_TRACES}) WHERE 1"


def sessions() -> Board:
    b = Board("genai-sessions", "GenAI / Conversations and users", ["sessions", "users", "cost"])
    b.panel("Conversations", "stat", f"SELECT uniqExactIf(conversation_id, conversation_id != '') AS conversations {SESSION_TRACES}",
            w=6, h=5, columns=["conversations"])
    b.panel("Turns per conversation (average)", "stat", f"""
SELECT countIf(conversation_id != '') / nullIf(uniqExactIf(conversation_id, conversation_id != ''), 0) AS turns_per_conversation
{SESSION_TRACES}""", w=6, h=5, columns=["turns_per_conversation"])
    b.panel("Users", "stat", f"SELECT uniqExactIf(user_id, user_id != '') AS users {SESSION_TRACES}", w=6, h=5, columns=["users"])
    b.panel("Cost per conversation (average)", "stat", f"""
SELECT sumIf(cost_usd, conversation_id != '') / nullIf(uniqExactIf(conversation_id, conversation_id != ''), 0) AS cost_per_conversation
{SESSION_TRACES}""", w=6, h=5, columns=["cost_per_conversation"], unit="currencyUSD")
    b.panel("Cost per user", "barchart", f"""
SELECT user_id, sum(cost_usd) AS cost_usd {SESSION_TRACES} AND user_id != '' GROUP BY user_id ORDER BY cost_usd DESC LIMIT 20""",
            w=12, columns=["user_id", "cost_usd"], unit="currencyUSD")
    b.panel("Usage per user", "table", f"""
SELECT user_id, any(tenant) AS tenant, uniqExactIf(conversation_id, conversation_id != '') AS conversations,
       count() AS traces, sum(calls) AS calls, sum(total_tokens) AS tokens, round(sum(cost_usd), 4) AS cost_usd,
       sum(errors) AS errors, round(avg(avg_score), 3) AS avg_score
{SESSION_ROWS} AND user_id != '' GROUP BY user_id ORDER BY cost_usd DESC LIMIT 100""", w=12,
            columns=["user_id", "tenant", "conversations", "traces", "calls", "tokens", "cost_usd", "errors", "avg_score"])
    b.panel("Cost per user over time (top 10 users)", "timeseries", f"""
SELECT $__timeInterval(start) AS time, user_id, sum(cost_usd) AS cost_usd {SESSION_TRACES}
  AND user_id IN (SELECT user_id {SESSION_TRACES} AND user_id != '' GROUP BY user_id ORDER BY sum(cost_usd) DESC LIMIT 10)
GROUP BY time, user_id ORDER BY time""", fmt="time_series", w=24, columns=["time", "user_id", "cost_usd"], unit="currencyUSD")
    b.panel("Conversations (newest first)", "table", f"""
SELECT conversation_id, any(user_id) AS user_id, any(tenant) AS tenant, count() AS turns, min(start) AS first_turn,
       max(end) AS last_turn, sum(errors) AS errors, sum(total_tokens) AS tokens, round(sum(cost_usd), 4) AS cost_usd,
       sum(ifNull(scores, 0)) AS scores, round(avg(avg_score), 3) AS avg_score
{SESSION_ROWS} AND conversation_id != '' GROUP BY conversation_id ORDER BY last_turn DESC LIMIT 100""", w=24,
            columns=["conversation_id", "user_id", "tenant", "turns", "first_turn", "last_turn", "errors", "tokens",
                     "cost_usd", "scores", "avg_score"])
    b.panel("Conversation view: every turn, in order", "table", f"""
SELECT conversation_id, turn, TraceId, start, root_span, calls, errors, total_tokens,
       round(cost_usd, 5) AS cost_usd, ifNull(scores, 0) AS scores, round(avg_score, 3) AS avg_score
FROM otel.genai_conversation_traces
WHERE conversation_id IN (SELECT conversation_id {SESSION_TRACES} AND conversation_id != ''
                          GROUP BY conversation_id ORDER BY max(end) DESC LIMIT 20)
ORDER BY conversation_id, turn""", w=24, h=12,
            columns=["conversation_id", "turn", "TraceId", "start", "root_span", "calls", "errors", "total_tokens",
                     "cost_usd", "scores", "avg_score"])
    return b


BOARDS = [cost, agents, workflows, latency, usage, collector_health, scores, sessions]


def main() -> None:
    out = Path(__file__).parent / "dashboards"
    out.mkdir(exist_ok=True)
    for build in BOARDS:
        board = build()
        (out / f"{board.uid}.json").write_text(json.dumps(board.json(), indent=2) + "\n")
        print(f"wrote {out / board.uid}.json ({len(board.panels)} panels)")


if __name__ == "__main__":
    main()
