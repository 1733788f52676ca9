"""GenAI views on top of `otel_traces` (never a fork of it), created with the schema."""

from __future__ import annotations

from collector.storage.schema import SchemaOptions, quote_ident


def statements(options: SchemaOptions) -> list[str]:
    db, table = quote_ident(options.database), quote_ident(options.traces_table_name)
    return [
        f"""
CREATE VIEW IF NOT EXISTS {db}.genai_calls AS
SELECT
    Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName,
    SpanAttributes['gen_ai.operation.name'] AS operation,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    SpanAttributes['gen_ai.request.model'] AS request_model,
    SpanAttributes['gen_ai.response.model'] AS response_model,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
    toFloat64OrNull(SpanAttributes['gen_ai.usage.cost_usd']) AS cost_usd,
    StatusCode, Duration / 1e6 AS duration_ms
FROM {db}.{table}
WHERE SpanAttributes['gen_ai.operation.name'] IN ('chat', 'text_completion', 'generate_content', 'embeddings')
"""
    ]


def create(store, options: SchemaOptions) -> None:
    for statement in statements(options):
        store.command(statement)
