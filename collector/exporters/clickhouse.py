"""`clickhouse` exporter: spans into the contrib exporter's `otel_traces` schema.

    exporters:
      clickhouse:
        endpoint: chdb:///var/lib/genaitrace/chdb   # or http://clickhouse:8123
        database: otel
        username: default
        password: ${env:CLICKHOUSE_PASSWORD:-}
        traces_table_name: otel_traces
        ttl: 720h
        create_schema: true
        cluster_name: ""            # set for ON CLUSTER DDL with Replicated engines
        table_engine: {name: MergeTree, params: ""}
        database_engine: {name: "", params: ""}     # e.g. Replicated for CREATE DATABASE ... ENGINE
        async_insert: false         # contrib's default is true (see below)
        compress: lz4               # none | lz4 | zstd | gzip | deflate | br | true (= lz4)
        tls: {ca_file: "", cert_file: "", key_file: "", insecure: false, insecure_skip_verify: false,
              server_name_override: ""}
        json: false
        timeout: 10s
        retry_on_failure: {enabled: true}
        sending_queue: {enabled: true, storage: file_storage, num_consumers: 2, batch: {max_size: 25165824}}

The keys are the contrib exporter's (v0.165), with the same meaning. Batches are inserted as Arrow
with an insert deduplication token per queued batch, so a retry does not store a batch twice. A
batch replayed after a crash is checked against the table row by row instead: a plain MergeTree
records a token before it commits the part, so a kill between the two spends the token on nothing.

Where a key cannot apply the config is refused with the reason, not ignored:

* with the embedded engine (chdb://): `cluster_name`, a Replicated table or database engine,
  `async_insert: true`, `compress` and `tls` (there is no server and no connection);
* `json: true` (JSON attribute columns): the GenAI views, cost and reprice read the Map columns;
* `async_insert` defaults to false here (contrib: true): a batch is acknowledged to its sender once
  stored, and replays are deduplicated by insert token, both of which rely on the insert having
  finished; `true` sets `async_insert=1, wait_for_async_insert=1` (unless `connection_params` set
  them), so a batch is still acknowledged only once the server has flushed it;
* in a logs pipeline the same exporter writes log records to `logs_table_name` (the contrib
  `otel_logs` schema), with a queue of its own (collector/exporters/clickhouse_logs.py);
  `profiles_table_name`, `metrics_table_name`, `metrics_tables` are accepted (configs written for
  the contrib exporter load unchanged) and have no effect: there are no metrics or profiles pipelines.

`skip_indexes: auto | text | bloom_filter` (ours; applies when the tables are created): `auto` is the
contrib exporter's choice, text indexes on ClickHouse >= 26.2 (chdb 26.9 is) and its bloom filters
below; `bloom_filter` keeps the bloom filters on any server. Both are the contrib DDL of one
server version or the other. Measured on the embedded engine (bench/README.md): the text indexes
cost ~17 us of CPU per stored span, the bloom filters ~8 (35 against 27 in all); at 1M spans the
dashboards' and views' queries showed no difference beyond run-to-run noise. The text indexes
serve token searches in attribute values (`hasToken`, `LIKE`), which no panel makes.

`sending_queue.num_consumers` (default 2) batches are pushed at once: a push converts its batch
to Arrow (native code, off the GIL) and then inserts it, and the embedded engine takes one insert
at a time, so with two consumers one batch converts while the other is written (bench/README.md:
+13-17 % stored on 2 cores); each further consumer holds one more batch in memory.

`convert_workers: N` (ours, default 0 = in this process) converts queued batches protobuf -> Arrow
in N worker processes (spawned at start, imports paid then), which moves the conversion's CPU and
memory out of this process. The worker gets the batch's serialized payloads and returns Arrow IPC
bytes; the insert and its deduplication token stay here, so rows and replay semantics are the same.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import threading
import uuid
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from collector.child_process import detach_from_parent_signals
from collector.component import ComponentId, Factory, Host, Kind, StrictConfig
from collector.confighelpers import Duration
from collector.exporterhelper import ExportRequest, ExporterSettings, QueuedRetryExporter
from collector.storage.client import ClickHouseStore, acquire_store, parse_endpoint, release_store
from collector.exporters.clickhouse_logs import create_logs
from collector.storage import schema, session_views
from collector.storage.schema import SchemaOptions

# pyarrow (and `collector.storage.columns`, which needs it) is imported where a batch is converted:
# the CLI loads this module for the exporter's config alone, and pyarrow's import is ~0.3 s of it.
if TYPE_CHECKING:
    import pyarrow as pa


class TableEngine(StrictConfig):
    name: str = "MergeTree"
    params: str = ""


class DatabaseEngine(StrictConfig):
    name: str = ""  # "" = the server's default
    params: str = ""


class TLSConfig(StrictConfig):
    """otelcol's configtls client settings that a ClickHouse HTTP connection can use."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False  # plain HTTP
    insecure_skip_verify: bool = False
    server_name_override: str = ""

    def configured(self) -> bool:
        return self != TLSConfig()


