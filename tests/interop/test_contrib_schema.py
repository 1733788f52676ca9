"""Schema conformance read from the source: the contrib clickhouseexporter's own DDL
(internal/sqltemplates/*.sql of the module pinned in interop/schema/go.mod, read from the Go module
cache) against ours (collector/storage/sql/*.sql as collector/storage/schema.py fills them in), column by column: names, types, codecs, kinds
(ALIAS...), skipping indexes, PARTITION BY, PRIMARY KEY, ORDER BY, the trace-id lookup table and
its materialized view. Every difference must be listed in INTENDED below with its reason; any other
difference (upstream moved, or ours did) fails, and so does an entry that no longer differs.

tests/test_schema.py checks what the engine reports for our DDL against a hand-copied expectation;
this test needs no copy: `./run.sh test` downloads the pinned module (`go mod download`).
"""

from __future__ import annotations

import re

from collector.storage.schema import SchemaOptions, schema_statements
from support.contrib_ddl import compare, contrib_sqltemplates, normal, parse_create_table

# (table, aspect, name) -> why ours differs from the pinned contrib DDL.
INTENDED = {
    ("otel_traces", "codec", "*"): "CODEC(ZSTD(1)) everywhere, upstream ZSTD(3) since v0.165: ours stays "
                                   "at level 1 for insert CPU (collector/storage/schema.py)",
    ("otel_traces", "codec", "Duration"): "T64 before ZSTD for the durations",
    ("otel_traces", "column", "ResourceAttributeItems"): "ALIAS key=value items of the attribute maps "
                                                         "(upstream PR #50878, after v0.165.1)",
    ("otel_traces", "column", "SpanAttributeItems"): "ALIAS key=value items (upstream PR #50878, after v0.165.1)",
    ("otel_traces", "index", "idx_lower_span_name"): "token index on lower(SpanName) (upstream PR #50878, after v0.165.1)",
    ("otel_traces", "order_by", ""): "Timestamp after toDateTime(Timestamp) in the sorting key; the primary "
                                     "key stays upstream's ORDER BY",
    ("otel_traces", "primary_key", ""): "explicit PRIMARY KEY = upstream's ORDER BY (ours sorts by more)",
    ("otel_traces", "settings", "non_replicated_deduplication_window"): "replays from the durable queue "
                                                                       "deduplicated on plain MergeTree",
    ("otel_traces_trace_id_ts", "codec", "*"): "ZSTD(1) (see otel_traces)",
    ("otel_traces_trace_id_ts", "codec", "Start"): "no Delta on SimpleAggregateFunction(min, DateTime)",
    ("otel_traces_trace_id_ts", "codec", "End"): "no Delta on SimpleAggregateFunction(max, DateTime)",
    ("otel_traces_trace_id_ts", "type", "Start"): "AggregatingMergeTree lookup: one row per trace after merges",
    ("otel_traces_trace_id_ts", "type", "End"): "AggregatingMergeTree lookup: one row per trace after merges",
    ("otel_traces_trace_id_ts", "index", "idx_trace_id"): "no bloom filter: TraceId is the whole sorting key",
    ("otel_traces_trace_id_ts", "partition_by", ""): "weekly partitions for a table of one row per trace",
    ("otel_traces_trace_id_ts", "order_by", ""): "(TraceId): one row per trace after merges",
    ("otel_traces_trace_id_ts_mv", "select", ""): "min/max(toDateTime(Timestamp)): seconds, the lookup table's type",
}


def our_statements() -> dict[str, str]:
    """Our CREATE statements (the bloom-filter variant, as upstream v0.165.1 has), by table."""
    by_table = {}
    for statement in schema_statements(SchemaOptions(text_indexes=False)):
        match = re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS `otel`\.`([^`]+)`", statement)
        if match:
            by_table[match[1]] = statement
    return by_table


def test_traces_schema_matches_the_pinned_contrib_ddl_but_for_intended_differences():
    templates = contrib_sqltemplates()
    ours = our_statements()
    differences = compare("otel_traces", parse_create_table(ours["otel_traces"]),
                          parse_create_table((templates / "traces_table.sql").read_text()))
    differences |= compare("otel_traces_trace_id_ts", parse_create_table(ours["otel_traces_trace_id_ts"]),
                           parse_create_table((templates / "traces_id_ts_lookup_table.sql").read_text()))
    upstream_mv = normal((templates / "traces_id_ts_lookup_mv.sql").read_text())
    our_mv = normal(ours["otel_traces_trace_id_ts_mv"])
    select = lambda mv: normal(mv[mv.index("AS SELECT"):mv.index("FROM")])  # noqa: E731
    if select(our_mv) != select(upstream_mv):
        differences.add(("otel_traces_trace_id_ts_mv", "select", ""))
    for clause in ("WHERE TraceId != ''", "GROUP BY TraceId"):
        assert clause in our_mv and clause in upstream_mv

    unlisted = sorted(differences - INTENDED.keys())
    stale = sorted(INTENDED.keys() - differences)
    print("\ncontrib clickhouseexporter", templates.parent.parent.name, "vs collector/storage/schema.py:")
    for key in sorted(differences):
        print("  ", key, "->", INTENDED.get(key, "NOT INTENDED"))
    assert not unlisted, f"schema drift not listed as intended: {unlisted}"
    assert not stale, f"listed as intended but no longer different (remove from INTENDED): {stale}"


def test_column_names_and_types_are_upstreams_for_every_upstream_column():
    """Whatever else differs, SQL written for the contrib exporter runs on ours: every upstream
    column exists here with upstream's type."""
    templates = contrib_sqltemplates()
    ours = parse_create_table(our_statements()["otel_traces"])["columns"]
    upstream = parse_create_table((templates / "traces_table.sql").read_text())["columns"]
    assert {name: column["type"] for name, column in upstream.items()} == \
           {name: ours[name]["type"] for name in upstream if name in ours}


def test_logs_table_is_compared_in_its_own_module():
    """otel_logs is compared with upstream's logs_table.sql by test_contrib_logs_schema.py
    (`schema.logs_statements`); the traces DDL compared here holds no logs table."""
    assert not any("logs" in table for table in our_statements())
