"""Durability: an acknowledged span is never lost and never stored twice.

Each scenario runs real collector processes on loopback and records the figures (offered,
acknowledged, stored, duplicated, lost) in .pytest_cache/reliability.json; the README's reliability
table is those figures. Loads are bounded in count and time.

  - kill -9 while spans stream in (random point), restart: replay from the disk queue.
  - kill -9 right after a batch was inserted and before the queue recorded it as sent (fault
    injection): the replay reuses the batch's insert_deduplication_token, ClickHouse drops it.
  - destination down: collector A (otlp exporter, disk queue) -> collector B (OTLP receiver ->
    chdb). B is stopped; A keeps acknowledging into its queue until the queue is full, then refuses
    with RESOURCE_EXHAUSTED / 429 + Retry-After; A is kill -9'd and restarted while B is still
    down; B comes back; everything acknowledged arrives once.
  - overload: more offered than the pipeline takes; the memory limiter refuses before the limit.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from support.harness import REPO, CollectorProcess
from support.seed_data import shared_path
from support.otlp_load import Tally, grpc_send, http_send, make_request, record, stored_counts, wait_stored

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(180), pytest.mark.alone]

FAST_RETRY = """
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
"""


def _log_tail(collector, chars: int = 6000) -> str:
    """What a collector logged (across its restarts), for the failure message of a loss."""
    return f"\n--- {collector.log_path} (last {chars} characters) ---\n{collector.log()[-chars:]}"


def _sender(endpoint: str, tally: Tally, requests: int, spans: int, stop: threading.Event) -> None:
    for _ in range(requests):
        if stop.is_set():
            return
        request, ids = make_request(spans)
        ok, code, _ = grpc_send(endpoint, request, timeout=5)
        tally.add(ids, ok, code)
        if not ok and code == "UNAVAILABLE":
            return  # the collector is gone: this client stops (its un-acked spans are its to resend)


def test_kill9_while_streaming_loses_nothing_acknowledged(tmp_path):
    collector = CollectorProcess(tmp_path).start()
    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=_sender, args=(collector.grpc_endpoint, tally, 80, 100, stop)) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(tally.acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    collector.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(tally.acked) >= 3000
    collector.start()
    try:
        stored, dups = wait_stored(collector, len(tally.acked))
        figures = record("kill -9 while streaming", tally, collector)
    finally:
        collector.stop()
    assert figures["lost"] == 0, _log_tail(collector)
    assert dups == 0


def test_kill9_between_insert_and_ack_is_deduplicated(tmp_path):
    """The batch is in ClickHouse but still in the queue: the replay must not store it again."""
    collector = CollectorProcess(tmp_path, launcher=[str(REPO / "tests" / "support" / "fault_injection.py"), "--kill-after-push", "1"]).start()
    tally = Tally()
    for _ in range(10):
        request, ids = make_request(200)
        ok, code, _ = grpc_send(collector.grpc_endpoint, request)
        tally.add(ids, ok, code)
        if not ok:
            break
    deadline = time.monotonic() + 20
    while collector.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert collector.proc.poll() is not None, "fault injection did not fire"
    assert collector.proc.returncode == -9
    collector.launcher = ["-m", "collector.cli"]  # the same collector, without the fault
    collector.start()
    try:
        stored, dups = wait_stored(collector, len(tally.acked))
        replayed = "fault injection: SIGKILL after push" in collector.log()
        figures = record("kill -9 between insert and ack", tally, collector)
    finally:
        collector.stop()
    assert replayed
    assert figures["lost"] == 0, _log_tail(collector)
    assert dups == 0, "the replayed batch was stored twice: insert deduplication token not honoured"


def _forwarder(tmp_path, dest: CollectorProcess, max_size_mib: float) -> CollectorProcess:
    exporters = f"""
  clickhouse:
    endpoint: chdb://{{data}}/chdb
  otlp:
    endpoint: {dest.grpc_endpoint}
    tls: {{insecure: true}}
    timeout: 2s
    sending_queue:
      storage: file_storage
      max_size_mib: {max_size_mib}
      flush_interval: 50ms
{FAST_RETRY}"""
    return CollectorProcess(tmp_path / "a", exporters_yaml=exporters, exporter_ids="otlp", processors="batch")


def test_one_full_queue_refuses_the_request_for_every_exporter(tmp_path):
    """ClickHouse and Tempo-like OTLP in one pipeline, the OTLP destination down and its queue
    full: the request is refused before ClickHouse has it, so the client's retries don't store it
    twice there (what is acknowledged is in ClickHouse exactly once, what is refused is not)."""
    from support.harness import free_port

    exporters = f"""
  clickhouse:
    endpoint: chdb://{{data}}/chdb
    database: otel
    sending_queue:
      storage: file_storage
      flush_interval: 50ms
  otlp/down:
    endpoint: 127.0.0.1:{free_port()}
    tls: {{insecure: true}}
    timeout: 1s
    sending_queue:
      storage: file_storage
      max_size_mib: 0.05
{FAST_RETRY}"""
    collector = CollectorProcess(tmp_path, exporters_yaml=exporters, exporter_ids="clickhouse, otlp/down",
                                 processors="batch").start()
    tally = Tally()
    try:
        for _ in range(40):
            request, ids = make_request(50)
            ok, code, _ = grpc_send(collector.grpc_endpoint, request)
            tally.add(ids, ok, code)
        assert tally.acked and tally.refused.get("RESOURCE_EXHAUSTED"), tally.refused
        figures = record("one of two queues full", tally, collector)
    finally:
        collector.stop()
    assert figures["stored"] == len(tally.acked)
    assert figures["stored_unacknowledged"] == 0 and figures["duplicated"] == 0


def test_destination_down_queue_full_then_back(tmp_path):
    dest = CollectorProcess(tmp_path / "b").start()
    forwarder = _forwarder(tmp_path, dest, max_size_mib=0.1).start()
    tally = Tally()
    try:
        # Phase 1: the destination works.
        for _ in range(5):
            request, ids = make_request(50)
            tally.add(ids, *grpc_send(forwarder.grpc_endpoint, request)[:2])
        wait_stored(dest, len(tally.acked), timeout=20)
        dest.stop()  # Phase 2: down. Spans keep being acknowledged into A's disk queue...
        down_since = time.monotonic()
        refusal = None
        for _ in range(400):
            request, ids = make_request(50)
            ok, code, trailers = grpc_send(forwarder.grpc_endpoint, request)
            tally.add(ids, ok, code)
            if not ok:
                refusal = (code, trailers)
                break
        # ...until the queue is full: then a retryable refusal, never a silent drop.
        assert refusal is not None, "queue never filled"
        assert refusal[0] == "RESOURCE_EXHAUSTED", refusal
        assert "retry-after" in refusal[1]
        request, ids = make_request(50)
        response = http_send(forwarder.http_url, request)
        tally.add(ids, response.status_code == 200, f"HTTP {response.status_code}")
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        acked_while_down = len(tally.acked)
        # Phase 3: the forwarder is kill -9'd while its destination is still down, and restarts.
        forwarder.kill()
        forwarder.start()
        time.sleep(max(0.0, 3 - (time.monotonic() - down_since)))  # down for a while
        dest.start()  # Phase 4: back.
        stored, dups = wait_stored(dest, len(tally.acked), timeout=60)
        figures = record("destination down, queue full, kill -9 of the forwarder", tally, dest,
                         down_seconds=round(time.monotonic() - down_since, 1), acked_before_full=acked_while_down)
    finally:
        forwarder.stop()
        dest.stop()
    assert figures["lost"] == 0, _log_tail(forwarder) + _log_tail(dest)
    assert dups == 0
    assert sum(figures["refused"].values()) > 0


DEDUP_SCRIPT = """
import sys
from collector.exporters.clickhouse import ClickHouseConfig, ClickHouseExporter
from collector.exporterhelper import ExportRequest
from collector.component import ComponentId
sys.path.insert(0, "tests")
from support.otlp_load import make_request
exporter = ClickHouseExporter(ComponentId("clickhouse"), ClickHouseConfig(endpoint="chdb://" + sys.argv[1]))
exporter._start(None)
batch = (make_request(100)[0].SerializeToString(),)
other = (make_request(100)[0].SerializeToString(),)
exporter.push(ExportRequest(batch, 100, 5, "clickhouse:q1:1"))
exporter.push(ExportRequest(batch, 100, 5, "clickhouse:q1:1"))   # a replay: same token
exporter.push(ExportRequest(other, 100, 5, "clickhouse:q2:1"))   # another queue's batch 1: new token
print("ROWS", exporter.store.query("SELECT count() FROM otel.otel_traces").result_rows[0][0])
"""


def test_insert_deduplication_token_drops_a_replay(tmp_path):
    import subprocess
    import sys

    from support.harness import REPO

    out = subprocess.run([sys.executable, "-c", DEDUP_SCRIPT, str(tmp_path / "chdb")], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert "ROWS 200" in out.stdout, out.stdout + out.stderr[-2000:]


def test_dedup_tokens_differ_across_queue_files_and_processes(tmp_path):
    """Batch ids restart at 1 in a new queue file (or a memory queue in a new process): the token
    must still be new, or ClickHouse would drop fresh data as a "duplicate" of an old batch."""
    from collector.persistent_queue import DiskQueue, MemoryQueue

    first = DiskQueue(tmp_path / "q1.sqlite", 1 << 20)
    first.put(b"x", 1)
    batch = first.next_batch(10, 1 << 20, 0.1)
    first.close()  # crash before ack: reopened, the same batch comes back with the same token
    again = DiskQueue(tmp_path / "q1.sqlite", 1 << 20)
    replay = again.next_batch(10, 1 << 20, 0.1)
    assert (again.instance, replay.id, replay.item_ids) == (first.instance, batch.id, batch.item_ids)
    other = DiskQueue(tmp_path / "q2.sqlite", 1 << 20)
    other.put(b"y", 1)
    assert other.next_batch(10, 1 << 20, 0.1).id == batch.id and other.instance != first.instance
    assert MemoryQueue(1).instance != MemoryQueue(1).instance


def test_a_queue_file_from_before_batch_ranges_replays_its_recorded_batch(tmp_path):
    """Queue files written by earlier versions marked items with their batch id: the batch that
    was in flight is replayed with the same id (same dedup token), and new batches get new ids."""
    import sqlite3

    from collector.persistent_queue import DiskQueue

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, bytes INTEGER NOT NULL,
                            spans INTEGER NOT NULL, batch_id INTEGER);
        CREATE INDEX items_batch ON items(batch_id);
        CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('instance', 'abc');
        INSERT INTO batches (id) VALUES (6), (7);
        INSERT INTO items (payload, bytes, spans, batch_id) VALUES (x'01', 1, 1, 7), (x'02', 1, 2, 7), (x'03', 1, 3, NULL);
    """)
    db.commit()
    db.close()
    queue = DiskQueue(path, 1 << 20)
    replay = queue.next_batch(100, 1 << 20, 0.05)
    assert (queue.instance, replay.id, replay.payloads, replay.spans) == ("abc", 7, [b"\x01", b"\x02"], 3)
    queue.ack(replay)
    fresh = queue.next_batch(100, 1 << 20, 0.05)
    assert fresh.id > 7 and fresh.payloads == [b"\x03"]
    queue.ack(fresh)
    assert queue.stats() == (0, 0) and queue.next_batch(100, 1 << 20, 0.05) is None


