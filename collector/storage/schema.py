"""The `otel_traces` and `otel_logs` schema, column for column the OpenTelemetry Collector contrib ClickHouse exporter's.

Grafana's ClickHouse data source (OTel mode) and SQL written against the contrib exporter work
unchanged. GenAI views live on top (`genai_views.py`).

Followed from upstream's 2026 traces schema change (opentelemetry-collector-contrib PR #50878,
"Upgrade traces table with text indices"; the same gating as the released logs table of
clickhouseexporter v0.165.1, `versionFullTextSearch` = 26.2):

* `ResourceAttributeItems` / `SpanAttributeItems`: ALIAS columns, `key=value` strings of the
  attribute maps, so `has(SpanAttributeItems, 'gen_ai.provider.name=openai')` can use an index;
* on a server >= 26.2 (chdb 26.9 is), `TYPE text(...)` indexes instead of bloom filters for the
  trace id, the attribute keys, values and items, and the span name; below 26.2 the bloom
  filters (and no items index) as before. `create()` asks the server; `SchemaOptions.text_indexes`
  forces either;
* the trace-id lookup view stores `min(toDateTime(Timestamp))` / `max(...)` (seconds, the
  lookup table's type) where it stored the DateTime64 values.

Intended differences from the contrib DDL (tests/test_schema.py lists them):
* the table setting `non_replicated_deduplication_window` (plain MergeTree only), so that a batch
  replayed from the durable queue after a crash is deduplicated by its insert token as it is on
  ReplicatedMergeTree;
* `Timestamp` in the sorting key after `toDateTime(Timestamp)`, `CODEC(T64, ZSTD(1))` on Duration,
  and ZSTD(1) where upstream v0.165 writes ZSTD(3) (not changed here: a compression level
  trades insert and merge CPU, which this change did not measure);
* the lookup table is an AggregatingMergeTree (one row per trace after merges);
* with `cluster_name`: Distributed tables `{table}_dist` and `{table}_dist_trace_id_ts`, the
  pair Grafana's data source reads when its traces table is `{table}_dist` (it looks up
  `<table>_trace_id_ts`).
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
    ResourceAttributeItems Array(String) ALIAS {resource_items},
    SpanAttributeItems Array(String) ALIAS {span_items},
{indexes}
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
    min(toDateTime(Timestamp)) as Start,
    max(toDateTime(Timestamp)) as End
FROM {db}.{table}
WHERE TraceId != ''
GROUP BY TraceId
"""

# `key=value` for every attribute of a map: what the items ALIAS columns hold.
ITEMS_SQL = "arrayMap((k, v) -> concat(k, '=', v), mapKeys({column}), mapValues({column}))"

# Below 26.2: the contrib exporter's bloom filters.
BLOOM_INDEXES = """    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8"""

# 26.2 and later: text indexes (tokenizer 'array': every element is one token).
TEXT_INDEXES = """    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_item {resource_items} TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_item {span_items} TYPE text(tokenizer = 'array'),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE text(tokenizer = 'splitByNonAlpha')"""

# The first ClickHouse release with `TYPE text` indexes (the contrib exporter's versionFullTextSearch).
TEXT_INDEX_VERSION = (26, 2)

# How many recent insert tokens a plain MergeTree remembers for deduplicating replays.
DEDUP_WINDOW = 10_000


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "otel"
    traces_table_name: str = "otel_traces"
    logs_table_name: str = "otel_logs"
    cluster_name: str = ""
    table_engine: str = "MergeTree"
    table_engine_params: str = ""
    ttl_hours: int = 0  # earlier form of ttl_seconds (whole hours); ttl_seconds wins when set
    ttl_seconds: int = 0
    # TYPE text indexes (server >= 26.2); None: `create()` asks the server.
    text_indexes: bool | None = None
    database_engine: str = ""  # e.g. "Replicated('/clickhouse/databases/otel', '{shard}', '{replica}')"


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


def _names(options: SchemaOptions) -> dict[str, str]:
    table = options.traces_table_name
    return {
        "db": quote_ident(options.database),
        "cluster": f"ON CLUSTER {quote_ident(options.cluster_name)}" if options.cluster_name else "",
        "table": quote_ident(table),
        "lookup": quote_ident(f"{table}_trace_id_ts"),
        "mv": quote_ident(f"{table}_trace_id_ts_mv"),
    }


