"""`otel_logs` read from the source: the pinned contrib clickhouseexporter's logs_table.sql (both
index variants: bloom filters below ClickHouse 26.2, text indexes from 26.2) against
collector/storage/schema.py `logs_statements`, column by column (names, types, codecs, COMMENTs
aside, MATERIALIZED columns), indexes, PARTITION BY, ORDER BY and settings. The only intended
difference is listed below with its reason."""

from __future__ import annotations

import re

import pytest

from collector.storage.schema import LOGS_COLUMNS, SchemaOptions, logs_statements
from support.contrib_ddl import compare, contrib_sqltemplates, parse_create_table

INTENDED = {
    ("otel_logs", "settings", "non_replicated_deduplication_window"): "replays from the durable queue "
                                                                     "deduplicated on plain MergeTree",
}


def upstream_variant(text: str, full_text_search: bool) -> str:
    """logs_table.sql with its Go template rendered for one index variant (database otel, no TTL)."""
    text = re.sub(r"\{\{-? ?if \.HasFullTextSearch\}\}(.*?)\{\{-? ?else\}\}(.*?)\{\{-? ?end\}\}",
                  lambda m: m[1] if full_text_search else m[2], text, flags=re.S)
    return (text.replace("{{ident .Database}}", "`otel`").replace("{{ident .TableName}}", "`otel_logs`")
            .replace("{{.ClusterString}}", "").replace("{{.Engine}}", "MergeTree()").replace("{{.TTL}}", ""))


@pytest.mark.parametrize("text_indexes", [False, True])
def test_logs_schema_matches_the_pinned_contrib_ddl(text_indexes):
    upstream = upstream_variant((contrib_sqltemplates() / "logs_table.sql").read_text(), text_indexes)
    ours = logs_statements(SchemaOptions(text_indexes=text_indexes))[0]
    differences = compare("otel_logs", parse_create_table(ours), parse_create_table(upstream))
    assert differences == INTENDED.keys(), sorted(differences ^ INTENDED.keys())


def test_logs_columns_constant_is_upstreams():
    upstream = parse_create_table(upstream_variant((contrib_sqltemplates() / "logs_table.sql").read_text(), False))
    plain = {name: column["type"] for name, column in upstream["columns"].items() if not column["kind"]}
    assert plain == LOGS_COLUMNS and list(plain) == list(LOGS_COLUMNS)
