-- Per trace and tenant, what genai_session_traces (and the conversation and user views over it),
-- the traces that lie wholly inside a genai_traces(from_ts, to_ts) range and genai_subtree_costs
-- report: partial aggregates of each inserted block of spans, filled at insert time by
-- genai_trace_totals_mv (genai_views.totals_select), merged in the background and by the views'
-- GROUP BY TraceId (the subtree view's: TraceId, tenant). Ours, not the contrib exporter's: the
-- views read one row per trace and block instead of every span. Columns keep names of their own so a view's aliases never
-- shadow them. `tenant` is the spans' tenant, part of the key: a trace whose spans belong to two
-- tenants has a row for each, so a tenant's row policy (tenant = ...) shows it only its own spans'
-- totals and tree, as on otel_traces. `tree` is each span's (id, parent id) as 64-bit hashes,
-- `containers` each agent / task / workflow / plan span's (id, kind, name, agent, flow, start) and
-- `call_leaves` each inference call's (parent id hash, start, cost, input and output tokens,
-- unpriced, error): what genai_subtree_costs walks and sums, without reading the spans' maps or the
-- calls table. `root` is the earliest span's
-- (start, name, service): a plain min of a tuple, which a GROUP BY merges about four times faster
-- than an argMin state (an earlier release's column, `genai_views.create` replaces such a table).
-- {db} {totals_local} {cluster} {engine} {ttl} {dedup}
CREATE TABLE IF NOT EXISTS {db}.{totals_local} {cluster} (
    TraceId String CODEC(ZSTD(1)),
    trace_conversation SimpleAggregateFunction(max, String),
    trace_user SimpleAggregateFunction(max, String),
    tenant String,
    trace_engagement SimpleAggregateFunction(max, String),
    trace_flow SimpleAggregateFunction(max, String),
    trace_feature SimpleAggregateFunction(max, String),
    trace_workflow SimpleAggregateFunction(max, String),
    first_ts SimpleAggregateFunction(min, DateTime64(9)),
    last_start SimpleAggregateFunction(max, DateTime64(9)),
    last_ts SimpleAggregateFunction(max, DateTime64(9)),
    root SimpleAggregateFunction(min, Tuple(DateTime64(9), String, String)),
    span_count SimpleAggregateFunction(sum, UInt64),
    call_count SimpleAggregateFunction(sum, UInt64),
    error_count SimpleAggregateFunction(sum, UInt64),
    unpriced_count SimpleAggregateFunction(sum, UInt64),
    input SimpleAggregateFunction(sum, UInt64),
    output SimpleAggregateFunction(sum, UInt64),
    cost SimpleAggregateFunction(sum, Float64),
    estimated_cost SimpleAggregateFunction(sum, Float64),
    agent_names SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    model_names SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    tree SimpleAggregateFunction(groupArrayArray, Array(Tuple(UInt64, UInt64))),
    containers SimpleAggregateFunction(groupArrayArray,
                                       Array(Tuple(String, String, String, String, String, DateTime64(9)))),
    call_leaves SimpleAggregateFunction(groupArrayArray,
                                        Array(Tuple(UInt64, DateTime64(9), Float64, UInt64, UInt64, UInt8, UInt8)))
) ENGINE = {engine}
PARTITION BY toYYYYMM(first_ts)
ORDER BY (TraceId, tenant)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}
