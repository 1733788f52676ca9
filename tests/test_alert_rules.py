"""Alert rules: promtool checks and unit tests them; they use only metrics the collector exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from collector.telemetry import SelfTelemetry
from processors.genai_metrics import metrics_for

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "rules"
RULE_TEST = REPO / "deploy" / "prometheus" / "tests" / "genai-alerts.test.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

needs_promtool = pytest.mark.skipif(not Path(PROMTOOL).exists(),
                                    reason="promtool missing: apt-get install -y prometheus (the README test command does)")


def _rules() -> list[dict]:
    out = []
    for file in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(file.read_text())["groups"]:
            out.extend(group["rules"])
    return out


@needs_promtool
def test_promtool_check_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, sorted(RULES.glob("*.yml")))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    result = subprocess.run([PROMTOOL, "test", "rules", str(RULE_TEST)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_seed_alerts_exist():
    names = {r.get("alert") for r in _rules()}
    assert {"AgentTokenBudgetExceeded", "LLMCostSpike", "LLMHighLatency", "AgentHighErrorRate",
            "TenantDailyBudget80Percent", "TenantDailyBudgetExceeded"} <= names
    unit_tested = set(re.findall(r"alertname: (\w+)", RULE_TEST.read_text()))
    assert names - {None} <= unit_tested, f"alerts without a promtool unit test: {names - {None} - unit_tested}"


def test_rules_only_use_metrics_the_collector_exposes():
    telemetry = SelfTelemetry()
    metrics_for(telemetry.registry)
    exposed = set()
    for line in generate_latest(telemetry.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            exposed.add(name)
            if kind == "counter":
                exposed.add(name + "_total")
            if kind == "histogram":
                exposed |= {name + "_bucket", name + "_sum", name + "_count"}
    # counters the collector registers only once used, by name
    exposed |= {"otelcol_receiver_refused_spans_total", "otelcol_exporter_send_failed_requests_total",
                "otelcol_exporter_queue_bytes", "otelcol_exporter_queue_capacity_bytes", "up"}
    recorded = {r["record"] for r in _rules() if "record" in r}
    # and what `genaitrace budget prometheus-rules --config` records from the store's spend
    from collector.budget import Budgets, prometheus_rules

    recorded |= {r["record"] for r in prometheus_rules(Budgets(), spend={"t": (1.0, 2.0)})["groups"][0]["rules"]}
    functions = {"sum", "rate", "increase", "histogram_quantile", "max", "vector", "by", "on", "unless", "or", "and",
                 "group_left", "humanize", "le", "bool"}
    for rule in _rules():
        expr = re.sub(r'\{[^}]*\}', "", rule["expr"])  # drop label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)
        expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
        for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
            if name in functions or name in recorded or name.isdigit():
                continue
            assert name in exposed, f"{rule.get('alert') or rule.get('record')}: {name} is not a metric the collector exposes"


def test_budget_rules_match_the_budgets_file():
    from collector.budget import load_budgets, prometheus_rules

    budgets = load_budgets(str(REPO / "deploy" / "budgets.yaml"))
    generated = prometheus_rules(budgets)["groups"][0]["rules"]
    committed = yaml.safe_load((RULES / "budgets.yml").read_text())["groups"][0]["rules"]
    daily = lambda rules: {r["labels"]["tenant"]: r["expr"] for r in rules if r["record"] == "genai:tenant_daily_budget_usd"}  # noqa: E731
    assert daily(generated) == daily(committed) == {"acme": "vector(25)", "globex": "vector(10)", "initech": "vector(5)"}
    agents = [r for r in committed if r["record"] == "genai:agent_hourly_token_budget"]
    assert agents == [{"record": "genai:agent_hourly_token_budget", "expr": "vector(2000000)",
                       "labels": {"agent_name": "readiness_assessor"}}]
