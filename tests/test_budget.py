"""`genaitrace budget`: cost per tenant, agent and model against budgets, tables and JSON."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from support import seed_data
from collector.budget import Budgets, budget_app, build_report, load_budgets, period_range, prometheus_rules
from collector.query import open_query_client

BUDGETS = """
default: {monthly_usd: 1000}
tenants:
  acme: {monthly_usd: 20, daily_usd: 1}
  globex: {monthly_usd: 200}
  ghost: {monthly_usd: 5}
agents:
  reviewer: {hourly_tokens: 500000}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store, truth = seed_data.shared_store()
    d = tmp_path_factory.mktemp("budget")
    config = d / "otel-collector.yaml"
    config.write_text(f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:14318}}
exporters:
  clickhouse:
    endpoint: chdb://{seed_data.shared_path()}
    database: otel
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [clickhouse]}}
""")
    budgets = d / "budgets.yaml"
    budgets.write_text(BUDGETS)
    return store, truth, str(config), str(budgets)


def _expected(truth, store, start: date, end: date) -> dict[str, float]:
    lo = int(store.query(f"SELECT toUnixTimestamp64Nano(toDateTime64(toDate('{start}'), 9))").result_rows[0][0])
    hi = int(store.query(f"SELECT toUnixTimestamp64Nano(toDateTime64(toDate('{end}'), 9))").result_rows[0][0])
    out: dict[str, float] = {}
    for c in truth.calls:
        if lo <= c.start_ns < hi:
            out[c.attrs["tenant.id"]] = out.get(c.attrs["tenant.id"], 0) + c.attrs.get("gen_ai.usage.cost_usd", 0)
    return out


def test_periods():
    assert period_range("day", date(2026, 2, 10)) == (date(2026, 2, 10), date(2026, 2, 11))
    assert period_range("week", date(2026, 2, 12)) == (date(2026, 2, 9), date(2026, 2, 16))
    assert period_range("month", date(2026, 2, 12)) == (date(2026, 2, 1), date(2026, 3, 1))
    with pytest.raises(ValueError):
        period_range("year", date(2026, 1, 1))


def test_budget_file_validation(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text("tenants: {acme: {monthly: 5}}")
    with pytest.raises(ValueError, match="monthly"):
        load_budgets(str(bad))
    b = Budgets.model_validate({"tenants": {"x": {"monthly_usd": 310}}})
    assert math.isclose(b.tenant("x").for_period("day", date(2026, 1, 5)), 10)
    assert math.isclose(b.tenant("x").for_period("week", date(2026, 1, 5)), 70)


def test_month_report_costs_budgets_and_forecast(env):
    store, truth, config, budgets = env
    today = date.today()
    client = open_query_client(config)
    try:
        now = datetime.now()
        report = build_report(client, load_budgets(budgets), "month", today, now=now)
    finally:
        client.close()
    start, end = period_range("month", today)
    expected = _expected(truth, store, start, end)
    tenants = {t["tenant"]: t for t in report["tenants"]}
    assert set(tenants) == set(expected) | {"ghost"}
    for name, cost in expected.items():
        assert math.isclose(tenants[name]["cost_usd"], cost, rel_tol=1e-5, abs_tol=1e-5)
    acme = tenants["acme"]
    assert acme["budget_usd"] == 20 and math.isclose(acme["percent_used"], 100 * acme["cost_usd"] / 20, abs_tol=0.01)
    elapsed = (now - datetime.combine(start, datetime.min.time())).total_seconds() / 86400
    if elapsed >= 1:
        days = (end - start).days
        assert math.isclose(acme["month_end_forecast_usd"], acme["month_to_date_usd"] / elapsed * days, rel_tol=1e-3)
    assert tenants["initech"]["budget_usd"] == 1000  # the default
    assert tenants["ghost"]["cost_usd"] == 0 and tenants["ghost"]["percent_used"] == 0
    assert {a["agent"] for a in report["agents"]} >= {"reviewer", "readiness_assessor"}
    assert {m["model"] for m in report["models"]} >= {"gpt-4o-mini-2024-08-06", "acme-llama-ft"}
    assert next(m for m in report["models"] if m["model"] == "acme-llama-ft")["unpriced_calls"] > 0


def test_cli_json_and_tables(env):
    store, truth, config, budgets = env
    day = date.today() - timedelta(days=1)
    runner = CliRunner()
    result = runner.invoke(budget_app, ["report", "--period", "day", "--date", day.isoformat(), "-c", config,
                                        "--budgets", budgets, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    expected = _expected(truth, store, day, day + timedelta(days=1))
    assert math.isclose(data["total_cost_usd"], sum(expected.values()), rel_tol=1e-5)
    acme = next(t for t in data["tenants"] if t["tenant"] == "acme")
    assert acme["budget_usd"] == 1 and acme["status"] in ("over budget", "warning", "ok", "on track to exceed")
    result = runner.invoke(budget_app, ["report", "--period", "week", "-c", config, "--budgets", budgets])
    assert result.exit_code == 0, result.output
    for text in ("by tenant", "by agent", "by model", "by provider", "month-end forecast", "acme", "% used"):
        assert text in result.output, text
    bad = runner.invoke(budget_app, ["report", "--period", "year", "-c", config])
    assert bad.exit_code == 2 and "unknown period" in bad.output


def test_prometheus_rules_command(env):
    _, _, _, budgets = env
    result = CliRunner().invoke(budget_app, ["prometheus-rules", "--budgets", budgets, "--tenant", "newco"])
    assert result.exit_code == 0, result.output
    import yaml

    rules = yaml.safe_load(result.output)["groups"][0]["rules"]
    daily = {r["labels"]["tenant"]: r["expr"] for r in rules if r["record"] == "genai:tenant_daily_budget_usd"}
    assert daily["acme"] == "vector(1)" and "newco" in daily  # newco gets the default budget
    assert prometheus_rules(Budgets())["groups"][0]["rules"] == []
