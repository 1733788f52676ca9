"""Repricing stored spans: real SQL on an embedded chdb ClickHouse in a temp directory."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import clickhouse_connect
import pytest

from collector.pdata import Traces, set_any_value
from collector.reprice import reprice
from collector.storage.columns import traces_to_arrow
from collector.storage.schema import SchemaOptions, schema_statements
from processors.genai_cost import GenAICostConfig
from processors.pricing import PriceBook

BOOK = PriceBook.load()
T0 = int(datetime(2026, 11, 10, tzinfo=timezone.utc).timestamp()) * 10**9
DAY = 86_400 * 10**9
N_BACKFILL = 1_569  # the seeds' backfill case: calls stored with provider `unknown` and no cost


@pytest.fixture(scope="module")
def chdb_path():
    # chdb allows one data path per process: share the test session's one (own tables, so no clash).
    from support import seed_data

    return seed_data.shared_path()


@pytest.fixture(scope="module")
def client(chdb_path):
    # Not closed: closing would shut the embedded engine for the other modules sharing it.
    yield clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")


def _span(scope, trace: int, sid: int, parent: int, name: str, start: int, attrs: dict):
    span = scope.spans.add(trace_id=trace.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"), name=name,
                           start_time_unix_nano=start, end_time_unix_nano=start + 10**9)
    if parent:
        span.parent_span_id = parent.to_bytes(8, "big")
    for key, value in attrs.items():
        set_any_value(span.attributes.add(key=key).value, value)


def _seed(client, table: str, n: int = N_BACKFILL, database: str = "otel"):
    for statement in schema_statements(SchemaOptions(database=database, traces_table_name=table)):
        client.command(statement)
    traces = Traces()
    rs = traces.request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "agents"
    scope = rs.scope_spans.add()
    # 1,569 calls: an OpenAI-compatible client against DeepInfra, stored as provider "unknown".
    # deepinfra/meta-llama/Llama-3.3-70B-Instruct: input 2.3e-7, output 4e-7 -> each call
    # 1,000 * 2.3e-7 + 200 * 4e-7 = 0.00031
    for i in range(n):
        _span(scope, 1000 + i, 1, 0, "chat", T0 + i * 10**6, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "unknown", "server.address": "api.deepinfra.com",
            "gen_ai.request.model": "meta-llama/Llama-3.3-70B-Instruct",
            "gen_ai.usage.input_tokens": 1_000, "gen_ai.usage.output_tokens": 200})
    # One multi-agent trace: agent (stale cost on it) -> framework LLM span -> SDK span; a tool; a DB span.
    _span(scope, 7, 1, 0, "invoke_agent planner", T0 + 5 * DAY, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 50_000, "gen_ai.usage.cost_usd": 9.99})
    _span(scope, 7, 2, 1, "ChatOpenAI", T0 + 5 * DAY, {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 10_000,
        "llm.token_count.completion": 1_000})
    _span(scope, 7, 3, 2, "openai.chat", T0 + 5 * DAY, {
        "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 10_000, "gen_ai.usage.completion_tokens": 1_000})
    _span(scope, 7, 4, 1, "execute_tool search", T0 + 5 * DAY, {"gen_ai.operation.name": "execute_tool"})
    _span(scope, 7, 5, 4, "SELECT", T0 + 5 * DAY, {"db.system": "postgresql"})
    # an unknown model: must stay unpriced, never 0
    _span(scope, 8, 1, 0, "chat", T0 + 6 * DAY, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-99",
        "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5})
    client.insert_arrow(table, traces_to_arrow(traces), database=database)


def _costs(client, table):
    return dict(client.query(
        f"SELECT SpanAttributes['genaitrace.cost.status'] AS s, sum(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd']))"
        f" FROM otel.{table} GROUP BY s"
    ).result_rows)


BACKFILL_USD = N_BACKFILL * (1_000 * 2.3e-7 + 200 * 4e-7)  # 1,569 * 0.00031 = 0.48639
MINI_USD = 10_000 * 1.5e-7 + 1_000 * 6e-7  # gpt-4o-mini: 0.0015 + 0.0006 = 0.0021


def test_backfill_unknown_provider_then_rerun_is_a_no_op(client):
    _seed(client, "t_backfill")
    seen = []
    summary = reprice(client, "otel", "t_backfill", book=BOOK, unpriced_only=True, batch_size=500,
                      progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (N_BACKFILL + 5, N_BACKFILL + 5)  # DB span is not GenAI: not scanned
    assert summary.priced == N_BACKFILL + 1 and summary.delegated == 1 and summary.unpriced == 1
    assert summary.unpriced_reasons == {"unknown_model": 1}
    assert summary.cost_before == pytest.approx(9.99)  # the stale agent-span cost
    assert summary.cost_after == pytest.approx(BACKFILL_USD + MINI_USD)
    costs = _costs(client, "t_backfill")
    assert costs["priced"] == pytest.approx(BACKFILL_USD + MINI_USD)
    assert costs.get("delegated", 0) == 0 and costs["unpriced"] == 0 and costs[""] == 0  # agent's 9.99 removed
    providers = dict(client.query(
        "SELECT SpanAttributes['gen_ai.provider.name'] p, count() FROM otel.t_backfill"
        " WHERE SpanAttributes['gen_ai.operation.name'] = 'chat' GROUP BY p").result_rows)
    assert providers == {"deepinfra": N_BACKFILL, "openai": 3}  # wrapper + SDK span + gpt-99
    unknown = client.query("SELECT mapContains(SpanAttributes, 'gen_ai.usage.cost_usd'), SpanAttributes['genaitrace.cost.unpriced_reason']"
                           " FROM otel.t_backfill WHERE SpanAttributes['gen_ai.request.model'] = 'gpt-99'").result_rows
    assert unknown == [(False, "unknown_model")]

    again = reprice(client, "otel", "t_backfill", book=BOOK, batch_size=500)
    assert again.repriced == 0
    assert again.cost_before == pytest.approx(again.cost_after) == pytest.approx(BACKFILL_USD + MINI_USD)


def test_a_reprice_of_another_traces_table_leaves_the_databases_genai_tables_alone(client):
    """The GenAI tables of a database are fed by its `otel_traces` (their materialized views). A
    reprice of another traces table in the same database rebuilds none of them: before, it replaced
    the rollup's (and the calls', and the per-trace totals') rows of its days by its own spans."""
    from support import seed_data

    seed_data.shared_store()  # `otel` holds the seeded spans, its GenAI tables fed by otel_traces
    surfaces = ("SELECT count(), round(sum(ifNull(cost_usd, 0)), 9) FROM otel.genai_calls",
                "SELECT sum(calls), round(sum(cost_usd), 9) FROM otel.genai_daily",
                "SELECT sum(span_count), round(sum(cost), 9) FROM otel.genai_trace_totals")
    before = [client.query(sql).result_rows[0] for sql in surfaces]
    _seed(client, "t_elsewhere", 50)
    summary = reprice(client, "otel", "t_elsewhere", book=BOOK)
    assert summary.priced > 0 and summary.rollup_days  # the days were touched (and journaled)
    assert [client.query(sql).result_rows[0] for sql in surfaces] == before