def test_batches_in_flight_together_are_acknowledged_in_any_order_and_replayed_as_recorded(tmp_path):
    """Two consumers (`sending_queue.num_consumers`) each take a batch: the second is acknowledged
    first, the first is in flight when the process dies. Reopened, the first comes back alone, with
    its id (its dedup token); the items queued after both go to a new batch; nothing comes twice."""
    from collector.persistent_queue import DiskQueue

    queue = DiskQueue(tmp_path / "q.sqlite", 1 << 20)
    for item in (b"a", b"b", b"c", b"d"):
        queue.put(item, 1)
    first, second = queue.next_batch(2, 1 << 20, 0.05), queue.next_batch(2, 1 << 20, 0.05)
    assert (first.payloads, second.payloads) == ([b"a", b"b"], [b"c", b"d"])
    assert queue.next_batch(2, 1 << 20, 0.05) is None  # both in flight: nothing else to hand out
    queue.ack(second)
    queue.put(b"e", 1)
    queue.close()  # the process dies with `first` in flight

    again = DiskQueue(tmp_path / "q.sqlite", 1 << 20)
    replay = again.next_batch(10, 1 << 20, 0.05)
    assert (replay.id, replay.payloads, replay.replayed) == (first.id, [b"a", b"b"], True)
    fresh = again.next_batch(10, 1 << 20, 0.05)
    assert fresh.payloads == [b"e"] and fresh.id not in (first.id, second.id) and not fresh.replayed
    again.ack(fresh)
    again.ack(replay)
    assert again.stats() == (0, 0) and again.next_batch(10, 1 << 20, 0.05) is None


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_batches_are_bounded_by_spans_and_bytes(tmp_path, kind):
    """A push converts and inserts a whole batch at once, so its serialized size is bounded too:
    that, not the span count, is what bounds memory when spans carry large attributes."""
    from collector.persistent_queue import DiskQueue, MemoryQueue

    queue = DiskQueue(tmp_path / "q.sqlite", 1 << 20) if kind == "disk" else MemoryQueue(1 << 20)
    for size in (400, 400, 400, 5000, 10):
        queue.put(b"x" * size, 10)
    taken = []
    while (batch := queue.next_batch(max_spans=25, max_bytes=1000, wait_s=0.05)) is not None:
        taken.append([len(p) for p in batch.payloads])
        queue.ack(batch)
    # Two 400-byte items fit 25 spans / 1000 bytes; an item larger than the bound goes alone.
    assert taken == [[400, 400], [400], [5000], [10]]


