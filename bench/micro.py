"""Each pipeline stage alone, in process, on the same workload: spans/s of one core.

    .venv/bin/python -m bench.micro [--spans 10000] [--repeat 7]

CPU time (`time.process_time`), best of `--repeat`, so other load on a shared machine inflates it
less than wall time would. Stages: protobuf parse and serialize, receiver validation, each
processor (`genai_normalizer`, `genai_cost`, `redaction`, `batch` merge; a processor's stage ends
with the batch's serialization, which writes its pending patches), the protobuf -> Arrow conversion
(`collector.storage.columns`, native, and the first per-span Python implementation kept in
`bench/columns_reference.py` for comparison), and one Arrow insert into embedded chdb. One insert
is not the sustained cost: chdb's background merges add to it, the more the smaller the inserts
(`bench/README.md`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


class _Sink:
    """What the batch processor does next: take the batch's serialization (pending patches written)."""

    def consume(self, traces) -> None:
        traces.to_protobuf()


def _chained_processors():
    """genai_normalizer feeding genai_cost directly, as in the default pipeline: the normaliser
    shares the batch's GenAI rows with the cost processor (`Traces.genai_rows`)."""
    from collector import registry
    from collector.component import ComponentId, Kind

    cost = registry.factory(Kind.PROCESSOR, "genai_cost")
    norm = registry.factory(Kind.PROCESSOR, "genai_normalizer")
    if cost is None or norm is None:
        return None
    tail = cost.create(ComponentId("genai_cost"), cost.config_model(), _Sink())
    return norm.create(ComponentId("genai_normalizer"), norm.config_model(), tail)


def run(spans: int = 10_000, repeat: int = 7) -> dict:
    from bench import columns_reference
    from tests.support.workload import make_request, span_count
    from collector.component import ComponentId
    from collector.pdata import Traces
    from collector.storage import columns

    request = make_request(spans)
    data = request.SerializeToString()
    n = span_count(request)
    parts = [make_request(512, seed=i).SerializeToString() for i in range(16)]
    stages: dict[str, float] = {}

    def stage(name, fn, setup=None):
        if setup is not None:
            def timed():
                arg = setup()
                t0 = time.process_time()
                fn(arg)
                return time.process_time() - t0
            seconds = min(timed() for _ in range(repeat))
        else:
            seconds = _best(fn, repeat)
        stages[name] = seconds
        print(f"  {name:34s} {seconds * 1e3:8.1f} ms/{n} spans  {n / seconds:10,.0f} spans/s  "
              f"{seconds * 1e6 / n:6.2f} us/span", flush=True)

    fresh = lambda: Traces.from_protobuf(data)  # noqa: E731
    stage("protobuf parse (upb)", lambda: Traces.from_protobuf(data))
    message = fresh().request
    stage("protobuf serialize", lambda: message.SerializeToString())
    try:
        from collector.receivers.validation import sanitize

        stage("receiver validation (native scan + flagged)", lambda t: sanitize(t, raw=data), fresh)
    except ImportError:
        pass
    from collector import registry
    from collector.component import Kind

    normalized = data
    for type_ in ("genai_normalizer", "genai_cost"):
        factory = registry.factory(Kind.PROCESSOR, type_)
        if factory is None:
            print(f"  {type_}: not registered")
            continue
        processor = factory.create(ComponentId(type_), factory.config_model(), None)
        source = normalized
        stage(f"processor {type_}", lambda t: processor.process(t).to_protobuf(), lambda: Traces.from_protobuf(source))
        normalized = processor.process(Traces.from_protobuf(normalized)).to_protobuf()
    chained = _chained_processors()
    if chained is not None:
        stage("normalizer -> cost, chained (pipeline)", chained.consume, lambda: Traces.from_protobuf(data))
        def scanned():  # as the receiver hands it on: GenAI spans named by the native scan
            traces = Traces.from_protobuf(data)
            sanitize(traces, raw=data)
            return traces
        stage("normalizer -> cost, after the native scan", chained.consume, scanned)
    redaction = registry.factory(Kind.PROCESSOR, "redaction")
    if redaction is not None:  # in the default pipeline, not in the end-to-end benchmark's
        redactor = redaction.create(ComponentId("redaction"), redaction.config_model(), None)
        stage("processor redaction (default detectors)", lambda t: redactor.process(t).to_protobuf(),
              lambda: Traces.from_protobuf(data))
    stage("batch merge (16 x 512-span requests)", lambda batch: Traces.merge(batch),
          lambda: [Traces.from_protobuf(p) for p in parts])
    final = Traces.from_protobuf(normalized)
    stage("columns: reference (per span)", lambda: columns_reference.traces_to_arrow(final))
    stage("columns: native (collector/native)", lambda: columns.payloads_to_arrow([normalized]))
    table = columns.payloads_to_arrow([normalized])
    assert table.equals(columns_reference.traces_to_arrow(final)), "native columns differ from the reference"

    workdir = tempfile.mkdtemp(prefix="bench-micro-")
    try:
        from collector.storage.client import ClickHouseStore, parse_endpoint
        from collector.storage.schema import SchemaOptions, schema_statements

        store = ClickHouseStore(parse_endpoint(f"chdb://{workdir}/chdb"), database="otel")
        for statement in schema_statements(SchemaOptions()):
            store.command(statement)
        counter = iter(range(10_000))
        stage("chdb insert_arrow (otel_traces)",
              lambda: store.insert_arrow("otel_traces", table,
                                         settings={"insert_deduplication_token": f"micro-{next(counter)}"}))
        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"spans": n, "seconds": stages, "spans_per_s": {k: round(n / v) for k, v in stages.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    out = run(args.spans, args.repeat)
    from bench.run import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "micro.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
