"""GenAI views on top of `otel_traces` (never a fork of it), created with the schema.

Everything here reads the contrib `otel_traces` table; three tables are derived from it as spans
are inserted, each by a materialized view: the calls, the per-trace totals, and the daily rollup.

    genai_calls                     TABLE  one row per call: inference (chat, text_completion,
                                           generate_content, embeddings) and `plan` spans that
                                           report token usage themselves, each under its own
                                           `operation`, typed: tenant, agent, model, every token
                                           count, cost and its breakdown, `error_type`, ...
                                           (sql/genai_calls_table.sql; a VIEW before 2026-12-07:
                                           `create()` replaces it and fills the table)
    genai_calls_mv                  MV     otel_traces -> genai_calls
    genai_trace_totals              TABLE  per trace, tenant and inserted block: conversation,
                                           user, first/last time, root span, counts, tokens, cost,
                                           agents, models, the span tree and its containers
                                           (sql/genai_trace_totals_table.sql), merged when read:
                                           genai_session_traces and genai_subtree_costs read it,
                                           genai_traces for the traces wholly inside its range
    genai_trace_totals_mv           MV     otel_traces -> genai_trace_totals
    genai_agent_tasks               VIEW   one row per task span: what `agent_task_history` held
    genai_traces(from_ts, to_ts)    VIEW   cost, tokens, calls, errors per trace (parameterized)
    genai_subtree_costs(from_ts, to_ts)
                                    VIEW   per agent / task / workflow / plan span: the cost of
                                           the calls beneath it (parameterized)
    genai_daily                     TABLE  daily rollup per tenant, agent, provider, model, flow
    genai_daily_mv                  MV     otel_traces -> genai_daily

No double counting:
* `genai_cost` puts `gen_ai.usage.cost_usd` on inference spans only, and marks a framework span
  that wraps the provider SDK's span `delegated` (the inner one carries the cost). Every view
  here leaves `delegated` spans out, so tokens are not counted twice either.
* Subtree costs sum the inference calls *beneath* a span; a call under a nested agent counts
  for both agents' subtrees (that is what a subtree is) but once in `genai_calls.agent` (the
  nearest agent), so `sum(cost_usd) GROUP BY agent` over `genai_calls` adds up to the total.
* Replays: the exporter inserts each queued batch with an insert deduplication token and
  `deduplicate_blocks_in_dependent_materialized_views=1`; the rollup table keeps a deduplication
  window like `otel_traces`, so a replayed batch is dropped for the rollup as for the raw table.

Why the calls are a table: the contrib key `(ServiceName, SpanName, time)` cannot narrow a panel
that filters on a map value over every service, so a view over `otel_traces` read every span of the
panel's range; on 10M spans a 7-day panel took 1.2-1.5 s, on the table 20-40 ms (bench/README.md).
Stored spans changed afterwards (`genaitrace reprice`) reach it through the same rebuild as the
rollup's (collector/storage/rollups.py), and `genaitrace doctor costs` compares it with the spans.

With `cluster_name`, every statement runs `ON CLUSTER`; the rollup becomes `genai_daily_local`
(Replicated* when the traces table is) with a `Distributed` table named `genai_daily` over it (the
calls likewise: `genai_calls_local` and `genai_calls`), and
`{traces}_dist` (Distributed over `otel_traces`, created by schema.py) is what the views read, so
the same SQL works on one node and on a cluster.
"""

from __future__ import annotations

import semconv
from collector.storage import ddl
from collector.storage.schema import DEDUP_WINDOW, SchemaOptions, distributed_names, quote_ident, ttl_clause

INFERENCE_OPERATIONS = tuple(sorted(semconv.INFERENCE_OPERATIONS))
CONTAINER_OPERATIONS = semconv.CONTAINER_OPERATIONS


def attr_sql(name: str, column: str = "SpanAttributes") -> str:
    """The value of attribute `name` in a stored span, read under its current name and, for spans
    stored before a rename, under its earlier names (`semconv.read_order`): first non-empty wins,
    so a span carrying both spellings is never counted twice."""
    keys = semconv.read_order(name)
    if len(keys) == 1:
        return f"{column}['{name}']"
    return "coalesce(" + ", ".join(f"nullIf({column}['{key}'], '')" for key in keys) + ", '')"

# Attribute keys (instrumentation/baggage.py and the GenAI semantic conventions).
TENANT, ENGAGEMENT, FLOW, FEATURE = "tenant.id", "engagement.id", "flow.name", "feature.name"
TTFC = "gen_ai.response.time_to_first_chunk"  # seconds

_OPS_SQL = ", ".join(f"'{op}'" for op in INFERENCE_OPERATIONS)
_CONTAINERS_SQL = ", ".join(f"'{op}'" for op in CONTAINER_OPERATIONS)
# Operations whose spans are calls only when they report usage themselves (`plan`).
_USAGE_ONLY_SQL = ", ".join(f"'{op}'" for op in sorted(semconv.USAGE_OPERATIONS - semconv.INFERENCE_OPERATIONS))

# Calls that carry their own usage: inference spans, and plan spans with token counts (a `delegated`
# wrapper's usage is its inner span's). The same rule as processors.span_cost.is_call.
_IS_CALL = (
    f"(SpanAttributes['gen_ai.operation.name'] IN ({_OPS_SQL}) "
    f"OR (SpanAttributes['gen_ai.operation.name'] IN ({_USAGE_ONLY_SQL}) "
    f"AND ({attr_sql(semconv.GEN_AI_USAGE_INPUT_TOKENS)} != '' OR {attr_sql(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)} != ''))) "
    f"AND {attr_sql(semconv.COST_STATUS)} != 'delegated'"
)


def _u(key: str) -> str:
    return f"toUInt64OrZero({attr_sql(key)})"


