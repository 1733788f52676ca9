"""What the CLI's commands print and share: the consoles, the config and query-client loaders that
exit with the error, result tables and trace trees. Below every command module (cli, demo,
sessions_cli), so that they share these without importing each other."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from collector.config import ConfigError, load_config
from collector.query import QueryClient, QueryError

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def load_or_exit(config: str):
    """The config, or exit 2 with the loader's error (file, line, key)."""
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/]: {exc}")
        raise typer.Exit(2) from None


def client_or_exit(config: str):
    """A QueryClient for the config's store (through a running collector if there is one), or exit 2."""
    try:
        return QueryClient(load_or_exit(config))
    except QueryError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None


def print_result(result, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(result.dicts(), default=str))
        return
    table = Table(show_header=True, header_style="bold")
    for name, type_ in zip(result.columns, result.types):
        numeric = type_.startswith(("UInt", "Int", "Float", "Decimal", "Nullable(Float", "Nullable(UInt", "Nullable(Int"))
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in result.rows:
        table.add_row(*["" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for v in row])
    console.print(table)
    console.print(f"{len(result.rows)} rows")


# The trace-id lookup table (the contrib exporter's, which Grafana's data source reads) holds each
# trace's first and last span start, read once: both bounds keep the read to the trace's own parts
# and granules (with the lower one alone, a lookup read the granules from the trace's start to now).
TRACE_SQL = """
WITH (SELECT (min(Start), max(End)) FROM {db}.{table}_trace_id_ts WHERE TraceId = {{trace_id:String}}) AS bounds
SELECT SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode, StatusMessage, Timestamp,
       SpanAttributes['gen_ai.request.model'] AS model,
       SpanAttributes['gen_ai.usage.input_tokens'] AS input_tokens,
       SpanAttributes['gen_ai.usage.output_tokens'] AS output_tokens,
       SpanAttributes['gen_ai.usage.cost_usd'] AS cost_usd,
       SpanAttributes['gen_ai.agent.name'] AS agent
FROM {db}.{table}
WHERE TraceId = {{trace_id:String}}
  AND Timestamp BETWEEN bounds.1 - INTERVAL 1 HOUR AND bounds.2 + INTERVAL 1 HOUR
ORDER BY Timestamp
"""


def trace_tree(rows: list[dict], trace_id: str) -> Tree:
    by_parent: dict[str, list[dict]] = {}
    ids = {r["SpanId"] for r in rows}
    for r in rows:
        parent = r["ParentSpanId"] if r["ParentSpanId"] in ids else ""
        by_parent.setdefault(parent, []).append(r)
    total_cost = sum(float(r["cost_usd"]) for r in rows if r.get("cost_usd"))
    root = Tree(f"[bold]trace {trace_id}[/] — {len(rows)} spans, cost ${total_cost:.6f}")

    def label(r: dict) -> str:
        status = {"Error": "[red]ERROR[/]", "Ok": "[green]ok[/]"}.get(r["StatusCode"], "")
        parts = [f"[cyan]{r['ServiceName']}[/]", f"[bold]{r['SpanName']}[/]", f"{int(r['Duration']) / 1e6:.1f}ms", status]
        if r.get("model"):
            parts.append(f"model={r['model']}")
        if r.get("input_tokens") or r.get("output_tokens"):
            parts.append(f"tokens={r.get('input_tokens') or 0}/{r.get('output_tokens') or 0}")
        if r.get("cost_usd"):
            parts.append(f"[yellow]${float(r['cost_usd']):.6f}[/]")
        if r["StatusCode"] == "Error" and r.get("StatusMessage"):
            parts.append(f"[red]{r['StatusMessage'][:80]}[/]")
        return " ".join(p for p in parts if p)

    def add(node: Tree, parent: str) -> None:
        for r in by_parent.get(parent, []):
            add(node.add(label(r)), r["SpanId"])

    add(root, "")
    return root
