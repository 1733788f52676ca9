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
import re
import threading
import uuid
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import StreamFailureError
from pydantic import Field, field_validator

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig, UnauthenticatedError
from collector.confighelpers import Duration, HostPort, split_host_port
from collector.httpserver import ServerLimits, start_http_server, stop_http_server
from collector.storage.client import release_store
from collector.storage.genai_views import _TENANT_EXPR as TENANT_EXPR  # the views' definition of a span's tenant
from collector.storage.session_views import LOGS_TENANT_EXPR  # a log record's (a score's) tenant
from collector.storage.jsonvalues import result_to_json

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# System tables an admin may read (metadata of this store, and row generators); a tenant gets only
# those that say nothing about other tenants' data.
ALLOWED_SYSTEM_TABLES = (
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "mutations", "parts", "tables", "columns",
    "functions", "table_functions", "data_type_families", "time_zones", "formats", "build_options",
    "metrics", "events", "asynchronous_metrics",
)
TENANT_SYSTEM_TABLES = ("one", "numbers", "numbers_mt", "zeros", "zeros_mt", "columns", "functions",
                        "table_functions", "data_type_families", "time_zones", "formats")
ALLOWED_TABLE_FUNCTIONS = ("numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generateseries", "generate_series")
# Functions (anywhere in a query) that read outside the database or hide what they read.
_DENIED_FUNCTION = re.compile(
    r"^(file|dict\w*|joinget\w*|getserversetting|getmacro|hascolumnintable|filesystem\w*|catboostevaluate|"
    r"naivebayesclassifier|getclienthttpheader|merge|view|viewifpermitted|viewexplain|remote\w*|cluster\w*|"
    r"url\w*|s3\w*|hdfs\w*|azure\w*|gcs|input|executable|mysql|postgresql|sqlite|mongodb|redis|jdbc|odbc|"
    r"dictionary|loop|iceberg\w*|deltalake\w*|hudi\w*|fuzz\w*|mergetreeindex|mergetreeanalyzeindexes|python)$",
    re.IGNORECASE)
