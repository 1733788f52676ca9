"""The `otel_traces` and `otel_logs` schema, column for column the OpenTelemetry Collector contrib ClickHouse exporter's.

Grafana's ClickHouse data source (OTel mode) and SQL written against the contrib exporter work
unchanged. GenAI views live on top (`genai_views.py`).

The DDL itself is in `sql/*.sql` (shipped in the wheel; `ddl.py` reads it), one file per statement as
the contrib exporter's `internal/sqltemplates/`; this module fills the templates in. The stored
columns and their order are read from `sql/traces_table.sql` and `sql/logs_table.sql` only.

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

from collector.storage import ddl

# name -> ClickHouse type of each stored column, in table order, read from sql/traces_table.sql
# (the one definition; collector/storage/ddl.py). columns.py builds its Arrow schema from it.
TRACES_COLUMNS: dict[str, str] = ddl.table_columns(ddl.TRACES_TABLE)

# `key=value` for every attribute of a map: what the items ALIAS columns hold.
ITEMS_SQL = "arrayMap((k, v) -> concat(k, '=', v), mapKeys({column}), mapValues({column}))"

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


def ttl_clause(column: str, options: SchemaOptions) -> str:
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
    indexes = ddl.template("traces_indexes_text.sql" if options.text_indexes else "traces_indexes_bloom.sql").format(**items)
    out = [
        f"CREATE DATABASE IF NOT EXISTS {names['db']} {names['cluster']}"
        + (f" ENGINE = {options.database_engine}" if options.database_engine else ""),
        ddl.template("traces_table.sql").format(**names, **items, indexes=indexes, engine=_engine(options, "MergeTree"),
                             ttl=ttl_clause("Timestamp", options), dedup=dedup),
        ddl.template("traces_id_ts_lookup_table.sql").format(**names, engine=_engine(options, "AggregatingMergeTree"), ttl=ttl_clause("Start", options)),
        ddl.template("traces_id_ts_lookup_mv.sql").format(**names),
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

LOGS_COLUMNS: dict[str, str] = ddl.table_columns(ddl.LOGS_TABLE)

# Resource attributes the contrib table materializes into columns of their own.
LOGS_MATERIALIZED_RESOURCE_ATTRIBUTES = (
    "k8s.cluster.name", "k8s.container.name", "k8s.deployment.name", "k8s.namespace.name",
    "k8s.node.name", "k8s.pod.name", "k8s.pod.uid", "deployment.environment.name",
)

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
    indexes = ddl.template("logs_indexes_text.sql" if options.text_indexes else "logs_indexes_bloom.sql")
    out = [ddl.template("logs_table.sql").format(db=names["db"], logs=logs, cluster=names["cluster"], materialized=materialized,
                              indexes=indexes,
                              engine=_engine(options, "MergeTree"), ttl=ttl_clause("Timestamp", options), dedup=dedup)]
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
