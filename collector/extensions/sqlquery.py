"""`sqlquery` extension: read-only SQL over the store a ClickHouse exporter writes.

    extensions:
      sqlquery:
        endpoint: 127.0.0.1:13134
        exporter: clickhouse         # whose store to query

The embedded engine (chdb) can be opened by one process only, and while the collector runs it is
that process. The CLI's `sql` and `trace` commands therefore ask this endpoint:
`POST /v1/query {"sql": "...", "parameters": {...}}` -> `{"columns", "types", "rows"}`.
Every query runs with ClickHouse's `readonly=1`: writes, DDL and setting changes are refused by
the engine itself (and with it the table functions that reach outside: file, url, remote, s3...).

Confinement (`confine_sql`): readonly alone still lets a SELECT read any database, `merge()` other
databases, and the `file()` *function* read files on the collector's disk. So before a query runs,
ClickHouse's own analyzer resolves it (`EXPLAIN QUERY TREE`, with the same parameters), and it is
refused unless every table it reads is in the exporter's database or an allowed `system` table
(`allowed_system_tables`), every table function is in `allowed_table_functions` (`view()` and
`merge()` are not: they hide what they read), and it calls none of the functions that read outside
the database (`file`, `dictGet*`, `joinGet*`, ...). Only SELECT / WITH queries are taken, and
none with `INTO OUTFILE` (the embedded engine would write that file on the collector's host).
"""

from __future__ import annotations

import json
import logging
import re

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig
from collector.confighelpers import HostPort
from collector.httpserver import start_http_server, stop_http_server
from collector.storage.client import release_store
from collector.storage.jsonvalues import result_to_json

log = logging.getLogger(__name__)


ALLOWED_SYSTEM_TABLES = (
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "mutations", "parts", "tables", "columns",
    "functions", "table_functions", "data_type_families", "time_zones", "formats", "build_options",
)
ALLOWED_TABLE_FUNCTIONS = ("numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generateSeries", "generate_series")
_DENIED_FUNCTIONS = re.compile(r"^(file|dictget\w*|dicthas|dictisin|joinget\w*|getserversetting|getmacro)$", re.IGNORECASE)
_TABLE = re.compile(r"\btable_name: (.+?)\s*$")
_TABLE_FUNCTION = re.compile(r"\btable_function_name: ([^,\s]+)")
_FUNCTION = re.compile(r"\bfunction_name: ([^,\s]+)")
_OUTFILE = re.compile(r"OUTFILE", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


class QueryRefused(Exception):
    pass


class SQLQueryConfig(StrictConfig):
    endpoint: HostPort = "127.0.0.1:13134"
    exporter: str = "clickhouse"
    allowed_system_tables: list[str] = list(ALLOWED_SYSTEM_TABLES)
    allowed_table_functions: list[str] = list(ALLOWED_TABLE_FUNCTIONS)

    def references(self) -> dict:
        return {"exporter": (Kind.EXPORTER, self.exporter)}


def confine_sql(store, sql: str, database: str, parameters: dict | None = None,
                allowed_system_tables=ALLOWED_SYSTEM_TABLES, allowed_table_functions=ALLOWED_TABLE_FUNCTIONS) -> None:
    """Raise QueryRefused unless `sql` is one SELECT that reads only `database` (see the module doc)."""
    if _OUTFILE.search(sql):  # checked on the raw text, before anything (even EXPLAIN) runs it
        raise QueryRefused("INTO OUTFILE is not allowed here: it writes files on the collector's host")
    head = _COMMENTS.sub(" ", sql).strip().lstrip("(").lstrip()
    keyword = head.split(None, 1)[0].upper() if head else ""
    if keyword not in ("SELECT", "WITH"):
        raise QueryRefused(f"only SELECT queries are allowed here (got {keyword or 'nothing'}); "
                           "for table structure use SELECT ... FROM system.columns")
    try:
        tree = store.query_readonly(f"EXPLAIN QUERY TREE {sql}", parameters=parameters)
    except Exception as exc:  # noqa: BLE001 - the analyzer's message says what is wrong
        raise QueryRefused(str(exc)) from exc
    allowed_system = {f"system.{name}" for name in allowed_system_tables}
    allowed_functions = {name.lower() for name in allowed_table_functions}
    for (line, *_rest) in tree.result_rows:
        if match := _TABLE.search(line):
            table = match.group(1).strip()
            if not (table.startswith(f"{database}.") or table in allowed_system):
                raise QueryRefused(f"table {table} is outside the `{database}` database this endpoint serves")
        elif match := _TABLE_FUNCTION.search(line):
            if match.group(1).lower() not in allowed_functions:
                raise QueryRefused(f"table function {match.group(1)}() is not allowed here")
        elif match := _FUNCTION.search(line):
            if _DENIED_FUNCTIONS.match(match.group(1)):
                raise QueryRefused(f"function {match.group(1)}() reads outside the database and is not allowed here")


class SQLQuery(Component):
    def __init__(self, component_id: ComponentId, config: SQLQueryConfig):
        self.id, self.config = component_id, config
        self._server = None
        self._store = None

    def start(self, host) -> None:
        exporter_config = host.exporter_configs.get(ComponentId.parse(self.config.exporter))
        if exporter_config is None or not hasattr(exporter_config, "open_store"):
            raise LookupError(f"sqlquery: {self.config.exporter} is not a configured clickhouse exporter")
        self._exporter_config = exporter_config
        self._database = exporter_config.database
        try:
            self._store = exporter_config.open_store()
        except Exception as exc:  # noqa: BLE001 - a server that is down now may be up at the first query
            log.warning("sqlquery: store not reachable yet (%s); will connect at the first query", exc)
        self._server = start_http_server(self.config.endpoint, "sqlquery", self._handle)

    def _handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
        if method != "POST" or path.rstrip("/") != "/v1/query":
            return 404, "application/json", b'{"error":"POST /v1/query"}'
        try:
            request = json.loads(body)
            sql = request["sql"]
        except (ValueError, KeyError, TypeError):
            return 400, "application/json", b'{"error":"body must be {\\"sql\\": \\"...\\"}"}'
        parameters = request.get("parameters")
        if not isinstance(sql, str) or (parameters is not None and not isinstance(parameters, dict)):
            return 400, "application/json", b'{"error":"`sql` must be a string and `parameters` an object"}'
        if self._store is None:
            try:
                self._store = self._exporter_config.open_store()
            except Exception as exc:  # noqa: BLE001
                return 503, "application/json", json.dumps({"error": f"store unreachable: {exc}"}).encode()
        try:
            confine_sql(self._store, sql, self._database, parameters,
                        self.config.allowed_system_tables, self.config.allowed_table_functions)
        except QueryRefused as exc:
            return 403 if "outside" in str(exc) or "not allowed" in str(exc) else 400, "application/json", \
                json.dumps({"error": str(exc)}).encode()
        try:
            result = self._store.query_readonly(sql, parameters=parameters)
        except Exception as exc:  # noqa: BLE001 - ClickHouse's own message is the useful answer
            return 400, "application/json", json.dumps({"error": str(exc)}).encode()
        return 200, "application/json", json.dumps(result_to_json(result)).encode()

    def shutdown(self) -> None:
        stop_http_server(self._server)
        if self._store is not None:
            release_store(self._store)


factory = Factory("sqlquery", Kind.EXTENSION, SQLQueryConfig, lambda cid, cfg, _next: SQLQuery(cid, cfg))
