-- Fills the trace-id lookup table from otel_traces. {db} {mv} {lookup} {table} {cluster}
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} {cluster}
TO {db}.{lookup}
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) as Start,
    max(toDateTime(Timestamp)) as End
FROM {db}.{table}
WHERE TraceId != ''
GROUP BY TraceId
