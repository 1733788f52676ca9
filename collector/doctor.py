"""`genaitrace doctor costs`: do the spans, the daily rollup and the views agree on cost?

    genaitrace doctor costs -c otel-collector.yaml                      # every day stored
    genaitrace doctor costs --since 2026-11-01 --until 2026-12-01 --json
    genaitrace doctor costs --fix                                       # rebuild the days that differ

Totals of calls, unpriced calls, reported cost and cost from estimated tokens per day, tenant,
model and provider are computed from `otel_traces` and compared with `genai_daily` (the rollup
the budget report, forecasts and dashboards read) and `genai_calls`; the range totals with
`genai_traces`. Each difference is printed with what to run. `--fix` re-creates the views and
rebuilds the differing days of the rollup and the calls table from the spans (`collector/storage/rollups.py`). Exit
status: 0 when everything agrees (or was fixed), 1 when something differs.

Like `reprice`, it opens the store itself: with chdb://, stop the collector first.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Optional

import typer

doctor_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Check the store for known problems.")


@doctor_app.callback()
def _group() -> None:
    """Check the store for known problems (`costs`: do spans, rollup and views agree?)."""


@doctor_app.command()
def costs(
    config: str = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config (the clickhouse exporter's store)"),
    endpoint: str = typer.Option("", help="ClickHouse endpoint; default: the clickhouse exporter's"),
    since: Optional[str] = typer.Option(None, help="first day to check (YYYY-MM-DD)"),
    until: Optional[str] = typer.Option(None, help="day after the last to check (YYYY-MM-DD)"),
    fix: bool = typer.Option(False, "--fix", help="re-create the views and rebuild the rollup days that differ"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Compare cost totals across otel_traces, genai_daily and the GenAI views; say what to run."""
    from rich.console import Console

    from collector.reprice import _from_config, schema_options
    from collector.storage import genai_views, rollups
    from collector.storage.client import ClickHouseStore, StoreError, parse_endpoint

    err = Console(stderr=True, soft_wrap=True)
    try:
        first = date.fromisoformat(since) if since else None
        end = date.fromisoformat(until) if until else None
        _, exporter = _from_config(config)
        endpoint = endpoint or exporter.get("endpoint") or ""
        if not endpoint:
            raise ValueError("no ClickHouse endpoint: pass --endpoint or configure a clickhouse exporter")
        store = ClickHouseStore(parse_endpoint(endpoint), username=exporter.get("username", "default"),
                                password=exporter.get("password", ""), timeout_s=600)
    except (StoreError, ValueError) as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None
    options = schema_options(exporter, exporter.get("database") or "otel", exporter.get("traces_table_name") or "otel_traces")
    try:
        check = rollups.check_costs(store, options, first, end)
        fixed: list[date] = []
        if fix and not check.ok:
            genai_views.create(store, options)
            fixed = check.stale_days()
            rollups.rebuild_days(store, options, fixed)
            check = rollups.check_costs(store, options, first, end)
    except Exception as exc:  # noqa: BLE001 - a store error is reported, not a traceback
        err.print(f"[bold red]check failed[/]: {str(exc).splitlines()[0][:300]}")
        raise typer.Exit(2) from None
    finally:
        store.close()
    if as_json:
        print(json.dumps({
            "ok": check.ok, "days": check.days, "totals": check.totals, "rebuilt_days": [d.isoformat() for d in fixed],
            "differences": [{**d.__dict__, "day": d.day.isoformat()} for d in check.differences],
            "unpriced": [{"day": d.isoformat(), "tenant": t, "model": m, "provider": p, "calls": n}
                         for d, t, m, p, n in check.unpriced],
        }, indent=2))
    else:
        if fixed:
            typer.echo(f"rebuilt genai_daily and genai_calls for {len(fixed)} days: {fixed[0]} .. {fixed[-1]}")
        for line in check.lines():
            typer.echo(line)
    raise typer.Exit(0 if check.ok else 1)
