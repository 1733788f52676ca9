"""The `otel_traces` schema, column for column the OpenTelemetry Collector contrib ClickHouse exporter's.

Grafana's ClickHouse data source (OTel mode) and SQL written against the contrib exporter work
unchanged. The only addition is a table *setting*, `non_replicated_deduplication_window`, so that
a batch replayed from the durable queue after a crash is deduplicated by its insert token on a
plain MergeTree as it is on ReplicatedMergeTree. GenAI views live on top (`genai_views.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> ClickHouse type, in the contrib exporter's order. Tests compare a live table to this.
TRACES_COLUMNS: dict[str, str] = {
    "Timestamp": "DateTime64(9)",
    "TraceId": "String",
    "SpanId": "String",
    "ParentSpanId": "String",
    "TraceState": "String",
    "SpanName": "LowCardinality(String)",
    "SpanKind": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeName": "String",
    "ScopeVersion": "String",
    "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64",
    "StatusCode": "LowCardinality(String)",
    "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))",
    "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)",
    "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}

_TRACES_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{table} {cluster} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}
"""

_TRACE_ID_TS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{lookup} {cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {engine}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

_TRACE_ID_TS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} {cluster}
TO {db}.{lookup}
AS SELECT
    TraceId,
    min(Timestamp) as Start,
    max(Timestamp) as End
FROM {db}.{table}
WHERE TraceId != ''
GROUP BY TraceId
"""

# How many recent insert tokens a plain MergeTree remembers for deduplicating replays.
DEDUP_WINDOW = 10_000


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "otel"
    traces_table_name: str = "otel_traces"
    cluster_name: str = ""
    table_engine: str = "MergeTree"
    table_engine_params: str = ""
    ttl_hours: int = 0  # earlier form of ttl_seconds (whole hours); ttl_seconds wins when set
    ttl_seconds: int = 0


def _engine(options: SchemaOptions, default: str) -> str:
    name = options.table_engine if options.table_engine != "MergeTree" else default
    if options.table_engine != "MergeTree" and default == "AggregatingMergeTree":
        # Replicated* -> ReplicatedAggregatingMergeTree for the lookup table, like the contrib exporter.
        name = options.table_engine.replace("MergeTree", "AggregatingMergeTree")
    return f"{name}({options.table_engine_params})"


def _ttl(column: str, options: SchemaOptions) -> str:
    """The TTL clause, in the largest unit that divides the TTL exactly (as the contrib exporter
    writes it): 720h -> toIntervalDay(30), 90m -> toIntervalMinute(90), 45s -> toIntervalSecond(45)."""
    seconds = options.ttl_seconds or options.ttl_hours * 3600
    if seconds <= 0:
        return ""
    for unit, size in (("Day", 86400), ("Hour", 3600), ("Minute", 60), ("Second", 1)):
        if seconds % size == 0:
            return f"TTL toDateTime({column}) + toInterval{unit}({seconds // size})"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def schema_statements(options: SchemaOptions) -> list[str]:
    """CREATE statements for the database, `otel_traces`, and the trace-id lookup table and view."""
    db = quote_ident(options.database)
    table = options.traces_table_name
    cluster = f"ON CLUSTER {quote_ident(options.cluster_name)}" if options.cluster_name else ""
    dedup = "" if options.table_engine.startswith("Replicated") else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    names = {
        "db": db,
        "cluster": cluster,
        "table": quote_ident(table),
        "lookup": quote_ident(f"{table}_trace_id_ts"),
        "mv": quote_ident(f"{table}_trace_id_ts_mv"),
    }
    return [
        f"CREATE DATABASE IF NOT EXISTS {db} {cluster}",
        _TRACES_TABLE.format(
            **names, engine=_engine(options, "MergeTree"), ttl=_ttl("Timestamp", options), dedup=dedup
        ),
        _TRACE_ID_TS_TABLE.format(**names, engine=_engine(options, "AggregatingMergeTree"), ttl=_ttl("Start", options)),
        _TRACE_ID_TS_MV.format(**names),
    ]
