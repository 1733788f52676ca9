"""The GenAI SQL layer over `otel_traces`: typed views, subtree and trace costs, the daily rollup,
replay safety, cluster DDL, and every README cookbook query against seeded data with known answers."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from support import seed_data
from collector.storage import genai_views
from collector.storage.readonly_sql import QueryLimits, query_settings, tenant_filters
from collector.storage.schema import SchemaOptions, schema_statements


@pytest.fixture(scope="module")
def seeded():
    return seed_data.shared_store()


def q(store, sql: str) -> list[dict]:
    result = store.query(sql)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def scalar(store, sql: str):
    return store.query(sql).result_rows[0][0]


def _since(store, expr: str) -> int:
    """A time boundary in ns as ClickHouse computes it (same time zone as the views)."""
    return int(scalar(store, f"SELECT toUnixTimestamp64Nano(toDateTime64({expr}, 9))"))


def test_calls_view_is_typed_and_matches_the_spans(seeded):
    store, truth = seeded
    calls = truth.calls
    row = q(store, """
        SELECT count() AS n, sum(input_tokens) AS inp, sum(output_tokens) AS outp,
               sum(cache_read_input_tokens) AS cr, sum(cache_creation_input_tokens) AS cc,
               sum(reasoning_output_tokens) AS rs, sum(cost_usd) AS cost, sum(cost_output_usd) AS cost_out,
               countIf(NOT priced) AS unpriced, countIf(is_error) AS errors, countIf(streaming) AS streams,
               countIf(time_to_first_chunk_ms IS NOT NULL) AS ttfc, uniqExact(tenant) AS tenants
        FROM otel.genai_calls""")[0]
    a = lambda key: sum(c.attrs.get(key, 0) for c in calls)  # noqa: E731
    assert row["n"] == len(calls)
    assert row["inp"] == a("gen_ai.usage.input_tokens") and row["outp"] == a("gen_ai.usage.output_tokens")
    assert row["cr"] == a("gen_ai.usage.cache_read.input_tokens")
    assert row["cc"] == a("gen_ai.usage.cache_creation.input_tokens")
    assert row["rs"] == a("gen_ai.usage.reasoning.output_tokens")
    assert math.isclose(row["cost"], a("gen_ai.usage.cost_usd"), rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose(row["cost_out"], a("gen_ai.usage.cost.output_usd"), rel_tol=1e-6, abs_tol=1e-6)
    assert row["unpriced"] == sum(c.attrs.get("gen_ai.usage.cost.status") == "unpriced" for c in calls) > 0
    assert row["errors"] == sum(c.error for c in calls) > 0
    assert row["streams"] == sum(bool(c.attrs.get("gen_ai.request.stream")) for c in calls) > 0
    assert row["ttfc"] == sum("gen_ai.response.time_to_first_chunk" in c.attrs for c in calls) > 0
    assert row["tenants"] == 3
    described = store.query("DESCRIBE otel.genai_calls").result_rows
    types = {r[0]: r[1] for r in described}
    for column in ("Timestamp", "TraceId", "SpanId", "ServiceName", "tenant", "engagement", "flow", "feature", "agent",
                   "workflow", "provider", "request_model", "response_model", "input_tokens", "output_tokens",
                   "cache_read_input_tokens", "cache_creation_input_tokens", "reasoning_output_tokens", "cost_usd",
                   "cost_input_usd", "cost_cache_read_usd", "cost_cache_creation_usd", "cost_output_usd",
                   "cost_reasoning_usd", "cost_status", "priced", "unpriced_reason", "status", "error_type",
                   "duration_ms", "streaming", "time_to_first_chunk_ms"):
        assert column in types, column
    assert types["input_tokens"] == "UInt64" and types["cost_usd"] == "Nullable(Float64)"
    assert types["time_to_first_chunk_ms"] == "Nullable(Float64)"


def test_unpriced_calls_have_no_cost_and_errors_have_a_type(seeded):
    store, _ = seeded
    assert scalar(store, "SELECT count() FROM otel.genai_calls WHERE cost_status = 'unpriced' AND cost_usd IS NOT NULL") == 0
    assert scalar(store, "SELECT count() FROM otel.genai_calls WHERE is_error AND error_type = ''") == 0
    types = {r[0] for r in store.query("SELECT DISTINCT error_type FROM otel.genai_calls WHERE is_error").result_rows}
    assert types == set(seed_data.ERRORS)


def test_delegated_wrappers_are_not_counted_twice(seeded):
    store, truth = seeded
    wrappers = [s for s in truth.spans if s.attrs.get("gen_ai.usage.cost.status") == "delegated" and s.op == "chat"]
    assert wrappers, "the seed must contain framework spans wrapping provider spans"
    raw = scalar(store, "SELECT count() FROM otel.otel_traces WHERE SpanAttributes['gen_ai.operation.name'] = 'chat'")
    assert scalar(store, "SELECT countIf(operation = 'chat') FROM otel.genai_calls") == raw - len(wrappers)


def test_agent_tasks_view_answers_agent_task_history(seeded):
    store, truth = seeded
    tasks = [s for s in truth.spans if s.op == "task"]
    rows = q(store, "SELECT task_id, agent, task, status, started, completed, duration_ms, tenant, flow FROM otel.genai_agent_tasks")
    assert len(rows) == len(tasks)
    assert sum(r["status"] == "failed" for r in rows) == sum(t.error for t in tasks) > 0
    by_id = {t.attrs["crewai.task.id"]: t for t in tasks}
    for r in rows[:50]:
        t = by_id[r["task_id"]]
        assert (r["agent"], r["task"], r["tenant"], r["flow"]) == (
            t.attrs["gen_ai.agent.name"], t.attrs["gen_ai.task.name"], t.attrs["tenant.id"], t.attrs["flow.name"])
        assert math.isclose(r["duration_ms"], t.duration_ms, rel_tol=1e-6, abs_tol=1e-6)
        assert r["completed"] > r["started"]


def _ancestors(spans_by_id, span):
    out, parent = [], span.parent_id
    while parent and parent in spans_by_id:
        out.append(spans_by_id[parent])
        parent = spans_by_id[parent].parent_id
    return out


def test_trace_and_subtree_costs_roll_up_without_double_counting(seeded):
    store, truth = seeded
    window = "from_ts = now() - INTERVAL 60 DAY, to_ts = now() + INTERVAL 1 DAY"
    total = sum(c.attrs.get("gen_ai.usage.cost_usd", 0) for c in truth.calls)
    assert math.isclose(scalar(store, f"SELECT sum(cost_usd) FROM otel.genai_traces({window})"), total, rel_tol=1e-6, abs_tol=1e-6)
    # every call sits under exactly one workflow and one task: those levels add up to the total
    kinds = {r["kind"]: r for r in q(store, f"SELECT kind, sum(cost_usd) AS cost, sum(calls) AS calls "
                                            f"FROM otel.genai_subtree_costs({window}) GROUP BY kind")}
    assert math.isclose(kinds["invoke_workflow"]["cost"], total, rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose(kinds["task"]["cost"], total, rel_tol=1e-6, abs_tol=1e-6)
    # agent subtrees: an outer agent includes its nested reviewer's calls
    expected: dict[str, float] = defaultdict(float)
    for trace in truth.by_trace().values():
        by_id = {s.span_id: s for s in trace}
        for call in (s for s in trace if s.is_call):
            for anc in _ancestors(by_id, call):
                if anc.op == "invoke_agent":
                    expected[anc.attrs["gen_ai.agent.name"]] += call.attrs.get("gen_ai.usage.cost_usd", 0)
    got = {r["name"]: r["cost"] for r in q(store, f"SELECT name, sum(cost_usd) AS cost FROM otel.genai_subtree_costs({window}) "
                                                  "WHERE kind = 'invoke_agent' GROUP BY name")}
    assert got.keys() == expected.keys()
    for name, cost in expected.items():
        assert math.isclose(got[name], cost, rel_tol=1e-6, abs_tol=1e-6), name
    assert sum(got.values()) > total  # nested agents: subtrees overlap, as they should
    # the nearest-agent attribution in genai_calls does add up to the total
    assert math.isclose(scalar(store, "SELECT sum(cost_usd) FROM (SELECT agent, sum(cost_usd) AS cost_usd "
                                      "FROM otel.genai_calls GROUP BY agent)"), total, rel_tol=1e-6, abs_tol=1e-6)


def test_each_subtree_row_equals_a_walk_over_the_spans(seeded):
    """Every container's row (calls, cost, tokens, unpriced calls, errors, its own name, agent,
    tenant), against the calls beneath it found by walking the seeded spans: calls wrapped in a
    delegated span count for the containers above the wrapper, a nested reviewer's for both agents."""
    store, truth = seeded
    window = "from_ts = now() - INTERVAL 60 DAY, to_ts = now() + INTERVAL 1 DAY"
    names = {"invoke_agent": "gen_ai.agent.name", "task": "gen_ai.task.name", "invoke_workflow": "gen_ai.workflow.name"}
    expected: dict[tuple[str, str], dict] = {}
    for trace in truth.by_trace().values():
        by_id = {s.span_id: s for s in trace}
        for call in (s for s in trace if s.is_call):
            for anc in _ancestors(by_id, call):
                if anc.op not in names:
                    continue
                row = expected.setdefault((anc.trace_id, anc.span_id), dict(
                    kind=anc.op, name=anc.attrs[names[anc.op]], agent=anc.attrs.get("gen_ai.agent.name", ""),
                    tenant=anc.attrs["tenant.id"], calls=0, cost_usd=0.0, input_tokens=0, output_tokens=0,
                    unpriced_calls=0, errors=0))
                row["calls"] += 1
                row["cost_usd"] += call.attrs.get("gen_ai.usage.cost_usd", 0)
                row["input_tokens"] += call.attrs.get("gen_ai.usage.input_tokens", 0)
                row["output_tokens"] += call.attrs.get("gen_ai.usage.output_tokens", 0)
                row["unpriced_calls"] += call.attrs.get("gen_ai.usage.cost.status") == "unpriced"
                row["errors"] += call.error
    got = {(r.pop("TraceId"), r.pop("SpanId")): r for r in q(store, f"""
        SELECT TraceId, SpanId, kind, name, agent, tenant, calls, cost_usd, input_tokens, output_tokens,
               unpriced_calls, errors
        FROM otel.genai_subtree_costs({window})""")}
    assert got.keys() == expected.keys()
    assert any(r["errors"] for r in expected.values()) and any(r["unpriced_calls"] for r in expected.values())
    for key, want in expected.items():
        row = got[key]
        assert math.isclose(row.pop("cost_usd"), want.pop("cost_usd"), rel_tol=1e-6, abs_tol=1e-9), key
        assert row == want, key


