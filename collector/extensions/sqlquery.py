"""`sqlquery` extension: read-only SQL over the store a ClickHouse exporter writes.

    extensions:
      sqlquery:
        endpoint: 127.0.0.1:13134
        exporter: clickhouse         # whose store to query

The embedded engine (chdb) can be opened by one process only, and while the collector runs it is
that process. The CLI's `sql` and `trace` commands therefore ask this endpoint:
`POST /v1/query {"sql": "...", "parameters": {...}}` -> `{"columns", "types", "rows"}`.
Every query runs with ClickHouse's `readonly=1`: writes, DDL and setting changes are refused by
the engine itself.
"""

from __future__ import annotations

import json

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig
from collector.confighelpers import HostPort
from collector.httpserver import start_http_server, stop_http_server
from collector.storage.client import release_store
from collector.storage.jsonvalues import result_to_json


class SQLQueryConfig(StrictConfig):
    endpoint: HostPort = "127.0.0.1:13134"
    exporter: str = "clickhouse"


class SQLQuery(Component):
    def __init__(self, component_id: ComponentId, config: SQLQueryConfig):
        self.id, self.config = component_id, config
        self._server = None
        self._store = None

    def start(self, host) -> None:
        exporter_config = host.exporter_configs.get(ComponentId.parse(self.config.exporter))
        if exporter_config is None or not hasattr(exporter_config, "open_store"):
            raise LookupError(f"sqlquery: {self.config.exporter} is not a configured clickhouse exporter")
        self._store = exporter_config.open_store()
        self._server = start_http_server(self.config.endpoint, "sqlquery", self._handle)

    def _handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
        if method != "POST" or path.rstrip("/") != "/v1/query":
            return 404, "application/json", b'{"error":"POST /v1/query"}'
        try:
            request = json.loads(body)
            sql = request["sql"]
        except (ValueError, KeyError, TypeError):
            return 400, "application/json", b'{"error":"body must be {\\"sql\\": \\"...\\"}"}'
        try:
            result = self._store.query_readonly(sql, parameters=request.get("parameters"))
        except Exception as exc:  # noqa: BLE001 - ClickHouse's own message is the useful answer
            return 400, "application/json", json.dumps({"error": str(exc)}).encode()
        return 200, "application/json", json.dumps(result_to_json(result)).encode()

    def shutdown(self) -> None:
        stop_http_server(self._server)
        if self._store is not None:
            release_store(self._store)


factory = Factory("sqlquery", Kind.EXTENSION, SQLQueryConfig, lambda cid, cfg, _next: SQLQuery(cid, cfg))
