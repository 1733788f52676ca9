"""One truth for cost (issue 18): after a price change and a reprice, every surface agrees to the cent.

The reproduction as a new user runs it, through the real collector and the `genaitrace` CLI:
calls of a model with no price are stored (unpriced); a price override is added to `genai_cost`
(with a price change effective from a later day); more calls arrive and are priced at ingest;
`genaitrace reprice --unpriced-only` prices the old ones per their dates. Then raw SQL, each GenAI
view, the daily rollup, `budget report --json`, the SQL of every dashboard panel that shows cost,
`budget prometheus-rules --config` and `doctor costs` must give the same totals, computed here by
hand from the prices. Calls whose tokens were estimated (`genaitrace.usage.estimated`) are
counted apart on every surface.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from collector.pdata import set_any_value
from support.harness import PYTHON, CollectorProcess
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

INPUT, OUTPUT = 1_000, 200
OLD = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}  # per call: $0.0014
NEW = {"input_cost_per_token": 2e-6, "output_cost_per_token": 4e-6}  # per call: $0.0028
DASHBOARDS = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
COST_COLUMNS = ("cost_usd", "usd_per_hour", "subtree_cost_usd", "estimated_cost_usd")


def _call_cost(prices: dict) -> float:
    return INPUT * prices["input_cost_per_token"] + OUTPUT * prices["output_cost_per_token"]


CASES = [
    # tenant, provider, unpriced model, first day; the price changes on day + 2
    pytest.param("acme", "openai", "acme-llm-7", date(2026, 10, 3), id="openai-october"),
    pytest.param("globex", "anthropic", "claude-internal-x", date(2026, 11, 17), id="anthropic-november"),
]


def _request(tenant: str, provider: str, model: str, start: datetime, n: int, first_trace: int,
             estimated: int = 0) -> bytes:
    """`n` traces, each an agent span with one chat call; the last `estimated` calls' tokens were estimated."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (("service.name", "surfaces"), ("tenant.id", tenant)):
        rs.resource.attributes.add(key=key).value.string_value = value
    scope = rs.scope_spans.add()
    t0 = int(start.timestamp()) * 10**9
    for i in range(n):
        trace = (first_trace + i).to_bytes(16, "big")
        at = t0 + i * 60 * 10**9
        agent = scope.spans.add(trace_id=trace, span_id=(1).to_bytes(8, "big"), name="invoke_agent planner",
                                start_time_unix_nano=at, end_time_unix_nano=at + 2 * 10**9)
        for key, value in {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                           "gen_ai.workflow.name": "planning_crew", "flow.name": "planning"}.items():
            set_any_value(agent.attributes.add(key=key).value, value)
        call = scope.spans.add(trace_id=trace, span_id=(2).to_bytes(8, "big"), parent_span_id=(1).to_bytes(8, "big"),
                               name=f"chat {model}", start_time_unix_nano=at, end_time_unix_nano=at + 10**9)
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
                 "gen_ai.agent.name": "planner", "flow.name": "planning", "gen_ai.usage.input_tokens": INPUT, "gen_ai.usage.output_tokens": OUTPUT,
                 "user.id": "user-1", "gen_ai.conversation.id": "conversation-1"}  # the per-user and session panels too
        if i >= n - estimated:
            attrs["genaitrace.usage.estimated"] = True
        for key, value in attrs.items():
            set_any_value(call.attributes.add(key=key).value, value)
    return request.SerializeToString()


