"""A daily rollup made by a release that counted only inference spans as calls is moved to the
current SELECT, which counts `plan` spans with their own usage too (issue 14), and keeps its rows."""

from __future__ import annotations

from support import seed_data
from collector.storage import genai_views
from collector.storage.schema import SchemaOptions, schema_statements

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