def test_a_subtree_never_crosses_tenants_and_each_tenant_has_its_own_totals(seeded):
    """A trace whose spans belong to two tenants: each tenant's spans are walked on their own (a
    tenant's reader, whose row policy on the totals is `tenant = ...`, sees the same rows as
    Grafana), and the totals hold a row per tenant with only that tenant's spans in its tree."""
    store, _ = seeded
    db = "subtree_tenants_t"
    options = SchemaOptions(database=db)
    for statement in schema_statements(options):
        store.command(statement)
    genai_views.create(store, options)
    trace = "ab" * 16

    def span(span_id: str, parent: str, tenant: str, op: str, cost: float = 0.0, **names: str) -> str:
        attrs = {"tenant.id": tenant, "gen_ai.operation.name": op, **names}
        if op == "chat":
            attrs |= {"gen_ai.usage.input_tokens": "10", "gen_ai.usage.cost_usd": str(cost),
                      "gen_ai.usage.cost.status": "priced"}
        literal = "map(" + ", ".join(f"'{k}', '{v}'" for k, v in attrs.items()) + ")"
        return f"(now64(9), '{trace}', '{span_id}', '{parent}', '{op}', 'svc', {literal})"

    spans = [span("a0", "", "acme", "invoke_workflow", **{"gen_ai.workflow.name": "intake"}),
             span("a1", "a0", "acme", "invoke_agent", **{"gen_ai.agent.name": "planner"}),
             span("a2", "a1", "acme", "chat", 1.0),
             span("b1", "a0", "globex", "invoke_agent", **{"gen_ai.agent.name": "helper"}),
             span("b2", "b1", "globex", "chat", 2.0),
             span("a3", "b1", "acme", "chat", 4.0)]  # acme's call beneath globex's agent
    store.command(f"INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, ServiceName, "
                  f"SpanAttributes) VALUES {', '.join(spans)}")
    subtrees = f"""SELECT SpanId, tenant, calls, cost_usd
        FROM {db}.genai_subtree_costs(from_ts = now() - INTERVAL 1 DAY, to_ts = now() + INTERVAL 1 DAY)"""
    got = {r["SpanId"]: (r["tenant"], r["calls"], r["cost_usd"]) for r in q(store, subtrees)}
    assert got == {"a0": ("acme", 1, 1.0), "a1": ("acme", 1, 1.0), "b1": ("globex", 1, 2.0)}
    for tenant in ("acme", "globex"):  # through the SQL endpoint's own filters for a tenant's token
        filters = tenant_filters(store, db, "otel_traces", tenant)
        as_tenant = q(store, subtrees + query_settings(QueryLimits(), filters, "test"))
        assert {r["SpanId"]: (r["tenant"], r["calls"], r["cost_usd"]) for r in as_tenant} == {
            span_id: row for span_id, row in got.items() if row[0] == tenant}
    totals = {r["tenant"]: r for r in q(store, f"SELECT tenant, span_count, length(tree) AS tree, cost "
                                               f"FROM {db}.genai_trace_totals FINAL")}
    assert {t: (r["span_count"], r["tree"], r["cost"]) for t, r in totals.items()} == {
        "acme": (4, 4, 5.0), "globex": (2, 2, 2.0)}
    spans_total = q(store, f"SELECT spans, cost_usd, tenant FROM {db}.genai_traces("
                           "from_ts = now() - INTERVAL 1 DAY, to_ts = now() + INTERVAL 1 DAY)")
    assert spans_total == [{"spans": 6, "cost_usd": 7.0, "tenant": "globex"}]  # Grafana: the whole trace


