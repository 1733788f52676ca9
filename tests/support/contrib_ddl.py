"""The contrib clickhouseexporter's own DDL, read from the Go module cache, and a small parser of
CREATE TABLE statements to compare ours with it column by column (tests/interop/test_contrib_*).
Written independently of collector/storage/ddl.py on purpose: the comparison must not trust the
reader it checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from support.peers import GO_ENV, INTEROP

MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter"


def contrib_sqltemplates() -> Path:
    """The pinned module's sqltemplates directory, from the Go module cache (no network: GOPROXY=off)."""
    if not (INTEROP / "schema" / "go.mod").exists():
        pytest.fail("interop/schema/go.mod missing")
    env = {**os.environ, **GO_ENV, "GOPROXY": "off", "GOFLAGS": "-mod=readonly"}
    try:
        out = subprocess.run(["go", "mod", "download", "-json", MODULE], cwd=INTEROP / "schema", env=env,
                             capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        out = None
    if out is None or out.returncode != 0:
        reason = f"the pinned {MODULE} is not in the Go module cache: run ./run.sh test ({out.stdout if out else 'no go'})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(json.loads(out.stdout)["Dir"]) / "internal" / "sqltemplates"


def split_top_level(text: str) -> list[str]:
    """`text` split at commas outside parentheses and quotes."""
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
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def matching_paren(text: str, start: int) -> int:
    depth = 0
    for position in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[position], 0)
        if depth == 0:
            return position
    raise ValueError("unbalanced parentheses")


def normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")").strip()


def parse_create_table(ddl: str) -> dict:
    """Columns (type, codec, kind), indexes and the table clauses of one CREATE TABLE statement."""
    open_at = ddl.index("(", ddl.upper().index("CREATE TABLE"))
    close_at = matching_paren(ddl, open_at)
    columns, indexes = {}, {}
    for entry in split_top_level(ddl[open_at + 1:close_at]):
        entry = normal(entry)
        if entry.upper().startswith("INDEX "):
            match = re.match(r"INDEX (\S+) (.+) TYPE (.+?)(?: GRANULARITY (\d+))?$", entry)
            indexes[match[1]] = (match[2], match[3], match[4] or "1")
            continue
        name, rest = entry.split(" ", 1)
        codec = ""
        if (at := rest.find(" CODEC(")) >= 0:
            codec = rest[at + 7:matching_paren(rest, at + 6)]
            rest = rest[:at]
        rest = re.sub(r" COMMENT '(?:[^'\\]|\\.)*'", "", rest)
        kind = ""
        if match := re.search(r" (ALIAS|MATERIALIZED|DEFAULT|EPHEMERAL) ", rest):
            kind, rest = match[1], rest[:match.start()]
        columns[name.strip("`")] = {"type": normal(rest), "codec": codec.replace(" ", ""), "kind": kind}
    tail = normal(ddl[close_at + 1:])
    clauses = {}
    for key, pattern in (("partition_by", r"PARTITION BY (.+?)(?= PRIMARY KEY| ORDER BY|$)"),
                         ("primary_key", r"PRIMARY KEY (.+?)(?= ORDER BY| TTL| SETTINGS|$)"),
                         ("order_by", r"ORDER BY (.+?)(?= TTL| SETTINGS| %s|$)")):
        match = re.search(pattern, tail)
        clauses[key] = match[1].strip() if match else ""
    settings = re.search(r"SETTINGS (.+)$", tail)
    clauses["settings"] = dict(normal(item).split(" = ") for item in re.sub(r"\s*=\s*", " = ", settings[1]).split(",")) if settings else {}
    return {"columns": columns, "indexes": indexes, **clauses}


def delta_default(codec: str, column_type: str) -> str:
    """Delta without a width means the column's byte width: Delta on DateTime64/UInt64 is Delta(8)."""
    width = {"DateTime64(9)": "8", "UInt64": "8", "DateTime": "4"}.get(column_type)
    return re.sub(r"\bDelta\b(?!\()", f"Delta({width})", codec) if width else codec


def compare(table: str, ours: dict, upstream: dict) -> set[tuple[str, str, str]]:
    """(table, aspect, name) of each difference; codec levels that differ only in ZSTD level
    are reported once per table as (table, 'codec', '*')."""
    differences = set()
    for name in ours["columns"].keys() | upstream["columns"].keys():
        mine, theirs = ours["columns"].get(name), upstream["columns"].get(name)
        if mine is None or theirs is None:
            differences.add((table, "column", name))
            continue
        if (mine["type"], mine["kind"]) != (theirs["type"], theirs["kind"]):
            differences.add((table, "type", name))
        my_codec, their_codec = delta_default(mine["codec"], mine["type"]), delta_default(theirs["codec"], theirs["type"])
        if my_codec != their_codec:
            if re.sub(r"ZSTD\(\d+\)", "ZSTD", my_codec) == re.sub(r"ZSTD\(\d+\)", "ZSTD", their_codec):
                differences.add((table, "codec", "*"))
            else:
                differences.add((table, "codec", name))
    for name in ours["indexes"].keys() | upstream["indexes"].keys():
        if ours["indexes"].get(name) != upstream["indexes"].get(name):
            differences.add((table, "index", name))
    for clause in ("partition_by", "order_by"):
        if normal(ours[clause]).replace(" ", "") != normal(upstream[clause]).replace(" ", ""):
            differences.add((table, clause, ""))
    if ours["primary_key"] and ours["primary_key"].replace(" ", "") != upstream["order_by"].replace(" ", ""):
        differences.add((table, "primary_key", "mismatch"))
    elif ours["primary_key"] != upstream["primary_key"]:
        differences.add((table, "primary_key", ""))
    for name in ours["settings"].keys() | upstream["settings"].keys():
        if ours["settings"].get(name) != upstream["settings"].get(name):
            differences.add((table, "settings", name))
    return differences
