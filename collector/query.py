"""Read-only SQL from the CLI: through a running collector's `sqlquery` endpoint, else directly.

The embedded store can be open in one process only; when the collector runs, it is that process,
so the CLI asks it. When nothing holds the store (or it is a ClickHouse server), the CLI opens it
itself, still with `readonly=1`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from collector.component import ComponentId
from collector.config import CollectorConfig, load_config
from collector.confighelpers import local_url


class QueryError(Exception):
    pass


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list]

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]


class QueryClient:
    def __init__(self, config: CollectorConfig, exporter: str | None = None):
        self.config = config
        self.exporter_id = self._pick_exporter(exporter)
        self.exporter_config = config.exporters[self.exporter_id].config
        self.database = self.exporter_config.database
        self.table = self.exporter_config.traces_table_name
        self._endpoint = self._sqlquery_endpoint()
        self._store = None
        self.via = ""

    def _pick_exporter(self, name: str | None) -> ComponentId:
        candidates = [cid for cid in self.config.exporters if cid.type == "clickhouse"]
        if name:
            wanted = ComponentId.parse(name)
            if wanted not in candidates:
                raise QueryError(f"{self.config.path}: no clickhouse exporter named {name}")
            return wanted
        if not candidates:
            raise QueryError(f"{self.config.path}: no clickhouse exporter is configured, nothing to query")
        return candidates[0]

    def _sqlquery_endpoint(self) -> str | None:
        for cid in self.config.service_extensions:
            ext = self.config.extensions[cid].config
            if cid.type == "sqlquery" and ComponentId.parse(ext.exporter) == self.exporter_id:
                return local_url(ext.endpoint, "/v1/query")
        return None

    def _headers(self) -> dict:
        """`GENAITRACE_SQL_TOKEN`: the bearer token for a `sqlquery` endpoint that has `auth` set."""
        token = os.environ.get("GENAITRACE_SQL_TOKEN", "")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def query(self, sql: str, parameters: dict | None = None) -> QueryResult:
        if self._endpoint and self._store is None:
            import httpx  # here: a CLI reading the store itself does not pay for it (~0.2 s)

            try:
                response = httpx.post(self._endpoint, json={"sql": sql, "parameters": parameters},
                                      headers=self._headers(), timeout=120)
            except httpx.TransportError:
                pass  # no collector running: open the store ourselves
            else:
                try:
                    body = response.json()
                except ValueError:
                    body = {"error": response.text}
                if response.status_code != 200:
                    raise QueryError(body.get("error", response.text))
                self.via = "collector"
                return QueryResult(body["columns"], body["types"], body["rows"])
        return self._query_direct(sql, parameters)

    def _query_direct(self, sql: str, parameters: dict | None) -> QueryResult:
        """No collector holds the store: open it here, with the same check and confinement as the
        endpoint (an admin's scope: this process could open the store's files anyway)."""
        from collector.storage.readonly_sql import (ALLOWED_SYSTEM_TABLES, ALLOWED_TABLE_FUNCTIONS, QueryLimits,
                                                    QueryRefused, Scope, run_confined)
        from collector.storage.client import StoreError

        if self._store is None:
            try:
                self._store = self.exporter_config.open_store()
                self._session = self._store.open_session("cli")
            except StoreError as exc:
                raise QueryError(str(exc)) from exc
        self.via = "direct"
        scope = Scope(self.database, frozenset(ALLOWED_SYSTEM_TABLES), frozenset(ALLOWED_TABLE_FUNCTIONS))
        try:
            body = run_confined(self._session, sql, parameters, scope, QueryLimits(), self.table)
        except QueryRefused as exc:
            raise QueryError(str(exc)) from exc
        return QueryResult(body["columns"], body["types"], body["rows"])

    def close(self) -> None:
        if self._store is not None:
            from collector.storage.client import release_store

            self._session.close()
            release_store(self._store)
            self._store = None


def open_query_client(config_path: str, exporter: str | None = None) -> QueryClient:
    return QueryClient(load_config(config_path), exporter)