def test_memory_release_hands_back_the_embedded_engines_pages(tmp_path):
    """The limiter's release step runs every registered releaser; an embedded store registers
    a jemalloc purge that the engine accepts, and unregisters when closed."""
    from collector import memory
    from collector.storage.client import ClickHouseStore, parse_endpoint

    calls = []
    counting = lambda: calls.append(1)  # noqa: E731
    memory.register_releaser(counting)
    store = ClickHouseStore(parse_endpoint(f"chdb://{shared_path()}"))
    try:
        assert store._purge_engine_allocator in memory._releasers
        memory.release_free_memory()
        store._purge_engine_allocator()  # raises if the engine refused the purge
    finally:
        store.close()
        memory.unregister_releaser(counting)
    assert calls == [1] and store._purge_engine_allocator not in memory._releasers


def test_malloc_arenas_are_capped_unless_the_environment_says(monkeypatch):
    """The collector caps glibc's malloc arenas (thread-pool fragmentation grew RSS under steady
    load); MALLOC_ARENA_MAX, when set, is glibc's own setting and is left alone."""
    from collector import memory

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_malloc_arenas() is True  # glibc accepted it
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_malloc_arenas() is False


GC_SCRIPT = """
import gc, sys
from collector.config import load_config
from collector.memory import GC_YOUNG_THRESHOLD
from collector.service import Service

service = Service(load_config(sys.argv[1]))
frozen_before = gc.get_freeze_count()
service.start()
try:
    print("GC", frozen_before, gc.get_freeze_count(), gc.get_threshold()[0] == GC_YOUNG_THRESHOLD)
finally:
    service.shutdown()
"""


