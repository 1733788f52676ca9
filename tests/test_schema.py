"""The created tables are the contrib ClickHouse exporter's `otel_traces` schema, checked on the real engine.

The expectations below are transcribed from the contrib exporter's DDL
(exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql and traces_id_ts_lookup_*.sql),
independently of collector/storage/schema.py, and compared with what ClickHouse reports in its
system tables after our DDL ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collector.storage.schema import schema_statements

CONTRIB_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
]
CONTRIB_INDEXES = {
    ("idx_trace_id", "bloom_filter", "TraceId"),
    ("idx_res_attr_key", "bloom_filter", "mapKeys(ResourceAttributes)"),
    ("idx_res_attr_value", "bloom_filter", "mapValues(ResourceAttributes)"),
    ("idx_span_attr_key", "bloom_filter", "mapKeys(SpanAttributes)"),
    ("idx_span_attr_value", "bloom_filter", "mapValues(SpanAttributes)"),
    ("idx_duration", "minmax", "Duration"),
    ("idx_lower_span_name", "tokenbf_v1", "lower(SpanName)"),
}

# One chdb path per process: the inspection runs in its own interpreter.
INSPECT = r"""
import json, sys
from collector.storage.client import ClickHouseStore, parse_endpoint
from collector.storage.schema import SchemaOptions, create
store = ClickHouseStore(parse_endpoint("chdb://" + sys.argv[1]))
create(store, SchemaOptions(ttl_hours=72, text_indexes={"auto": None, "bloom": False}[sys.argv[2]]))
q = lambda sql: [list(r) for r in store.query(sql).result_rows]
print(json.dumps({
  "columns": q("SELECT name, type FROM system.columns WHERE database='otel' AND table='otel_traces' ORDER BY position"),
  "alias": q("SELECT name, default_kind FROM system.columns WHERE database='otel' AND table='otel_traces' AND default_kind != ''"),
  "indexes": q("SELECT name, type, expr FROM system.data_skipping_indices WHERE database='otel' AND table='otel_traces'"),
  "table": q("SELECT engine, partition_key, sorting_key, primary_key FROM system.tables WHERE database='otel' AND name='otel_traces'"),
  "ttl": q("SELECT create_table_query FROM system.tables WHERE database='otel' AND name='otel_traces'"),
  "lookup": q("SELECT name, type FROM system.columns WHERE database='otel' AND table='otel_traces_trace_id_ts' ORDER BY position"),
  "lookup_table": q("SELECT engine, partition_key, sorting_key FROM system.tables WHERE database='otel' AND name='otel_traces_trace_id_ts'"),
  "mv": q("SELECT engine, as_select FROM system.tables WHERE database='otel' AND name='otel_traces_trace_id_ts_mv'"),
  "logs": q("SELECT name, type FROM system.columns WHERE database='otel' AND table='otel_logs' AND default_kind = '' ORDER BY position"),
}))
"""


# Upstream's 2026 traces schema (contrib PR #50878): attribute items as ALIAS columns.
ALIAS_COLUMNS = [("ResourceAttributeItems", "Array(String)"), ("SpanAttributeItems", "Array(String)")]


def inspect(tmp_path, indexes: str = "bloom") -> dict:
    out = subprocess.run([sys.executable, "-c", INSPECT, str(tmp_path / "chdb"), indexes], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_otel_traces_matches_contrib_schema(tmp_path):
    info = inspect(tmp_path)
    assert [tuple(c) for c in info["columns"]] == CONTRIB_COLUMNS + ALIAS_COLUMNS
    assert [tuple(a) for a in info["alias"]] == [(name, "ALIAS") for name, _ in ALIAS_COLUMNS]
    assert {tuple(i) for i in info["indexes"]} == CONTRIB_INDEXES  # below 26.2: the bloom filters
    engine, partition_key, sorting_key, primary_key = info["table"][0]
    assert engine == "MergeTree"
    assert partition_key == "toDate(Timestamp)"
    assert sorting_key == "ServiceName, SpanName, toDateTime(Timestamp), Timestamp"
    assert primary_key == "ServiceName, SpanName, toDateTime(Timestamp)"
    create = info["ttl"][0][0]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in create  # 72 h, in the largest exact unit (contrib)
    assert "ttl_only_drop_parts = 1" in create and "index_granularity = 8192" in create
    # Our one addition is a table setting, not a column: replays are deduplicated on plain MergeTree.
    assert "non_replicated_deduplication_window" in create


def test_trace_id_lookup_table_and_view(tmp_path):
    info = inspect(tmp_path)
    assert [tuple(c) for c in info["lookup"]] == [
        ("TraceId", "String"),
        ("Start", "SimpleAggregateFunction(min, DateTime)"),
        ("End", "SimpleAggregateFunction(max, DateTime)"),
    ]
    engine, partition_key, sorting_key = info["lookup_table"][0]
    assert (engine, partition_key, sorting_key) == ("AggregatingMergeTree", "toStartOfWeek(Start)", "(TraceId)")
    mv_engine, as_select = info["mv"][0]
    assert mv_engine == "MaterializedView"
    # seconds, the lookup table's type (contrib PR #50878), not the DateTime64 values
    assert "min(toDateTime(Timestamp)) AS Start" in as_select and "max(toDateTime(Timestamp)) AS End" in as_select
    assert "TraceId != ''" in as_select and "GROUP BY TraceId" in as_select


@pytest.mark.parametrize("ttl,clause", [
    ("30m", "toIntervalMinute(30)"),  # shorter than an hour: was silently no TTL (int(ttl // 3600) == 0)
    ("90m", "toIntervalMinute(90)"),
    ("45s", "toIntervalSecond(45)"),
    ("36h", "toIntervalHour(36)"),
    ("720h", "toIntervalDay(30)"),
])
def test_ttl_in_the_largest_exact_unit(ttl, clause):
    from collector.exporters.clickhouse import ClickHouseConfig

    statements = schema_statements(ClickHouseConfig(ttl=ttl).schema_options())
    assert f"TTL toDateTime(Timestamp) + {clause}" in statements[1]
    assert f"TTL toDateTime(Start) + {clause}" in statements[2]


def test_ttl_that_cannot_be_a_clickhouse_ttl_is_refused():
    from pydantic import ValidationError

    from collector.exporters.clickhouse import ClickHouseConfig

    with pytest.raises(ValidationError, match="whole number of seconds"):
        ClickHouseConfig(ttl="500ms")
    assert "TTL" not in schema_statements(ClickHouseConfig(ttl="0s").schema_options())[1]


def test_text_indexes_where_the_server_has_them(tmp_path):
    info = inspect(tmp_path, "auto")  # chdb is 26.9: >= 26.2
    kinds = {name: kind for name, kind, _ in info["indexes"]}
    assert kinds == {"idx_trace_id": "text", "idx_res_attr_key": "text", "idx_res_attr_value": "text",
                     "idx_res_attr_item": "text", "idx_span_attr_key": "text", "idx_span_attr_value": "text",
                     "idx_span_attr_item": "text", "idx_duration": "minmax", "idx_lower_span_name": "text"}
    assert [tuple(c) for c in info["columns"]] == CONTRIB_COLUMNS + ALIAS_COLUMNS


def test_cluster_creates_the_distributed_pair_grafana_reads():
    from collector.storage.schema import SchemaOptions

    statements = schema_statements(SchemaOptions(cluster_name="genai", table_engine="ReplicatedMergeTree"))
    assert all("ON CLUSTER `genai`" in s for s in statements)
    joined = "\n".join(statements)
    # Grafana's data source with traces table `otel_traces_dist` looks trace ids up in `otel_traces_dist_trace_id_ts`
    assert ("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_dist` ON CLUSTER `genai` AS `otel`.`otel_traces`"
            " ENGINE = Distributed('genai', 'otel', 'otel_traces', cityHash64(TraceId))") in joined
    assert ("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_dist_trace_id_ts` ON CLUSTER `genai` AS `otel`.`otel_traces_trace_id_ts`"
            " ENGINE = Distributed('genai', 'otel', 'otel_traces_trace_id_ts', cityHash64(TraceId))") in joined
    assert "ReplicatedAggregatingMergeTree()" in joined and "non_replicated_deduplication_window" not in joined
    assert joined.index("`otel_traces_trace_id_ts` ON CLUSTER") < joined.index("`otel_traces_dist_trace_id_ts`")


def test_the_one_column_definition_is_the_ddl_the_engine_creates(tmp_path):
    """The columns the exporters insert (Arrow schemas, and so the order the native converter
    fills) are read from sql/traces_table.sql and sql/logs_table.sql: on the real engine those
    files' stored columns are the tables', in order."""
    from collector.storage import columns, ddl, log_columns

    info = inspect(tmp_path)
    stored = [tuple(c) for c in info["columns"] if c[0] not in dict(ALIAS_COLUMNS)]
    assert stored == list(ddl.table_columns(ddl.TRACES_TABLE).items()) == CONTRIB_COLUMNS
    assert columns.COLUMN_NAMES == [name for name, _ in stored]
    assert [tuple(c) for c in info["logs"]] == list(ddl.table_columns(ddl.LOGS_TABLE).items())
    assert log_columns.COLUMN_NAMES == [name for name, _ in info["logs"]]


def test_ddl_columns_reader_skips_what_an_insert_does_not_send():
    from collector.storage import ddl

    text = """CREATE TABLE IF NOT EXISTS {db}.{table} {cluster} (
        `When` DateTime64(9) COMMENT 'time (ns), as sent' CODEC(Delta(8), ZSTD(1)),
        Kind LowCardinality(String) DEFAULT 'x' CODEC(ZSTD(1)),
        Attrs Map(LowCardinality(String), String),
        Items Array(String) ALIAS arrayMap((k, v) -> concat(k, '=', v), mapKeys(Attrs), mapValues(Attrs)),
        `__otel_materialized_k8s.pod.name` LowCardinality(String) MATERIALIZED Attrs['k8s.pod.name'],
        Events Nested (
            Timestamp DateTime64(9),
            Attributes Map(LowCardinality(String), String)
        ) CODEC(ZSTD(1)),
    {indexes}
        INDEX idx_kind Kind TYPE bloom_filter(0.01) GRANULARITY 1
    ) ENGINE = {engine} ORDER BY (Kind, When)"""
    assert ddl.columns_of(text) == {
        "When": "DateTime64(9)", "Kind": "LowCardinality(String)", "Attrs": "Map(LowCardinality(String), String)",
        "Events.Timestamp": "Array(DateTime64(9))", "Events.Attributes": "Array(Map(LowCardinality(String), String))",
    }
    with pytest.raises(ValueError, match="unbalanced"):
        ddl.columns_of("CREATE TABLE t (a String")
