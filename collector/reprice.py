"""Reprice spans already stored in ClickHouse: after a price change, an override, or a provider fix.

    genaitrace reprice --config otel-collector.yaml                 # every GenAI span
    genaitrace reprice --unpriced-only                              # only spans without a cost yet
    genaitrace reprice --since 2026-11-01 --until 2026-11-15 --model gpt-4o
    genaitrace reprice --dry-run                                    # report, change nothing
    genaitrace reprice --unpriced-only --verify                     # then check every cost surface agrees

Each span is re-read, normalised with the same mapping as the `genai_normalizer` processor
(so a provider stored as `unknown` is re-detected from `server.address` or the model name) and
priced with the same code as the `genai_cost` processor, using the `genai_cost` settings
(overrides, discounts, Azure deployments) of the config file. Only rows whose attributes actually
change are written, in batches, each batch one `ALTER TABLE ... UPDATE` reading the new attribute
maps from a temporary Join table. Rerunning is therefore idempotent, and an interrupted run is
resumed by running it again: finished batches compare equal and are skipped.

Derived tables follow: before a batch's spans change, the days they belong to are recorded as
pending (`genai_rollup_pending`), and at the end every pending day's rows of the daily rollup
(`genai_daily`, which a materialized view fills only at insert time) are rebuilt from the stored
spans (`collector/storage/rollups.py`). An interrupted run leaves its days pending; the next run
rebuilds them. The views read the spans and need nothing. `genaitrace doctor costs` checks that
spans, rollup and views agree. Prometheus counters (`llm_cost_usd_total`) were counted at ingest
and are not rewritten; `genaitrace budget prometheus-rules --config ...` carries the store's
spend per tenant for the budget alerts.

On a cluster, run it once per shard (`--endpoint` of one replica of each): a trace's spans live on
one shard. The rollup rebuild (DELETE + INSERT on the shard's `genai_daily_local`) replicates like
any insert. The span mutation reads its new values with joinGet from a Join table that exists on
the replica reprice talks to only; a replica that executes the replicated mutation itself instead
of fetching the mutated part needs that table too: not tested on a multi-replica cluster here.

With the embedded engine (chdb://) only one process can open the data directory: stop the
collector first, or point --endpoint at a ClickHouse server.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Optional

import semconv
from collector.pdata import format_double
from collector.storage import rollups
from collector.storage.genai_views import attr_sql
from collector.storage.schema import SchemaOptions, quote_ident
from semconv import genai_mapping as gm
from processors.span_cost import is_call, price_attributes, standard_cost
from processors.pricing import PriceBook

_COST_KEYS = frozenset(gm.COST_ATTRIBUTES)
_INFERENCE = tuple(sorted(gm.INFERENCE_OPERATIONS))


@dataclass
class RepriceSummary:
    scanned: int = 0  # GenAI-looking spans read
    inference: int = 0  # of which inference calls
    repriced: int = 0  # rows whose attributes changed (written, unless dry_run)
    priced: int = 0
    unpriced: int = 0
    delegated: int = 0
    cost_before: float = 0.0  # sum of gen_ai.usage.cost_usd over the scanned spans, before
    cost_after: float = 0.0  # and after
    unpriced_reasons: Counter = field(default_factory=Counter)
    batches: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    rollup_days: list = field(default_factory=list)  # days of genai_daily rebuilt

    def lines(self) -> list[str]:
        verb = "would reprice" if self.dry_run else "repriced"
        out = [
            f"scanned {self.scanned} GenAI spans ({self.inference} inference calls) in {self.seconds:.1f}s",
            f"{verb} {self.repriced} spans (attributes changed); inference calls now: {self.priced} priced,"
            f" {self.unpriced} unpriced, {self.delegated} delegated to an inner span",
            f"cost before ${self.cost_before:,.6f}  after ${self.cost_after:,.6f}  change ${self.cost_after - self.cost_before:+,.6f}",
        ]
        for reason, count in self.unpriced_reasons.most_common():
            out.append(f"  unpriced: {reason}: {count}")
        if self.rollup_days:
            days = self.rollup_days
            out.append(f"rebuilt the daily rollup (genai_daily) for {len(days)} days, {days[0]} .. {days[-1]}")
        return out


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_double(value)
    return str(value)


def _ns(moment: date | datetime | str | None) -> Optional[int]:
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000) * 1000


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def new_attributes(attrs: dict[str, str], span_name: str, start_ns: int, book: PriceBook,
                   inner_span: str | None, standard: bool = False) -> tuple[dict[str, str], dict[str, Any]]:
    """(the stored map as it should be now, the cost attributes computed) for one stored span."""
    norm = gm.normalize_attributes(attrs, span_name)
    if not is_call(norm):  # inference spans, and plan spans that report usage themselves
        cost: dict[str, Any] = {}
    elif inner_span is not None:
        cost = {gm.GEN_AI_USAGE_COST_STATUS: "delegated", gm.GEN_AI_USAGE_COST_PRICED_SPAN_ID: inner_span}
    else:
        cost = price_attributes(book, norm, start_ns)
        if standard:
            cost.update(standard_cost(cost, norm))
    out = {key: _to_str(value) for key, value in norm.items() if key not in _COST_KEYS and value is not None}
    out.update((key, _to_str(value)) for key, value in cost.items())
    return out, cost


def _where(unpriced_only: bool, since: Optional[int], until: Optional[int], model: Optional[str]) -> tuple[str, dict]:
    clauses = ["arrayExists(k -> startsWith(k, 'gen_ai.') OR startsWith(k, 'llm.') OR startsWith(k, 'openinference.')"
               " OR startsWith(k, 'traceloop.'), mapKeys(SpanAttributes))"]
    params: dict[str, Any] = {}
    if unpriced_only:
        clauses.append(f"{attr_sql(semconv.COST_STATUS)} NOT IN ('priced', 'delegated')")
    if since is not None:
        clauses.append("toUnixTimestamp64Nano(Timestamp) >= {since:Int64}")
        params["since"] = since
    if until is not None:
        clauses.append("toUnixTimestamp64Nano(Timestamp) < {until:Int64}")
        params["until"] = until
    if model:
        clauses.append("({model:String} IN (SpanAttributes['gen_ai.request.model'], SpanAttributes['gen_ai.response.model'],"
                       " SpanAttributes['llm.model_name'], SpanAttributes['llm.request.model'], SpanAttributes['llm.response.model']))")
        params["model"] = model
    return " AND ".join(clauses), params


def reprice(
    client,
    database: str = "otel",
    table: str = "otel_traces",
    *,
    book: PriceBook | None = None,
    unpriced_only: bool = False,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
    model: str | None = None,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    options: SchemaOptions | None = None,
    standard_cost_attributes: bool = False,
) -> RepriceSummary:
    """Recompute normalised attributes and cost for stored spans; write the rows that change.

    `client` is a clickhouse-connect client (or a `ClickHouseStore`). Returns a summary.
    """
    client = getattr(client, "client", client)
    book = book or PriceBook.load()
    options = options or SchemaOptions(database=database, traces_table_name=table)
    started = time.monotonic()
    summary = RepriceSummary(dry_run=dry_run)
    target = f"{quote_ident(database)}.{quote_ident(table)}"
    tmp_name = f"{table}_reprice_tmp"
    tmp = f"{quote_ident(database)}.{quote_ident(tmp_name)}"
    where, params = _where(unpriced_only, _ns(since), _ns(until), model)
    total = int(client.command(f"SELECT count() FROM {target} WHERE {where}", parameters=params) or 0)
    if not dry_run:
        _clear_leftovers(client, database, table, tmp, tmp_name)
    cursor = (-1, "", "")
    done = 0
    days: set[date] = set()
    day_of = rollups.day_of(client)
    if progress:
        progress(0, total)
    while True:
        rows = client.query(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId, SpanId, SpanName, SpanAttributes FROM {target}"
            f" WHERE {where} AND (toUnixTimestamp64Nano(Timestamp), TraceId, SpanId) > ({{c_ts:Int64}}, {{c_trace:String}}, {{c_span:String}})"
            f" ORDER BY ts, TraceId, SpanId LIMIT {int(batch_size)}",
            parameters={**params, "c_ts": cursor[0], "c_trace": cursor[1], "c_span": cursor[2]},
        ).result_rows
        if not rows:
            break
        cursor = (rows[-1][0], rows[-1][1], rows[-1][2])
        inner = _inner_inference_spans(client, target, rows)
        updates = []
        for ts, trace_id, span_id, name, attrs in rows:
            attrs = dict(attrs)
            summary.scanned += 1
            summary.cost_before += _float(attrs.get(gm.GEN_AI_USAGE_COST_USD))
            new, cost = new_attributes(attrs, name, ts, book, inner.get((trace_id, span_id)), standard_cost_attributes)
            status = cost.get(gm.GEN_AI_USAGE_COST_STATUS)
            if status is not None:
                summary.inference += 1
            if status == "priced":
                summary.priced += 1
                summary.cost_after += cost[gm.GEN_AI_USAGE_COST_USD]
            elif status == "unpriced":
                summary.unpriced += 1
                summary.unpriced_reasons[cost[gm.GEN_AI_USAGE_COST_UNPRICED_REASON]] += 1
            elif status == "delegated":
                summary.delegated += 1
            if new != attrs:
                updates.append([trace_id, span_id, 1, new])
                days.add(day_of(ts))
        summary.repriced += len(updates)
        if updates and not dry_run:
            rollups.mark_pending(client, options, days)  # before the spans change: a rerun finds them
            _write(client, database, table, target, tmp, updates)
        days.clear()
        summary.batches += 1
        done += len(rows)
        if progress:
            progress(done, total)
    if not dry_run:
        summary.rollup_days = rollups.rebuild_pending(client, options)
    summary.seconds = time.monotonic() - started
    return summary



def _inner_inference_spans(client, target: str, rows: list) -> dict[tuple[str, str], str]:
    """{(trace, span): child span id} for spans in `rows` that have an inference child (wrappers)."""
    traces = sorted({row[1] for row in rows})
    spans = sorted({row[2] for row in rows})
    children = client.query(
        f"SELECT TraceId, ParentSpanId, SpanId, SpanName, SpanAttributes FROM {target}"
        " WHERE TraceId IN {traces:Array(String)} AND ParentSpanId IN {spans:Array(String)}",
        parameters={"traces": traces, "spans": spans},
    ).result_rows
    found: dict[tuple[str, str], str] = {}
    for trace_id, parent, span_id, name, attrs in children:
        if gm.operation_name(attrs, name) in gm.INFERENCE_OPERATIONS:
            found.setdefault((trace_id, parent), span_id)
    return found


def _clear_leftovers(client, database: str, table: str, tmp: str, tmp_name: str) -> None:
    """An interrupted run may have left its Join table and, on a server, an unfinished mutation."""
    pending = client.query(
        "SELECT mutation_id FROM system.mutations WHERE database = {db:String} AND table = {t:String}"
        " AND NOT is_done AND position(command, {tmp:String}) > 0",
        parameters={"db": database, "t": table, "tmp": tmp_name},
    ).result_rows
    for (mutation_id,) in pending:
        client.command(
            "KILL MUTATION WHERE database = {db:String} AND table = {t:String} AND mutation_id = {m:String}",
            parameters={"db": database, "t": table, "m": mutation_id},
        )
    client.command(f"DROP TABLE IF EXISTS {tmp}")


def _write(client, database: str, table: str, target: str, tmp: str, updates: list) -> None:
    client.command(f"DROP TABLE IF EXISTS {tmp}")
    client.command(
        f"CREATE TABLE {tmp} (TraceId String, SpanId String, Hit UInt8, Attrs Map(LowCardinality(String), String))"
        " ENGINE = Join(ANY, LEFT, TraceId, SpanId)"
    )
    try:
        client.insert(tmp, updates, column_names=["TraceId", "SpanId", "Hit", "Attrs"])
        literal = tmp.replace("`", "").replace("'", "\\'")
        client.command(
            f"ALTER TABLE {target} UPDATE SpanAttributes = joinGet('{literal}', 'Attrs', TraceId, SpanId)"
            f" WHERE joinGet('{literal}', 'Hit', TraceId, SpanId) = 1",
            settings={"mutations_sync": 2, "allow_nondeterministic_mutations": 1},
        )
    except Exception:
        _clear_leftovers(client, database, table, tmp, tmp.rsplit(".", 1)[-1].strip("`"))
        raise
    client.command(f"DROP TABLE IF EXISTS {tmp}")


# --- CLI --------------------------------------------------------------------------------------
try:
    import typer
except ImportError:  # pragma: no cover - typer is a collector dependency
    typer = None

if typer is not None:
    reprice_app = typer.Typer(add_completion=False, help="Recompute GenAI cost for spans already stored.")

    @reprice_app.callback(invoke_without_command=True)
    def reprice_command(
        config: str = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config: genai_cost settings and the clickhouse exporter's endpoint"),
        endpoint: str = typer.Option("", help="ClickHouse endpoint (http://host:8123 or chdb:///path); default: the clickhouse exporter's"),
        database: str = typer.Option("", help="default: the clickhouse exporter's, else otel"),
        table: str = typer.Option("", help="default: the clickhouse exporter's, else otel_traces"),
        unpriced_only: bool = typer.Option(False, "--unpriced-only", help="only spans with no cost yet"),
        since: str = typer.Option("", help="spans that started at or after this ISO date/time (UTC)"),
        until: str = typer.Option("", help="spans that started before this ISO date/time (UTC)"),
        model: str = typer.Option("", help="only spans of this request/response model"),
        batch_size: int = typer.Option(5000, min=1),
        dry_run: bool = typer.Option(False, "--dry-run", help="report what would change; write nothing"),
        verify: bool = typer.Option(False, "--verify", help="afterwards, check that spans, rollup and views agree"
                                    " (what `genaitrace doctor costs` does, over --since/--until)"),
    ) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        cost_config, exporter = _from_config(config)
        endpoint = endpoint or exporter.get("endpoint") or ""
        if not endpoint:
            console.print("[red]no ClickHouse endpoint: pass --endpoint or configure a clickhouse exporter[/red]")
            raise typer.Exit(2)
        database = database or exporter.get("database") or "otel"
        table = table or exporter.get("traces_table_name") or "otel_traces"
        from collector.storage.client import ClickHouseStore, StoreError, parse_endpoint

        try:
            store = ClickHouseStore(parse_endpoint(endpoint), username=exporter.get("username", "default"),
                                    password=exporter.get("password", ""), timeout_s=600)
        except (StoreError, ValueError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        with Progress(TextColumn("repricing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("reprice", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = reprice(store, database, table, book=cost_config.price_book(), unpriced_only=unpriced_only,
                              since=since or None, until=until or None, model=model or None,
                              batch_size=batch_size, dry_run=dry_run, progress=report,
                              options=schema_options(exporter, database, table),
                              standard_cost_attributes=cost_config.standard_cost_attributes)
        for line in summary.lines():
            typer.echo(line)
        if verify:
            from datetime import date as _date

            last = datetime.fromisoformat(until) if until else None  # whole days covering the range
            check = rollups.check_costs(store, schema_options(exporter, database, table),
                                        _date.fromisoformat(since[:10]) if since else None,
                                        None if last is None else last.date() + timedelta(days=last.time() != datetime.min.time()))
            for line in check.lines():
                typer.echo(line)
        store.close()
        if verify and not check.ok:
            raise typer.Exit(1)


def schema_options(exporter: dict, database: str, table: str) -> SchemaOptions:
    """The store's object names (and cluster) from the clickhouse exporter's raw settings."""
    engine = exporter.get("table_engine") or {}
    return SchemaOptions(database=database, traces_table_name=table, cluster_name=exporter.get("cluster_name") or "",
                         table_engine=engine.get("name", "MergeTree"), table_engine_params=engine.get("params", ""))


def _from_config(path: str) -> tuple[Any, dict]:
    """The genai_cost settings and the clickhouse exporter's raw settings from a collector config."""
    import os

    from collector import registry
    from collector.component import Kind

    cost_config = registry.factory(Kind.PROCESSOR, "genai_cost").config_model  # the processor's own settings model
    if not path or not os.path.exists(path):
        return cost_config(), {}
    from collector.config import load_config  # validated, with file:line errors

    loaded = load_config(path)
    costs = [c.config for cid, c in loaded.processors.items() if cid.type == "genai_cost"]
    cost = costs[-1] if costs else cost_config()
    exporter = next((c.config.model_dump() for cid, c in loaded.exporters.items() if cid.type == "clickhouse"), {})
    return cost, exporter
