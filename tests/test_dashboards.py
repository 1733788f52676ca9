"""Grafana: every dashboard and provisioning file parses, references only provisioned data sources,
and every ClickHouse panel's SQL (macros expanded as the data source does) runs on seeded data and
returns the columns the panel expects."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from support import seed_data
from support.grafana import ALL, DASHBOARDS, GRAFANA, expand, panels

REPO = Path(__file__).resolve().parent.parent
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yaml").read_text())["datasources"]
PROVISIONED = {ds["uid"]: ds for ds in DATASOURCES}
BUILTIN = {"-- Mixed --", "-- Grafana --", "-- Dashboard --"}


def _ch_targets():
    for name, _, panel in panels():
        for target in panel["targets"]:
            if target["datasource"]["uid"] == "clickhouse":
                yield pytest.param(panel, target, id=f"{name}:{panel['title']}")


@pytest.fixture(scope="module")
def seeded():
    return seed_data.shared_store()


def _run(store, sql: str):
    result = store.query(sql)
    return list(result.column_names), [t.name for t in result.column_types], result.result_rows


@pytest.mark.parametrize("panel,target", list(_ch_targets()))
def test_panel_sql_runs_and_returns_the_expected_columns(seeded, panel, target):
    store, truth = seeded
    end = int(time.time())
    start = end - 30 * 86400
    columns, types, rows = _run(store, expand(target["rawSql"], start, end, ALL))
    assert columns == target["expectedColumns"], panel["title"]
    assert rows, f"{panel['title']}: no rows over 30 days of seeded data"
    if target["format"] == 0:  # time series: the first column is the time
        assert columns[0] == "time" and types[0].startswith("DateTime"), (panel["title"], types)
    # with one value selected in every variable the query still runs (and filters)
    one = {"tenant": ["acme"], "agent": ["readiness_assessor"], "model": ["gpt-4o-2024-08-06"], "provider": ["openai"]}
    columns2, _, rows2 = _run(store, expand(target["rawSql"], start, end, one))
    assert columns2 == columns or not rows2  # (an empty result carries no column names)
    if "tenant" in columns and rows2:
        assert {r[columns.index("tenant")] for r in rows2} == {"acme"}


def test_filters_by_tenant_change_the_totals(seeded):
    store, truth = seeded
    total = next(t for _, b, p in panels() if p["title"] == "Total cost" for t in p["targets"])
    end = int(time.time())
    start = end - 60 * 86400
    everything = _run(store, expand(total["rawSql"], start, end, ALL))[2][0][0]
    acme = _run(store, expand(total["rawSql"], start, end, {**ALL, "tenant": ["acme"]}))[2][0][0]
    expected = sum(c.attrs.get("gen_ai.usage.cost_usd", 0) for c in truth.calls if c.attrs["tenant.id"] == "acme")
    assert abs(acme - expected) < 1e-6 * expected and acme < everything


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_references_only_provisioned_data_sources(path):
    board = json.loads(path.read_text())
    uids = set()
    for panel in board["panels"]:
        uids.add(panel["datasource"]["uid"])
        uids |= {t["datasource"]["uid"] for t in panel["targets"]}
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                for link in prop.get("value", []) if prop["id"] == "links" else []:
                    uids |= set(re.findall(r'"uid\\?":\\?"([\w-]+)', link["url"]))
    uids |= {v["datasource"]["uid"] for v in board["templating"]["list"]}
    uids |= {a["datasource"]["uid"] for a in board["annotations"]["list"]}
    assert uids - BUILTIN <= PROVISIONED.keys(), uids - BUILTIN - PROVISIONED.keys()
    assert board["uid"] == path.stem and len({p["id"] for p in board["panels"]}) == len(board["panels"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_template_variables_budget_annotations_and_trace_links(path, seeded):
    store, _ = seeded
    board = json.loads(path.read_text())
    names = {v["name"] for v in board["templating"]["list"]}
    assert names == {"tenant", "agent", "model", "provider"}
    for v in board["templating"]["list"]:
        assert store.query(v["query"]).result_rows, v["query"]
    assert any(a["name"] == "Budget alerts" and "TenantDailyBudget" in a["expr"] for a in board["annotations"]["list"])
    for panel in board["panels"]:
        for target in panel["targets"]:
            if "TraceId" in target.get("expectedColumns", []):
                links = [p for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "TraceId"
                         for p in o["properties"] if p["id"] == "links"]
                assert links and "${__value.raw}" in links[0]["value"][0]["url"], panel["title"]


def test_the_seed_panels_exist():
    titles = {p["title"] for _, _, p in panels()}
    for wanted in ("Total cost", "Cost by model", "Cost by provider", "Cost by tenant", "Cost by agent", "Cost rate per hour",
                   "Month to date vs budget, with linear forecast", "Agent calls over time", "Top agents by tokens",
                   "Agent response time", "Agent success rate", "Workflows by type", "Tokens and cost per flow",
                   "Latency per model (p50 / p90 / p99)", "Errors by provider and type",
                   "Cache hit ratio (cache-read share of input tokens)", "Token usage by model", "Unpriced calls"):
        assert wanted in titles, wanted


def test_prometheus_panels_use_exposed_metrics_or_recording_rules():
    rules = "\n".join(p.read_text() for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
    known = {"llm_cost_usd_total", "agent_runs_total", "gen_ai_client_operation_duration_seconds_bucket",
             "otelcol_receiver_accepted_spans_total", "otelcol_receiver_refused_spans_total", "otelcol_exporter_sent_spans_total",
             "otelcol_exporter_send_failed_spans_total", "otelcol_exporter_queue_size", "otelcol_exporter_queue_bytes",
             "otelcol_exporter_queue_capacity_bytes", "ALERTS"}
    for _, board, panel in panels():
        for target in panel["targets"]:
            if target["datasource"]["uid"] != "prometheus":
                continue
            expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", target["expr"])
            metrics = {m for m in re.findall(r"([a-zA-Z_:][\w:]*)\s*(?:\{|\[|\))", expr) if "_" in m or ":" in m}
            for metric in metrics:
                assert metric in known or f"record: {metric}" in rules, (panel["title"], metric)


def test_provisioning_files():
    ch = PROVISIONED["clickhouse"]
    assert ch["type"] == "grafana-clickhouse-datasource"
    traces = ch["jsonData"]["traces"]
    assert traces["otelEnabled"] is True and traces["defaultTable"] == "otel_traces" and traces["defaultDatabase"] == "otel"
    assert PROVISIONED["tempo"]["type"] == "tempo" and PROVISIONED["prometheus"]["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yaml").read_text())["providers"]
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    tempo = yaml.safe_load((REPO / "deploy" / "tempo" / "tempo.yaml").read_text())
    assert tempo["distributor"]["max_attribute_bytes"] >= 65536  # prompts are not cut at 2 KB (Tempo 3.x key)
    logs = ch["jsonData"]["logs"]  # exception and score log records, next to the traces
    assert logs["otelEnabled"] is True and logs["defaultTable"] == "otel_logs" and logs["defaultDatabase"] == "otel"


def test_dashboards_are_up_to_date_with_the_builder():
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for build in builder.BOARDS:
        board = build().json()
        assert json.loads((GRAFANA / "dashboards" / f"{board['uid']}.json").read_text()) == board, \
            f"{board['uid']}.json is stale: run python deploy/grafana/build_dashboards.py"