_IN_FUNCTIONS = {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}
_AST_LINE = re.compile(r"^( *)([A-Z][A-Za-z]*)(?: (.*?))?(?: \(children \d+\))?$")
_ALIAS = re.compile(r" \(alias .*\)$")
# Error codes whose messages quote input data (parsing a value, a file, a format): only the
# code's name goes back to the client.
_DATA_ECHOING_CODES = {6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131, 190, 321, 386, 457, 1001}
_ERROR = re.compile(r"Code: (\d+)\. (?:DB::Exception: )?(.*?)(?: \(([A-Z_0-9]+)\))?(?: \(version [^)]*\))?\.?\s*$", re.DOTALL)
_ECHO_TAIL = re.compile(r"[.:] (?:In scope|While processing|while executing|In query)\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)


class QueryRefused(Exception):
    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


OUTPUT_OPTIONS_REFUSED = "FORMAT, INTO OUTFILE and SETTINGS are not allowed here (the endpoint answers JSON and sets the limits)"


class SessionFailure(Exception):
    """A read session failed without an answer of the engine (e.g. a stream left in a bad state)."""


class AuthConfig(StrictConfig):
    authenticator: str


class QueryLimits(StrictConfig):
    max_execution_time: Duration = 30.0
    max_memory_usage_mib: int = Field(512, gt=0)
    max_result_rows: int = Field(100_000, gt=0)
    max_result_bytes_mib: int = Field(64, gt=0)
    max_rows_to_read: int = Field(2_000_000_000, gt=0)
    max_threads: int = Field(1, gt=0, le=64)

    def settings(self) -> dict:
        return {
            "max_execution_time": max(1, round(self.max_execution_time)), "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_usage_mib * MIB,
            "max_result_rows": self.max_result_rows, "max_result_bytes": self.max_result_bytes_mib * MIB,
            "result_overflow_mode": "throw", "max_rows_to_read": self.max_rows_to_read, "read_overflow_mode": "throw",
            "allow_ddl": 0, "allow_introspection_functions": 0,
            # A query shares the collector's cores with ingest: few threads, at a lower priority.
            "max_threads": self.max_threads, "os_thread_priority": 10,
        }


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


# --- the check: the engine's parser, never its evaluator ---------------------------------------

@dataclass(frozen=True)
class Scope:
    """What one caller may read: the exporter's database, some system tables, and a tenant or all."""
    database: str
    system_tables: frozenset
    table_functions: frozenset
    tenant: str | None = None


def engine_refusal(exc: BaseException, status: int = 400) -> Exception:
    """The engine's refusal (its sanitised message) or, for an error that is not the engine's
    answer (no error code: a client library or session state), a SessionFailure."""
    if "Code: " not in str(exc):
        return SessionFailure(type(exc).__name__)
    return QueryRefused(safe_error(exc), status)


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def canonical_sql(session, sql: str) -> str:
    """The query re-printed by ClickHouse's own formatter: one statement, comments gone, so the
    settings appended after it are the query's settings. Parses only; nothing is evaluated."""
    try:
        result = session.query(f"SELECT formatQuery({sql_literal(sql)})")
    except Exception as exc:  # noqa: BLE001 - a syntax error: the engine's message, sanitised
        raise engine_refusal(exc) from None
    return result.result_rows[0][0]


_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:")


def server_side_parameters(sql: str, parameters: dict | None) -> dict | None:
    """Parameters as the engine binds them (`{name:Type}`), never substituted into the text by the
    client library (its pyformat and `$name$` forms would change the SQL after it was checked)."""
    if not parameters:
        return None
    for name in parameters:
        if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
            raise QueryRefused(f"invalid parameter name {str(name)[:40]!r}: use {{name:Type}} placeholders", 400)
    return parameters if _PLACEHOLDER.search(sql) else None


def check_ast(session, sql: str, parameters: dict | None, scope: Scope) -> None:
    """Raise QueryRefused unless `sql` (canonical) is one SELECT within `scope`.

    `EXPLAIN AST` prints the parser's tree (parameters substituted, so an Identifier parameter is
    seen as the table it names) without analysing or folding anything."""
    try:
        # As a subquery: a client adds its own FORMAT to the statement it sends, which must not
        # land in the tree being checked.
        rows = session.query(f"SELECT explain FROM (EXPLAIN AST {sql})", parameters=parameters).result_rows
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "supports only SELECT" in text:
            keyword = sql.split(None, 1)[0].upper() if sql.strip() else "nothing"
            raise QueryRefused(f"only SELECT queries are allowed here (got {keyword}); "
                               "for table structure use SELECT ... FROM system.columns", 403) from None
        if "output options" in text:
            raise QueryRefused(OUTPUT_OPTIONS_REFUSED, 403) from None
        raise engine_refusal(exc) from None
    nodes = []  # (depth, kind, argument)
    for (line,) in rows:
        match = _AST_LINE.match(_ALIAS.sub("", line))
        if not match:
            raise QueryRefused("the query has a name this endpoint cannot check (e.g. a line break in an alias)", 400)
        nodes.append((len(match.group(1)), match.group(2), (match.group(3) or "").strip()))
    if not nodes or nodes[0][1] != "SelectWithUnionQuery":
        raise QueryRefused("only SELECT queries are allowed here; for table structure use SELECT ... FROM system.columns", 403)
    if sum(1 for depth, _k, _a in nodes if depth == 1) > 1:
        raise QueryRefused(OUTPUT_OPTIONS_REFUSED, 403)
    for index, (depth, kind, argument) in enumerate(nodes):
        parent = _parent(nodes, index)
        if kind == "Set":
            raise QueryRefused("SETTINGS are not allowed here: the endpoint sets the limits", 403)
        if kind == "TableIdentifier":
            _check_table(argument, scope)
        elif kind == "Function":
            name = argument.split(" ", 1)[0]
            if _DENIED_FUNCTION.match(name):
                raise QueryRefused(f"function {name}() reads outside this database and is not allowed here", 403)
            if parent is not None and parent[1] == "TableExpression" and not _allowed_table_function(session, name, scope):
                raise QueryRefused(f"table function {name}() is not allowed here", 403)
        elif kind == "Identifier" and _is_in_table_operand(nodes, index):
            _check_table(argument, scope)


def _allowed_table_function(session, name: str, scope: Scope) -> bool:
    """An allowed generator (numbers, values...), or a parameterized view of the exporter's
    database (`otel.genai_traces(from_ts = ..., to_ts = ...)`)."""
    if name.lower() in scope.table_functions:
        return True
    database, dot, view = name.partition(".")
    if not dot:
        database, view = scope.database, name
    if database != scope.database:
        return False
    rows = session.query("SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String} "
                         "AND engine = 'View'", parameters={"db": database, "name": view}).result_rows
    return rows[0][0] > 0


def _parent(nodes, index):
    depth = nodes[index][0]
    for j in range(index - 1, -1, -1):
        if nodes[j][0] < depth:
            return nodes[j]
    return None


def _is_in_table_operand(nodes, index) -> bool:
    """`x IN db.table`: the Identifier is the second argument of an IN function."""
    parent = _parent(nodes, index)
    if parent is None or parent[1] != "ExpressionList":
        return False
    grand = _parent(nodes, nodes.index(parent))
    return grand is not None and grand[1] == "Function" and grand[2].split(" ", 1)[0].lower() in _IN_FUNCTIONS


def _check_table(name: str, scope: Scope) -> None:
    database, dot, table = name.partition(".")
    if not dot:
        return  # unqualified: the session's database (the exporter's), or a WITH name
    if database == scope.database:
        return
    if database == "system" and table in scope.system_tables:
        return
    raise QueryRefused(f"table {name} is outside the `{scope.database}` database this endpoint serves", 403)


def safe_error(exc: BaseException) -> str:
    """The engine's error without any value it quoted: code, name and the message's own words."""
    text = str(exc)
    start = text.find("Code: ")
    match = _ERROR.match(text[start:]) if start >= 0 else None
    if not match:
        return "the query failed (the engine's message is not shown: it may quote data)"
    code, message, name = int(match.group(1)), match.group(2), match.group(3) or "ERROR"
    if code in _DATA_ECHOING_CODES:
        return f"{name} (code {code}): the engine's message is not shown because it quotes data"
    message = _ECHO_TAIL.split(message, 1)[0]  # the query echoed back (with the endpoint's settings)
    message = _QUOTED.sub("'…'", message).replace("\n", " ")
    return f"{name} (code {code}): {message[:300]}"


# --- the engine's side: settings of a query, its table filters --------------------------------

def query_settings(limits: QueryLimits, table_filters: dict[str, str] | None, marker: str) -> str:
    """The SETTINGS clause appended to a checked query. readonly=1 comes last: the settings before
    it are the endpoint's, and from then on nothing in the query may change any of them."""
    settings = dict(limits.settings())
    parts = [f"{name} = {sql_literal(str(value)) if isinstance(value, str) else value}" for name, value in settings.items()]
    if table_filters is not None:
        entries = ", ".join(f"{sql_literal(table)}: {sql_literal(expr)}" for table, expr in sorted(table_filters.items()))
        parts.append(f"additional_table_filters = {{{entries}}}")
    parts.append(f"log_comment = {sql_literal(marker)}")
    parts.append("readonly = 1")
    return "\nSETTINGS " + ", ".join(parts)


def tenant_filters(session, database: str, traces_table: str, tenant: str) -> dict[str, str]:
    """A filter for every table of the database, so a tenant reads only its rows whatever it names:
    the spans table by the tenant expression of the GenAI views, a logs table (`LogAttributes`) by
    a record's tenant, a table with a `tenant` column by it, anything else (lookup tables,
    materialized views) not at all. Views need none: they read the filtered tables."""
    rows = session.query(
        "SELECT name, engine, has(groupArray(c.name), 'tenant'), has(groupArray(c.name), 'LogAttributes') "
        "FROM system.tables AS t "
        "LEFT JOIN system.columns AS c ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = {db:String} GROUP BY name, engine", parameters={"db": database}).result_rows
    literal = sql_literal(tenant)
    filters = {}
    for name, engine, has_tenant, is_logs in rows:
        if engine == "View":
            continue
        if name == traces_table:
            filters[f"{database}.{name}"] = f"{TENANT_EXPR} = {literal}"
        elif is_logs and engine != "MaterializedView":
            filters[f"{database}.{name}"] = f"{LOGS_TENANT_EXPR} = {literal}"
        elif has_tenant and engine != "MaterializedView":
            filters[f"{database}.{name}"] = f"tenant = {literal}"
        else:
            filters[f"{database}.{name}"] = "0"
    return filters


def run_confined(session, sql: str, parameters: dict | None, scope: Scope, limits: QueryLimits, traces_table: str,
                 kill=None, was_cancelled=lambda: False) -> dict:
    """Check `sql` (never executing it), then run it on `session` with the engine's confinement.
    `kill(done, marker)`, run on a thread while the query runs, may kill it by its marker."""
    canonical = canonical_sql(session, sql)
    parameters = server_side_parameters(canonical, parameters)
    check_ast(session, canonical, parameters, scope)
    filters = tenant_filters(session, scope.database, traces_table, scope.tenant) if scope.tenant is not None else None
    marker = f"genaitrace-sql-{uuid.uuid4().hex}"
    final = canonical + query_settings(limits, filters, marker)
    done = threading.Event()
    if kill is not None:
        threading.Thread(target=kill, args=(done, marker), name="sqlquery-hangup", daemon=True).start()
    try:
        return result_to_json(session.query(final, parameters=parameters))
    except Exception as exc:  # noqa: BLE001 - the engine refused or failed (also mid-stream): its sanitised message
        if isinstance(exc, StreamFailureError):
            session.broken = True  # a stream that failed half-way can leave the session unusable
        raise engine_refusal(exc, 499 if was_cancelled() else 400) from None
    finally:
        done.set()


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
        if exporter_config is None or not hasattr(exporter_config, "open_store"):
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