N_SMALL = 300
SMALL_USD = N_SMALL * (1_000 * 2.3e-7 + 200 * 4e-7)  # 300 * 0.00031 = 0.093


def test_price_change_for_one_model_and_time_range(client):
    _seed(client, "t_change", N_SMALL)
    reprice(client, "otel", "t_change", book=BOOK, batch_size=1000)
    # DeepInfra drops the price from the 11th of November 2026 (T0 is the 10th; calls 1 ms apart, so none qualify
    # until we add a day of range): new input 1e-7, output 2e-7.
    book = GenAICostConfig(prices=[{"model": "meta-llama/Llama-3.3-70B-Instruct", "provider": "deepinfra",
                                    "effective_from": "2026-11-10", "input_cost_per_token": 1e-7,
                                    "output_cost_per_token": 2e-7}]).price_book()
    summary = reprice(client, "otel", "t_change", book=book, model="meta-llama/Llama-3.3-70B-Instruct",
                      since="2026-11-10", until="2026-11-11")
    assert summary.scanned == N_SMALL and summary.repriced == N_SMALL
    new_usd = N_SMALL * (1_000 * 1e-7 + 200 * 2e-7)  # 300 * 0.00014 = 0.042
    assert summary.cost_before == pytest.approx(SMALL_USD)
    assert summary.cost_after == pytest.approx(new_usd)
    assert _costs(client, "t_change")["priced"] == pytest.approx(new_usd + MINI_USD)
    entries = client.query("SELECT DISTINCT SpanAttributes['genaitrace.cost.price_source'], SpanAttributes['genaitrace.cost.price_effective_date']"
                           " FROM otel.t_change WHERE SpanAttributes['gen_ai.provider.name'] = 'deepinfra'").result_rows
    assert entries == [("override", "2026-11-10")]


