"""A daily rollup made by a release that counted only inference spans as calls is moved to the
current SELECT, which counts `plan` spans with their own usage too (issue 14), and keeps its rows."""

from __future__ import annotations

from support import seed_data
from collector.storage import genai_views
from collector.storage.schema import SchemaOptions, logs_statements, schema_statements

DB = "rollup_upgrade_t"


def test_an_earlier_rollup_view_is_moved_to_count_plan_calls():
    store, _ = seed_data.shared_store()
    options = SchemaOptions(database=DB)
    for statement in schema_statements(options):
        store.command(statement)
    genai_views.create(store, options)
    current = genai_views.daily_select(options)
    earlier = current.replace(" OR (SpanAttributes['gen_ai.operation.name'] IN ('plan')", " OR (0")
    assert earlier != current
    store.command(f"ALTER TABLE {DB}.genai_daily_mv MODIFY QUERY {earlier}")

    def view() -> str:
        return store.query(f"SELECT create_table_query FROM system.tables WHERE database = '{DB}' "
                           "AND name = 'genai_daily_mv'").result_rows[0][0]

    assert "'plan'" not in view()
    genai_views.create(store, options)  # what a collector of this release runs at start
    assert "'plan'" in view()
    genai_views.create(store, options)  # and again: nothing left to move
    assert "'plan'" in view()


