"""Scores, conversations and users: views over `otel_logs` and `otel_traces`, created with the schema.

    genai_scores                 VIEW  one row per evaluation result (`gen_ai.evaluation.result`):
                                       log events in otel_logs and span events in otel_traces,
                                       typed: name, value, label, value_type, explanation, source,
                                       the evaluated TraceId/SpanId (a score that names only a
                                       `gen_ai.response.id` is resolved to that response's span)
    genai_session_traces         VIEW  one row per trace: conversation, user, tenant, start/end,
                                       calls, tokens, cost, errors, and its scores
    genai_conversation_traces    VIEW  the traces of each conversation, in order: `turn` 1, 2, ...
    genai_conversations          VIEW  per conversation: turns, cost, tokens, errors, scores
    genai_users                  VIEW  per user (`user.id`, else `enduser.id`): cost and usage
    genai_exceptions             VIEW  one row per reported exception: `gen_ai.client.operation.exception`
                                       log records (how current GenAI instrumentations report a
                                       provider error) and, still read, the deprecated `exception`
                                       span events of GenAI spans; typed, with the TraceId/SpanId
                                       of the operation that failed and `origin` log | span_event
    genai_errors                 VIEW  one row per failed GenAI span, next to its exceptions: operation,
                                       model, provider, agent, conversation, `error_type`, status
                                       message, and the number, latest type and message of the
                                       exceptions reported for it (joined by TraceId and SpanId)

Scores are resolved when read, never when written: a score stored before the span it evaluates
(feedback on a trace still in a batch, a response id whose span is late) joins as soon as the span
lands. A trace belongs to a conversation / user when any of its spans carries the id (baggage puts
them on every span started inside `instrumentation.context(...)`); the totals of a trace whose
spans arrive in several batches are summed when read.

`genai_session_traces` reads the per-trace totals (`genai_trace_totals`, genai_views.py) instead
of every span. With `cluster_name` the views read the Distributed tables (`{logs}_dist`,
`{traces}_dist`, `genai_trace_totals`).
"""

from __future__ import annotations

import semconv
from collector.storage import genai_views
from collector.storage.schema import SchemaOptions, distributed_names, logs_distributed_name, quote_ident

EVENT = semconv.GEN_AI_EVALUATION_RESULT_EVENT
VIEWS = ("genai_scores", "genai_session_traces", "genai_conversation_traces", "genai_conversations", "genai_users",
         "genai_exceptions", "genai_errors")
EXCEPTION_EVENT = semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT


def _typed_score(attrs: str) -> str:
    """The typed columns of one evaluation result read from the attribute map `attrs`. A boolean
    score is the value 1/0 with the label `true`/`false` (the convention's value is a double), or
    from a producer that sends an OTLP bool, the value `true`/`false` (stored as text)."""
    raw = f"{attrs}['{semconv.GEN_AI_EVALUATION_SCORE_VALUE}']"
    label = f"{attrs}['{semconv.GEN_AI_EVALUATION_SCORE_LABEL}']"
    return f"""
    {attrs}['{semconv.GEN_AI_EVALUATION_NAME}'] AS name,
    multiIf({raw} = 'true', 1., {raw} = 'false', 0., toFloat64OrNull({raw})) AS value,
    {label} AS label,
    multiIf({raw} IN ('true', 'false') OR ({label} IN ('true', 'false') AND value IN (0, 1)), 'boolean',
            value IS NOT NULL, 'numeric', {label} != '', 'categorical', 'none') AS value_type,
    {attrs}['{semconv.GEN_AI_EVALUATION_EXPLANATION}'] AS explanation,
    {attrs}['{semconv.EVALUATION_SOURCE}'] AS source,
    {attrs}['{semconv.GEN_AI_RESPONSE_ID}'] AS response_id"""


_TENANT = genai_views.TENANT
# A log record's tenant: its own attribute, else its resource's (a tenant-bound token stamps both).
# sqlquery filters otel_logs by it for a tenant's reader.
LOGS_TENANT_EXPR = f"if(LogAttributes['{_TENANT}'] != '', LogAttributes['{_TENANT}'], ResourceAttributes['{_TENANT}'])"