def distributed_names(options: SchemaOptions) -> dict[str, str]:
    """With `cluster_name`: the Distributed tables over the local ones (unquoted names)."""
    table = options.traces_table_name
    return {"traces": f"{table}_dist", "lookup": f"{table}_dist_trace_id_ts"}


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def schema_statements(options: SchemaOptions) -> list[str]:
    """CREATE statements for the database, `otel_traces`, the trace-id lookup table and view, and
    with `cluster_name` the Distributed tables over them."""
    names = _names(options)
    dedup = "" if options.table_engine.startswith("Replicated") else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    items = {"resource_items": ITEMS_SQL.format(column="ResourceAttributes"),
             "span_items": ITEMS_SQL.format(column="SpanAttributes")}
    indexes = (TEXT_INDEXES if options.text_indexes else BLOOM_INDEXES).format(**items)
    out = [
        f"CREATE DATABASE IF NOT EXISTS {names['db']} {names['cluster']}"
        + (f" ENGINE = {options.database_engine}" if options.database_engine else ""),
        _TRACES_TABLE.format(**names, **items, indexes=indexes, engine=_engine(options, "MergeTree"),
                             ttl=_ttl("Timestamp", options), dedup=dedup),
        _TRACE_ID_TS_TABLE.format(**names, engine=_engine(options, "AggregatingMergeTree"), ttl=_ttl("Start", options)),
        _TRACE_ID_TS_MV.format(**names),
    ]
    if options.cluster_name:
        dist = distributed_names(options)
        where = f"{_lit(options.cluster_name)}, {_lit(options.database)}"
        out.append(f"CREATE TABLE IF NOT EXISTS {names['db']}.{quote_ident(dist['traces'])} {names['cluster']}"
                   f" AS {names['db']}.{names['table']}"
                   f" ENGINE = Distributed({where}, {_lit(options.traces_table_name)}, cityHash64(TraceId))")
        out.append(f"CREATE TABLE IF NOT EXISTS {names['db']}.{quote_ident(dist['lookup'])} {names['cluster']}"
                   f" AS {names['db']}.{names['lookup']}"
                   f" ENGINE = Distributed({where}, {_lit(options.traces_table_name + '_trace_id_ts')}, cityHash64(TraceId))")
    return [statement.strip() for statement in out]


# --- otel_logs: the contrib exporter's logs table (clickhouseexporter v0.165.1,
# internal/sqltemplates/logs_table.sql), copied as it is: names, types, COMMENTs, codecs (ZSTD(3)
# there, so here too), the materialized k8s/deployment columns, both index sets, PARTITION BY,
# ORDER BY. One intended difference, as on otel_traces: `non_replicated_deduplication_window` on
# plain MergeTree, so a batch replayed from the durable queue is dropped by its insert token.
# tests/interop/test_contrib_logs_schema.py compares it with the pinned module's file.

LOGS_COLUMNS: dict[str, str] = {
    "Timestamp": "DateTime64(9)",
    "TraceId": "String",
    "SpanId": "String",
    "TraceFlags": "UInt8",
    "SeverityText": "LowCardinality(String)",
    "SeverityNumber": "UInt8",
    "ServiceName": "LowCardinality(String)",
    "Body": "String",
    "ResourceSchemaUrl": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeSchemaUrl": "LowCardinality(String)",
    "ScopeName": "String",
    "ScopeVersion": "LowCardinality(String)",
    "ScopeAttributes": "Map(LowCardinality(String), String)",
    "LogAttributes": "Map(LowCardinality(String), String)",
    "EventName": "String",
}

# Resource attributes the contrib table materializes into columns of their own.
LOGS_MATERIALIZED_RESOURCE_ATTRIBUTES = (
    "k8s.cluster.name", "k8s.container.name", "k8s.deployment.name", "k8s.namespace.name",
    "k8s.node.name", "k8s.pod.name", "k8s.pod.uid", "deployment.environment.name",
)

