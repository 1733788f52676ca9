-- Fills the GenAI calls table from otel_traces as spans are inserted. {db} {cluster} {calls_local} {calls_select}
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.genai_calls_mv {cluster}
TO {db}.{calls_local}
AS {calls_select}
