"""Keeping the GenAI rollup (`genai_daily`) and calls table (`genai_calls`) in step with
`otel_traces`, and checking that they are.

The rollup is filled by a materialized view at insert time, so a mutation of stored spans (a
`genaitrace reprice`) never reaches it. Whoever changes stored spans rebuilds the rollup rows of
the days it touched:

1. `mark_pending(days)` records the days in `genai_rollup_pending` *before* the spans change;
2. the spans are changed;
3. `rebuild_pending()` replaces each pending day's rollup rows by the rollup of that day's stored
   spans (the materialized view's own SELECT, `genai_views.daily_select`), then forgets the days.

Every step can be interrupted and run again: a day stays pending until its rebuild finished, and a
rebuild deletes the day before inserting it (with insert deduplication off, so an identical
rebuild is not dropped as a replay). The calls table (`genai_calls`) and the per-trace totals
(`genai_trace_totals`, every trace with a span on a rebuilt day) are filled the same way and rebuilt
with the rollup. The other views read the spans or these tables.

On a cluster every step is shard-local: the spans of a trace live on one shard, so `reprice`
runs once per shard (`--endpoint` of each) and rebuilds that shard's `genai_daily_local` from its
`otel_traces`; Replicated engines carry the mutations to the replicas. Rows inserted into the day
being rebuilt while it is rebuilt can be counted twice or not at all: rebuild past days, or check
with `genaitrace doctor costs` afterwards (it compares every surface and rebuilds with `--fix`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable

from collector.storage import genai_views
from collector.storage.schema import SchemaOptions, quote_ident

PENDING_TABLE = "genai_rollup_pending"
_CHUNK_DAYS = 31
# Money agrees "to the cent" when it agrees to a micro-dollar; sums of floats in another order
# differ by far less.
TOLERANCE_USD = 1e-6

# The rollup's columns in the order its SELECT produces them (an INSERT names them, so a rollup
# whose added columns sit elsewhere is filled right too).
DAILY_COLUMNS = tuple(re.findall(r" AS (\w+),?\n", genai_views._DAILY_SELECT.split("FROM")[0] + "\n"))


def day_of(store):
    """ns -> the rollup day of a span that started then: `toDate(Timestamp)` in the server's time
    zone (what the materialized view computes), not necessarily the UTC date."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = str(_client(store).command("SELECT timezone()") or "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    return lambda ts_ns: datetime.fromtimestamp(ts_ns / 1e9, tz=zone).date()


def _days_sql(days: Iterable[date]) -> str:
    return ", ".join(f"'{d.isoformat()}'" for d in sorted(set(days)))


def _tables(options: SchemaOptions) -> dict[str, str]:
    names = genai_views.names(options)
    db = quote_ident(options.database)
    return {
        "rollup_local": f"{db}.{quote_ident(names['daily_local'])}",
        "calls_local": f"{db}.{quote_ident(names['calls_local'])}",
        "totals_local": f"{db}.{quote_ident(names['totals_local'])}",
        "traces_local": f"{db}.{quote_ident(options.traces_table_name)}",
        "pending": f"{db}.{quote_ident(PENDING_TABLE)}",
    }


def _client(store):
    return getattr(store, "client", store)


def ensure_pending_table(store, options: SchemaOptions) -> None:
    _client(store).command(
        f"CREATE TABLE IF NOT EXISTS {_tables(options)['pending']} (day Date, queued DateTime DEFAULT now())"
        " ENGINE = MergeTree ORDER BY day"
    )


def mark_pending(store, options: SchemaOptions, days: Iterable[date]) -> None:
    days = sorted(set(days))
    if days:
        ensure_pending_table(store, options)
        _client(store).insert(_tables(options)["pending"], [[d] for d in days], column_names=["day"],
                              settings={"insert_deduplicate": 0})


def pending_days(store, options: SchemaOptions) -> list[date]:
    ensure_pending_table(store, options)
    rows = _client(store).query(f"SELECT DISTINCT day FROM {_tables(options)['pending']} ORDER BY day").result_rows
    return [row[0] for row in rows]