_LOGS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.{logs} {cluster} (
    `Timestamp` DateTime64(9) COMMENT 'Event timestamp with nanosecond precision' CODEC(Delta(8), ZSTD(3)),
    `TraceId` String COMMENT 'W3C trace identifier' CODEC(ZSTD(3)),
    `SpanId` String COMMENT 'W3C span identifier' CODEC(ZSTD(3)),
    `TraceFlags` UInt8 COMMENT 'W3C trace flags',
    `SeverityText` LowCardinality(String) COMMENT 'Log severity as text' CODEC(ZSTD(3)),
    `SeverityNumber` UInt8 COMMENT 'Log severity as number (1-24)',
    `ServiceName` LowCardinality(String) COMMENT 'Service that emitted the log' CODEC(ZSTD(3)),
    `Body` String COMMENT 'Log message body' CODEC(ZSTD(3)),
    `ResourceSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the resource' CODEC(ZSTD(3)),
    `ResourceAttributes` Map(LowCardinality(String), String) COMMENT 'Resource attributes as key-value pairs' CODEC(ZSTD(3)),
    `ScopeSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the instrumentation scope' CODEC(ZSTD(3)),
    `ScopeName` String COMMENT 'Instrumentation scope name' CODEC(ZSTD(3)),
    `ScopeVersion` LowCardinality(String) COMMENT 'Instrumentation scope version' CODEC(ZSTD(3)),
    `ScopeAttributes` Map(LowCardinality(String), String) COMMENT 'Instrumentation scope attributes' CODEC(ZSTD(3)),
    `LogAttributes` Map(LowCardinality(String), String) COMMENT 'Log record attributes' CODEC(ZSTD(3)),
    `EventName` String COMMENT 'Event name for log records representing events' CODEC(ZSTD(3)),
{materialized}
{indexes}
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)
{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}
"""

LOGS_BLOOM_INDEXES = """    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,
    INDEX idx_event_name EventName TYPE bloom_filter(0.01) GRANULARITY 1"""

# As upstream: the text-index set has no EventName index.
LOGS_TEXT_INDEXES = """    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_lower_body lower(Body) TYPE text(tokenizer = 'splitByNonAlpha')"""


def logs_distributed_name(options: SchemaOptions) -> str:
    return f"{options.logs_table_name}_dist"


def logs_statements(options: SchemaOptions) -> list[str]:
    """CREATE statements for `otel_logs` (and with `cluster_name` its Distributed table), after
    `schema_statements` (which creates the database)."""
    names = _names(options)
    logs = quote_ident(options.logs_table_name)
    dedup = "" if options.table_engine.startswith("Replicated") else f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    materialized = "\n".join(
        f"    `__otel_materialized_{key}` LowCardinality(String) MATERIALIZED ResourceAttributes['{key}'] CODEC(ZSTD(3)),"
        for key in LOGS_MATERIALIZED_RESOURCE_ATTRIBUTES)
    out = [_LOGS_TABLE.format(db=names["db"], logs=logs, cluster=names["cluster"], materialized=materialized,
                              indexes=LOGS_TEXT_INDEXES if options.text_indexes else LOGS_BLOOM_INDEXES,
                              engine=_engine(options, "MergeTree"), ttl=_ttl("Timestamp", options), dedup=dedup)]
    if options.cluster_name:
        where = f"{_lit(options.cluster_name)}, {_lit(options.database)}"
        out.append(f"CREATE TABLE IF NOT EXISTS {names['db']}.{quote_ident(logs_distributed_name(options))} {names['cluster']}"
                   f" AS {names['db']}.{logs}"
                   f" ENGINE = Distributed({where}, {_lit(options.logs_table_name)}, cityHash64(TraceId))")
    return [statement.strip() for statement in out]


def server_has_text_indexes(store) -> bool:
    client = getattr(store, "client", store)
    version = str(client.command("SELECT version()"))
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= TEXT_INDEX_VERSION


def upgrade_statements(options: SchemaOptions) -> list[str]:
    """What a table created by an earlier release gains: the items ALIAS columns (metadata only)."""
    names = _names(options)
    return [f"ALTER TABLE {names['db']}.{names['table']} {names['cluster']}"
            f" ADD COLUMN IF NOT EXISTS ResourceAttributeItems Array(String) ALIAS {ITEMS_SQL.format(column='ResourceAttributes')},"
            f" ADD COLUMN IF NOT EXISTS SpanAttributeItems Array(String) ALIAS {ITEMS_SQL.format(column='SpanAttributes')}"]


def create(store, options: SchemaOptions) -> SchemaOptions:
    """Create the schema on `store`, text indexes decided by the server's version unless forced.
    Returns the options used (with `text_indexes` settled)."""
    from dataclasses import replace

    if options.text_indexes is None:
        options = replace(options, text_indexes=server_has_text_indexes(store))
    for statement in schema_statements(options) + upgrade_statements(options) + logs_statements(options):
        store.command(statement)
    return options