def test_an_earlier_calls_view_becomes_a_table_filled_from_the_stored_spans():
    """Before 2026-12-07 `genai_calls` was a view over `otel_traces`. A collector of this release
    replaces it by the calls table, fills it from the spans already stored, and from then on the
    materialized view fills it as spans arrive; starting again neither refills nor duplicates."""
    store, truth = seed_data.shared_store()  # `otel` holds the seeded spans
    db = "calls_upgrade_t"
    options = SchemaOptions(database=db)
    for statement in schema_statements(options):
        store.command(statement)
    earlier_view = genai_views.calls_select(options).replace(f"`{db}`.", f"{db}.")
    store.command(f"CREATE VIEW {db}.genai_calls AS {earlier_view}")
    half = "cityHash64(TraceId) % 2 = 0"
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE {half}")

    def calls(where: str = "1") -> tuple:
        return store.query(f"SELECT count(), round(sum(cost_usd), 9) FROM {db}.genai_calls WHERE {where}").result_rows[0]

    def engine() -> str:
        return store.query(f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = 'genai_calls'").result_rows[0][0]

    before = calls()
    assert engine() == "View" and before[0] > 0
    genai_views.create(store, options)  # what a collector of this release runs at start
    assert engine() == "MergeTree" and calls() == before
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE NOT {half}")
    everything = store.query("SELECT count(), round(sum(cost_usd), 9) FROM otel.genai_calls").result_rows[0]
    assert everything[0] == len(truth.calls) and calls() == everything  # the rest arrived through the view
    genai_views.create(store, options)
    assert calls() == everything  # a restart neither refills nor duplicates


def _empty_store(db: str):
    """The shared store (its `otel` database holds the seeded spans) and database `db` with the
    contrib tables only, as a release before the derived tables made them."""
    store, _ = seed_data.shared_store()
    options = SchemaOptions(database=db)
    for statement in schema_statements(options) + logs_statements(options):
        store.command(statement)
    return store, db, options


def test_the_per_trace_totals_are_filled_from_a_store_made_before_them():
    """A store made before `genai_trace_totals` gets them from its stored spans when a collector of
    this release starts; spans inserted afterwards (more spans of the same traces too) reach them
    through the view; `genai_session_traces` answers what the spans say."""
    from collector.storage import session_views

    store, db, options = _empty_store("totals_upgrade_t")
    # half of every trace's spans now, the other half after the upgrade
    half = "cityHash64(SpanId) % 2 = 0"
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE {half}")
    genai_views.create(store, options)  # what a collector of this release runs at start
    session_views.create(store, options)
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE NOT {half}")
    genai_views.create(store, options)  # a restart neither refills nor duplicates

    truth = store.query(f"""
        SELECT TraceId, count(), countIf(StatusCode = 'Error'), argMin(SpanName, Timestamp),
               round(sumIf(toFloat64OrZero(SpanAttributes['gen_ai.usage.cost_usd']),
                           TraceId IN (SELECT TraceId FROM {db}.genai_calls) AND SpanId IN (SELECT SpanId FROM {db}.genai_calls)), 9)
        FROM {db}.otel_traces GROUP BY TraceId ORDER BY TraceId""").result_rows
    seen = store.query(f"SELECT TraceId, spans, errors, root_span, round(cost_usd, 9) FROM {db}.genai_session_traces "
                       "ORDER BY TraceId").result_rows
    assert len(seen) == len(truth) > 100 and seen == truth
    conversations = store.query(f"SELECT count() FROM {db}.genai_conversations").result_rows[0][0]
    assert conversations == store.query("SELECT count() FROM otel.genai_conversations").result_rows[0][0] > 0


def test_totals_with_an_earlier_root_column_are_made_again_from_the_spans():
    """An earlier release kept the totals' `root` as an argMin state. A collector of this release drops
    such totals (table and view) and refills them from the stored spans; the views then read the
    new column, and spans inserted afterwards arrive through the new view."""
    from collector.storage import session_views

    store, db, options = _empty_store("totals_root_upgrade_t")
    earlier_root = "argMinState((toString(SpanName), toString(ServiceName)), Timestamp)"
    store.command(genai_views.totals_table_statement(options).replace(
        "root SimpleAggregateFunction(min, Tuple(DateTime64(9), String, String))",
        "root AggregateFunction(argMin, Tuple(String, String), DateTime64(9))"))
    store.command(genai_views.totals_view_statement(options).replace(genai_views._ROOT_EXPR, earlier_root))
    half = "cityHash64(SpanId) % 2 = 0"
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE {half}")

    def root_type() -> str:
        return store.query(f"SELECT type FROM system.columns WHERE database = '{db}' AND table = 'genai_trace_totals' "
                           "AND name = 'root'").result_rows[0][0]

    assert root_type().startswith("AggregateFunction(argMin")
    genai_views.create(store, options)  # what a collector of this release runs at start
    session_views.create(store, options)
    assert root_type().startswith("SimpleAggregateFunction(min")
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE NOT {half}")
    genai_views.create(store, options)  # a restart neither refills nor duplicates

    truth = store.query(f"""
        SELECT TraceId, count(), tupleElement(min((Timestamp, toString(SpanName), toString(ServiceName))), 2)
        FROM {db}.otel_traces GROUP BY TraceId ORDER BY TraceId""").result_rows
    seen = store.query(f"SELECT TraceId, spans, root_span FROM {db}.genai_session_traces ORDER BY TraceId").result_rows
    assert len(seen) == len(truth) > 100 and seen == truth


def test_totals_of_one_row_per_trace_without_the_tree_are_made_again_from_the_spans():
    """Up to the seventh session of 2026-12-07 the totals held one row per trace (`tenant` a max)
    and no tree: the subtree view read every span's maps instead. A collector of this release drops
    such totals and refills them from the stored spans; the subtree view then answers as on a store
    made by this release."""
    store, db, options = _empty_store("totals_walk_upgrade_t")
    table = genai_views.totals_table_statement(options)
    earlier_table = (table.replace("    tenant String,", "    tenant SimpleAggregateFunction(max, String),")
                     .replace("ORDER BY (TraceId, tenant)", "ORDER BY TraceId"))
    earlier_table = earlier_table[:earlier_table.index(",\n    tree ")] + "\n)" + earlier_table[earlier_table.index(" ENGINE ="):]
    select = genai_views.totals_select(options)
    tenant = genai_views._TENANT_EXPR
    earlier_select = (select.replace(f"{tenant} AS tenant", f"max({tenant}) AS tenant")
                      .replace("GROUP BY TraceId, tenant", "GROUP BY TraceId"))
    earlier_select = earlier_select[:earlier_select.index(",\n    groupArray((cityHash64")] + earlier_select[
        earlier_select.index("\nFROM "):]
    assert " tree " not in earlier_table and " tree" not in earlier_select
    store.command(earlier_table)
    store.command(genai_views.totals_view_statement(options).replace(select, earlier_select))
    half = "cityHash64(TraceId) % 2 = 0"
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE {half}")

    def columns() -> set[str]:
        return {r[0] for r in store.query(f"SELECT name FROM system.columns WHERE database = '{db}' "
                                          "AND table = 'genai_trace_totals'").result_rows}

    assert "tree" not in columns()
    genai_views.create(store, options)  # what a collector of this release runs at start
    assert {"tree", "containers"} <= columns()
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE NOT {half}")
    genai_views.create(store, options)  # a restart neither refills nor duplicates

    def subtrees(database: str) -> list[tuple]:
        return store.query(f"""
            SELECT TraceId, SpanId, kind, name, tenant, calls, round(cost_usd, 9), input_tokens, errors
            FROM {database}.genai_subtree_costs(from_ts = now() - INTERVAL 60 DAY, to_ts = now() + INTERVAL 1 DAY)
            ORDER BY TraceId, SpanId""").result_rows

    upgraded, made_now = subtrees(db), subtrees("otel")
    assert len(upgraded) > 100 and upgraded == made_now


def test_totals_without_their_calls_are_made_again_from_the_spans():
    """Up to 2026-12-07 the totals had no calls of their own (`call_leaves`): the subtree view summed
    the calls table per parent and joined it. A collector of this release drops such totals and
    refills them from the stored spans; the subtree view then answers as on a store made by this
    release, and a restart neither refills nor duplicates."""
    store, db, options = _empty_store("totals_calls_upgrade_t")
    table = genai_views.totals_table_statement(options)
    earlier_table = table[:table.index(",\n    call_leaves ")] + "\n)" + table[table.index(" ENGINE ="):]
    select = genai_views.totals_select(options)
    earlier_select = select[:select.index(",\n    groupArrayIf((cityHash64(ParentSpanId)")] + select[select.index("\nFROM "):]
    assert "call_leaves" not in earlier_table + earlier_select
    store.command(earlier_table)
    store.command(genai_views.totals_view_statement(options).replace(select, earlier_select))
    half = "cityHash64(TraceId) % 2 = 0"
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE {half}")

    def totals() -> tuple[set[str], int]:
        columns = {r[0] for r in store.query(f"SELECT name FROM system.columns WHERE database = '{db}' "
                                             "AND table = 'genai_trace_totals'").result_rows}
        return columns, store.query(f"SELECT sum(span_count) FROM {db}.genai_trace_totals").result_rows[0][0]

    assert "call_leaves" not in totals()[0]
    genai_views.create(store, options)  # what a collector of this release runs at start
    assert "call_leaves" in totals()[0]
    store.command(f"INSERT INTO {db}.otel_traces SELECT * FROM otel.otel_traces WHERE NOT {half}")
    genai_views.create(store, options)  # a restart neither refills nor duplicates
    assert totals()[1] == store.query(f"SELECT count() FROM {db}.otel_traces").result_rows[0][0]

    def subtrees(database: str) -> list[tuple]:
        return store.query(f"""
            SELECT TraceId, SpanId, kind, name, tenant, calls, round(cost_usd, 9), input_tokens, output_tokens,
                   unpriced_calls, errors
            FROM {database}.genai_subtree_costs(from_ts = now() - INTERVAL 60 DAY, to_ts = now() + INTERVAL 1 DAY)
            ORDER BY TraceId, SpanId""").result_rows

    upgraded, made_now = subtrees(db), subtrees("otel")
    assert len(upgraded) > 100 and upgraded == made_now