def test_daily_rollup_equals_the_raw_spans(seeded):
    store, _ = seeded
    raw = q(store, """SELECT toDate(Timestamp) AS day, tenant, agent, provider, model, count() AS calls,
                             sum(cost_usd) AS cost, sum(input_tokens) AS inp, sum(cache_read_input_tokens) AS cr
                      FROM otel.genai_calls GROUP BY day, tenant, agent, provider, model ORDER BY day, tenant, agent, provider, model""")
    rolled = q(store, """SELECT day, tenant, agent, provider, model, sum(calls) AS calls, sum(cost_usd) AS cost,
                                sum(input_tokens) AS inp, sum(cache_read_input_tokens) AS cr
                         FROM otel.genai_daily GROUP BY day, tenant, agent, provider, model ORDER BY day, tenant, agent, provider, model""")
    assert len(raw) == len(rolled) > 100
    for a, b in zip(raw, rolled):
        assert (a["day"], a["tenant"], a["agent"], a["model"], a["calls"], a["inp"], a["cr"]) == \
               (b["day"], b["tenant"], b["agent"], b["model"], b["calls"], b["inp"], b["cr"])
        assert math.isclose(a["cost"] or 0, b["cost"], rel_tol=1e-6, abs_tol=1e-6)


def test_replayed_batch_is_not_counted_twice_in_the_rollup(seeded):
    store, truth = seeded
    before = q(store, "SELECT sum(calls) AS calls, sum(cost_usd) AS cost FROM otel.genai_daily")[0]
    spans_before = scalar(store, "SELECT count() FROM otel.otel_traces")
    # the exporter replays a queued batch with the same insert deduplication token
    seed_data.insert(store, "otel_traces", truth.spans[:5000], batch=5000, token_prefix="seed")
    after = q(store, "SELECT sum(calls) AS calls, sum(cost_usd) AS cost FROM otel.genai_daily")[0]
    assert scalar(store, "SELECT count() FROM otel.otel_traces") == spans_before
    assert after["calls"] == before["calls"] and math.isclose(after["cost"], before["cost"], rel_tol=1e-12)


