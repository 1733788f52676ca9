"""Schema conformance read from the source: the contrib clickhouseexporter's own DDL
(internal/sqltemplates/*.sql of the module pinned in interop/schema/go.mod, read from the Go module
cache) against ours (collector/storage/schema.py), column by column: names, types, codecs, kinds
(ALIAS...), skipping indexes, PARTITION BY, PRIMARY KEY, ORDER BY, the trace-id lookup table and
its materialized view. Every difference must be listed in INTENDED below with its reason; any other
difference (upstream moved, or ours did) fails, and so does an entry that no longer differs.

tests/test_schema.py checks what the engine reports for our DDL against a hand-copied expectation;
this test needs no copy: `./run.sh test` downloads the pinned module (`go mod download`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from support.peers import GO_ENV, INTEROP

from collector.storage.schema import SchemaOptions, schema_statements

MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter"

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


def contrib_sqltemplates() -> Path:
    """The pinned module's sqltemplates directory, from the Go module cache (no network: GOPROXY=off)."""
    if not (INTEROP / "schema" / "go.mod").exists():
        pytest.fail("interop/schema/go.mod missing")
    env = {**os.environ, **GO_ENV, "GOPROXY": "off", "GOFLAGS": "-mod=readonly"}
    try:
        out = subprocess.run(["go", "mod", "download", "-json", MODULE], cwd=INTEROP / "schema", env=env,
                             capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        out = None
    if out is None or out.returncode != 0:
        reason = f"the pinned {MODULE} is not in the Go module cache: run ./run.sh test ({out.stdout if out else 'no go'})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(json.loads(out.stdout)["Dir"]) / "internal" / "sqltemplates"


def split_top_level(text: str) -> list[str]:
    """`text` split at commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def matching_paren(text: str, start: int) -> int:
    depth = 0
    for position in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[position], 0)
        if depth == 0:
            return position
    raise ValueError("unbalanced parentheses")


def normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")").strip()


def parse_create_table(ddl: str) -> dict:
    """Columns (type, codec, kind), indexes and the table clauses of one CREATE TABLE statement."""
    open_at = ddl.index("(", ddl.upper().index("CREATE TABLE"))
    close_at = matching_paren(ddl, open_at)
    columns, indexes = {}, {}
    for entry in split_top_level(ddl[open_at + 1:close_at]):
        entry = normal(entry)
        if entry.upper().startswith("INDEX "):
            match = re.match(r"INDEX (\S+) (.+) TYPE (.+?)(?: GRANULARITY (\d+))?$", entry)
            indexes[match[1]] = (match[2], match[3], match[4] or "1")
            continue
        name, rest = entry.split(" ", 1)
        codec = ""
        if (at := rest.find(" CODEC(")) >= 0:
            codec = rest[at + 7:matching_paren(rest, at + 6)]
            rest = rest[:at]
        rest = re.sub(r" COMMENT '(?:[^'\\]|\\.)*'", "", rest)
        kind = ""
        if match := re.search(r" (ALIAS|MATERIALIZED|DEFAULT|EPHEMERAL) ", rest):
            kind, rest = match[1], rest[:match.start()]
        columns[name.strip("`")] = {"type": normal(rest), "codec": codec.replace(" ", ""), "kind": kind}
    tail = normal(ddl[close_at + 1:])
    clauses = {}
    for key, pattern in (("partition_by", r"PARTITION BY (.+?)(?= PRIMARY KEY| ORDER BY|$)"),
                         ("primary_key", r"PRIMARY KEY (.+?)(?= ORDER BY| TTL| SETTINGS|$)"),
                         ("order_by", r"ORDER BY (.+?)(?= TTL| SETTINGS| %s|$)")):
        match = re.search(pattern, tail)
        clauses[key] = match[1].strip() if match else ""
    settings = re.search(r"SETTINGS (.+)$", tail)
    clauses["settings"] = dict(normal(item).split(" = ") for item in re.sub(r"\s*=\s*", " = ", settings[1]).split(",")) if settings else {}
    return {"columns": columns, "indexes": indexes, **clauses}


def delta_default(codec: str, column_type: str) -> str:
    """Delta without a width means the column's byte width: Delta on DateTime64/UInt64 is Delta(8)."""
    width = {"DateTime64(9)": "8", "UInt64": "8", "DateTime": "4"}.get(column_type)
    return re.sub(r"\bDelta\b(?!\()", f"Delta({width})", codec) if width else codec


def compare(table: str, ours: dict, upstream: dict) -> set[tuple[str, str, str]]:
    """(table, aspect, name) of each difference; codec levels that differ only in ZSTD level
    are reported once per table as (table, 'codec', '*')."""
    differences = set()
    for name in ours["columns"].keys() | upstream["columns"].keys():
        mine, theirs = ours["columns"].get(name), upstream["columns"].get(name)
        if mine is None or theirs is None:
            differences.add((table, "column", name))
            continue
        if (mine["type"], mine["kind"]) != (theirs["type"], theirs["kind"]):
            differences.add((table, "type", name))
        my_codec, their_codec = delta_default(mine["codec"], mine["type"]), delta_default(theirs["codec"], theirs["type"])
        if my_codec != their_codec:
            if re.sub(r"ZSTD\(\d+\)", "ZSTD", my_codec) == re.sub(r"ZSTD\(\d+\)", "ZSTD", their_codec):
                differences.add((table, "codec", "*"))
            else:
                differences.add((table, "codec", name))
    for name in ours["indexes"].keys() | upstream["indexes"].keys():
        if ours["indexes"].get(name) != upstream["indexes"].get(name):
            differences.add((table, "index", name))
    for clause in ("partition_by", "order_by"):
        if normal(ours[clause]).replace(" ", "") != normal(upstream[clause]).replace(" ", ""):
            differences.add((table, clause, ""))
    if ours["primary_key"] and ours["primary_key"].replace(" ", "") != upstream["order_by"].replace(" ", ""):
        differences.add((table, "primary_key", "mismatch"))
    elif ours["primary_key"] != upstream["primary_key"]:
        differences.add((table, "primary_key", ""))
    for name in ours["settings"].keys() | upstream["settings"].keys():
        if ours["settings"].get(name) != upstream["settings"].get(name):
            differences.add((table, "settings", name))
    return differences


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
