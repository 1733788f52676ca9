"""`genaitrace`: run the collector, validate a config, query the store, show a trace as a tree."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from collector.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

CONFIG_OPTION = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config file")


def _load(config: str):
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/]: {exc}")
        raise typer.Exit(2) from None


@app.command()
def validate(config: str = CONFIG_OPTION) -> None:
    """Check a config: load it, then build every component as `run` does, binding no port and starting nothing."""
    from collector.service import BuildError, Service

    cfg = _load(config)
    for warning in cfg.warnings:
        err.print(f"[yellow]warning[/]: {warning}")
    try:  # with ingest workers, `run` builds the main process's part here and the pipelines in each worker
        for role in ("main", "ingest") if cfg.ingest_workers > 1 else ("all",):
            Service(cfg, role=role).build()
    except BuildError as exc:
        err.print(f"[bold red]config error[/]: {cfg.error(exc.key, str(exc.cause))}")
        raise typer.Exit(2) from None
    for pipeline in cfg.pipelines:
        console.print(
            f"[green]ok[/] {pipeline.name}: "
            f"{', '.join(map(str, pipeline.receivers))} -> {', '.join(map(str, pipeline.processors)) or '(no processors)'}"
            f" -> {', '.join(map(str, pipeline.exporters))}"
        )
    console.print(f"{config}: valid")


@app.command()
def run(config: str = CONFIG_OPTION, log_level: str = typer.Option("", help="override service.telemetry.logs.level")) -> None:
    """Run the collector until SIGTERM / Ctrl-C, then flush what it has acknowledged."""
    from collector.service import BuildError, Service

    cfg = _load(config)
    logging.basicConfig(
        level=(log_level or cfg.telemetry.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in cfg.warnings:
        logging.getLogger("collector.config").warning("%s", warning)
    service = Service(cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        service.start()
    except BuildError as exc:  # a component refused its settings: located like any config error
        err.print(f"[bold red]config error[/]: {cfg.error(exc.key, str(exc.cause))}")
        service.shutdown()
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - a start failure is reported, not a traceback
        err.print(f"[bold red]cannot start[/]: {exc}")
        service.shutdown()
        raise typer.Exit(1) from None
    print(f"collector ready in {service.started_in_s:.2f}s", flush=True)
    while not stop.wait(0.5):
        pass
    print("shutting down: flushing acknowledged data", flush=True)
    service.shutdown()
    print("stopped", flush=True)


def _client(config: str):
    from collector.query import QueryClient, QueryError

    try:
        return QueryClient(_load(config))
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


@app.command()
def sql(query: str = typer.Argument(..., help="SQL to run (read-only)"), config: str = CONFIG_OPTION,
        as_json: bool = typer.Option(False, "--json", help="one JSON array of objects")) -> None:
    """Run read-only SQL over the configured ClickHouse (through the running collector if there is one)."""
    from collector.query import QueryError

    client = _client(config)
    try:
        result = client.query(query)
    except QueryError as exc:
        err.print(f"[bold red]query failed[/]: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    print_result(result, as_json)


TRACE_SQL = """
SELECT SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode, StatusMessage, Timestamp,
       SpanAttributes['gen_ai.request.model'] AS model,
       SpanAttributes['gen_ai.usage.input_tokens'] AS input_tokens,
       SpanAttributes['gen_ai.usage.output_tokens'] AS output_tokens,
       SpanAttributes['gen_ai.usage.cost_usd'] AS cost_usd,
       SpanAttributes['gen_ai.agent.name'] AS agent
FROM {db}.{table}
WHERE TraceId = {{trace_id:String}}
  AND Timestamp >= (SELECT min(Start) - INTERVAL 1 HOUR FROM {db}.{table}_trace_id_ts WHERE TraceId = {{trace_id:String}})
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


@app.command()
def trace(trace_id: str = typer.Argument(..., help="32 hex characters"), config: str = CONFIG_OPTION) -> None:
    """Show one trace as a tree: service, span, duration, status, model, tokens, cost."""
    from collector.query import QueryError

    client = _client(config)
    try:
        result = client.query(TRACE_SQL.format(db=client.database, table=client.table), {"trace_id": trace_id.lower()})
    except QueryError as exc:
        err.print(f"[bold red]query failed[/]: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    if not result.rows:
        err.print(f"no spans found for trace {trace_id}")
        raise typer.Exit(1)
    console.print(trace_tree(result.dicts(), trace_id))


@app.command()
def demo(config: str = typer.Option("otel-collector.yaml", "--config", "-c"),
         keep_running: bool = typer.Option(False, help="leave the collector running afterwards")) -> None:
    """Start the collector on the embedded store, run the sample workload through it, print what it stored."""
    from collector.demo import run_demo

    raise typer.Exit(run_demo(config, keep_running))


def _mount_subcommands() -> None:
    from collector.budget import budget_app
    from collector.doctor import doctor_app
    from collector.reprice import reprice_app

    app.add_typer(reprice_app, name="reprice")
    app.add_typer(budget_app, name="budget")
    app.add_typer(doctor_app, name="doctor")
    from collector import sessions_cli

    sessions_cli.register(app, sys.modules[__name__])  # score, sessions, session


_mount_subcommands()


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