def test_traces_view_sums_only_the_spans_inside_its_range_whichever_table_it_reads(seeded):
    """`genai_traces(from_ts, to_ts)` reads a trace that lies wholly inside the range from its
    per-trace totals, and a trace that straddles an end of the range from its spans inside it. For
    ranges that cut traces apart (ends at a span in the middle of the largest traces), every trace
    matches what its spans inside the range say, counted straight from `otel_traces` and
    `genai_calls`."""
    store, _ = seeded
    big = [r[0] for r in store.query("SELECT TraceId FROM otel.otel_traces GROUP BY TraceId "
                                     "ORDER BY count() DESC, TraceId LIMIT 2").result_rows]
    cut = [scalar(store, f"SELECT toUnixTimestamp64Nano(Timestamp) FROM otel.otel_traces WHERE TraceId = '{t}' "
                         "ORDER BY Timestamp LIMIT 1 OFFSET 3") for t in big]
    week_ago = _since(store, "now() - INTERVAL 7 DAY")
    ranges = [(min(cut), max(cut) + 1), (week_ago, _since(store, "now()")), (cut[0], cut[0] + 10**9 * 3600 * 24 * 3)]
    straddled = 0
    for lo, hi in ranges:
        window = (f"from_ts = fromUnixTimestamp64Nano({lo}), to_ts = fromUnixTimestamp64Nano({hi})")
        where = f"Timestamp >= fromUnixTimestamp64Nano({lo}) AND Timestamp < fromUnixTimestamp64Nano({hi})"
        seen = q(store, f"SELECT TraceId, spans, calls, errors, start, end, round(cost_usd, 9) AS cost, root_span "
                        f"FROM otel.genai_traces({window}) ORDER BY TraceId")
        spans = q(store, f"SELECT TraceId, count() AS spans, countIf(StatusCode = 'Error') AS errors, "
                         f"min(Timestamp) AS start, max(Timestamp + toIntervalNanosecond(Duration)) AS end, "
                         f"argMin(toString(SpanName), Timestamp) AS root_span "
                         f"FROM otel.otel_traces WHERE {where} GROUP BY TraceId ORDER BY TraceId")
        calls = {r["TraceId"]: r for r in q(store, f"SELECT TraceId, count() AS calls, round(sum(ifNull(cost_usd, 0)), 9) "
                                                    f"AS cost FROM otel.genai_calls WHERE {where} GROUP BY TraceId")}
        expected = [{**row, "calls": calls.get(row["TraceId"], {}).get("calls", 0),
                     "cost": calls.get(row["TraceId"], {}).get("cost", 0.0)} for row in spans]
        assert len(seen) == len(expected) > 0
        for got, want in zip(seen, expected):
            assert {k: got[k] for k in want if k != "root_span"} == {k: want[k] for k in want if k != "root_span"}, (lo, hi)
        whole = set(r[0] for r in store.query(f"SELECT TraceId FROM otel.otel_traces GROUP BY TraceId "
                                              f"HAVING min(Timestamp) >= fromUnixTimestamp64Nano({lo}) "
                                              f"AND max(Timestamp) < fromUnixTimestamp64Nano({hi})").result_rows)
        straddled += len([r for r in seen if r["TraceId"] not in whole])
    assert straddled >= 2  # the cuts did split traces: both branches of the view answered