# Log events: TraceId/SpanId of the record, or, when the record names only a response id, the
# span whose `gen_ai.response.id` it is (looked up among spans with that id only), of the record's
# own tenant: response ids are the provider's, not unique across tenants, so a tenant's feedback
# never lands on another tenant's trace. A record with no tenant (a deployment without
# tenant-bound tokens) takes the span whatever its tenant.
_SCORES_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_scores {cluster} AS
SELECT
    Timestamp, TraceId, SpanId, name, value, label, value_type, explanation, source, response_id,
    tenant, ServiceName, origin
FROM
(
    SELECT
        l.Timestamp AS Timestamp,
        if(l.TraceId != '', l.TraceId, arrayFirst(o -> l.tenant = '' OR o.1 = l.tenant, r.owners).2) AS TraceId,
        if(l.SpanId != '', l.SpanId, arrayFirst(o -> l.tenant = '' OR o.1 = l.tenant, r.owners).3) AS SpanId,
        l.name AS name, l.value AS value, l.label AS label, l.value_type AS value_type,
        l.explanation AS explanation, l.source AS source, l.response_id AS response_id,
        l.tenant AS tenant, l.ServiceName AS ServiceName, 'log' AS origin
    FROM
    (
        SELECT Timestamp, TraceId, SpanId, ServiceName,{log_score},
            {logs_tenant} AS tenant
        FROM {db}.{logs}
        WHERE EventName = '{event}' OR LogAttributes['{event_attr}'] = '{event}'
    ) AS l
    LEFT JOIN
    (
        SELECT SpanAttributes['{response_id}'] AS response_id,
            groupArray(({tenant_expr}, TraceId, SpanId)) AS owners
        FROM {db}.{traces}
        WHERE SpanAttributes['{response_id}'] IN (
            SELECT LogAttributes['{response_id}'] FROM {db}.{logs}
            WHERE (EventName = '{event}' OR LogAttributes['{event_attr}'] = '{event}')
              AND SpanId = '' AND LogAttributes['{response_id}'] != '')
        GROUP BY response_id
    ) AS r ON l.response_id = r.response_id AND l.SpanId = '' AND l.response_id != ''
    UNION ALL
    SELECT
        event_ts AS Timestamp, TraceId, SpanId,{event_score},
        if(event_attrs['{tenant}'] != '', event_attrs['{tenant}'],
           if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}'])) AS tenant,
        ServiceName, 'span_event' AS origin
    FROM {db}.{traces}
    ARRAY JOIN Events.Name AS event_name, Events.Timestamp AS event_ts, Events.Attributes AS event_attrs
    WHERE has(Events.Name, '{event}') AND event_name = '{event}'
)
"""

# A trace's conversation and start from its rows of the per-trace totals: genai_session_traces' and
# the turn numbering of genai_conversation_traces'.
_TRACE_CONVERSATION = "max(trace_conversation)"
_TRACE_START = "min(first_ts)"

# One row per trace, from the per-trace totals (one row per trace and inserted block until merged).
# `scores_*` summarise the trace's scores (numeric and boolean values averaged). A trace belongs to
# a conversation / user / tenant when any of its spans says so (the largest id if two differ).
_SESSION_TRACES_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_session_traces {cluster} AS
SELECT t.*, s.scores AS scores, s.avg_score AS avg_score, s.min_score AS min_score, s.score_list AS score_list
FROM
(
    SELECT
        TraceId,
        {trace_conversation} AS conversation_id,
        max(trace_user) AS user_id,
        max(tenant) AS tenant,
        {trace_start} AS start,
        max(last_ts) AS end,
        dateDiff('millisecond', start, end) AS duration_ms,
        tupleElement(min(root), 2) AS root_span,
        tupleElement(min(root), 3) AS service,
        sum(span_count) AS spans,
        sum(call_count) AS calls,
        sum(error_count) AS errors,
        sum(input) AS input_tokens,
        sum(output) AS output_tokens,
        input_tokens + output_tokens AS total_tokens,
        sum(cost) AS cost_usd,
        groupUniqArrayArray(agent_names) AS agents,
        groupUniqArrayArray(model_names) AS models
    FROM {db}.{totals}
    GROUP BY TraceId
) AS t
LEFT JOIN
(
    SELECT TraceId, count() AS scores, avgIf(value, value IS NOT NULL) AS avg_score,
           minIf(value, value IS NOT NULL) AS min_score,
           groupArray((name, value, label, source)) AS score_list
    FROM {db}.genai_scores
    GROUP BY TraceId
) AS s ON t.TraceId = s.TraceId
SETTINGS join_use_nulls = 1
"""

