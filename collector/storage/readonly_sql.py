"""Read-only SQL over the store, confined: the check of a query's syntax tree (the engine's
parser, never its evaluator), the allowed system tables and table functions, a tenant's row
filters, the limits set last in the query's settings, and errors that echo no outside data.

Used by the `sqlquery` extension (the endpoint) and by the CLI when no collector holds the store
(collector/query.py): one definition of what a query may do. SECURITY.md, "SQL endpoint".
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import StreamFailureError
from pydantic import Field

from collector.component import StrictConfig
from collector.confighelpers import Duration
from collector.storage.genai_views import _TENANT_EXPR as TENANT_EXPR  # the views' definition of a span's tenant
from collector.storage.jsonvalues import result_to_json
from collector.storage.session_views import LOGS_TENANT_EXPR  # a log record's (a score's) tenant

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
