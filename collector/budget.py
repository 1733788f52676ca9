"""`genaitrace budget`: LLM cost per tenant, agent and model for a day, week or month, against budgets.

    genaitrace budget report                       # this month, tables
    genaitrace budget report --period day --date 2026-11-03
    genaitrace budget report --period week --json  # for scripts
    genaitrace budget prometheus-rules > deploy/prometheus/rules/budgets.yml

Budgets live in a YAML file (`--budgets`, else $GENAITRACE_BUDGETS, else ./budgets.yaml):

    default:                 # tenants not listed below (optional)
      monthly_usd: 100
    tenants:
      acme:   {monthly_usd: 500, daily_usd: 25}
      globex: {monthly_usd: 300}            # daily = monthly / days in the month
    agents:                                 # optional: token budgets for the Prometheus alert
      readiness_assessor: {hourly_tokens: 2000000}

A week's budget is `weekly_usd` if given, else 7 x the daily budget. The month-end forecast is
linear: month-to-date spend / elapsed days x days in the month. Costs come from the `genai_daily`
rollup through `collector.query.QueryClient`, so the report works while a collector holds the
embedded store. Unpriced calls are counted separately: their cost is unknown, not zero.

Every row shows `cost_usd` (calls whose tokens the provider reported), `estimated_cost_usd` (calls
whose tokens LiteLLM estimated, `genaitrace.usage.estimated`) and `total_cost_usd` (both): budgets,
percentages and forecasts use the total. After a price change, `genaitrace reprice` rebuilds the
rollup days it touched, so the report follows; `genaitrace doctor costs` checks it.

`prometheus-rules --config ...` also writes the store's spend per tenant (today and month to date,
`genai:tenant_cost_usd:today`, `genai:tenant_cost_usd:month_to_date`) as recording rules: the
budget alerts then see repriced costs, which Prometheus counters counted at ingest never do.
Regenerate them after a reprice (and on a schedule).
"""

from __future__ import annotations

import calendar
import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Optional

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

budget_app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
console = Console(width=160)
err = Console(stderr=True, soft_wrap=True)


class TenantBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    monthly_usd: Optional[float] = Field(None, ge=0)
    weekly_usd: Optional[float] = Field(None, ge=0)
    daily_usd: Optional[float] = Field(None, ge=0)

    def for_period(self, period: str, day: date) -> Optional[float]:
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        daily = self.daily_usd if self.daily_usd is not None else (
            self.monthly_usd / days_in_month if self.monthly_usd is not None else None)
        if period == "month":
            return self.monthly_usd if self.monthly_usd is not None else (daily * days_in_month if daily is not None else None)
        if period == "week":
            return self.weekly_usd if self.weekly_usd is not None else (daily * 7 if daily is not None else None)
        return daily


class AgentBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hourly_tokens: int = Field(ge=0)


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Optional[TenantBudget] = None
    tenants: dict[str, TenantBudget] = {}
    agents: dict[str, AgentBudget] = {}

    def tenant(self, name: str) -> Optional[TenantBudget]:
        return self.tenants.get(name, self.default)


