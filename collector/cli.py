"""`genaitrace`: run the collector, validate a config, query the store, show a trace as a tree."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Optional

import typer

from collector.render import TRACE_SQL, client_or_exit, console, err, load_or_exit, print_result, trace_tree

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

CONFIG_OPTION = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config file")


@app.command()
def validate(config: str = CONFIG_OPTION) -> None:
    """Check a config: load it, then build every component as `run` does, binding no port and starting nothing."""
    from collector.service import BuildError, Service

    cfg = load_or_exit(config)
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

    cfg = load_or_exit(config)
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


@app.command()
def sql(query: str = typer.Argument(..., help="SQL to run (read-only)"), config: str = CONFIG_OPTION,
        as_json: bool = typer.Option(False, "--json", help="one JSON array of objects")) -> None:
    """Run read-only SQL over the configured ClickHouse (through the running collector if there is one)."""
    from collector.query import QueryError

    client = client_or_exit(config)
    try:
        result = client.query(query)
    except QueryError as exc:
        err.print(f"[bold red]query failed[/]: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    print_result(result, as_json)


@app.command()
def trace(trace_id: str = typer.Argument(..., help="32 hex characters"), config: str = CONFIG_OPTION) -> None:
    """Show one trace as a tree: service, span, duration, status, model, tokens, cost."""
    from collector.query import QueryError

    client = client_or_exit(config)
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

    sessions_cli.register(app)  # score, sessions, session


_mount_subcommands()


def main(argv: Optional[list[str]] = None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