def test_interrupted_run_resumes(client):
    _seed(client, "t_interrupt", N_SMALL)

    def stop_after_first_batch(done, total):
        if done >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reprice(client, "otel", "t_interrupt", book=BOOK, batch_size=100, progress=stop_after_first_batch)
    partial = _costs(client, "t_interrupt")
    assert partial["priced"] == pytest.approx(100 * 0.00031)
    summary = reprice(client, "otel", "t_interrupt", book=BOOK, batch_size=100)
    assert summary.repriced == (N_SMALL + 5) - 100 - 1  # the finished batch compares equal; the tool span never changes
    assert _costs(client, "t_interrupt")["priced"] == pytest.approx(SMALL_USD + MINI_USD)
    leftovers = client.query("SELECT count() FROM system.tables WHERE database = 'otel' AND name LIKE '%reprice_tmp%'").result_rows
    assert leftovers == [(0,)]


def test_dry_run_writes_nothing(client):
    _seed(client, "t_dry", N_SMALL)
    summary = reprice(client, "otel", "t_dry", book=BOOK, dry_run=True)
    assert summary.repriced == N_SMALL + 4 and summary.cost_after == pytest.approx(SMALL_USD + MINI_USD)
    assert "would reprice" in "\n".join(summary.lines())
    assert "priced" not in _costs(client, "t_dry")


def test_cli_reads_genai_cost_settings_from_the_config(tmp_path, monkeypatch, client, chdb_path):
    from typer.testing import CliRunner

    from collector import registry
    from collector.component import Kind
    from collector.reprice import reprice_app

    monkeypatch.setitem(registry._MODULES[Kind.PROCESSOR], "genai_cost", "processors.genai_cost")
    db = chdb_path
    _seed(client, "otel_traces", 50, database="reprice_cli")  # its own database: the session's store is shared
    config = tmp_path / "otel-collector.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:4318}}}}\n"
        "processors:\n  genai_cost:\n    provider_discounts: {deepinfra: 0.5}\n"
        f"exporters: {{clickhouse: {{endpoint: \"chdb://{db}\", database: reprice_cli}}}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], processors: [genai_cost], exporters: [clickhouse]}}}\n"
    )
    result = CliRunner().invoke(reprice_app, ["--config", str(config), "--unpriced-only"])
    assert result.exit_code == 0, result.output
    # 50 DeepInfra calls at half price + the gpt-4o-mini call: 50 * 0.00031 * 0.5 + 0.0021 = 0.00985
    assert "after $0.009850" in result.output and "unpriced: unknown_model: 1" in result.output


# --- derived tables follow (issue 18): the daily rollup is rebuilt for the days a reprice touched ---

def _with_views(client, database: str, n: int = N_SMALL):
    from collector.storage import genai_views

    _seed(client, "otel_traces", n, database=database)
    options = SchemaOptions(database=database)
    genai_views.create(client, options)
    return options


def _rollup_usd(client, database: str) -> float:
    return client.query(f"SELECT sum(cost_usd) + sum(estimated_cost_usd) FROM {database}.genai_daily").result_rows[0][0]