# The turns are numbered over two narrow columns and joined back: a window over every column
# (scores, agents, models) sorted the whole rows of every conversation, 0.8-1.2 s for one
# conversation on 10M spans against 0.3 s this way. Each conversation's (start, trace) pairs are
# sorted as one array, the order `ORDER BY start, TraceId` gives, instead of a window sorting every
# row of every conversation (10M-span bench, all conversations: 0.33 -> 0.26 s). The pairs come
# from the totals with genai_session_traces' own expressions, not from that view, whose scores join
# they do not need (the view, 10M-span bench: 741-890 -> 693-789 ms). Joined on the conversation
# too, so a filter on it reaches both sides.
_CONVERSATION_TRACES_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_conversation_traces {cluster} AS
SELECT conversation_id, n.turn AS turn, t.* EXCEPT (conversation_id)
FROM {db}.genai_session_traces AS t
INNER JOIN
(
    SELECT conversation_id, TraceId, turn
    FROM
    (
        SELECT conversation_id, arraySort(groupArray((start, TraceId))) AS in_order
        FROM
        (
            SELECT TraceId, {trace_conversation} AS conversation_id, {trace_start} AS start
            FROM {db}.{totals}
            GROUP BY TraceId
        )
        WHERE conversation_id != ''
        GROUP BY conversation_id
    )
    ARRAY JOIN tupleElement(in_order, 2) AS TraceId, arrayEnumerate(in_order) AS turn
) AS n USING (TraceId, conversation_id)
"""

_CONVERSATIONS_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_conversations {cluster} AS
SELECT
    conversation_id,
    anyIf(user_id, user_id != '') AS user_id,
    anyIf(tenant, tenant != '') AS tenant,
    min(start) AS first_turn,
    max(end) AS last_turn,
    count() AS turns,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(cost_usd) AS cost_usd,
    sum(ifNull(scores, 0)) AS scores,
    avgIf(avg_score, avg_score IS NOT NULL) AS avg_score,
    minIf(min_score, min_score IS NOT NULL) AS min_score,
    -- in start order: each conversation's array sorted, not every trace of every conversation
    arrayMap(t -> t.2, arraySort(groupArray((start, TraceId)))) AS traces
FROM {db}.genai_session_traces
WHERE conversation_id != ''
GROUP BY conversation_id
"""

_USERS_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_users {cluster} AS
SELECT
    user_id,
    anyIf(tenant, tenant != '') AS tenant,
    uniqExactIf(conversation_id, conversation_id != '') AS conversations,
    count() AS traces,
    sum(calls) AS calls,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(cost_usd) AS cost_usd,
    min(start) AS first_seen,
    max(end) AS last_seen,
    avgIf(avg_score, avg_score IS NOT NULL) AS avg_score
FROM {db}.genai_session_traces
WHERE user_id != ''
GROUP BY user_id
"""


# Exceptions: the log records of the current convention (the failed span's TraceId/SpanId on the
# record) and, from instrumentations that still write it, the `exception` span event of a GenAI span.
_EXCEPTIONS_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_exceptions {cluster} AS
SELECT
    Timestamp, TraceId, SpanId, exception_type, exception_message, exception_stacktrace, severity, origin,
    tenant, ServiceName
FROM
(
    SELECT
        Timestamp, TraceId, SpanId,
        LogAttributes['{exc_type}'] AS exception_type,
        LogAttributes['{exc_message}'] AS exception_message,
        LogAttributes['{exc_stacktrace}'] AS exception_stacktrace,
        toString(SeverityText) AS severity,
        'log' AS origin,
        {logs_tenant} AS tenant,
        ServiceName
    FROM {db}.{logs}
    WHERE EventName = '{exc_event}' OR LogAttributes['{event_attr}'] = '{exc_event}'
    UNION ALL
    SELECT
        event_ts AS Timestamp, TraceId, SpanId,
        event_attrs['{exc_type}'] AS exception_type,
        event_attrs['{exc_message}'] AS exception_message,
        event_attrs['{exc_stacktrace}'] AS exception_stacktrace,
        '' AS severity,
        'span_event' AS origin,
        if(SpanAttributes['{tenant}'] != '', SpanAttributes['{tenant}'], ResourceAttributes['{tenant}']) AS tenant,
        ServiceName
    FROM {db}.{traces}
    ARRAY JOIN Events.Name AS event_name, Events.Timestamp AS event_ts, Events.Attributes AS event_attrs
    WHERE has(Events.Name, '{span_event}') AND event_name = '{span_event}'
      AND SpanAttributes['{operation}'] != ''
)
"""

