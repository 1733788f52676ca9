"""`sqlquery` extension: read-only SQL over the store a ClickHouse exporter writes.

    extensions:
      sqlquery:
        endpoint: 127.0.0.1:13134     # loopback unless `auth` is set (the config refuses otherwise)
        exporter: clickhouse          # whose store to query
        auth: {authenticator: bearertokenauth}   # a tenant's token reads its rows; the shared token all
        # username: genaitrace_reader # on a ClickHouse server: the reader user (deploy/clickhouse/users.d)
        # password: ${env:CLICKHOUSE_READER_PASSWORD}
        # limits: {max_execution_time: 30s, max_memory_usage_mib: 512, max_result_rows: 100000,
        #          max_result_bytes_mib: 64, max_rows_to_read: 2000000000, max_threads: 1}
        # max_concurrent_queries: 2

The embedded engine (chdb) can be opened by one process only, and while the collector runs it is
that process. The CLI's `sql` and `trace` commands therefore ask this endpoint:
`POST /v1/query {"sql": "...", "parameters": {...}}` -> `{"columns", "types", "rows"}`.

What confines a query (SECURITY.md, "SQL endpoint"):

- The engine. Every query runs in a read session of its own with `readonly=1` set by the endpoint
  last in the query's settings: ClickHouse refuses writes, DDL, setting changes and the table
  functions that reach outside (file, url, s3, remote, mysql, executable, ...). The limits below
  and, for a tenant's token, `additional_table_filters` on every table of the database (so a
  tenant reads only its rows through views and subqueries too) are set the same way; readonly=1
  forbids the query to change them. On a server the session logs in as the reader user, whose
  grants and profile (deploy/clickhouse/users.d) confine it again.
- A check that never executes the query: the engine's parser (`formatQuery`, `EXPLAIN AST`, both
  parse only) gives the syntax tree, which must be one SELECT reading tables of the exporter's
  database or the allowed system tables, calling no function that reads outside the database
  (`file()`, which chdb's local mode lets read any file; dictionaries; `merge()` and `view()`,
  which hide what they read) and carrying no SETTINGS, FORMAT or INTO OUTFILE of its own.
- Errors: the engine's error code and name, and its message with every quoted value removed
  (messages of the codes that quote input data are dropped), so no text from outside the caller's
  rows can come back in an error.
- A client that hangs up gets its query killed (KILL QUERY from another session).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import queue
import threading

from pydantic import Field, field_validator

from collector.component import Component, ComponentId, Factory, Kind, StoreConfig, StrictConfig, UnauthenticatedError
from collector.confighelpers import HostPort, split_host_port
from collector.httpserver import ServerLimits, start_http_server, stop_http_server
from collector.storage.client import release_store
from collector.storage.readonly_sql import (ALLOWED_SYSTEM_TABLES, ALLOWED_TABLE_FUNCTIONS, MIB, TENANT_SYSTEM_TABLES,
                                            QueryLimits, QueryRefused, Scope, SessionFailure, canonical_sql,
                                            run_confined, safe_error, sql_literal)

log = logging.getLogger(__name__)

class AuthConfig(StrictConfig):
    authenticator: str


class SQLQueryConfig(StrictConfig):
    endpoint: HostPort = "127.0.0.1:13134"
    exporter: str = "clickhouse"
    auth: AuthConfig | None = Field(None, validate_default=True)
    username: str = ""
    password: str = Field("", repr=False)
    limits: QueryLimits = Field(default_factory=QueryLimits)
    max_concurrent_queries: int = Field(2, gt=0, le=16)
    allowed_system_tables: list[str] = list(ALLOWED_SYSTEM_TABLES)
    allowed_table_functions: list[str] = list(ALLOWED_TABLE_FUNCTIONS)

    # A field validator (not a model one): its error quotes only `auth`, never the password.
    @field_validator("auth", mode="after")
    @classmethod
    def _loopback_unless_authenticated(cls, auth, info):
        endpoint = info.data.get("endpoint")
        if auth is None and endpoint and not is_loopback(endpoint):
            raise ValueError(f"endpoint {endpoint} is reachable from other hosts but no `auth` is set: anyone could "
                             "read every tenant's spans; set `auth: {authenticator: bearertokenauth}` or listen on 127.0.0.1")
        return auth

    def references(self) -> dict:
        return {"exporter": (Kind.EXPORTER, self.exporter)}


def is_loopback(endpoint: str) -> bool:
    host, _port = split_host_port(endpoint)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other hosts may resolve to a routable address


class SQLQuery(Component):
    def __init__(self, component_id: ComponentId, config: SQLQueryConfig):
        self.id, self.config = component_id, config
        self._server = None
        self._store = None
        self._sessions: queue.Queue = queue.Queue()
        self._all_sessions: list = []
        self._control = None
        self._control_lock = threading.Lock()
        self._authenticator = None
        self._open_lock = threading.Lock()
        self._names = itertools.count()

    def start(self, host) -> None:
        exporter_config = host.exporter_configs.get(ComponentId.parse(self.config.exporter))
        if not isinstance(exporter_config, StoreConfig):
            raise LookupError(f"sqlquery: {self.config.exporter} is not a configured clickhouse exporter")
        self._exporter_config = exporter_config
        self._database = exporter_config.database
        self._traces_table = exporter_config.traces_table_name
        if self.config.auth is not None:
            self._authenticator = host.extension(self.config.auth.authenticator)
        # Sessions open in the background: the collector is up without waiting for them, and a
        # query arriving meanwhile waits for the same lock.
        threading.Thread(target=self._open_logged, name="sqlquery-open", daemon=True).start()
        limits = ServerLimits(max_concurrent_requests=self.config.max_concurrent_queries + 2, max_body_bytes=MIB)
        self._server = start_http_server(self.config.endpoint, "sqlquery", self._handle, limits, cancellable=True)

    def _open_logged(self) -> None:
        try:
            self._open()
        except Exception as exc:  # noqa: BLE001 - a server that is down now may be up at the first query
            log.warning("sqlquery: store not reachable yet (%s); will connect at the first query", safe_error(exc))

    def _open(self) -> None:
        with self._open_lock:
            if self._store is not None:
                return
            store = self._exporter_config.open_store()
            try:
                sessions = [store.open_session(f"sql-{next(self._names)}", self.config.username, self.config.password)
                            for _ in range(self.config.max_concurrent_queries)]
                self._control = store.open_session(f"sql-control-{next(self._names)}", self.config.username, self.config.password)
            except Exception:
                release_store(store)
                raise
            for session in sessions:
                self._sessions.put(session)
            self._all_sessions = sessions
            self._store = store
        # The engine's first formatQuery takes seconds (it loads its formatter): pay it now.
        threading.Thread(target=self._warm_up, args=(sessions,), name="sqlquery-warm-up", daemon=True).start()

    @staticmethod
    def _warm_up(sessions) -> None:
        for session in sessions:
            try:
                canonical_sql(session, "SELECT 1")
            except Exception:  # noqa: BLE001 - the first real query will say what is wrong
                return

    def _replace(self, session):
        try:
            session.close()
        except Exception:  # noqa: BLE001 - it is being replaced because it failed
            pass
        try:
            fresh = self._store.open_session(f"sql-{next(self._names)}", self.config.username, self.config.password)
        except Exception as exc:  # noqa: BLE001 - keep the pool its size; the next query may fail and retry
            log.warning("sqlquery: cannot open a new read session: %s", safe_error(exc))
            session.broken = False
            return session
        self._all_sessions = [fresh if s is session else s for s in self._all_sessions]
        return fresh

    def _scope(self, tenant: str | None) -> Scope:
        system = TENANT_SYSTEM_TABLES if tenant is not None else self.config.allowed_system_tables
        if tenant is not None:
            system = [t for t in system if t in self.config.allowed_system_tables]
        return Scope(self._database, frozenset(system), frozenset(n.lower() for n in self.config.allowed_table_functions), tenant)

    def _handle(self, method: str, path: str, headers: dict, body: bytes, cancelled: threading.Event) -> tuple[int, str, bytes]:
        if method != "POST" or path.split("?", 1)[0].rstrip("/") != "/v1/query":
            return _json(404, {"error": "POST /v1/query"})
        tenant = None
        if self._authenticator is not None:
            try:
                tenant = self._authenticator.check(headers)
            except UnauthenticatedError as exc:
                return _json(401, {"error": str(exc)})
        try:
            request = json.loads(body)
            sql = request["sql"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return _json(400, {"error": 'body must be {"sql": "...", "parameters": {...}}'})
        parameters = request.get("parameters")
        if not isinstance(sql, str) or (parameters is not None and not isinstance(parameters, dict)):
            return _json(400, {"error": "`sql` must be a string and `parameters` an object"})
        try:
            self._open()
        except Exception as exc:  # noqa: BLE001
            return _json(503, {"error": f"store unreachable: {safe_error(exc)}"})
        try:
            session = self._sessions.get(timeout=0.5)  # busy: say so at once rather than stall the client
        except queue.Empty:
            return _json(503, {"error": "all query sessions are busy; retry later"})
        try:
            try:
                result = self.run(session, sql, parameters, self._scope(tenant), cancelled)
            except SessionFailure as failure:
                log.warning("sqlquery: a read session failed (%s); retrying on a new one", failure)
                session = self._replace(session)
                result = self.run(session, sql, parameters, self._scope(tenant), cancelled)
        except QueryRefused as exc:
            return _json(exc.status, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the session may be broken: replace it, answer without data
            log.warning("sqlquery: a query failed outside the engine (%s: %s); opening a new session",
                        type(exc).__name__, safe_error(exc))
            session = self._replace(session)
            return _json(503, {"error": f"the query failed: {safe_error(exc)}; retry"})
        finally:
            if getattr(session, "broken", False):
                session = self._replace(session)
            self._sessions.put(session)
        return 200, "application/json", json.dumps(result).encode()

    def run(self, session, sql: str, parameters: dict | None, scope: Scope, cancelled: threading.Event | None = None) -> dict:
        kill = None
        if cancelled is not None:
            kill = lambda done, marker: self._kill_on_hangup(cancelled, done, marker)  # noqa: E731
        return run_confined(session, sql, parameters, scope, self.config.limits, self._traces_table, kill,
                            lambda: cancelled is not None and cancelled.is_set())

    def _kill_on_hangup(self, cancelled: threading.Event, done: threading.Event, marker: str) -> None:
        while not done.is_set():
            if cancelled.wait(0.1):
                with self._control_lock:
                    try:
                        self._control.command(f"KILL QUERY WHERE position(query, {sql_literal(marker)}) > 0 "
                                              "AND NOT startsWith(query, 'KILL') ASYNC")
                        log.info("sqlquery: client went away; killed its query")
                    except Exception as exc:  # noqa: BLE001
                        log.warning("sqlquery: could not kill a query whose client went away: %s", safe_error(exc))
                return

    def shutdown(self) -> None:
        stop_http_server(self._server)
        with self._open_lock:  # not while the sessions are being opened
            for session in self._all_sessions + ([self._control] if self._control else []):
                try:
                    session.close()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
            if self._store is not None:
                release_store(self._store)
                self._store = None


def _json(status: int, payload: dict) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(payload).encode()


factory = Factory("sqlquery", Kind.EXTENSION, SQLQueryConfig, lambda cid, cfg, _next: SQLQuery(cid, cfg))