def _send(collector: CollectorProcess, payload: bytes, calls: int) -> None:
    response = httpx.post(collector.http_url, content=payload, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text
    collector.wait_for_rows("SELECT count() AS n FROM otel.genai_calls", lambda rows: rows[0]["n"] >= calls, timeout=60)


def _cli(workdir: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([PYTHON, "-m", "collector.cli", *args], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode in ok, f"genaitrace {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _sql(workdir: Path, config: Path, query: str) -> list[dict]:
    return json.loads(_cli(workdir, "sql", "--json", "-c", str(config), query))


_STORE_SQL = """
import json, sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
out = []
for sql in json.load(sys.stdin):
    result = client.query(sql)
    out.append([dict(zip(result.column_names, row)) for row in result.result_rows])
print(json.dumps(out, default=str))
"""


def _store_sql(workdir: Path, chdb_path: Path, queries: list[str]) -> list[list[dict]]:
    """Queries run on the store directly, as Grafana's data source runs the panels' SQL."""
    done = subprocess.run([PYTHON, "-c", _STORE_SQL, str(chdb_path)], cwd=workdir, input=json.dumps(queries),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _with_prices(config: Path, model: str, provider: str, change_day: date) -> None:
    prices = [{"model": model, "provider": provider, **OLD},
              {"model": model, "provider": provider, "effective_from": change_day.isoformat(), **NEW}]
    text = config.read_text()
    assert "genai_cost: {}" in text
    config.write_text(text.replace("genai_cost: {}", "genai_cost: " + json.dumps({"prices": prices})))


def _dashboard_cost_panels():
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                sql = target.get("rawSql") or ""
                if target["datasource"]["uid"] == "clickhouse" and any(re.search(rf"\bAS {c}\b", sql) for c in COST_COLUMNS):
                    yield f"{path.stem}:{panel['title']}", sql


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6  # to the cent, with room only for float summation order


@pytest.mark.parametrize("tenant,provider,model,day_a", CASES)
def test_every_surface_agrees_after_a_price_change_and_a_reprice(tmp_path, tenant, provider, model, day_a):
    from support.grafana import expand

    day_b, day_c = day_a + timedelta(days=2), day_a + timedelta(days=3)
    noon = lambda d: datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc)  # noqa: E731
    collector = CollectorProcess(tmp_path)
    config = collector.config_path
    with collector:
        # 1. calls of a model with no price: 5 reported + 2 estimated on day A, 3 on day B
        _send(collector, _request(tenant, provider, model, noon(day_a), 7, 100, estimated=2), 7)
        _send(collector, _request(tenant, provider, model, noon(day_b), 3, 200), 10)
    before = json.loads(_cli(tmp_path, "budget", "report", "--period", "month", "--date", day_a.isoformat(),
                             "-c", str(config), "--json"))
    assert before["total_cost_usd"] == 0 and before["tenants"][0]["unpriced_calls"] == 10

    # 2. a price override, changed from day B on; 3. new calls on day C are priced at ingest
    _with_prices(config, model, provider, day_b)
    collector.start()
    try:
        _send(collector, _request(tenant, provider, model, noon(day_c), 4, 300), 14)
    finally:
        collector.stop()
    # 4. reprice the old, unpriced calls: day A at the old price, day B at the new one
    out = _cli(tmp_path, "reprice", "-c", str(config), "--unpriced-only")
    assert "10 priced, 0 unpriced" in out and "rebuilt the daily rollup" in out, out

    reported = 5 * _call_cost(OLD) + 3 * _call_cost(NEW) + 4 * _call_cost(NEW)
    estimated = 2 * _call_cost(OLD)
    total = reported + estimated
    start, end = day_a.isoformat(), (day_c + timedelta(days=1)).isoformat()
    surfaces: dict[str, float] = {}

    rows = _sql(tmp_path, config, f"""
        SELECT sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd'])) AS total,
               sumIf(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd']),
                     SpanAttributes['genaitrace.usage.estimated'] = 'true') AS estimated
        FROM otel.otel_traces WHERE Timestamp >= '{start}' AND Timestamp < '{end}'""")
    surfaces["raw SQL otel_traces"] = rows[0]["total"]
    assert _close(rows[0]["estimated"], estimated)
    views = _store_sql(tmp_path, collector.data / "chdb", [
        "SELECT sum(cost_usd) AS total, sumIf(cost_usd, usage_estimated) AS estimated,"
        " countIf(cost_status = 'unpriced') AS unpriced FROM otel.genai_calls",
        f"SELECT sum(cost_usd) AS total, sum(estimated_cost_usd) AS estimated"
        f" FROM otel.genai_traces(from_ts = '{start}', to_ts = '{end}')",
        f"SELECT sum(cost_usd) AS total FROM otel.genai_subtree_costs(from_ts = '{start}', to_ts = '{end}')"
        " WHERE kind = 'invoke_agent'",
        "SELECT sum(cost_usd) AS reported, sum(estimated_cost_usd) AS estimated, sum(unpriced_calls) AS unpriced"
        " FROM otel.genai_daily",
        "SELECT toString(day) AS day, sum(cost_usd) + sum(estimated_cost_usd) AS cost FROM otel.genai_daily GROUP BY day",
        "SELECT sum(cost_usd) AS total FROM otel.genai_session_traces",
    ])
    calls, traces, subtree, daily, days, sessions = views
    surfaces["genai_session_traces (per-trace totals)"] = sessions[0]["total"]
    surfaces["genai_calls"] = calls[0]["total"]
    assert _close(calls[0]["estimated"], estimated) and calls[0]["unpriced"] == 0
    surfaces["genai_traces"] = traces[0]["total"]
    assert _close(traces[0]["estimated"], estimated)
    surfaces["genai_subtree_costs"] = subtree[0]["total"]
    surfaces["genai_daily"] = daily[0]["reported"] + daily[0]["estimated"]
    assert _close(daily[0]["reported"], reported) and _close(daily[0]["estimated"], estimated) and daily[0]["unpriced"] == 0
    per_day = {r["day"]: r["cost"] for r in days}
    assert _close(per_day[day_a.isoformat()], 7 * _call_cost(OLD))  # old price per its effective dates
    assert _close(per_day[day_b.isoformat()], 3 * _call_cost(NEW))  # new price from its effective date
    assert _close(per_day[day_c.isoformat()], 4 * _call_cost(NEW))  # priced at ingest with the new price

    report = json.loads(_cli(tmp_path, "budget", "report", "--period", "month", "--date", day_a.isoformat(),
                             "-c", str(config), "--json"))
    surfaces["budget report total"] = report["total_cost_usd"]
    assert _close(report["reported_cost_usd"], round(reported, 6)) and _close(report["estimated_cost_usd"], round(estimated, 6))
    for dimension, name in (("tenants", tenant), ("models", model), ("providers", provider), ("agents", "planner")):
        row = next(r for r in report[dimension] if name in r.values())
        surfaces[f"budget report {dimension[:-1]} {name}"] = row["total_cost_usd"]
        assert row["unpriced_calls"] == 0

    window = (int(datetime.fromisoformat(start).replace(tzinfo=timezone.utc).timestamp()),
              int(datetime.fromisoformat(end).replace(tzinfo=timezone.utc).timestamp()) - 1)
    variables = {"tenant": None, "agent": None, "model": None, "provider": None}
    panels = [(title, sql) for title, sql in _dashboard_cost_panels()
              if "today()" not in sql and "now()" not in sql]  # month to date: checked through the budget report
    results = _store_sql(tmp_path, collector.data / "chdb", [expand(sql, *window, variables) for _, sql in panels])
    for (title, sql), rows in zip(panels, results):
        limit = re.search(r"LIMIT (\d+)\s*$", sql)
        if limit and len(rows) >= int(limit[1]):
            continue  # the top N only
        assert rows, f"dashboard panel {title} shows nothing"
        column = next(c for c in COST_COLUMNS if c in rows[0])
        value = sum(float(r[column] or 0) for r in rows)
        if column == "estimated_cost_usd":
            assert _close(value, estimated), title
        else:
            surfaces[f"dashboard {title}"] = value

    rules = yaml.safe_load(_cli(tmp_path, "budget", "prometheus-rules", "-c", str(config), "--date", day_c.isoformat()))
    recorded = {(r["record"], r["labels"]["tenant"]): float(re.fullmatch(r"vector\((.*)\)", r["expr"])[1])
                for r in rules["groups"][0]["rules"]}
    surfaces["prometheus-rules month_to_date"] = recorded[("genai:tenant_cost_usd:month_to_date", tenant)]
    assert _close(recorded[("genai:tenant_cost_usd:today", tenant)], 4 * _call_cost(NEW))

    disagree = {name: value for name, value in surfaces.items() if not _close(value, total)}
    assert not disagree, f"expected ${total:.6f} on every surface; these differ: {disagree}"
    assert len([s for s in surfaces if s.startswith("dashboard")]) >= 6, surfaces

    doctor = json.loads(_cli(tmp_path, "doctor", "costs", "-c", str(config), "--json"))
    assert doctor["ok"] and not doctor["differences"] and not doctor["unpriced"], doctor
    assert _close(doctor["totals"]["genai_daily"]["cost_usd"], reported)
