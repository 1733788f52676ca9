-- The trace-id lookup table Grafana's data source reads ({table}_trace_id_ts): one row per
-- trace after merges. {db} {lookup} {cluster} {engine} {ttl}
CREATE TABLE IF NOT EXISTS {db}.{lookup} {cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {engine}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