def test_a_started_collector_keeps_its_startup_objects_out_of_the_cyclic_collector(tmp_path):
    """Full collections walked every module and component object, and young collections ran every
    700 allocations under load (3.8 % of the CPU, bench/README.md): once started, the objects made
    so far are frozen and the young threshold is raised."""
    import subprocess
    import sys

    from support.harness import REPO, free_port

    config = tmp_path / "c.yaml"
    config.write_text(f"""receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{free_port()}"}}
exporters:
  debug: {{}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
""")
    out = subprocess.run([sys.executable, "-c", GC_SCRIPT, str(config)], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    line = next((line for line in out.stdout.splitlines() if line.startswith("GC ")), "")
    assert line, out.stdout + out.stderr[-2000:]
    frozen_before, frozen_after, threshold_raised = line.split()[1:]
    assert int(frozen_before) == 0 and int(frozen_after) > 10_000 and threshold_raised == "True"


def test_memory_limiter_refuses_with_retryable_answers(tmp_path):
    """A limit below what the process already uses: every request is refused, retryably."""
    processors = """
  memory_limiter/tight:
    check_interval: 100ms
    limit_mib: 64
    spike_limit_mib: 16
"""
    collector = CollectorProcess(tmp_path, processors="memory_limiter/tight, batch", extra_processors_yaml=processors).start()
    try:
        time.sleep(0.5)
        request, ids = make_request(10)
        ok, code, trailers = grpc_send(collector.grpc_endpoint, request)
        assert not ok and code == "RESOURCE_EXHAUSTED" and "retry-after" in trailers
        response = http_send(collector.http_url, request)
        assert response.status_code == 429 and "retry-after" in response.headers
        assert stored_counts(collector)[0] == 0
        import httpx

        assert httpx.get(collector.health_url, timeout=2).status_code == 200  # still serving
    finally:
        collector.stop()


def _pss_mib(root: int) -> int:
    from collector.memory import process_tree, proportional_bytes

    return sum(map(proportional_bytes, process_tree(root))) // (1024 * 1024)


def test_overload_is_refused_not_buffered(tmp_path):
    """Offer far more than is stored per second, from many clients, for a bounded time.

    The receiver acknowledges only what sits in the disk queue, so memory holds only requests in
    flight (bounded by the gRPC server's concurrency); the memory limiter refuses above its soft
    limit. Clients retry refusals after Retry-After, like an OTLP exporter does.
    """
    baseline_probe = CollectorProcess(tmp_path / "probe")
    processors = """
  memory_limiter/bounded:
    check_interval: 100ms
    limit_mib: {limit}
    spike_limit_mib: 150
"""
    # Limit = what an idle collector uses + 400 MiB, measured on this machine, in what the limiter
    # measures (PSS of the process tree: shared pages counted once).
    baseline_probe.start()
    idle_mib = _pss_mib(baseline_probe.proc.pid)
    baseline_probe.stop()
    limit = idle_mib + 400
    collector = CollectorProcess(tmp_path / "c", processors="memory_limiter/bounded, batch",
                                 extra_processors_yaml=processors.format(limit=limit)).start()
    tally, stop = Tally(), threading.Event()

    def blast() -> None:
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            while not stop.is_set():
                request, ids = make_request(500, attrs={"gen_ai.input.messages": "x" * 400})
                for _attempt in range(20):
                    try:
                        stub.Export(request, timeout=10)
                        tally.add(ids, True)
                        break
                    except grpc.RpcError as exc:
                        tally.add([], False, exc.code().name)
                        with tally.lock:
                            tally.refused[exc.code().name] = tally.refused.get(exc.code().name, 0) + len(ids)
                        time.sleep(0.2)
                else:
                    tally.add(ids, False, "gave up")

    peak = [0]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _pss_mib(collector.proc.pid))
            time.sleep(0.02)

    threads = [threading.Thread(target=blast) for _ in range(8)]
    sampler = threading.Thread(target=sample)
    began = time.monotonic()
    sampler.start()
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(60)
    sampler.join(10)
    elapsed = time.monotonic() - began
    peak_mib = peak[0]
    try:
        stored, dups = wait_stored(collector, len(tally.acked), timeout=60)
        figures = record("overload (8 clients, 4 s, 500-span requests)", tally, collector,
                         idle_pss_mib=idle_mib, peak_pss_mib=peak_mib, limit_mib=limit,
                         acked_spans_per_s=round(len(tally.acked) / elapsed))
    finally:
        collector.stop()
    assert figures["lost"] == 0 and dups == 0, _log_tail(collector)
    assert peak_mib < limit, f"peak PSS {peak_mib} MiB over the {limit} MiB limit"