def test_statements_are_idempotent(seeded):
    store, _ = seeded
    genai_views.create(store, SchemaOptions(database="otel"))  # a collector restart re-runs them
    assert scalar(store, "SELECT count() FROM otel.genai_calls") > 0


def test_cluster_statements_use_on_cluster_replicated_and_distributed():
    options = SchemaOptions(database="otel", cluster_name="genai", table_engine="ReplicatedMergeTree")
    stmts = genai_views.statements(options)
    assert all("ON CLUSTER `genai`" in s for s in stmts)
    joined = "\n".join(stmts)
    assert "ReplicatedAggregatingMergeTree()" in joined
    assert "non_replicated_deduplication_window" not in joined
    # the Distributed table over otel_traces is the schema's (one definition), read here as the source
    assert "ENGINE = Distributed('genai', 'otel', 'otel_traces', cityHash64(TraceId))" in "\n".join(schema_statements(options))
    assert "ENGINE = Distributed('genai', 'otel', 'genai_daily_local')" in joined
    assert "TO `otel`.`genai_daily_local`" in joined and "FROM `otel`.`otel_traces`\nWHERE" in joined  # MV on the local table
    assert "FROM `otel`.`otel_traces_dist`" in joined  # views read the whole cluster
    # the Distributed table over genai_daily_local is created after it
    assert joined.index("genai_daily_local` ON CLUSTER") < joined.index("`genai_daily` ON CLUSTER")
    # the calls likewise: a replicated local table, filled from the local spans, Distributed by trace
    assert "`genai_calls_local` ON CLUSTER `genai`" in joined and "ENGINE = ReplicatedMergeTree()" in joined
    assert "TO `otel`.`genai_calls_local`" in joined
    assert "ENGINE = Distributed('genai', 'otel', 'genai_calls_local', cityHash64(TraceId))" in joined
    assert joined.index("genai_calls_local` ON CLUSTER") < joined.index("`genai_calls` ON CLUSTER")
    # the per-trace totals too
    assert "`genai_trace_totals_local` ON CLUSTER `genai`" in joined and "TO `otel`.`genai_trace_totals_local`" in joined
    assert "FROM `otel`.`otel_traces`\nGROUP BY TraceId" in joined
    assert "ENGINE = Distributed('genai', 'otel', 'genai_trace_totals_local', cityHash64(TraceId))" in joined
    single = "\n".join(genai_views.statements(SchemaOptions(database="otel")))
    assert "ON CLUSTER" not in single and "Distributed" not in single and "AggregatingMergeTree()" in single


