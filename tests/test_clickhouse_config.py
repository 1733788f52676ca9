"""The clickhouse exporter's config: the contrib exporter's keys with the same meaning, refused
clearly where they cannot apply (issue 14: exporter config parity)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.exporters.clickhouse import ClickHouseConfig
from collector.storage.schema import schema_statements

SERVER = "http://clickhouse:8123"


def test_a_contrib_config_loads_unchanged():
    config = ClickHouseConfig.model_validate({
        "endpoint": SERVER, "database": "otel", "username": "default", "password": "x", "ttl": "72h",
        "create_schema": True, "cluster_name": "genai", "table_engine": {"name": "ReplicatedMergeTree", "params": ""},
        "database_engine": {"name": "Replicated", "params": "'/clickhouse/databases/otel', '{shard}', '{replica}'"},
        "async_insert": True, "compress": "zstd", "json": False, "traces_table_name": "otel_traces",
        "logs_table_name": "otel_logs", "profiles_table_name": "otel_profiles",
        "metrics_tables": {"gauge": {"name": "otel_metrics_gauge"}},
        "tls": {"ca_file": "/etc/ssl/ca.pem", "insecure_skip_verify": False, "server_name_override": "ch.internal"},
        "connection_params": {"max_insert_threads": "2"},
        "sending_queue": {"enabled": True, "batch": {"sizer": "bytes", "max_size": 8_388_608}},
    })
    assert config.insert_settings() == {"max_insert_threads": "2", "async_insert": 1, "wait_for_async_insert": 1}
    assert config.transport() == {"compress": "zstd", "secure": True, "verify": True, "ca_cert": "/etc/ssl/ca.pem",
                                  "server_host_name": "ch.internal"}
    statements = schema_statements(config.schema_options())
    assert statements[0] == ("CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `genai` ENGINE = "
                             "Replicated('/clickhouse/databases/otel', '{shard}', '{replica}')")
    assert "toIntervalDay(3)" in statements[1] and "ReplicatedMergeTree()" in statements[1]
    assert config.sending_queue.batch.max_size == 8_388_608


def test_async_insert_set_in_connection_params_wins():
    config = ClickHouseConfig(endpoint=SERVER, async_insert=True, connection_params={"async_insert": 0})
    assert config.insert_settings()["async_insert"] == 0


@pytest.mark.parametrize("compress,expected", [("", "lz4"), ("true", "lz4"), ("none", False), ("gzip", "gzip"), ("BR", "br")])
def test_compress_values(compress, expected):
    assert ClickHouseConfig(endpoint=SERVER, compress=compress).transport()["compress"] == expected


def test_tls_insecure_means_plain_http_and_https_means_verified_tls():
    assert ClickHouseConfig(endpoint=SERVER, tls={"insecure": True}).transport()["secure"] is False
    assert ClickHouseConfig(endpoint="https://ch:8443").transport() == {"compress": "lz4", "secure": True, "verify": True}
    assert ClickHouseConfig(endpoint="https://ch:8443", tls={"insecure_skip_verify": True}).transport()["verify"] is False


@pytest.mark.parametrize("key,value,reason", [
    ("cluster_name", "genai", "ON CLUSTER needs a ClickHouse server"),
    ("table_engine", {"name": "ReplicatedMergeTree"}, "replication needs a server"),
    ("database_engine", {"name": "Replicated"}, "replication needs a server"),
    ("async_insert", True, "no async insert queue"),
    ("compress", "zstd", "no connection to compress"),
    ("tls", {"ca_file": "/ca.pem"}, "no connection to secure"),
])
def test_keys_that_cannot_apply_to_the_embedded_engine_are_refused(key, value, reason):
    with pytest.raises(ValidationError, match=reason) as caught:
        ClickHouseConfig.model_validate({"endpoint": "chdb:///tmp/x", key: value})
    assert f"{key} cannot apply to the embedded engine" in str(caught.value)


def test_json_columns_and_unknown_values_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="read the Map columns"):
        ClickHouseConfig.model_validate({"endpoint": SERVER, "json": True})
    with pytest.raises(ValidationError, match="compress must be one of"):
        ClickHouseConfig(endpoint=SERVER, compress="snappy")
    with pytest.raises(ValidationError, match="extra"):
        ClickHouseConfig.model_validate({"endpoint": SERVER, "tls": {"ca_pem_typo": "x"}})


def test_skip_indexes_choose_the_index_variant_of_the_created_tables():
    """`auto` leaves it to the server's version (the contrib exporter's rule); `bloom_filter` gives
    the bloom-filter DDL on any server; `text` insists on text indexes; anything else is refused."""
    assert ClickHouseConfig(endpoint=SERVER).schema_options().text_indexes is None
    bloom = ClickHouseConfig(endpoint=SERVER, skip_indexes="bloom_filter").schema_options()
    assert bloom.text_indexes is False
    ddl = "\n".join(schema_statements(bloom))
    assert "TYPE bloom_filter(0.001)" in ddl and "TYPE text(" not in ddl
    text = ClickHouseConfig(endpoint=SERVER, skip_indexes="text").schema_options()
    assert "TYPE text(tokenizer = 'array')" in "\n".join(schema_statements(text))
    with pytest.raises(ValidationError, match="skip_indexes"):
        ClickHouseConfig.model_validate({"endpoint": SERVER, "skip_indexes": "minmax"})