def rebuild_days(store, options: SchemaOptions, days: Iterable[date]) -> int:
    """Replace the rollup rows and the calls of `days` by those of the days' stored spans. Returns
    the number of days rebuilt."""
    client, t = _client(store), _tables(options)
    days = sorted(set(days))
    columns = ", ".join(DAILY_COLUMNS)
    fed = fed_by(client, options)
    for start in range(0, len(days), _CHUNK_DAYS):
        chunk = _days_sql(days[start:start + _CHUNK_DAYS])
        if "genai_daily_mv" in fed:
            client.command(f"ALTER TABLE {t['rollup_local']} DELETE WHERE day IN ({chunk})",
                           settings={"mutations_sync": 2})
            select = genai_views.daily_select(options, options.traces_table_name, f"toDate(Timestamp) IN ({chunk})")
            client.command(f"INSERT INTO {t['rollup_local']} ({columns}) {select}", settings={"insert_deduplicate": 0})
        if "genai_calls_mv" in fed:
            client.command(f"ALTER TABLE {t['calls_local']} DELETE WHERE toDate(Timestamp) IN ({chunk})",
                           settings={"mutations_sync": 2})
            select = genai_views.calls_select(options, options.traces_table_name, f"toDate(Timestamp) IN ({chunk})")
            client.command(f"INSERT INTO {t['calls_local']} {select}", settings={"insert_deduplicate": 0})
        if "genai_trace_totals_mv" in fed:  # per trace: every trace with a span on these days, all of its spans
            traces = f"TraceId IN (SELECT TraceId FROM {t['traces_local']} WHERE toDate(Timestamp) IN ({chunk}))"
            client.command(f"ALTER TABLE {t['totals_local']} DELETE WHERE {traces}", settings={"mutations_sync": 2})
            select = genai_views.totals_select(options, options.traces_table_name, traces)
            client.command(f"INSERT INTO {t['totals_local']} {select}", settings={"insert_deduplicate": 0})
    return len(days)


def fed_by(store, options: SchemaOptions) -> set[str]:
    """The materialized views that read the local traces table: the derived tables a rebuild may
    replace from it. The GenAI tables of a database are named once, whatever the traces table: a
    reprice of another traces table in the same database must not replace their rows (and a store an
    earlier release made has a plain view for the calls until a collector starts on it)."""
    rows = _client(store).query(
        "SELECT dependencies_database, dependencies_table FROM system.tables WHERE database = {db:String} "
        "AND name = {t:String}", parameters={"db": options.database, "t": options.traces_table_name}).result_rows
    return {name for databases, tables in rows for db, name in zip(databases, tables) if db == options.database}