def test_templated_replica_path_is_reused_for_the_rollup():
    options = SchemaOptions(cluster_name="c", table_engine="ReplicatedMergeTree",
                            table_engine_params="'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'")
    joined = "\n".join(genai_views.statements(options))
    assert "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in joined
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in joined  # calls


# --- the README cookbook, every query, against known answers ---------------------------------


@pytest.mark.parametrize("name", sorted(genai_views.COOKBOOK))
def test_cookbook_query_runs_and_returns_rows(seeded, name):
    store, _ = seeded
    rows = q(store, genai_views.COOKBOOK[name][1])
    assert rows, name


def test_cookbook_top_agents_this_week(seeded):
    store, truth = seeded
    since = _since(store, "toStartOfDay(toMonday(today()))")
    expected: dict[str, float] = defaultdict(float)
    for c in truth.calls:
        if c.start_ns >= since:
            expected[c.attrs["gen_ai.agent.name"]] += c.attrs.get("gen_ai.usage.cost_usd", 0)
    rows = q(store, genai_views.COOKBOOK["top_agents_this_week"][1])
    top = sorted(expected.items(), key=lambda kv: -kv[1])[:10]
    assert [r["agent"] for r in rows] == [a for a, _ in top]
    for r, (_, cost) in zip(rows, top):
        assert math.isclose(r["cost_usd"], round(cost, 4), abs_tol=1e-4)


def test_cookbook_cost_per_tenant_per_day(seeded):
    store, truth = seeded
    since = _since(store, "toStartOfDay(today() - 29)")
    expected: dict[tuple, float] = defaultdict(float)
    for c in truth.calls:
        if c.start_ns >= since:
            expected[c.attrs["tenant.id"]] += c.attrs.get("gen_ai.usage.cost_usd", 0)
    rows = q(store, genai_views.COOKBOOK["cost_per_tenant_per_day"][1])
    got: dict[str, float] = defaultdict(float)
    for r in rows:
        got[r["tenant"]] += r["cost_usd"]
    assert got.keys() == expected.keys()
    for tenant, cost in expected.items():
        assert math.isclose(got[tenant], cost, abs_tol=1e-4 * 30)
    assert len({r["day"] for r in rows}) == 30