# A failed span's error type: its `error.type` (genai_normalizer sets it on failed GenAI spans), else
# semconv's fallback `_OTHER`; '' for a span that did not fail.
ERROR_TYPE_EXPR = (f"if(StatusCode = 'Error', if(SpanAttributes['{semconv.ERROR_TYPE}'] != '', "
                   f"SpanAttributes['{semconv.ERROR_TYPE}'], '{semconv.ERROR_TYPE_OTHER}'), '')")

_TENANT_EXPR = f"if(SpanAttributes['{TENANT}'] != '', SpanAttributes['{TENANT}'], ResourceAttributes['{TENANT}'])"


def _first(columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """The first non-empty of `keys`, looked up in each map of `columns` in turn."""
    return "coalesce(" + ", ".join(f"nullIf({column}['{key}'], '')" for column in columns for key in keys) + ", '')"


# A span's own attribute (baggage, instrumentation.context) first, else its resource's: a process
# that serves one user or conversation (a batch job, a worker per session) can say so with
# OTEL_RESOURCE_ATTRIBUTES=user.id=...,gen_ai.conversation.id=... and no code.
_SPAN_THEN_RESOURCE = ("SpanAttributes", "ResourceAttributes")
CONVERSATION_EXPR = _first(_SPAN_THEN_RESOURCE, semconv.CONVERSATION_ID_READ_ORDER)
USER_EXPR = _first(_SPAN_THEN_RESOURCE, semconv.USER_ID_READ_ORDER)
_MODEL_EXPR = (
    "if(SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'], "
    "SpanAttributes['gen_ai.request.model'])"
)

# The calls table's rows for a set of spans: the materialized view runs it on every insert, a
# rebuild (collector/storage/rollups.py) over the stored spans of the days it replaces. Its columns
# are sql/genai_calls_table.sql's, in the same order.
_CALLS_SELECT = """
SELECT
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    ServiceName,
    SpanName,
    SpanAttributes['gen_ai.operation.name'] AS operation,
    {tenant} AS tenant,
    SpanAttributes['{engagement}'] AS engagement,
    SpanAttributes['{flow}'] AS flow,
    SpanAttributes['{feature}'] AS feature,
    SpanAttributes['gen_ai.agent.name'] AS agent,
    SpanAttributes['gen_ai.workflow.name'] AS workflow,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    SpanAttributes['gen_ai.request.model'] AS request_model,
    SpanAttributes['gen_ai.response.model'] AS response_model,
    {model} AS model,
    {input} AS input_tokens,
    {output} AS output_tokens,
    {cache_read} AS cache_read_input_tokens,
    {cache_creation} AS cache_creation_input_tokens,
    {reasoning} AS reasoning_output_tokens,
    input_tokens + output_tokens AS total_tokens,
    toFloat64OrNull({cost_usd}) AS cost_usd,
    toFloat64OrZero({cost_input_usd}) AS cost_input_usd,
    toFloat64OrZero({cost_cache_read_usd}) AS cost_cache_read_usd,
    toFloat64OrZero({cost_cache_creation_usd}) AS cost_cache_creation_usd,
    toFloat64OrZero({cost_output_usd}) AS cost_output_usd,
    toFloat64OrZero({cost_reasoning_usd}) AS cost_reasoning_usd,
    {cost_status} AS cost_status,
    cost_status = 'priced' AS priced,
    {cost_unpriced_reason} AS unpriced_reason,
    {estimated} AS usage_estimated,
    StatusCode AS status,
    StatusCode = 'Error' AS is_error,
    {error_type} AS error_type,
    StatusMessage AS status_message,
    Duration / 1e6 AS duration_ms,
    SpanAttributes['gen_ai.request.stream'] = 'true' AS streaming,
    toFloat64OrNull(SpanAttributes['{ttfc}']) * 1000 AS time_to_first_chunk_ms
FROM {db}.{calls_source}
WHERE {is_call}{calls_filter}
"""

_TASKS_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_agent_tasks {cluster} AS
SELECT
    if(SpanAttributes['crewai.task.id'] != '', SpanAttributes['crewai.task.id'], SpanId) AS task_id,
    TraceId,
    SpanId,
    ParentSpanId,
    ServiceName,
    if(SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'], SpanAttributes['crewai.task.agent']) AS agent,
    if(SpanAttributes['gen_ai.task.name'] != '', SpanAttributes['gen_ai.task.name'], replaceRegexpOne(SpanName, '^task ?', '')) AS task,
    multiIf(StatusCode = 'Error', 'failed', 'completed') AS status,
    Timestamp AS started,
    Timestamp + toIntervalNanosecond(Duration) AS completed,
    Duration / 1e6 AS duration_ms,
    {tenant} AS tenant,
    SpanAttributes['{engagement}'] AS engagement,
    SpanAttributes['{flow}'] AS flow,
    SpanAttributes['{feature}'] AS feature,
    SpanAttributes['gen_ai.workflow.name'] AS workflow,
    {error_type} AS error_type,
    StatusMessage AS error_message
FROM {db}.{source}
WHERE SpanAttributes['gen_ai.operation.name'] = 'task'
"""

# Per trace, over the spans inside a time range. A parameterized view so the range reaches the scan
# (a filter on an aggregate could not be pushed down):
#     SELECT * FROM genai_traces(from_ts = now() - INTERVAL 7 DAY, to_ts = now())
# A trace whose spans all lie inside the range is read from its per-trace totals (one row per trace
# and block); only a trace that straddles an end of the range (still running at `to_ts`, begun
# before `from_ts`) is summed from its spans inside the range, as before: the same answer, without
# reading every span of the range.
_TRACES_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_traces {cluster} AS
WITH touching AS
(
    SELECT TraceId, min(first_ts) AS t_first, max(last_start) AS t_last
    FROM {db}.{totals}
    WHERE TraceId IN (SELECT TraceId FROM {db}.{totals}
                      WHERE first_ts < {{to_ts:DateTime64(9)}} AND last_start >= {{from_ts:DateTime64(9)}})
    GROUP BY TraceId
)
SELECT
    TraceId,
    min(first_ts) AS start,
    max(last_ts) AS end,
    dateDiff('millisecond', start, end) AS duration_ms,
    tupleElement(min(root), 2) AS root_span,
    tupleElement(min(root), 3) AS service,
    max(tenant) AS tenant,
    max(trace_engagement) AS engagement,
    max(trace_flow) AS flow,
    max(trace_feature) AS feature,
    max(trace_workflow) AS workflow,
    sum(span_count) AS spans,
    sum(call_count) AS calls,
    sum(error_count) AS errors,
    sum(input) AS input_tokens,
    sum(output) AS output_tokens,
    input_tokens + output_tokens AS total_tokens,
    sum(cost) AS cost_usd,
    sum(estimated_cost) AS estimated_cost_usd,
    sum(unpriced_count) AS unpriced_calls,
    groupUniqArrayArray(agent_names) AS agents,
    groupUniqArrayArray(model_names) AS models
FROM {db}.{totals}
WHERE TraceId IN (SELECT TraceId FROM touching
                  WHERE t_first >= {{from_ts:DateTime64(9)}} AND t_last < {{to_ts:DateTime64(9)}})
GROUP BY TraceId
UNION ALL
SELECT
    TraceId,
    min(Timestamp) AS start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS end,
    dateDiff('millisecond', start, end) AS duration_ms,
    tupleElement({root}, 2) AS root_span,
    tupleElement({root}, 3) AS service,
    anyIf({tenant}, {tenant} != '') AS tenant,
    anyIf(SpanAttributes['{engagement}'], SpanAttributes['{engagement}'] != '') AS engagement,
    anyIf(SpanAttributes['{flow}'], SpanAttributes['{flow}'] != '') AS flow,
    anyIf(SpanAttributes['{feature}'], SpanAttributes['{feature}'] != '') AS feature,
    anyIf(SpanAttributes['gen_ai.workflow.name'], SpanAttributes['gen_ai.workflow.name'] != '') AS workflow,
    count() AS spans,
    countIf({is_call}) AS calls,
    countIf(StatusCode = 'Error') AS errors,
    sumIf({input}, {is_call}) AS input_tokens,
    sumIf({output}, {is_call}) AS output_tokens,
    input_tokens + output_tokens AS total_tokens,
    sumIf(toFloat64OrZero({cost_usd}), {is_call}) AS cost_usd,
    sumIf(toFloat64OrZero({cost_usd}), {is_call} AND {estimated}) AS estimated_cost_usd,
    countIf({is_call} AND {cost_status} = 'unpriced') AS unpriced_calls,
    groupUniqArrayIf(SpanAttributes['gen_ai.agent.name'], SpanAttributes['gen_ai.agent.name'] != '') AS agents,
    groupUniqArrayIf({model}, {is_call}) AS models
FROM {db}.{source}
WHERE Timestamp >= {{from_ts:DateTime64(9)}} AND Timestamp < {{to_ts:DateTime64(9)}}
  AND TraceId IN (SELECT TraceId FROM touching
                  WHERE NOT (t_first >= {{from_ts:DateTime64(9)}} AND t_last < {{to_ts:DateTime64(9)}}))
GROUP BY TraceId
"""

# The per-trace totals of a set of spans, grouped by trace and tenant: the materialized view runs it
# on each inserted block, a rebuild (rollups.rebuild_days) over the stored spans of the traces it
# replaces. Its columns are sql/genai_trace_totals_table.sql's; each total is what _TRACES_VIEW's
# span branch computes, so a trace reads the same from either; `tree`, `containers` and
# `call_leaves` (each call as the calls table has it: cost_usd, tokens, cost_status, is_error) are
# what _SUBTREE_VIEW walks and sums.
_TOTALS_SELECT = """
SELECT
    TraceId,
    max({conversation}) AS trace_conversation,
    max({user}) AS trace_user,
    {tenant} AS tenant,
    max(SpanAttributes['{engagement}']) AS trace_engagement,
    max(SpanAttributes['{flow}']) AS trace_flow,
    max(SpanAttributes['{feature}']) AS trace_feature,
    max(SpanAttributes['gen_ai.workflow.name']) AS trace_workflow,
    min(Timestamp) AS first_ts,
    max(Timestamp) AS last_start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS last_ts,
    {root} AS root,
    toUInt64(count()) AS span_count,
    toUInt64(countIf({is_call})) AS call_count,
    toUInt64(countIf(StatusCode = 'Error')) AS error_count,
    toUInt64(countIf({is_call} AND {cost_status} = 'unpriced')) AS unpriced_count,
    sumIf({input}, {is_call}) AS input,
    sumIf({output}, {is_call}) AS output,
    sumIf(toFloat64OrZero({cost_usd}), {is_call}) AS cost,
    sumIf(toFloat64OrZero({cost_usd}), {is_call} AND {estimated}) AS estimated_cost,
    groupUniqArrayIf(SpanAttributes['gen_ai.agent.name'], SpanAttributes['gen_ai.agent.name'] != '') AS agent_names,
    groupUniqArrayIf({model}, {is_call}) AS model_names,
    groupArray((cityHash64(SpanId), cityHash64(ParentSpanId))) AS tree,
    groupArrayIf((SpanId, {operation}, {container_name}, SpanAttributes['gen_ai.agent.name'],
                  SpanAttributes['{flow}'], Timestamp), {operation} IN ({containers})) AS containers,
    groupArrayIf((cityHash64(ParentSpanId), Timestamp, toFloat64OrZero({cost_usd}),
                  {input}, {output}, toUInt8({cost_status} = 'unpriced'), toUInt8(StatusCode = 'Error')),
                 {is_call}) AS call_leaves
FROM {db}.{totals_source}{totals_filter}
GROUP BY TraceId, tenant
"""

# Per agent / task / workflow / plan span: the inference calls beneath it. Per trace and tenant, from
# the per-trace totals alone (`tree`, `containers`, `call_leaves`: no span's maps are read, which
# took 0.3 s of every 7-day panel on 10M spans, and no join with the calls table, 0.2-0.3 s): each
# parent of a call walks up its ancestors and lists the containers on the way; a container sums
# the calls of the parents that list it. Span ids are compared as their 64-bit hashes. A walk visits
# only spans that are some span's parent: the tree keeps only those (`edges`), and a walk takes at
# most as many steps as there are (at most 64). A trace's spans of different tenants are walked
# apart (a subtree never crosses tenants), so a tenant's reader, whose row policy shows it its own
# rows only, sees the same subtree costs as Grafana. The range keeps the containers and calls that
# start inside it; the tree is every span of the trace's rows that overlap it (a span between a
# container and a call inside the range starts inside it too).
# 10M-span bench, agent subtree panel: 1.4-1.5 s (spans' maps) -> 0.9-1.05 s (the totals' tree, the
# calls table) -> 0.7-0.85 s (the totals alone).
_SUBTREE_VIEW = """
CREATE OR REPLACE VIEW {db}.genai_subtree_costs {cluster} AS
SELECT
    TraceId,
    tupleElement(cs[c], 1) AS SpanId,
    tupleElement(cs[c], 2) AS kind,
    tupleElement(cs[c], 3) AS name,
    tupleElement(cs[c], 4) AS agent,
    tenant,
    tupleElement(cs[c], 5) AS flow,
    tupleElement(cs[c], 6) AS start,
    arraySum(arrayMap(p -> p.2, below)) AS calls,
    arraySum(arrayMap(p -> p.3, below)) AS cost_usd,
    arraySum(arrayMap(p -> p.4, below)) AS input_tokens,
    arraySum(arrayMap(p -> p.5, below)) AS output_tokens,
    input_tokens + output_tokens AS total_tokens,
    arraySum(arrayMap(p -> p.6, below)) AS unpriced_calls,
    arraySum(arrayMap(p -> p.7, below)) AS errors
FROM
(
    SELECT
        *,
        arrayMap(p -> arrayFold((acc, i) -> if(acc.1 = 0, acc,
                                               (up[acc.1], if(c_pos[acc.1] > 0, arrayPushBack(acc.2, c_pos[acc.1]), acc.2))),
                                range(least(64, length(ids))), (indexOf(ids, p), CAST([], 'Array(UInt64)'))).2,
                 parents.1) AS chains,
        arrayMap(c -> arrayFilter((p, chain) -> has(chain, c), parents, chains), arrayEnumerate(cs)) AS below_each
    FROM
    (
        SELECT
            TraceId,
            tenant,
            groupArrayArray(tree) AS all_edges,
            arrayFilter(e -> has(all_edges.2, e.1), all_edges) AS edges,  -- the spans a walk can visit
            edges.1 AS ids,
            arrayMap(parent -> indexOf(ids, parent), edges.2) AS up,
            arrayFilter(c -> c.6 >= {{from_ts:DateTime64(9)}} AND c.6 < {{to_ts:DateTime64(9)}},
                        groupArrayArray(containers)) AS cs,
            arrayMap(c -> cityHash64(c.1), cs) AS c_ids,
            arrayMap(id -> indexOf(c_ids, id), ids) AS c_pos,
            arrayFilter(l -> l.2 >= {{from_ts:DateTime64(9)}} AND l.2 < {{to_ts:DateTime64(9)}},
                        groupArrayArray(call_leaves)) AS leaves,
            arrayDistinct(leaves.1) AS parent_ids,
            -- per parent: (parent, calls, cost, input, output, unpriced, errors)
            arrayMap(parent -> arrayFilter(l -> l.1 = parent, leaves), parent_ids) AS by_parent,
            arrayMap((parent, ls) -> (parent, length(ls), arraySum(ls.3), arraySum(ls.4), arraySum(ls.5),
                                      arraySum(ls.6), arraySum(ls.7)), parent_ids, by_parent) AS parents
        FROM {db}.{totals}
        WHERE first_ts < {{to_ts:DateTime64(9)}} AND last_start >= {{from_ts:DateTime64(9)}}
        GROUP BY TraceId, tenant
        HAVING notEmpty(cs) AND notEmpty(leaves)
    )
)
ARRAY JOIN arrayEnumerate(cs) AS c, below_each AS below
WHERE notEmpty(below)
"""

# Set by the instrumentation when LiteLLM estimated the tokens (the provider reported no usage).
# Cost from such spans is its own rollup column, never mixed into the reported cost.
ESTIMATED = semconv.USAGE_ESTIMATED
_IS_ESTIMATED = f"SpanAttributes['{ESTIMATED}'] = 'true'"

_DAILY_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{daily_local} {cluster} (
    day Date,
    tenant LowCardinality(String),
    agent LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    flow LowCardinality(String),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    priced_calls SimpleAggregateFunction(sum, UInt64),
    unpriced_calls SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cache_read_input_tokens SimpleAggregateFunction(sum, UInt64),
    cache_creation_input_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_output_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    cost_input_usd SimpleAggregateFunction(sum, Float64),
    cost_cache_read_usd SimpleAggregateFunction(sum, Float64),
    cost_cache_creation_usd SimpleAggregateFunction(sum, Float64),
    cost_output_usd SimpleAggregateFunction(sum, Float64),
    cost_reasoning_usd SimpleAggregateFunction(sum, Float64),
    duration_ms_sum SimpleAggregateFunction(sum, Float64),
    duration_ms_digest AggregateFunction(quantileTDigest, Float64){added_columns}
) ENGINE = {engine}
PARTITION BY toYYYYMM(day)
ORDER BY (day, tenant, agent, provider, model, flow)
SETTINGS index_granularity = 8192{dedup}
"""

# Columns added after the first release: `create()` adds them to an existing rollup (ADD COLUMN IF
# NOT EXISTS) and moves the materialized view to the current SELECT.
DAILY_ADDED_COLUMNS = {
    "estimated_calls": "SimpleAggregateFunction(sum, UInt64)",
    "estimated_input_tokens": "SimpleAggregateFunction(sum, UInt64)",
    "estimated_output_tokens": "SimpleAggregateFunction(sum, UInt64)",
    "estimated_cost_usd": "SimpleAggregateFunction(sum, Float64)",
}

# The rollup's rows for a set of spans: the materialized view runs it on every insert, and a
# rebuild (collector/storage/rollups.py) runs it over the stored spans of the days it replaces.
# `cost_usd` and its breakdown are the cost of calls whose tokens the provider reported; the cost
# of calls with estimated tokens is `estimated_cost_usd` (tokens are counted in both, and again
# apart in `estimated_*_tokens`).
_DAILY_SELECT = """
SELECT
    toDate(Timestamp) AS day,
    {tenant} AS tenant,
    SpanAttributes['gen_ai.agent.name'] AS agent,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    {model} AS model,
    SpanAttributes['{flow}'] AS flow,
    toUInt64(count()) AS calls,
    toUInt64(countIf(StatusCode = 'Error')) AS errors,
    toUInt64(countIf({cost_status} = 'priced')) AS priced_calls,
    toUInt64(countIf({cost_status} = 'unpriced')) AS unpriced_calls,
    sum({input}) AS input_tokens,
    sum({output}) AS output_tokens,
    sum({cache_read}) AS cache_read_input_tokens,
    sum({cache_creation}) AS cache_creation_input_tokens,
    sum({reasoning}) AS reasoning_output_tokens,
    sumIf(toFloat64OrZero({cost_usd}), NOT {estimated}) AS cost_usd,
    sumIf(toFloat64OrZero({cost_input_usd}), NOT {estimated}) AS cost_input_usd,
    sumIf(toFloat64OrZero({cost_cache_read_usd}), NOT {estimated}) AS cost_cache_read_usd,
    sumIf(toFloat64OrZero({cost_cache_creation_usd}), NOT {estimated}) AS cost_cache_creation_usd,
    sumIf(toFloat64OrZero({cost_output_usd}), NOT {estimated}) AS cost_output_usd,
    sumIf(toFloat64OrZero({cost_reasoning_usd}), NOT {estimated}) AS cost_reasoning_usd,
    sum(Duration / 1e6) AS duration_ms_sum,
    quantileTDigestState(toFloat64(Duration / 1e6)) AS duration_ms_digest,
    toUInt64(countIf({estimated})) AS estimated_calls,
    sumIf({input}, {estimated}) AS estimated_input_tokens,
    sumIf({output}, {estimated}) AS estimated_output_tokens,
    sumIf(toFloat64OrZero({cost_usd}), {estimated}) AS estimated_cost_usd
FROM {db}.{rollup_source}
WHERE {is_call}{rollup_filter}
GROUP BY day, tenant, agent, provider, model, flow
"""

_DAILY_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.genai_daily_mv {cluster}
TO {db}.{daily_local}
AS {daily_select}
"""

_DISTRIBUTED = """
CREATE TABLE IF NOT EXISTS {db}.{name} {cluster} AS {db}.{local}
ENGINE = Distributed({cluster_lit}, {db_lit}, {local_lit}{sharding})
"""


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def derived_engine(options: SchemaOptions, kind: str) -> str:
    """The engine of a table derived from the spans (`kind`: MergeTree, AggregatingMergeTree),
    Replicated when the traces table is."""
    if options.table_engine.startswith("Replicated"):
        # A params string that names a fixed path would collide with the traces table's; only
        # reuse it when it is templated on {table}, otherwise take the server's defaults.
        params = options.table_engine_params if "{table}" in options.table_engine_params else ""
        return f"Replicated{kind}({params})"
    return f"{kind}()"


def names(options: SchemaOptions) -> dict[str, str]:
    """Object names, unquoted: what the views read and what the rollup and the calls table are called."""
    clustered = bool(options.cluster_name)
    return {
        "source": distributed_names(options)["traces"] if clustered else options.traces_table_name,
        "daily": "genai_daily",
        "daily_local": "genai_daily_local" if clustered else "genai_daily",
        "calls": "genai_calls",
        "calls_local": "genai_calls_local" if clustered else "genai_calls",
        "totals": "genai_trace_totals",
        "totals_local": "genai_trace_totals_local" if clustered else "genai_trace_totals",
    }


# A span's GenAI operation, and a container span's name: its agent's, task's or workflow's.
_OPERATION = "SpanAttributes['gen_ai.operation.name']"
_CONTAINER_NAME = (f"multiIf({_OPERATION} IN ('invoke_agent', 'plan'), SpanAttributes['gen_ai.agent.name'], "
                   f"{_OPERATION} = 'task', SpanAttributes['gen_ai.task.name'], "
                   f"{_OPERATION} = 'invoke_workflow', SpanAttributes['gen_ai.workflow.name'], '')")

# A trace's root, as the earliest span's (start, name, service): the totals' `root` column, and
# what the span branch of `genai_traces` computes (one rule, ties broken by name alike).
_ROOT_EXPR = "min((Timestamp, toString(SpanName), toString(ServiceName)))"


def _fields(options: SchemaOptions) -> dict[str, str]:
    db, table = quote_ident(options.database), quote_ident(options.traces_table_name)
    cluster = f"ON CLUSTER {quote_ident(options.cluster_name)}" if options.cluster_name else ""
    n = names(options)
    return dict(
        db=db,
        table=table,
        cluster=cluster,
        source=quote_ident(n["source"]),
        daily_local=quote_ident(n["daily_local"]),
        calls_local=quote_ident(n["calls_local"]),
        totals=quote_ident(n["totals"]),
        totals_local=quote_ident(n["totals_local"]),
        conversation=CONVERSATION_EXPR,
        user=USER_EXPR,
        tenant=_TENANT_EXPR,
        engagement=ENGAGEMENT,
        flow=FLOW,
        feature=FEATURE,
        model=_MODEL_EXPR,
        ttfc=TTFC,
        is_call=_IS_CALL,
        error_type=ERROR_TYPE_EXPR,
        estimated=_IS_ESTIMATED,
        containers=_CONTAINERS_SQL,
        operation=_OPERATION,
        container_name=_CONTAINER_NAME,
        root=_ROOT_EXPR,
        input=_u(semconv.GEN_AI_USAGE_INPUT_TOKENS),
        output=_u(semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        cache_read=_u(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
        cache_creation=_u(semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
        reasoning=_u(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        cost_usd=f"SpanAttributes['{semconv.COST_USD}']",
        **{f"cost_{old.rsplit('.', 1)[1]}": attr_sql(new) for old, (new, _) in semconv.DEPRECATED.items()
           if old.startswith("gen_ai.usage.cost.")},
        engine=derived_engine(options, "AggregatingMergeTree"),
        calls_engine=derived_engine(options, "MergeTree"),
        ttl=ttl_clause("Timestamp", options),
        dedup="" if options.table_engine.startswith("Replicated") else f", non_replicated_deduplication_window = {DEDUP_WINDOW}",
        added_columns="".join(f",\n    {name} {type_}" for name, type_ in DAILY_ADDED_COLUMNS.items()),
    )


def daily_select(options: SchemaOptions, source: str | None = None, where: str = "") -> str:
    """The rollup's SELECT over `source` (default: the local traces table, what the materialized
    view reads), with an extra `AND ...` filter (`where`, SQL)."""
    fields = _fields(options)
    fields["rollup_source"] = quote_ident(source or options.traces_table_name)
    fields["rollup_filter"] = f" AND ({where})" if where else ""
    return _DAILY_SELECT.format(**fields).strip()


def calls_select(options: SchemaOptions, source: str | None = None, where: str = "") -> str:
    """The calls table's SELECT over `source` (default: the local traces table, what the
    materialized view reads), with an extra `AND ...` filter (`where`, SQL)."""
    fields = _fields(options)
    fields["calls_source"] = quote_ident(source or options.traces_table_name)
    fields["calls_filter"] = f" AND ({where})" if where else ""
    return _CALLS_SELECT.format(**fields).strip()


def calls_table_statement(options: SchemaOptions) -> str:
    fields = _fields(options)
    return ddl.template("genai_calls_table.sql").format(
        db=fields["db"], calls_local=fields["calls_local"], cluster=fields["cluster"], engine=fields["calls_engine"],
        ttl=fields["ttl"], dedup=fields["dedup"]).strip()


def calls_view_statement(options: SchemaOptions) -> str:
    fields = _fields(options)
    return ddl.template("genai_calls_mv.sql").format(
        db=fields["db"], cluster=fields["cluster"], calls_local=fields["calls_local"],
        calls_select=calls_select(options)).strip()


def totals_select(options: SchemaOptions, source: str | None = None, where: str = "") -> str:
    """The per-trace totals of the spans of `source` (default: the local traces table, what the
    materialized view reads) matching `where` (SQL)."""
    fields = _fields(options)
    fields["totals_source"] = quote_ident(source or options.traces_table_name)
    fields["totals_filter"] = f"\nWHERE {where}" if where else ""
    return _TOTALS_SELECT.format(**fields).strip()


def totals_table_statement(options: SchemaOptions) -> str:
    fields = _fields(options)
    return ddl.template("genai_trace_totals_table.sql").format(
        db=fields["db"], totals_local=fields["totals_local"], cluster=fields["cluster"],
        engine=derived_engine(options, "AggregatingMergeTree"), ttl=ttl_clause("first_ts", options),
        dedup=fields["dedup"]).strip()


def totals_view_statement(options: SchemaOptions) -> str:
    fields = _fields(options)
    return ddl.template("genai_trace_totals_mv.sql").format(
        db=fields["db"], cluster=fields["cluster"], totals_local=fields["totals_local"],
        totals_select=totals_select(options)).strip()


def distributed_statement(options: SchemaOptions, name: str, local: str, sharding: str = "") -> str:
    """A Distributed table `name` over the local table `local` on every node of the cluster."""
    dist = dict(db=quote_ident(options.database), cluster=_fields(options)["cluster"],
                cluster_lit=_lit(options.cluster_name), db_lit=_lit(options.database))
    return _DISTRIBUTED.format(**dist, name=quote_ident(name), local=quote_ident(local), local_lit=_lit(local),
                               sharding=sharding).strip()


def statements(options: SchemaOptions) -> list[str]:
    """Every CREATE, in order. The calls table comes before the view that fills it (`create()`
    backfills it from the stored spans in between), each local table before its Distributed one."""
    fields = _fields(options)
    fields["daily_select"] = daily_select(options)
    n = names(options)
    # The Distributed table over the traces (`source` on a cluster) is schema.py's, created before these.
    by_trace = ", cityHash64(TraceId)"  # sharded as the traces are, so a backfill through it lands by trace
    out = [calls_table_statement(options), calls_view_statement(options)]
    if options.cluster_name:
        out.append(distributed_statement(options, n["calls"], n["calls_local"], sharding=by_trace))
    out += [totals_table_statement(options), totals_view_statement(options)]
    if options.cluster_name:
        out.append(distributed_statement(options, n["totals"], n["totals_local"], sharding=by_trace))
    out += [_TASKS_VIEW.format(**fields), _TRACES_VIEW.format(**fields),
            _SUBTREE_VIEW.format(**fields), _DAILY_TABLE.format(**fields), _DAILY_MV.format(**fields)]
    if options.cluster_name:
        out.append(distributed_statement(options, n["daily"], n["daily_local"]))
    return [s.strip() for s in out]


def add_column_statements(options: SchemaOptions) -> list[str]:
    """ADD COLUMN IF NOT EXISTS for the columns added since the first release, on the local rollup
    and, on a cluster, the Distributed one: a rollup created by an earlier release gets them."""
    fields = _fields(options)
    tables = [fields["daily_local"]] + ([quote_ident(names(options)["daily"])] if options.cluster_name else [])
    return [f"ALTER TABLE {fields['db']}.{t} {fields['cluster']} "
            + ", ".join(f"ADD COLUMN IF NOT EXISTS {c} {ty}" for c, ty in DAILY_ADDED_COLUMNS.items())
            for t in tables]


def modify_view_statement(options: SchemaOptions) -> str:
    fields = _fields(options)
    return f"ALTER TABLE {fields['db']}.genai_daily_mv {fields['cluster']} MODIFY QUERY {daily_select(options)}"


def create(store, options: SchemaOptions) -> None:
    """Create what is missing; bring a rollup of an earlier release to the current shape (rows
    rolled up before keep zeros in the new columns: `genaitrace doctor costs --fix` rebuilds them),
    and replace an earlier release's `genai_calls` view by the calls table, filled from the spans
    already stored."""
    existing_view = _view_query(store, options)
    calls_engine = engine_of(store, options, names(options)["calls"])
    fill_calls = engine_of(store, options, names(options)["calls_local"]) in (None, "View")
    if calls_engine == "View":  # an earlier release's view; the table takes its name
        fields = _fields(options)
        store.command(f"DROP VIEW IF EXISTS {fields['db']}.{quote_ident(names(options)['calls'])} {fields['cluster']}")
    if _totals_of_an_earlier_release(store, options):
        _drop_totals(store, options)  # refilled from the stored spans below, as for a store without them
    fill_totals = engine_of(store, options, names(options)["totals_local"]) is None
    calls_view, totals_view = calls_view_statement(options), totals_view_statement(options)
    for statement in statements(options):
        # Filled from the stored spans before the view that fills them from then on: a span
        # inserted meanwhile is not counted twice.
        if statement == calls_view and fill_calls:
            backfill(store, options, "calls", calls_select)
        if statement == totals_view and fill_totals:
            backfill(store, options, "totals", totals_select)
        is_view = statement.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS") and "genai_daily_mv" in statement
        if is_view:
            for upgrade in add_column_statements(options):
                store.command(upgrade)
            if existing_view is not None:
                continue
        store.command(statement)
    # A rollup view of an earlier release lacks columns added since, or counts fewer operations as
    # calls (before `plan`): move it to the current SELECT.
    current = [*DAILY_ADDED_COLUMNS, *(f"'{op}'" for op in semconv.USAGE_OPERATIONS)]
    if existing_view is not None and not all(text in existing_view for text in current):
        store.command(modify_view_statement(options))


def _totals_of_an_earlier_release(store, options: SchemaOptions) -> bool:
    """An earlier release kept the totals' `root` as an argMin state (four times slower to merge; up
    to 2026-12-07), or one row per trace without the tree the subtree view walks (up to the seventh
    session of 2026-12-07), or no calls of its own, which the subtree view read from the calls table
    (up to 2026-12-07)."""
    query = ("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {table:String} "
             "AND name IN ('root', 'tree', 'call_leaves')")
    client = getattr(store, "client", store)
    rows = client.query(query, parameters={"db": options.database, "table": names(options)["totals_local"]}).result_rows
    types = dict(rows)
    return bool(types) and ("tree" not in types or "call_leaves" not in types
                            or types["root"].startswith("AggregateFunction(argMin"))


def _drop_totals(store, options: SchemaOptions) -> None:
    """The totals' view and tables (the Distributed one on a cluster), to be made again."""
    fields, n = _fields(options), names(options)
    store.command(f"DROP VIEW IF EXISTS {fields['db']}.genai_trace_totals_mv {fields['cluster']}")
    for table in dict.fromkeys((n["totals"], n["totals_local"])):
        store.command(f"DROP TABLE IF EXISTS {fields['db']}.{quote_ident(table)} {fields['cluster']} SYNC")


def backfill(store, options: SchemaOptions, table: str, select) -> None:
    """Fill the derived `table` ("calls", "totals") from every stored span, with its `select` (on a
    cluster: from every shard's spans, through the Distributed tables, each row to its trace's shard)."""
    n = names(options)
    client = getattr(store, "client", store)
    client.command(f"INSERT INTO {quote_ident(options.database)}.{quote_ident(n[table])} "
                   f"{select(options, source=n['source'])}", settings={"insert_deduplicate": 0})


def engine_of(store, options: SchemaOptions, name: str) -> str | None:
    """The engine of table `name` of the database (`View`, `MergeTree`, ...), None when absent."""
    query = "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {name:String}"
    client = getattr(store, "client", store)
    rows = client.query(query, parameters={"db": options.database, "name": name}).result_rows
    return rows[0][0] if rows else None


def _view_query(store, options: SchemaOptions) -> str | None:
    query = "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = 'genai_daily_mv'"
    client = getattr(store, "client", store)
    rows = client.query(query, parameters={"db": options.database}).result_rows
    return rows[0][0] if rows else None


# --- the SQL a user writes (README "SQL cookbook"; every query is run by tests/test_genai_views.py) ---

GRAFANA_URL = "http://localhost:3000"

# A link that opens the trace in Grafana's Tempo trace view (data source uid `tempo`, as deploy/ provisions it).
TRACE_LINK_SQL = (
    "concat('" + GRAFANA_URL + "/explore?schemaVersion=1&panes=', encodeURLComponent(concat("
    "'{\"t\":{\"datasource\":\"tempo\",\"queries\":[{\"refId\":\"A\",\"datasource\":{\"type\":\"tempo\",\"uid\":\"tempo\"},"
    "\"queryType\":\"traceql\",\"query\":\"', TraceId, '\"}],\"range\":{\"from\":\"now-7d\",\"to\":\"now\"}}}')))"
)

COOKBOOK: dict[str, tuple[str, str]] = {
    "top_agents_this_week": (
        "Top agents by cost this week (Monday to now), from the daily rollup",
        """
SELECT agent, round(sum(cost_usd), 4) AS cost_usd, sum(calls) AS calls,
       sum(input_tokens + output_tokens) AS tokens, sum(unpriced_calls) AS unpriced_calls
FROM otel.genai_daily
WHERE day >= toMonday(today())
GROUP BY agent
ORDER BY cost_usd DESC
LIMIT 10""",
    ),
    "cost_per_tenant_per_day": (
        "Cost per tenant per day, last 30 days",
        """
SELECT day, tenant, round(sum(cost_usd), 4) AS cost_usd, sum(calls) AS calls, sum(unpriced_calls) AS unpriced_calls
FROM otel.genai_daily
WHERE day >= today() - 29
GROUP BY day, tenant
ORDER BY day, tenant""",
    ),
    "p95_latency_per_model_24h": (
        "p50 / p95 latency per model, last 24 hours (raw spans)",
        """
SELECT model, count() AS calls,
       round(quantile(0.5)(duration_ms)) AS p50_ms, round(quantile(0.95)(duration_ms)) AS p95_ms
FROM otel.genai_calls
WHERE Timestamp >= now() - INTERVAL 1 DAY
GROUP BY model
ORDER BY p95_ms DESC""",
    ),
    "p95_latency_per_model_30d": (
        "p95 latency per model over 30 days, from the rollup (t-digest, fast over months)",
        """
SELECT model, sum(calls) AS calls, round(quantileTDigestMerge(0.95)(duration_ms_digest)) AS p95_ms
FROM otel.genai_daily
WHERE day >= today() - 29
GROUP BY model
ORDER BY p95_ms DESC""",
    ),
    "unpriced_spans": (
        "Unpriced calls in the last 7 days, why, and how many tokens they carried",
        """
SELECT provider, request_model, unpriced_reason, count() AS calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, any(TraceId) AS example_trace
FROM otel.genai_calls
WHERE cost_status = 'unpriced' AND Timestamp >= now() - INTERVAL 7 DAY
GROUP BY provider, request_model, unpriced_reason
ORDER BY calls DESC""",
    ),
    "most_expensive_traces": (
        "The 10 most expensive traces of the last 7 days, with a link to the trace view",
        """
SELECT TraceId, start, root_span, tenant, workflow, calls, total_tokens, round(cost_usd, 4) AS cost_usd,
       """ + TRACE_LINK_SQL + """ AS link
FROM otel.genai_traces(from_ts = now() - INTERVAL 7 DAY, to_ts = now())
ORDER BY cost_usd DESC
LIMIT 10""",
    ),
    "agent_subtree_cost": (
        "Cost of each agent's runs including the sub-agents it called (per agent subtree), last 7 days",
        """
SELECT name AS agent, count() AS runs, round(sum(cost_usd), 4) AS subtree_cost_usd, sum(total_tokens) AS tokens
FROM otel.genai_subtree_costs(from_ts = now() - INTERVAL 7 DAY, to_ts = now())
WHERE kind = 'invoke_agent'
GROUP BY agent
ORDER BY subtree_cost_usd DESC""",
    ),
    "task_cost": (
        "Cost per task, last 7 days",
        """
SELECT name AS task, agent, count() AS runs, round(sum(cost_usd), 4) AS total_cost_usd,
       round(total_cost_usd / runs, 5) AS avg_cost_usd
FROM otel.genai_subtree_costs(from_ts = now() - INTERVAL 7 DAY, to_ts = now())
WHERE kind = 'task'
GROUP BY task, agent
ORDER BY total_cost_usd DESC""",
    ),
    "agent_task_history": (
        "Agent task history (what the agent_task_history table held), last 24 hours",
        """
SELECT agent, task, status, started, completed, round(duration_ms) AS duration_ms, tenant, flow, TraceId
FROM otel.genai_agent_tasks
WHERE started >= now() - INTERVAL 1 DAY
ORDER BY started DESC
LIMIT 50""",
    ),
    "cache_hit_ratio_per_model": (
        "Cache-read share of input tokens per model, last 7 days",
        """
SELECT model, sum(cache_read_input_tokens) AS cache_read, sum(input_tokens) AS input,
       round(cache_read / nullIf(input, 0), 4) AS cache_hit_ratio
FROM otel.genai_daily
WHERE day >= today() - 6
GROUP BY model
ORDER BY input DESC""",
    ),
}