def rollup_exists(store, options: SchemaOptions) -> bool:
    return bool(_client(store).query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": options.database, "t": genai_views.names(options)["daily_local"]}).result_rows[0][0])


def rebuild_pending(store, options: SchemaOptions) -> list[date]:
    """Rebuild every pending day (this run's and any an interrupted run left), then forget them."""
    days = pending_days(store, options)
    if not days:
        return []
    rebuilt = rollup_exists(store, options)  # without a rollup (create_schema off) there is nothing to rebuild
    if rebuilt:
        rebuild_days(store, options, days)
    if days:
        _client(store).command(f"ALTER TABLE {_tables(options)['pending']} DELETE WHERE day IN ({_days_sql(days)})",
                               settings={"mutations_sync": 2})
    return days if rebuilt else []


# --- checking: `genaitrace doctor costs` -------------------------------------------------------

KEY = ("day", "tenant", "model", "provider")
DERIVED_TABLES = ("genai_daily", "genai_calls")  # filled at insert; a rebuild of the day mends them
MEASURES = ("calls", "unpriced_calls", "cost_usd", "estimated_cost_usd")


@dataclass
class Difference:
    surface: str
    day: date
    tenant: str
    model: str
    provider: str
    measure: str
    spans: float  # the value computed from otel_traces
    found: float  # the value the surface shows


@dataclass
class CostCheck:
    since: date | None
    until: date | None
    days: int = 0
    totals: dict[str, dict[str, float]] = field(default_factory=dict)  # surface -> measure -> total
    differences: list[Difference] = field(default_factory=list)
    unpriced: list[tuple[date, str, str, str, int]] = field(default_factory=list)  # day, tenant, model, provider, calls

    @property
    def ok(self) -> bool:
        return not self.differences

    def stale_days(self) -> list[date]:
        """Days on which a table derived from the spans (the rollup, the calls) differs from them."""
        return sorted({d.day for d in self.differences if d.surface in DERIVED_TABLES})

    def lines(self) -> list[str]:
        out = [f"checked {self.days} days: " + "; ".join(
            f"{surface} ${m['cost_usd']:,.6f} reported + ${m['estimated_cost_usd']:,.6f} estimated, {int(m['calls'])} calls"
            for surface, m in self.totals.items())]
        if self.ok:
            out.append("every surface agrees with otel_traces")
        for d in self.differences[:50]:
            out.append(f"DIFFERS {d.surface} {d.day} tenant={d.tenant or '(none)'} model={d.model or '(none)'}"
                       f" provider={d.provider or '(none)'}: {d.measure} {d.found:.6f}, spans say {d.spans:.6f}")
        if len(self.differences) > 50:
            out.append(f"... and {len(self.differences) - 50} more differences")
        stale = self.stale_days()
        if stale:
            out.append(f"to fix: genaitrace doctor costs --fix --since {stale[0]} --until {stale[-1] + timedelta(days=1)}"
                       f"   (rebuilds the {len(stale)} differing days of genai_daily and genai_calls from otel_traces)")
        if any(d.surface not in DERIVED_TABLES for d in self.differences):
            out.append("a view differs from the spans: `genaitrace doctor costs --fix` re-creates the views")
        for day, tenant, model, provider, calls in self.unpriced[:20]:
            out.append(f"unpriced: {calls} calls on {day} tenant={tenant or '(none)'} model={model or '(none)'}"
                       f" provider={provider or '(none)'}; after adding a price: genaitrace reprice --unpriced-only"
                       f" --since {day} --until {day + timedelta(days=1)}")
        return out


def _aggregate(client, sql: str) -> dict[tuple, dict[str, float]]:
    rows = client.query(sql).result_rows
    return {tuple(row[:4]): dict(zip(MEASURES, (float(v) for v in row[4:]))) for row in rows}


def _range_sql(column: str, since: date | None, until: date | None) -> str:
    parts = []
    if since:
        parts.append(f"{column} >= '{since.isoformat()}'")
    if until:
        parts.append(f"{column} < '{until.isoformat()}'")
    return " AND ".join(parts) or "1"


def check_costs(store, options: SchemaOptions, since: date | None = None, until: date | None = None) -> CostCheck:
    """Totals per day, tenant, model and provider from the spans, the rollup and the views."""
    client = _client(store)
    names = genai_views.names(options)
    db = quote_ident(options.database)
    sums = ", ".join(f"sum({m})" for m in MEASURES)
    spans_rollup = genai_views.daily_select(options, names["source"], _range_sql("toDate(Timestamp)", since, until))
    spans = _aggregate(client, f"SELECT day, tenant, model, provider, {sums} FROM ({spans_rollup}) GROUP BY day, tenant, model, provider")
    rollup = _aggregate(client, f"SELECT day, tenant, model, provider, {sums} FROM {db}.{quote_ident(names['daily'])}"
                                f" WHERE {_range_sql('day', since, until)} GROUP BY day, tenant, model, provider")
    calls = _aggregate(client, f"""
        SELECT toDate(Timestamp) AS day, tenant, model, provider, count(), countIf(cost_status = 'unpriced'),
               sumIf(ifNull(cost_usd, 0), NOT usage_estimated), sumIf(ifNull(cost_usd, 0), usage_estimated)
        FROM {db}.genai_calls WHERE {_range_sql('toDate(Timestamp)', since, until)}
        GROUP BY day, tenant, model, provider""")
    check = CostCheck(since, until, days=len({k[0] for k in spans}))
    for surface, found in (("genai_daily", rollup), ("genai_calls", calls)):
        for key in sorted(set(spans) | set(found), key=str):
            want, got = spans.get(key, {}), found.get(key, {})
            for measure in MEASURES:
                a, b = want.get(measure, 0.0), got.get(measure, 0.0)
                if abs(a - b) > (TOLERANCE_USD if measure.endswith("usd") else 0.5):
                    check.differences.append(Difference(surface, *key, measure, a, b))
    for surface, data in (("otel_traces", spans), ("genai_daily", rollup), ("genai_calls", calls)):
        check.totals[surface] = {m: sum(v[m] for v in data.values()) for m in MEASURES}
    if spans:
        first, last = min(k[0] for k in spans), max(k[0] for k in spans) + timedelta(days=1)
        traces = client.query(
            f"SELECT sum(calls), sum(unpriced_calls), sum(cost_usd) - sum(estimated_cost_usd), sum(estimated_cost_usd)"
            f" FROM {db}.genai_traces(from_ts = toDateTime64('{(since or first).isoformat()}', 9),"
            f" to_ts = toDateTime64('{(until or last).isoformat()}', 9))").result_rows[0]
        check.totals["genai_traces"] = dict(zip(MEASURES, (float(v or 0) for v in traces)))
        for measure in MEASURES:
            a, b = check.totals["otel_traces"][measure], check.totals["genai_traces"][measure]
            if abs(a - b) > (TOLERANCE_USD * max(1, len(spans)) if measure.endswith("usd") else 0.5):
                check.differences.append(Difference("genai_traces", since or first, "*", "*", "*", measure, a, b))
    check.unpriced = sorted((k[0], k[1], k[2], k[3], int(v["unpriced_calls"])) for k, v in spans.items() if v["unpriced_calls"])
    return check