log = logging.getLogger(__name__)

# Trace ids per lookup query when a replayed batch is checked against the table (a batch holds
# up to ~8k spans; a query's text stays far below max_query_size).
_LOOKUP_CHUNK = 1000

_COMPRESS = {"": "lz4", "true": "lz4", "lz4": "lz4", "zstd": "zstd", "gzip": "gzip", "deflate": "deflate", "br": "br",
             "none": False, "false": False}


class ClickHouseConfig(ExporterSettings):
    endpoint: str = "chdb:///var/lib/genaitrace/chdb"
    database: str = Field("otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str = "default"
    password: str = Field("", repr=False)
    traces_table_name: str = Field("otel_traces", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ttl: Duration = 0.0
    create_schema: bool = True
    cluster_name: str = ""
    table_engine: TableEngine = TableEngine()
    # Extra ClickHouse settings for every insert/query (contrib: connection_params).
    connection_params: dict[str, Any] = {}
    # Worker processes for protobuf -> Arrow of queued batches; 0 = convert in this process.
    convert_workers: int = Field(0, ge=0, le=16)
    # Ours: which skipping indexes a new otel_traces / otel_logs table gets (see the docstring).
    skip_indexes: Literal["auto", "text", "bloom_filter"] = "auto"
    database_engine: DatabaseEngine = DatabaseEngine()
    async_insert: bool = False
    compress: str = ""
    tls: TLSConfig = TLSConfig()
    json_columns: bool = Field(False, alias="json")
    logs_table_name: str = Field("otel_logs", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Accepted for parity with the contrib exporter's configs; there are no metrics or profiles pipelines.
    profiles_table_name: str = "otel_profiles"
    metrics_table_name: str = ""
    metrics_tables: dict[str, Any] = {}

    @field_validator("compress")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if value.lower() not in _COMPRESS:
            raise ValueError(f"compress must be one of none, lz4, zstd, gzip, deflate, br, true; got {value!r}")
        return value.lower()

    @field_validator("json_columns")
    @classmethod
    def _map_columns_only(cls, value: bool) -> bool:
        if value:
            raise ValueError("json: true (JSON attribute columns) is not supported: the GenAI views, cost and "
                             "reprice read the Map columns of the contrib schema; leave it false")
        return value

    @model_validator(mode="after")
    def _applies_to_the_endpoint(self) -> "ClickHouseConfig":
        if not parse_endpoint(self.endpoint).embedded:
            return self
        refused = [
            ("cluster_name", bool(self.cluster_name), "ON CLUSTER needs a ClickHouse server cluster"),
            ("table_engine", self.table_engine.name.startswith("Replicated"), "replication needs a server"),
            ("database_engine", self.database_engine.name.startswith("Replicated"), "replication needs a server"),
            ("async_insert", self.async_insert, "the embedded engine inserts in-process, there is no async insert queue"),
            ("compress", self.compress not in ("", "none", "false"), "there is no connection to compress"),
            ("tls", self.tls.configured(), "there is no connection to secure"),
        ]
        for key, is_set, why in refused:
            if is_set:
                raise ValueError(f"{key} cannot apply to the embedded engine ({self.endpoint}): {why}; "
                                 "remove it or point endpoint at a ClickHouse server (http(s)://host:8123)")
        return self

    def insert_settings(self) -> dict[str, Any]:
        """Settings for every insert and query: connection_params, and async_insert when asked."""
        settings = dict(self.connection_params)
        if self.async_insert:
            settings.setdefault("async_insert", 1)
            settings.setdefault("wait_for_async_insert", 1)
        return settings

    def transport(self) -> dict[str, Any]:
        """clickhouse-connect client options for a server: compression and TLS."""
        options: dict[str, Any] = {"compress": _COMPRESS[self.compress]}
        tls = self.tls
        if tls.insecure:
            options["secure"] = False
        elif tls.configured() or self.endpoint.startswith("https://"):
            options.update(secure=True, verify=not tls.insecure_skip_verify)
            for key, value in (("ca_cert", tls.ca_file), ("client_cert", tls.cert_file),
                               ("client_cert_key", tls.key_file), ("server_host_name", tls.server_name_override)):
                if value:
                    options[key] = value
        return options

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        parse_endpoint(value)
        return value

    @field_validator("ttl")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        # ClickHouse TTLs are whole seconds; a shorter one was silently "no TTL" before.
        if value and (value < 1 or value != int(value)):
            raise ValueError(f"ttl must be 0 (keep forever) or a whole number of seconds, e.g. 30m or 720h; got {value}s")
        return value

    def schema_options(self) -> SchemaOptions:
        return SchemaOptions(
            database=self.database,
            traces_table_name=self.traces_table_name,
            logs_table_name=self.logs_table_name,
            cluster_name=self.cluster_name,
            table_engine=self.table_engine.name,
            table_engine_params=self.table_engine.params,
            ttl_seconds=int(self.ttl),
            database_engine=(f"{self.database_engine.name}({self.database_engine.params})"
                             if self.database_engine.name else ""),
            text_indexes={"auto": None, "text": True, "bloom_filter": False}[self.skip_indexes],
        )

    def open_store(self, endpoint=None) -> ClickHouseStore:
        """`endpoint`: the parsed endpoint when it was resolved earlier (a relative chdb path is
        resolved against the working directory, which the embedded engine may have changed since)."""
        endpoint = endpoint or parse_endpoint(self.endpoint)
        return acquire_store(
            endpoint, self.username, self.password, self.database, self.timeout, self.insert_settings(),
            transport=None if endpoint.embedded else self.transport(),
        )


class ClickHouseExporter:
    def __init__(self, component_id: ComponentId, config: ClickHouseConfig):
        self.id, self.config = component_id, config
        self.store: ClickHouseStore | None = None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()  # the queue's consumers may find the pool broken together
        self._lifetime = uuid.uuid4().hex[:12]  # one per process: a replay's token after a crash
        self.helper = QueuedRetryExporter(component_id, config, self.push, start=self._start, shutdown=self._shutdown)

    def _start(self, host: Host) -> None:
        ready = []
        if self.config.convert_workers > 0 and self._pool is None:
            self._pool, ready = _start_pool(self.config.convert_workers)  # workers import while we go on
        # pyarrow imports pandas on its first array (seconds): pay it in the background so the
        # collector starts listening at once; a batch arriving meanwhile waits on the import lock.
        from collector.storage.columns import warm_up

        threading.Thread(target=warm_up, name="arrow-warm-up", daemon=True).start()
        for future in ready:
            future.result(timeout=120)
        self.store = self.config.open_store()
        if self.config.skip_indexes == "text" and not schema.server_has_text_indexes(self.store):
            raise ValueError(f"exporter {self.id}: skip_indexes: text needs ClickHouse 26.2 or later; this server "
                             "has no text indexes (use auto or bloom_filter)")
        if self.config.create_schema:
            schema.create(self.store, self.config.schema_options())  # text indexes if the server has them
            from collector.storage import genai_views

            genai_views.create(self.store, self.config.schema_options())
            session_views.create(self.store, self.config.schema_options())  # scores, conversations, users

    def push(self, request: ExportRequest) -> None:
        """A batch as the queue holds it, serialized: straight to Arrow (`payloads_to_arrow`), or in
        worker processes when `convert_workers` > 0, then one insert carrying the batch's dedup token.

        exporterhelper stops waiting for a push after `timeout` and retries it; the insert it gave
        up on may still complete (an embedded insert cannot be interrupted). The retry carries the
        same insert_deduplication_token, so ClickHouse keeps the block once either way."""
        from collector.storage.columns import payloads_to_arrow

        payloads = list(request.payloads)
        table = payloads_to_arrow(payloads) if self._pool is None else self._convert_in_pool(payloads)
        if request.replayed and table.num_rows:
            table = self._not_yet_stored(table)
        if table.num_rows:
            self._insert(table, request)

    def _not_yet_stored(self, table: pa.Table) -> pa.Table:
        """The rows of a replayed batch that the table does not hold yet.

        A plain MergeTree (the embedded engine's) records an insert's deduplication token on disk
        before it commits the part: a process killed between the two leaves a token whose rows are
        gone, and a replay carrying that token would be dropped as a duplicate. So a batch replayed
        after a crash is checked against the table row by row, and what is missing is inserted
        with a token of its own (`_insert`). Only replays pay this: a few queries per batch."""
        import pyarrow as pa
        import pyarrow.compute as pc

        stored: set[str] = set()
        low, high = pc.min_max(table["Timestamp"]).values()
        trace_ids = pc.unique(table["TraceId"]).to_pylist()
        for start in range(0, len(trace_ids), _LOOKUP_CHUNK):
            rows = self.store.query(
                f"SELECT TraceId, SpanId FROM {self.config.database}.{self.config.traces_table_name} WHERE Timestamp BETWEEN "
                "{low:DateTime64(9)} AND {high:DateTime64(9)} AND TraceId IN {ids:Array(String)}",
                parameters={"low": low.as_py(), "high": high.as_py(), "ids": trace_ids[start:start + _LOOKUP_CHUNK]},
            ).result_rows
            stored.update(trace_id + span_id for trace_id, span_id in rows)
        if not stored:
            return table
        keys = pc.binary_join_element_wise(table["TraceId"], table["SpanId"], "")
        missing = table.filter(pc.invert(pc.is_in(keys, value_set=pa.array(sorted(stored)))))
        log.info("exporter %s: %d of the replayed batch's %d spans were already stored; inserting the other %d",
                 self.id, table.num_rows - missing.num_rows, table.num_rows, missing.num_rows)
        return missing

    def _convert_in_pool(self, payloads: list[bytes]) -> pa.Table:
        """With several workers, consecutive runs of the payloads in parallel, concatenated in order."""
        import pyarrow as pa

        from collector.storage.columns import arrow_from_ipc, payloads_to_arrow_ipc

        parts, pool = _split(payloads, self.config.convert_workers), self._pool
        try:
            futures = [pool.submit(payloads_to_arrow_ipc, part) for part in parts]
            tables = [arrow_from_ipc(future.result()) for future in futures]
        except BrokenProcessPool:
            # A worker died (OOM kill...): replace the pool (once, whichever consumer sees it
            # first); the retry converts the batch again.
            with self._pool_lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool, _ = _start_pool(self.config.convert_workers)
            raise
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()

    def _insert(self, table, request: ExportRequest) -> None:
        settings = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if request.dedup_token:
            # A replay's rows were checked against the table (`_not_yet_stored`); the original token
            # may be spent on rows that were never committed, so the rest gets a token of this
            # process's own (the same on each retry here, new after another crash).
            settings["insert_deduplication_token"] = (f"{request.dedup_token}:replay:{self._lifetime}"
                                                      if request.replayed else request.dedup_token)
        self.store.insert_arrow(self.config.traces_table_name, table, settings=settings)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.store is not None:
            release_store(self.store)


# --- conversion worker processes -------------------------------------------------------------------


def _worker_init(parent_pid: int) -> None:
    # The collector shuts the pool down; after a kill -9 of the collector a worker would wait for
    # work forever (it holds its own queue's write end, so it never sees EOF).
    from collector.storage.columns import warm_up

    detach_from_parent_signals(parent_pid)
    warm_up()


def _split(payloads: list[bytes], parts: int) -> list[list[bytes]]:
    """Up to `parts` consecutive runs of payloads of about equal bytes (order kept)."""
    if parts <= 1 or len(payloads) <= 1:
        return [payloads]
    target, runs, size = sum(map(len, payloads)) / parts, [[]], 0
    for payload in payloads:
        if runs[-1] and size >= target * len(runs) and len(runs) < parts:
            runs.append([])
        runs[-1].append(payload)
        size += len(payload)
    return runs


def _start_pool(workers: int) -> tuple[concurrent.futures.ProcessPoolExecutor, list[concurrent.futures.Future]]:
    """The pool, and one future per worker that completes once that worker is started and warm."""
    # spawn, never fork: this process holds chdb, gRPC and thread state.
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_worker_init, initargs=(os.getpid(),))
    # Workers are spawned on demand, one per task that finds no idle worker: start them all now.
    return pool, [pool.submit(os.getpid) for _ in range(workers)]


def _create(component_id: ComponentId, config: ClickHouseConfig, _next) -> QueuedRetryExporter:
    return ClickHouseExporter(component_id, config).helper


factory = Factory("clickhouse", Kind.EXPORTER, ClickHouseConfig, _create, signals=("traces", "logs"),
                  create_logs=create_logs)