def test_reprice_rebuilds_the_rollup_days_it_touched_and_an_interrupted_rebuild_resumes(client, monkeypatch):
    from collector.storage import rollups

    options = _with_views(client, "rollup_resume")
    assert _rollup_usd(client, "rollup_resume") == 0  # stored unpriced: the materialized view saw no cost
    real_rebuild = rollups.rebuild_days
    monkeypatch.setattr(rollups, "rebuild_days", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # spans repriced, rollup not yet rebuilt
        reprice(client, "rollup_resume", "otel_traces", book=BOOK, unpriced_only=True)
    assert rollups.pending_days(client, options) == [datetime(2026, 11, 10).date(), datetime(2026, 11, 15).date(),
                                                  datetime(2026, 11, 16).date()]
    check = rollups.check_costs(client, options)
    assert not check.ok and check.stale_days() == rollups.pending_days(client, options)
    assert any("genaitrace doctor costs --fix --since 2026-11-10 --until 2026-11-17" in line for line in check.lines())
    monkeypatch.setattr(rollups, "rebuild_days", real_rebuild)
    again = reprice(client, "rollup_resume", "otel_traces", book=BOOK, unpriced_only=True)
    assert again.repriced == 0 and [str(d) for d in again.rollup_days] == ["2026-11-10", "2026-11-15", "2026-11-16"]
    assert _rollup_usd(client, "rollup_resume") == pytest.approx(SMALL_USD + MINI_USD, abs=1e-9)
    assert rollups.check_costs(client, options).ok and rollups.pending_days(client, options) == []
    # a rebuild of the same days again is not dropped as a replayed insert (deduplication is off for it)
    rollups.rebuild_days(client, options, again.rollup_days)
    assert _rollup_usd(client, "rollup_resume") == pytest.approx(SMALL_USD + MINI_USD, abs=1e-9)


def test_doctor_costs_finds_a_stale_rollup_and_fixes_it(client, chdb_path, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from collector.doctor import doctor_app
    from collector.storage import rollups

    _with_views(client, "rollup_doctor", 40)
    # What an earlier release's reprice left: spans priced, the rollup not told.
    with monkeypatch.context() as patch:
        patch.setattr(rollups, "rebuild_pending", lambda *a: [])
        reprice(client, "rollup_doctor", "otel_traces", book=BOOK)
    config = tmp_path / "otel-collector.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:4318}}}}\n"
        f"exporters: {{clickhouse: {{endpoint: \"chdb://{chdb_path}\", database: rollup_doctor}}}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [clickhouse]}}}\n")
    found = CliRunner().invoke(doctor_app, ["costs", "-c", str(config)])
    assert found.exit_code == 1, found.output
    assert "DIFFERS genai_daily 2026-11-10" in found.output and "doctor costs --fix" in found.output
    assert "DIFFERS genai_calls 2026-11-10" in found.output  # the calls table is filled at insert too
    assert "unpriced: 1 calls on 2026-11-16" in found.output  # gpt-99 has no price: says what to run after adding one
    fixed = CliRunner().invoke(doctor_app, ["costs", "-c", str(config), "--fix", "--json"])
    assert fixed.exit_code == 0, fixed.output
    report = json.loads(fixed.output)
    assert report["ok"] and report["rebuilt_days"] == ["2026-11-10", "2026-11-15", "2026-11-16"]
    usd = 40 * 0.00031 + MINI_USD
    assert report["totals"]["genai_daily"]["cost_usd"] == pytest.approx(usd)
    assert report["totals"]["genai_traces"]["cost_usd"] == pytest.approx(usd)
    assert report["totals"]["genai_calls"]["cost_usd"] == pytest.approx(usd)


def test_estimated_token_cost_is_its_own_rollup_column(client):
    from collector.storage import rollups

    options = _with_views(client, "rollup_estimated", 10)
    client.command("ALTER TABLE rollup_estimated.otel_traces UPDATE SpanAttributes = mapUpdate(SpanAttributes,"
                   " map('genaitrace.usage.estimated', 'true')) WHERE SpanAttributes['gen_ai.request.model'] = 'gpt-4o-mini'"
                   " AND SpanAttributes['gen_ai.system'] = 'openai'", settings={"mutations_sync": 2})
    summary = reprice(client, "rollup_estimated", "otel_traces", book=BOOK)
    assert summary.rollup_days
    reported, estimated, calls = client.query(
        "SELECT sum(cost_usd), sum(estimated_cost_usd), sum(estimated_calls) FROM rollup_estimated.genai_daily").result_rows[0]
    assert reported == pytest.approx(10 * 0.00031) and estimated == pytest.approx(MINI_USD) and calls == 1
    assert rollups.check_costs(client, options).ok


def test_cluster_rebuild_is_shard_local_and_the_upgrade_runs_on_cluster():
    from collector.storage import genai_views, rollups

    options = SchemaOptions(cluster_name="c1", table_engine="ReplicatedMergeTree")
    tables = rollups._tables(options)
    assert tables["rollup_local"] == "`otel`.`genai_daily_local`" and tables["traces_local"] == "`otel`.`otel_traces`"
    select = genai_views.daily_select(options, options.traces_table_name, "toDate(Timestamp) IN ('2026-11-10')")
    assert "FROM `otel`.`otel_traces`" in select and "_dist" not in select
    adds = genai_views.add_column_statements(options)
    assert len(adds) == 2 and all("ON CLUSTER `c1`" in s and "ADD COLUMN IF NOT EXISTS estimated_cost_usd" in s for s in adds)
    assert "ON CLUSTER `c1` MODIFY QUERY" in genai_views.modify_view_statement(options)


def test_cli_verify_checks_every_surface_after_the_reprice(client, chdb_path, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from collector import registry
    from collector.component import Kind
    from collector.reprice import reprice_app

    monkeypatch.setitem(registry._MODULES[Kind.PROCESSOR], "genai_cost", "processors.genai_cost")
    _with_views(client, "reprice_verify", 20)
    config = tmp_path / "otel-collector.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:4318}}}}\n"
        "processors:\n  genai_cost: {}\n"
        f"exporters: {{clickhouse: {{endpoint: \"chdb://{chdb_path}\", database: reprice_verify}}}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], processors: [genai_cost], exporters: [clickhouse]}}}\n")
    result = CliRunner().invoke(reprice_app, ["--config", str(config), "--unpriced-only", "--verify",
                                              "--since", "2026-11-01", "--until", "2026-11-20T06:00"])
    assert result.exit_code == 0, result.output
    assert "rebuilt the daily rollup" in result.output and "every surface agrees with otel_traces" in result.output
