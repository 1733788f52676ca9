"""The DDL files under `collector/storage/sql/` (shipped in the wheel), and the columns they define.

The `.sql` files are the one definition of the `otel_traces` and `otel_logs` tables, as the contrib
ClickHouse exporter keeps its own (`internal/sqltemplates/*.sql`), so the two can be compared file
to file. Everything else that needs the columns reads them from here: `schema.py` fills the
templates in, `columns.py` and `log_columns.py` build their Arrow schemas (and so the order the
native converter fills columns in) from `table_columns`.

A template is the file without its leading `--` comment lines, with `{name}` placeholders for
`str.format` (database, table, cluster, engine, TTL, index set...).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

TRACES_TABLE = "traces_table.sql"
LOGS_TABLE = "logs_table.sql"

# Column kinds ClickHouse computes itself: an insert does not send them.
_COMPUTED = re.compile(r"\s(ALIAS|MATERIALIZED|EPHEMERAL)\s")
# Where a column's type ends in its definition.
_TYPE_END = re.compile(r"\s(CODEC|COMMENT|DEFAULT|ALIAS|MATERIALIZED|EPHEMERAL|TTL)\b")


@cache
def template(name: str) -> str:
    """The text of `sql/<name>` without its header comment, ready for `str.format`."""
    text = resources.files(__package__).joinpath("sql", name).read_text(encoding="utf-8")
    lines = text.splitlines()
    while lines and lines[0].startswith("--"):
        lines.pop(0)
    return "\n".join(lines).rstrip("\n")


@cache
def table_columns(name: str) -> dict[str, str]:
    """The stored columns of the CREATE TABLE in `sql/<name>`, name -> ClickHouse type, in table
    order. A `Nested` column counts as its sub-columns (`Events.Name Array(...)`), as ClickHouse
    stores and inserts it; ALIAS / MATERIALIZED / EPHEMERAL columns are left out (never inserted)."""
    columns = columns_of(template(name))
    if not columns:
        raise ValueError(f"sql/{name}: no columns found in its CREATE TABLE")
    return columns


def columns_of(ddl: str) -> dict[str, str]:
    """`table_columns` of one CREATE TABLE statement's text."""
    body = _column_list(ddl)
    columns: dict[str, str] = {}
    for entry in _split_top_level(body):
        if entry.startswith("{") or entry.upper().startswith(("INDEX ", "PROJECTION ", "CONSTRAINT ")):
            continue  # a placeholder ({indexes}, {materialized}) or not a column
        column, definition = _name_and_rest(entry)
        if _COMPUTED.search(f" {definition} "):
            continue
        if definition.startswith("Nested"):
            inner = definition[definition.index("(") + 1:_matching_paren(definition, definition.index("("))]
            for sub in _split_top_level(inner):
                sub_name, sub_type = _name_and_rest(sub)
                columns[f"{column}.{sub_name}"] = f"Array({_type_of(sub_type)})"
        else:
            columns[column] = _type_of(definition)
    return columns


def _column_list(ddl: str) -> str:
    start = ddl.index("(", ddl.upper().index("CREATE TABLE"))
    return ddl[start + 1:_matching_paren(ddl, start)]


def _name_and_rest(entry: str) -> tuple[str, str]:
    name, _, rest = " ".join(entry.split()).partition(" ")
    return name.strip("`"), rest


def _type_of(definition: str) -> str:
    match = _TYPE_END.search(definition)
    return (definition[:match.start()] if match else definition).strip()


def _split_top_level(text: str) -> list[str]:
    """`text` split at commas outside parentheses and quotes, each part stripped (empty ones dropped)."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for position in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[position], 0)
        if depth == 0:
            return position
    raise ValueError("unbalanced parentheses in a DDL template")
