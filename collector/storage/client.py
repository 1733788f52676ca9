"""One way to reach ClickHouse, a server or the embedded engine: clickhouse-connect.

`http(s)://host:8123` is a ClickHouse server; `chdb:///abs/path` (or `chdb://relative/path`) is the
embedded engine, which chdb registers as a clickhouse-connect backend: same client API, same SQL.
Only one process can open a chdb path, so the collector owns it while it runs and other processes
reach it through the collector's read-only `sqlquery` endpoint.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import clickhouse_connect

from collector import memory

# The summary line of `system.jemalloc_stats`: "Allocated: N, active: N, metadata: N (...), resident: N, ..."
_JEMALLOC_SUMMARY = re.compile(r"Allocated: (?P<allocated>\d+), .*?resident: (?P<resident>\d+)")


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "chdb" or "http"
    url: str  # chdb: absolute data path; http: the server URL
    host: str = ""
    port: int = 0
    secure: bool = False

    @property
    def embedded(self) -> bool:
        return self.kind == "chdb"


def parse_endpoint(text: str) -> Endpoint:
    """Validate an exporter `endpoint`; errors say what forms are valid."""
    text = str(text).strip()
    if text.startswith("chdb://"):
        path = text[len("chdb://"):]
        if not path or path == "/":
            raise ValueError(f"invalid endpoint {text!r}: chdb:// needs a data directory, e.g. chdb:///var/lib/genaitrace")
        return Endpoint("chdb", os.path.abspath(path))
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        port = parsed.port or (8443 if parsed.scheme == "https" else 8123)
        return Endpoint("http", text, parsed.hostname, port, parsed.scheme == "https")
    if parsed.scheme in ("tcp", "clickhouse"):
        raise ValueError(f"invalid endpoint {text!r}: the native TCP protocol is not used; give the HTTP interface, e.g. http://{parsed.hostname or 'host'}:8123")
    raise ValueError(f"invalid endpoint {text!r}: expected http(s)://host:8123 for a server or chdb:///path for the embedded engine")


class ClickHouseStore:
    """A clickhouse-connect client plus a lock: the embedded engine is not safe to share across threads."""

    def __init__(self, endpoint: Endpoint, username: str = "default", password: str = "", database: str = "default",
                 timeout_s: float = 10.0, settings: dict | None = None, transport: dict | None = None):
        self.endpoint = endpoint
        self.database = database
        self._username, self._password, self._timeout_s = username, password, timeout_s
        self._lock = threading.RLock()
        try:
            if endpoint.embedded:
                os.makedirs(endpoint.url, exist_ok=True)
                self.client = clickhouse_connect.get_client(dsn=f"chdb://{endpoint.url}", settings=settings or {})
            else:
                # transport: the exporter's compress / tls as clickhouse-connect options
                options = {"secure": endpoint.secure, **(transport or {})}
                self.client = clickhouse_connect.get_client(
                    host=endpoint.host, port=endpoint.port, username=username,
                    password=password, connect_timeout=timeout_s, send_receive_timeout=timeout_s,
                    settings=settings or {}, **options,
                )
        except Exception as exc:  # noqa: BLE001 - every driver error means the same thing here
            where = endpoint.url if endpoint.embedded else f"{endpoint.host}:{endpoint.port}"
            hint = " (is another process, e.g. a running collector, holding this chdb path?)" if endpoint.embedded else ""
            raise StoreError(f"cannot open ClickHouse at {where}: {exc}{hint}") from exc
        self._engine_memory: dict[str, int] = {}
        self._engine_memory_at = float("-inf")
        if endpoint.embedded:
            memory.register_releaser(self._purge_engine_allocator)
            for part in ("engine_allocated", "engine_resident"):
                memory.register_part(part, lambda part=part: self._engine_memory_bytes().get(part, 0))

    def _engine_memory_bytes(self) -> dict[str, int]:
        # The embedded engine's allocator (its own jemalloc): bytes allocated, and bytes resident
        # (allocated plus freed pages it keeps for reuse, and its metadata). Asked between inserts
        # only: a scrape must not wait for one, so it may repeat the last figures; asked once per
        # scrape (both parts come from one answer).
        if time.monotonic() - self._engine_memory_at < 1.0:
            return self._engine_memory
        if self._lock.acquire(blocking=False):
            try:
                text = self.client.command("SELECT * FROM system.jemalloc_stats")
                summary = _JEMALLOC_SUMMARY.search(str(text))
                if summary:
                    self._engine_memory = {"engine_allocated": int(summary["allocated"]),
                                           "engine_resident": int(summary["resident"])}
                    self._engine_memory_at = time.monotonic()
            finally:
                self._lock.release()
        return self._engine_memory

    def _purge_engine_allocator(self) -> None:
        # The embedded engine's jemalloc keeps freed pages for seconds after inserts and merges;
        # under memory pressure, hand them back. Skipped while a query holds the engine.
        if self._lock.acquire(blocking=False):
            try:
                self.client.command("SYSTEM JEMALLOC PURGE")
            finally:
                self._lock.release()

    def command(self, sql: str, settings: dict | None = None):
        with self._lock:
            return self.client.command(sql, settings=settings or {})

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None):
        with self._lock:
            return self.client.query(sql, parameters=parameters, settings=settings or {})

    def open_session(self, name: str, username: str = "", password: str = "") -> "ReadSession":
        """A session of its own for reads (the sqlquery endpoint): queries on it run beside this
        store's inserts instead of queueing behind them, and can be killed from another session.

        Embedded: another session on the same embedded engine (a distinct chdb connection string;
        chdb ignores the `session_id` option's value for anything else). Server: a client logged in
        as `username` (the reader user of deploy/clickhouse/users.d), else as this store's user."""
        try:
            if self.endpoint.embedded:
                from chdb.cc_backend import ChdbClient

                client = ChdbClient(chdb_path=self.endpoint.url, chdb_options={"session_id": f"genaitrace-{name}"},
                                    database=self.database)
            else:
                client = clickhouse_connect.get_client(
                    host=self.endpoint.host, port=self.endpoint.port, secure=self.endpoint.secure,
                    username=username or self._username, password=password if username else self._password,
                    database=self.database, connect_timeout=self._timeout_s, send_receive_timeout=3600,
                )
        except Exception as exc:  # noqa: BLE001 - every driver error means the same thing here
            raise StoreError(f"cannot open a read session on {self.endpoint.url}: {exc}") from exc
        return ReadSession(client)

    def insert_arrow(self, table: str, arrow_table, settings: dict | None = None) -> None:
        with self._lock:
            if not self.endpoint.embedded:
                self.client.insert_arrow(table, arrow_table, database=self.database, settings=settings or {})
                return
            # The embedded engine reads an insert from a file. clickhouse-connect's insert_arrow
            # copies the serialized table into `bytes` first, under the GIL (an 8k-span batch is
            # ~8 MB: 4 % of the GIL's samples at 40k spans/s); a view of the Arrow buffer is written
            # to the file as it is, and the write releases the GIL.
            # The serialization and the table's name are insert_arrow's own (clickhouse-connect is
            # pinned in the lock): only the block handed to raw_insert differs.
            from clickhouse_connect.driver.binding import _qualified_table
            from clickhouse_connect.driver.query import arrow_buffer

            names, data = arrow_buffer(arrow_table)
            self.client.raw_insert(_qualified_table(table, self.database), names, memoryview(data), settings or {}, "Arrow")

    def close(self) -> None:
        memory.unregister_releaser(self._purge_engine_allocator)
        if self.endpoint.embedded:
            memory.unregister_part("engine_allocated")
            memory.unregister_part("engine_resident")
        with self._lock:
            self.client.close()


class ReadSession:
    """One read session (see ClickHouseStore.open_session): one query at a time, as the engine
    requires of a session; the SQL it is given is final (the caller adds every setting)."""

    def __init__(self, client):
        self.client = client
        self._lock = threading.Lock()

    def query(self, sql: str, parameters: dict | None = None):
        with self._lock:
            result = self.client.query(sql, parameters=parameters)
            result.result_rows  # the rows stream in: read them (and any error mid-stream) here
            return result

    def command(self, sql: str):
        with self._lock:
            return self.client.command(sql)

    def close(self) -> None:
        with self._lock:
            self.client.close()


# The embedded engine allows one open path per process, so components that need the same store
# (the exporter writing, the sqlquery extension reading) share one client, counted by users.
_shared_lock = threading.Lock()
_shared: dict[tuple, list] = {}


def acquire_store(endpoint: Endpoint, username: str = "default", password: str = "", database: str = "default",
                  timeout_s: float = 10.0, settings: dict | None = None, transport: dict | None = None) -> ClickHouseStore:
    key = (endpoint, username, database)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            entry = _shared[key] = [ClickHouseStore(endpoint, username, password, database, timeout_s, settings, transport), 0]
        entry[1] += 1
        return entry[0]


def release_store(store: ClickHouseStore) -> None:
    with _shared_lock:
        for key, entry in list(_shared.items()):
            if entry[0] is store:
                entry[1] -= 1
                if entry[1] == 0:
                    del _shared[key]
                    store.close()
                return
