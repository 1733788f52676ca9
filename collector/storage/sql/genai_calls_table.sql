-- One row per GenAI call, typed (genai_views.calls_select: the columns are its SELECT's, in its
-- order), filled at insert time by genai_calls_mv from otel_traces. Ours, not the contrib
-- exporter's: the contrib key (ServiceName, SpanName, time) cannot narrow a panel that filters on
-- a map value over every service, so a GenAI panel read every span of its range; this table holds
-- the calls only (about a third of the spans in a multi-agent workload) in columns, ordered for
-- the dashboards' filters (time, tenant, agent, model). {db} {calls_local} {cluster} {engine} {ttl} {dedup}
CREATE TABLE IF NOT EXISTS {db}.{calls_local} {cluster} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    operation LowCardinality(String),
    tenant LowCardinality(String),
    engagement String CODEC(ZSTD(1)),
    flow LowCardinality(String),
    feature LowCardinality(String),
    agent LowCardinality(String),
    workflow LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    model LowCardinality(String),
    input_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_read_input_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_creation_input_tokens UInt64 CODEC(T64, ZSTD(1)),
    reasoning_output_tokens UInt64 CODEC(T64, ZSTD(1)),
    total_tokens UInt64 CODEC(T64, ZSTD(1)),
    cost_usd Nullable(Float64) CODEC(ZSTD(1)),
    cost_input_usd Float64 CODEC(ZSTD(1)),
    cost_cache_read_usd Float64 CODEC(ZSTD(1)),
    cost_cache_creation_usd Float64 CODEC(ZSTD(1)),
    cost_output_usd Float64 CODEC(ZSTD(1)),
    cost_reasoning_usd Float64 CODEC(ZSTD(1)),
    cost_status LowCardinality(String),
    priced UInt8,
    unpriced_reason LowCardinality(String),
    usage_estimated UInt8,
    status LowCardinality(String),
    is_error UInt8,
    error_type LowCardinality(String),
    status_message String CODEC(ZSTD(1)),
    duration_ms Float64 CODEC(ZSTD(1)),
    streaming UInt8,
    time_to_first_chunk_ms Nullable(Float64) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfHour(Timestamp), tenant, agent, model)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}