# Failed GenAI spans with the exceptions reported for them (none: 0 and empty strings).
_ERRORS_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_errors {cluster} AS
SELECT
    s.Timestamp AS Timestamp, s.TraceId AS TraceId, s.SpanId AS SpanId, s.ParentSpanId AS ParentSpanId,
    s.ServiceName AS ServiceName, s.SpanName AS SpanName, s.operation AS operation, s.tenant AS tenant,
    s.agent AS agent, s.provider AS provider, s.model AS model, s.conversation_id AS conversation_id,
    s.error_type AS error_type, s.status_message AS status_message, s.duration_ms AS duration_ms,
    e.exceptions AS exceptions, e.exception_type AS exception_type, e.exception_message AS exception_message,
    e.origins AS exception_origins
FROM
(
    SELECT
        Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName,
        SpanAttributes['{operation}'] AS operation,
        {tenant_expr} AS tenant,
        SpanAttributes['gen_ai.agent.name'] AS agent,
        SpanAttributes['gen_ai.provider.name'] AS provider,
        {model} AS model,
        {conversation} AS conversation_id,
        {error_type} AS error_type,
        StatusMessage AS status_message,
        Duration / 1e6 AS duration_ms
    FROM {db}.{traces}
    WHERE StatusCode = 'Error' AND SpanAttributes['{operation}'] != ''
) AS s
LEFT JOIN
(
    SELECT TraceId, SpanId, count() AS exceptions,
           argMax(exception_type, Timestamp) AS exception_type,
           argMax(exception_message, Timestamp) AS exception_message,
           groupUniqArray(origin) AS origins
    FROM {db}.genai_exceptions
    WHERE SpanId != ''
    GROUP BY TraceId, SpanId
) AS e ON s.TraceId = e.TraceId AND s.SpanId = e.SpanId
"""


def _fields(options: SchemaOptions) -> dict[str, str]:
    clustered = bool(options.cluster_name)
    base = genai_views._fields(options)
    traces = distributed_names(options)["traces"] if clustered else options.traces_table_name
    logs = logs_distributed_name(options) if clustered else options.logs_table_name
    return dict(
        db=base["db"], cluster=base["cluster"], traces=quote_ident(traces), logs=quote_ident(logs),
        event=EVENT, event_attr=semconv.EVENT_NAME_ATTRIBUTE, tenant=_TENANT, logs_tenant=LOGS_TENANT_EXPR,
        response_id=semconv.GEN_AI_RESPONSE_ID,
        log_score=_typed_score("LogAttributes"), event_score=_typed_score("event_attrs"),
        totals=quote_ident(genai_views.names(options)["totals"]),
        trace_conversation=_TRACE_CONVERSATION, trace_start=_TRACE_START,
        conversation=genai_views.CONVERSATION_EXPR, user=genai_views.USER_EXPR,
        tenant_expr=base["tenant"], is_call=base["is_call"], input=base["input"], output=base["output"],
        model=base["model"], error_type=base["error_type"], operation=semconv.GEN_AI_OPERATION_NAME,
        exc_event=EXCEPTION_EVENT, span_event=semconv.EXCEPTION_SPAN_EVENT, exc_type=semconv.EXCEPTION_TYPE,
        exc_message=semconv.EXCEPTION_MESSAGE, exc_stacktrace=semconv.EXCEPTION_STACKTRACE,
    )


def statements(options: SchemaOptions) -> list[str]:
    """CREATE OR REPLACE VIEW statements, in dependency order (after schema.py's tables and the GenAI
    tables and views, genai_views.py, whose per-trace totals `genai_session_traces` reads)."""
    fields = _fields(options)
    return [template.format(**fields).strip() for template in
            (_SCORES_VIEW, _SESSION_TRACES_VIEW, _CONVERSATION_TRACES_VIEW, _CONVERSATIONS_VIEW, _USERS_VIEW,
             _EXCEPTIONS_VIEW, _ERRORS_VIEW)]


def create(store, options: SchemaOptions) -> None:
    """The views, after what they read: the GenAI tables (a logs-only pipeline creates them here)."""
    genai_views.create(store, options)
    for statement in statements(options):
        store.command(statement)