def _percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def test_cookbook_latency_per_model(seeded):
    store, truth = seeded
    since = _since(store, "now() - INTERVAL 1 DAY")
    by_model: dict[str, list[float]] = defaultdict(list)
    for c in truth.calls:
        if c.start_ns >= since:
            attrs = c.attrs
            by_model[attrs.get("gen_ai.response.model") or attrs["gen_ai.request.model"]].append(c.duration_ms)
    rows = {r["model"]: r for r in q(store, genai_views.COOKBOOK["p95_latency_per_model_24h"][1])}
    assert rows.keys() == by_model.keys()
    for model, durations in by_model.items():
        assert rows[model]["calls"] == len(durations)
        assert math.isclose(rows[model]["p95_ms"], _percentile(durations, 0.95), rel_tol=0.05, abs_tol=2), model
    # the rollup's t-digest agrees with the raw spans over 30 days: between the exact p90 and p99
    raw = {r["model"]: r for r in q(store, "SELECT model, quantileExact(0.9)(duration_ms) AS p90, "
                                           "quantileExact(0.99)(duration_ms) AS p99 FROM otel.genai_calls "
                                           "WHERE Timestamp >= toStartOfDay(today() - 29) GROUP BY model")}
    for r in q(store, genai_views.COOKBOOK["p95_latency_per_model_30d"][1]):
        assert raw[r["model"]]["p90"] * 0.98 <= r["p95_ms"] <= raw[r["model"]]["p99"] * 1.02, r


def test_cookbook_unpriced_spans(seeded):
    store, truth = seeded
    since = _since(store, "now() - INTERVAL 7 DAY")
    expected = sum(1 for c in truth.calls if c.start_ns >= since and c.attrs.get("gen_ai.usage.cost.status") == "unpriced")
    rows = q(store, genai_views.COOKBOOK["unpriced_spans"][1])
    assert sum(r["calls"] for r in rows) == expected
    assert {r["unpriced_reason"] for r in rows} == {"unknown_model", "missing_token_counts"}


def test_cookbook_most_expensive_traces_link_to_the_trace_view(seeded):
    store, truth = seeded
    since = _since(store, "now() - INTERVAL 7 DAY")
    costs: dict[str, float] = defaultdict(float)
    for s in truth.spans:
        if s.start_ns >= since and s.is_call:
            costs[s.trace_id] += s.attrs.get("gen_ai.usage.cost_usd", 0)
    top = sorted(costs.items(), key=lambda kv: -kv[1])[:10]
    rows = q(store, genai_views.COOKBOOK["most_expensive_traces"][1])
    assert [r["TraceId"] for r in rows] == [t for t, _ in top]
    from urllib.parse import unquote

    assert rows[0]["link"].startswith(genai_views.GRAFANA_URL + "/explore?")
    assert f'"query":"{rows[0]["TraceId"]}"' in unquote(rows[0]["link"]) and '"uid":"tempo"' in unquote(rows[0]["link"])


def test_cookbook_agent_task_history(seeded):
    store, truth = seeded
    since = _since(store, "now() - INTERVAL 1 DAY")
    expected = sum(1 for s in truth.spans if s.op == "task" and s.start_ns >= since)
    rows = q(store, genai_views.COOKBOOK["agent_task_history"][1])
    assert len(rows) == min(50, expected)
    assert {r["status"] for r in rows} <= {"completed", "failed"}


def test_cookbook_cache_hit_ratio(seeded):
    store, truth = seeded
    since = _since(store, "toStartOfDay(today() - 6)")
    cr: dict[str, int] = defaultdict(int)
    inp: dict[str, int] = defaultdict(int)
    for c in truth.calls:
        if c.start_ns >= since:
            model = c.attrs.get("gen_ai.response.model") or c.attrs["gen_ai.request.model"]
            cr[model] += c.attrs.get("gen_ai.usage.cache_read.input_tokens", 0)
            inp[model] += c.attrs.get("gen_ai.usage.input_tokens", 0)
    for r in q(store, genai_views.COOKBOOK["cache_hit_ratio_per_model"][1]):
        assert r["cache_read"] == cr[r["model"]] and r["input"] == inp[r["model"]]
        if inp[r["model"]]:
            assert math.isclose(r["cache_hit_ratio"], round(cr[r["model"]] / inp[r["model"]], 4), abs_tol=1e-4)
