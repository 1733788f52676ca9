"""Where the embedded engine's time per span goes: the Arrow conversion, the insert into
`otel_traces` alone, the materialized views' work per insert, and the background merges after.

    .venv/bin/python -m bench.engine_cost [--batches 40] [--spans 8192] [--variants 0,5,6]

The clickhouse exporter's own push (protobuf -> Arrow natively, one insert with a dedup token) into
a fresh chdb store per variant: the schema the exporter creates, then with parts of it taken away
(`VARIANTS`), so each step's cost is the difference between two rows.
CPU is this process's (chdb runs in it, merges included), per span; "after" is the CPU spent in
the `--settle` seconds after the last insert, when only background merges run. The requests are
bench.run's workload (tests/support/workload.py: whole traces, 18 % LLM spans).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time



def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _payloads(batches: int, spans: int) -> list[tuple[bytes, int]]:
    """bench.run's workload: whole traces, 18 % LLM spans, several services and tenants."""
    from tests.support.workload import make_request, span_count

    distinct = [make_request(spans, seed=i) for i in range(4)]
    encoded = [(request.SerializeToString(), span_count(request)) for request in distinct]
    return [encoded[i % len(encoded)] for i in range(batches)]


def _views(store) -> list[str]:
    rows = store.query("SELECT name FROM system.tables WHERE database = 'otel' AND engine = 'MaterializedView'")
    return [row[0] for row in rows.result_rows]


# What is taken away from the exporter's schema, step by step: its materialized views (ours:
# genai_calls, genai_trace_totals, genai_daily, the trace-id lookup), then the skip indexes (the contrib schema's: text indexes on
# attribute keys, values and items, trace id and span name, minmax on duration), then the
# contrib schema's ZSTD(1) codecs (replaced by LZ4).
VARIANTS = ("schema as created", "without materialized views", "and without skip indexes", "and LZ4 instead of ZSTD",
            "schema as created, bloom filters instead of text indexes",
            "schema as created, without the calls table's view",
            "schema as created, without the per-trace totals' view")
BLOOM = 4  # the contrib schema's indexes below ClickHouse 26.2 (collector/storage/sql/traces_indexes_bloom.sql)
NO_CALLS_VIEW = 5  # genai_calls_mv alone: what the typed calls table costs at ingest
NO_TOTALS_VIEW = 6  # genai_trace_totals_mv alone: what the per-trace totals cost at ingest


def _bloom_instead_of_text(store) -> None:
    from collector.storage import ddl

    _drop_indexes(store)
    for line in ddl.template("traces_indexes_bloom.sql").splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("INDEX "):
            store.command(f"ALTER TABLE otel.otel_traces ADD {line}")


def _drop_indexes(store) -> None:
    rows = store.query("SELECT name FROM system.data_skipping_indices WHERE database = 'otel' AND table = 'otel_traces'")
    for (name,) in rows.result_rows:
        store.command(f"ALTER TABLE otel.otel_traces DROP INDEX `{name}`")


def _strip(store, variant: int) -> None:
    if variant == BLOOM:
        _bloom_instead_of_text(store)
        return
    if variant in (NO_CALLS_VIEW, NO_TOTALS_VIEW):
        store.command(f"DROP VIEW otel.{'genai_calls_mv' if variant == NO_CALLS_VIEW else 'genai_trace_totals_mv'}")
        return
    if variant >= 1:
        for name in _views(store):
            store.command(f"DROP VIEW otel.`{name}`")
    if variant >= 2:
        _drop_indexes(store)
    if variant >= 3:
        rows = store.query("SELECT name, type FROM system.columns WHERE database = 'otel' AND table = 'otel_traces' "
                           "AND compression_codec LIKE '%ZSTD%'")
        for name, type_ in rows.result_rows:
            store.command(f"ALTER TABLE otel.otel_traces MODIFY COLUMN `{name}` {type_} CODEC(LZ4)")


def measure(payloads: list[tuple[bytes, int]], variant: int, settle_s: float) -> dict:
    from collector.component import ComponentId
    from collector.exporterhelper import ExportRequest
    from collector.exporters.clickhouse import ClickHouseConfig, ClickHouseExporter
    from collector.storage import columns

    with tempfile.TemporaryDirectory(prefix="engine-cost-") as work:
        exporter = ClickHouseExporter(ComponentId("clickhouse"), ClickHouseConfig(endpoint=f"chdb://{work}/chdb"))
        exporter._start(None)  # the exporter's own start: connect and create its schema
        _strip(exporter.store, variant)
        convert_cpu = _cpu()
        for payload, _ in payloads[:4]:
            columns.payloads_to_arrow([payload])
        convert_cpu = (_cpu() - convert_cpu) / sum(count for _, count in payloads[:4])
        began_cpu, began = _cpu(), time.perf_counter()
        for index, (payload, count) in enumerate(payloads):
            exporter.push(ExportRequest((payload,), count, 30.0, f"bench:{index}"))
        push_cpu, push_wall = _cpu() - began_cpu, time.perf_counter() - began
        settle_cpu = _cpu()
        time.sleep(settle_s)
        settle_cpu = _cpu() - settle_cpu
        stored = exporter.store.query("SELECT count() FROM otel.otel_traces").result_rows[0][0]
        parts = exporter.store.query("SELECT count() FROM system.parts WHERE database = 'otel' AND active").result_rows[0][0]
        exporter._shutdown()
    total = sum(count for _, count in payloads)
    return {"variant": VARIANTS[variant], "spans": total, "stored": stored, "active_parts": parts,
            "convert_us_per_span": round(convert_cpu * 1e6, 2),
            "push_cpu_us_per_span": round(push_cpu / total * 1e6, 2),
            "push_wall_us_per_span": round(push_wall / total * 1e6, 2),
            "merges_after_cpu_us_per_span": round(settle_cpu / total * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--spans", type=int, default=8192, help="spans per push (the batch processor's size)")
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--variants", default="", help="comma-separated indexes of VARIANTS to run (default: all)")
    args = parser.parse_args()
    payloads = _payloads(args.batches, args.spans)
    chosen = [int(v) for v in args.variants.split(",") if v.strip()] or range(len(VARIANTS))
    for variant in chosen:
        print(json.dumps(measure(payloads, variant, args.settle)), flush=True)


if __name__ == "__main__":
    main()
