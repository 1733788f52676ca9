-- Fills the per-trace totals from otel_traces as spans are inserted. {db} {cluster} {totals_local} {totals_select}
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.genai_trace_totals_mv {cluster}
TO {db}.{totals_local}
AS {totals_select}