def load_budgets(path: Optional[str]) -> Budgets:
    explicit = path or os.environ.get("GENAITRACE_BUDGETS")
    file = Path(explicit or "budgets.yaml")
    if not file.exists():
        if explicit:
            raise ValueError(f"budgets file {file} does not exist")
        return Budgets()
    try:
        return Budgets.model_validate(yaml.safe_load(file.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{file}: {exc}") from None


def period_range(period: str, day: date) -> tuple[date, date]:
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, start.replace(day=calendar.monthrange(day.year, day.month)[1]) + timedelta(days=1)
    raise ValueError(f"unknown period {period!r}: day, week or month")


REPORT_SQL = """
SELECT {dim} AS name, sum(cost_usd) AS cost_usd, sum(estimated_cost_usd) AS estimated_cost_usd, sum(calls) AS calls,
       sum(input_tokens) + sum(output_tokens) AS tokens, sum(unpriced_calls) AS unpriced_calls, sum(errors) AS errors
FROM {db}.genai_daily
WHERE day >= {{start:Date}} AND day < {{end:Date}}
GROUP BY name
ORDER BY cost_usd + estimated_cost_usd DESC
"""
MONTH_SQL = """
SELECT tenant AS name, sum(cost_usd) + sum(estimated_cost_usd) AS cost_usd
FROM {db}.genai_daily
WHERE day >= {{start:Date}} AND day < {{end:Date}}
GROUP BY name
"""
DIMENSIONS = {"tenant": "tenant", "agent": "agent", "model": "model", "provider": "provider"}


def build_report(client, budgets: Budgets, period: str, day: date, now: Optional[datetime] = None, top: int = 20) -> dict:
    """The report as plain data (what `--json` prints)."""
    now = now or datetime.now()
    start, end = period_range(period, day)
    params = {"start": start.isoformat(), "end": end.isoformat()}
    report: dict = {"period": period, "start": start.isoformat(), "end": end.isoformat(), "currency": "USD"}
    for key, column in DIMENSIONS.items():
        rows = client.query(REPORT_SQL.format(dim=column, db=client.database), params).dicts()
        report[key + "s"] = [
            {key: r["name"] or "(none)", "cost_usd": round(float(r["cost_usd"]), 6),
             "estimated_cost_usd": round(float(r["estimated_cost_usd"]), 6),
             "total_cost_usd": round(float(r["cost_usd"]) + float(r["estimated_cost_usd"]), 6), "calls": int(r["calls"]),
             "tokens": int(r["tokens"]), "unpriced_calls": int(r["unpriced_calls"]), "errors": int(r["errors"])}
            for r in rows
        ][: (None if key == "tenant" else top)]

    # month-end forecast per tenant: month to date (up to `now`), linear
    m_start, m_end = period_range("month", day)
    days_in_month = (m_end - m_start).days
    month_rows = {r["name"]: float(r["cost_usd"]) for r in client.query(
        MONTH_SQL.format(db=client.database), {"start": m_start.isoformat(), "end": m_end.isoformat()}).dicts()}
    month_start_dt = datetime.combine(m_start, datetime.min.time())
    elapsed_days = (now - month_start_dt).total_seconds() / 86400
    current_month = 0 < elapsed_days < days_in_month

    known = {t["tenant"] for t in report["tenants"]}
    for name in budgets.tenants:  # a budgeted tenant with no spend still shows, at 0 %
        if name not in known:
            report["tenants"].append({"tenant": name, "cost_usd": 0.0, "estimated_cost_usd": 0.0, "total_cost_usd": 0.0, "calls": 0, "tokens": 0, "unpriced_calls": 0, "errors": 0})
    for t in report["tenants"]:
        tb = budgets.tenant(t["tenant"])
        budget = tb.for_period(period, day) if tb else None
        t["budget_usd"] = round(budget, 6) if budget is not None else None
        t["percent_used"] = round(100 * t["total_cost_usd"] / budget, 2) if budget else None
        mtd = month_rows.get(t["tenant"], 0.0)
        forecast = mtd / elapsed_days * days_in_month if current_month and elapsed_days >= 1 / 24 else mtd
        t["month_to_date_usd"] = round(mtd, 6)
        t["month_end_forecast_usd"] = round(forecast, 6)
        monthly = tb.for_period("month", day) if tb else None
        t["monthly_budget_usd"] = round(monthly, 6) if monthly is not None else None
        t["forecast_percent_of_monthly"] = round(100 * forecast / monthly, 2) if monthly else None
        t["status"] = _status(t["percent_used"], t["forecast_percent_of_monthly"])
    report["reported_cost_usd"] = round(sum(t["cost_usd"] for t in report["tenants"]), 6)
    report["estimated_cost_usd"] = round(sum(t["estimated_cost_usd"] for t in report["tenants"]), 6)
    report["total_cost_usd"] = round(sum(t["total_cost_usd"] for t in report["tenants"]), 6)
    return report


def _status(percent: Optional[float], forecast_percent: Optional[float]) -> str:
    if percent is None:
        return "no budget"
    if percent >= 100:
        return "over budget"
    if percent >= 80:
        return "warning"
    if forecast_percent is not None and forecast_percent >= 100:
        return "on track to exceed"
    return "ok"


def _money(v: Optional[float]) -> str:
    return "" if v is None else f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


def print_report(report: dict) -> None:
    console.print(f"[bold]LLM cost, {report['period']} {report['start']} .. {report['end']} (exclusive)[/]  "
                  f"total {_money(report['total_cost_usd'])} (reported {_money(report['reported_cost_usd'])},"
                  f" from estimated tokens {_money(report['estimated_cost_usd'])})")
    t = Table(title="by tenant", header_style="bold")
    for col in ("tenant", "cost", "estimated", "budget", "% used", "month to date", "month-end forecast", "monthly budget", "status",
                "calls", "unpriced"):
        t.add_column(col, justify="left" if col in ("tenant", "status") else "right")
    colour = {"over budget": "red", "warning": "yellow", "on track to exceed": "yellow", "ok": "green"}
    for r in report["tenants"]:
        pct = "" if r["percent_used"] is None else f"{r['percent_used']:.1f}%"
        status = f"[{colour.get(r['status'], 'white')}]{r['status']}[/]"
        t.add_row(r["tenant"], _money(r["cost_usd"]), _money(r["estimated_cost_usd"]), _money(r["budget_usd"]), pct, _money(r["month_to_date_usd"]),
                  _money(r["month_end_forecast_usd"]), _money(r["monthly_budget_usd"]), status, str(r["calls"]),
                  str(r["unpriced_calls"]))
    console.print(t)
    for key in ("agent", "model", "provider"):
        t = Table(title=f"by {key}", header_style="bold")
        for col in (key, "cost", "estimated", "calls", "tokens", "unpriced", "errors"):
            t.add_column(col, justify="left" if col == key else "right")
        for r in report[key + "s"]:
            t.add_row(r[key], _money(r["cost_usd"]), _money(r["estimated_cost_usd"]), str(r["calls"]), f"{r['tokens']:,}", str(r["unpriced_calls"]), str(r["errors"]))
        console.print(t)


@budget_app.command()
def report(
    period: str = typer.Option("month", "--period", "-p", help="day, week or month"),
    on: Optional[str] = typer.Option(None, "--date", help="a date in the period (YYYY-MM-DD); default today"),
    config: str = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config file"),
    budgets_file: Optional[str] = typer.Option(None, "--budgets", help="budgets YAML (default $GENAITRACE_BUDGETS or ./budgets.yaml)"),
    top: int = typer.Option(20, help="rows per agent / model / provider table"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Cost per tenant (against budget, with month-end forecast), agent, model and provider."""
    from collector.query import QueryError, open_query_client

    try:
        day = date.fromisoformat(on) if on else date.today()
        period_range(period, day)
        budgets = load_budgets(budgets_file)
    except ValueError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None
    try:
        client = open_query_client(config)
    except Exception as exc:  # noqa: BLE001 - config and store errors are reported, not raised
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None
    try:
        data = build_report(client, budgets, period, day, top=top)
    except QueryError as exc:
        err.print(f"[bold red]query failed[/]: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print_report(data)


SPEND_SQL = """
SELECT tenant, sumIf(cost_usd + estimated_cost_usd, day = {{day:Date}}) AS today,
       sum(cost_usd + estimated_cost_usd) AS month_to_date
FROM {db}.genai_daily
WHERE day >= {{start:Date}} AND day <= {{day:Date}}
GROUP BY tenant
ORDER BY tenant
"""


def tenant_spend(client, day: date) -> dict[str, tuple[float, float]]:
    """{tenant: (spend on `day`, month to date up to and including `day`)} from the rollup."""
    rows = client.query(SPEND_SQL.format(db=client.database),
                        {"day": day.isoformat(), "start": day.replace(day=1).isoformat()}).dicts()
    return {r["tenant"]: (float(r["today"]), float(r["month_to_date"])) for r in rows}


def prometheus_rules(budgets: Budgets, tenants: list[str] | None = None,
                     spend: dict[str, tuple[float, float]] | None = None) -> dict:
    """Recording rules that give Prometheus the budgets (for the TenantDailyBudget* and AgentTokenBudget
    alerts) and, given `spend` (`tenant_spend`), the store's spend per tenant (TenantMonthlyBudget*)."""
    rules = []
    today = date.today()
    for name in sorted(set(budgets.tenants) | set(tenants or [])):
        tb = budgets.tenant(name)
        if tb is None:
            continue
        daily, monthly = tb.for_period("day", today), tb.for_period("month", today)
        if daily is not None:
            rules.append({"record": "genai:tenant_daily_budget_usd", "expr": f"vector({daily:g})", "labels": {"tenant": name}})
        if monthly is not None:
            rules.append({"record": "genai:tenant_monthly_budget_usd", "expr": f"vector({monthly:g})", "labels": {"tenant": name}})
    for name, ab in sorted(budgets.agents.items()):
        rules.append({"record": "genai:agent_hourly_token_budget", "expr": f"vector({ab.hourly_tokens})", "labels": {"agent_name": name}})
    for name, (today_usd, month_usd) in sorted((spend or {}).items()):
        labels = {"tenant": name or "(none)"}
        rules.append({"record": "genai:tenant_cost_usd:today", "expr": f"vector({today_usd:.6f})", "labels": labels})
        rules.append({"record": "genai:tenant_cost_usd:month_to_date", "expr": f"vector({month_usd:.6f})", "labels": labels})
    return {"groups": [{"name": "genai-budgets", "rules": rules}]}


@budget_app.command("prometheus-rules")
def prometheus_rules_command(
    budgets_file: Optional[str] = typer.Option(None, "--budgets", help="budgets YAML"),
    tenant: list[str] = typer.Option([], "--tenant", help="also emit the default budget for this tenant (repeatable)"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="collector config: also emit the store's spend per tenant"),
    on: Optional[str] = typer.Option(None, "--date", help="the day whose spend to emit (YYYY-MM-DD); default today"),
) -> None:
    """Print Prometheus recording rules carrying the budgets (load them next to genai-alerts.yml)."""
    try:
        budgets = load_budgets(budgets_file)
        day = date.fromisoformat(on) if on else date.today()
    except ValueError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None
    spend = None
    if config:
        from collector.query import QueryError, open_query_client

        try:
            client = open_query_client(config)
        except Exception as exc:  # noqa: BLE001 - config and store errors are reported, not raised
            err.print(f"[bold red]error[/]: {exc}")
            raise typer.Exit(2) from None
        try:
            spend = tenant_spend(client, day)
        except QueryError as exc:
            err.print(f"[bold red]query failed[/]: {exc}")
            raise typer.Exit(1) from None
        finally:
            client.close()
    print("# Generated by `genaitrace budget prometheus-rules` from the budgets file"
          + (f" and the store's spend on {day}" if spend is not None else "") + "; do not edit by hand.")
    print(yaml.safe_dump(prometheus_rules(budgets, tenant, spend), sort_keys=False), end="")
