"""`service.ingest_workers`: receivers and processors in several processes on shared ports, the
exporters (and the one chdb store) in the main process, handing over through the disk queues.

Real collector process, real OTLP over gRPC and HTTP from several clients: everything acknowledged
is stored exactly once, the metrics endpoint sums every process, a killed worker is replaced
without losing what it acknowledged, and a config that cannot work is refused with file/line/key.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx
import pytest

from collector.memory import child_pids
from support.harness import CollectorProcess
from support.otlp_load import Tally, grpc_send, http_send, make_request, record, stored_counts, wait_stored


def _send_from_clients(collector: CollectorProcess, tally: Tally, requests_per_client: int, spans: int) -> None:
    def client(index: int) -> None:
        for _ in range(requests_per_client):
            request, ids = make_request(spans)
            if index % 2:
                ok, answer = http_send(collector.http_url, request).status_code == 200, "http"
            else:
                ok, answer, _ = grpc_send(collector.grpc_endpoint, request)
            tally.add(ids, ok, answer)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def _worker_pids(collector: CollectorProcess) -> set[int]:
    pids = set()
    for pid in child_pids(collector.proc.pid):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"spawn_main" in cmdline:  # workers; not multiprocessing's resource tracker
            pids.add(pid)
    return pids


def _accepted_by(pid: int) -> float:
    """Spans one worker accepted, from its own prometheus-client multiprocess file."""
    from prometheus_client.mmap_dict import MmapedDict

    environ = dict(item.split(b"=", 1) for item in open(f"/proc/{pid}/environ", "rb").read().split(b"\0") if b"=" in item)
    path = os.path.join(environ[b"PROMETHEUS_MULTIPROC_DIR"].decode(), f"counter_{pid}.db")
    if not os.path.exists(path):
        return 0
    return sum(value for key, value, *_ in MmapedDict.read_all_values_from_file(path)
               if "otelcol_receiver_accepted_spans" in key)


def _metric_total(collector: CollectorProcess, name: str) -> float:
    text = httpx.get(collector.metrics_url, timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:_total)?{{[^}}]*}} (\S+)$", text, re.M))


def test_workers_share_the_ports_and_store_everything_once(tmp_path):
    collector = CollectorProcess(tmp_path, ingest_workers=2).start()
    try:
        workers = _worker_pids(collector)
        assert len(workers) == 2, collector.log()
        tally = Tally()
        _send_from_clients(collector, tally, requests_per_client=10, spans=50)
        assert len(tally.acked) == 6 * 10 * 50 and not tally.refused
        stored, dups = wait_stored(collector, len(tally.acked))
        assert (stored, dups) == (len(tally.acked), 0)
        # Both workers took connections (the kernel spreads them), and the endpoint sums them.
        per_worker = {pid: _accepted_by(pid) for pid in workers}
        assert all(per_worker.values()) and sum(per_worker.values()) == len(tally.acked), per_worker
        assert _metric_total(collector, "otelcol_receiver_accepted_spans") == len(tally.acked)
    finally:
        assert collector.stop() == 0


def test_a_killed_worker_is_replaced_and_loses_nothing_acknowledged(tmp_path):
    collector = CollectorProcess(tmp_path, ingest_workers=2).start()
    try:
        tally = Tally()
        _send_from_clients(collector, tally, requests_per_client=4, spans=20)
        victim = sorted(_worker_pids(collector))[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _worker_pids(collector)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        assert len(_worker_pids(collector)) == 2 and victim not in _worker_pids(collector), collector.log()[-3000:]
        health = httpx.get(collector.health_url, timeout=5).status_code
        for _ in range(20):  # unhealthy while a worker was down, healthy again once it is replaced
            if health == 200:
                break
            time.sleep(0.25)
            health = httpx.get(collector.health_url, timeout=5).status_code
        assert health == 200
        _send_from_clients(collector, tally, requests_per_client=4, spans=20)
        # Clients whose connection the dead worker held retry like OTLP exporters do; every
        # request acknowledged before or after the kill is stored once.
        stored, dups = wait_stored(collector, len(tally.acked))
        record("ingest workers: kill -9 of one worker between two rounds", tally, collector)
        assert dups == 0 and stored == len(tally.acked) >= 2 * 6 * 4 * 20 * 0.5
        assert "exited with code -9; starting it again" in collector.log()
    finally:
        collector.stop()


def test_workers_need_every_exporter_to_queue_on_disk(tmp_path):
    memory_queue = """
  clickhouse:
    endpoint: chdb://{data}/chdb
    database: otel
    sending_queue:
      enabled: true
"""
    collector = CollectorProcess(tmp_path, ingest_workers=2, exporters_yaml=memory_queue)
    with pytest.raises(RuntimeError) as failed:
        collector.start(timeout=30)
    message = failed.value.args[0]
    assert "otel-collector.yaml" in message and "exporters.clickhouse.sending_queue.storage" in message
    assert re.search(r"otel-collector\.yaml:\d+", message), message


def test_the_disk_queue_bound_holds_across_writer_processes(tmp_path):
    """Two queue handles on one file (as two processes have): the byte bound is what is on disk."""
    from collector.persistent_queue import DiskQueue, QueueFull

    first, second = DiskQueue(tmp_path / "q.sqlite", 1000), DiskQueue(tmp_path / "q.sqlite", 1000)
    first.put(b"x" * 600, 1)
    with pytest.raises(QueueFull):
        second.put(b"y" * 600, 1)
    assert first.stats() == second.stats() == (1, 600)
    batch = second.next_batch(10, 1 << 20, 0.05)
    second.ack(batch)
    first.put(b"z" * 600, 1)
    assert second.stats() == (1, 600)


def _pss_mib(pid: int) -> int:
    from collector.memory import proportional_bytes

    return proportional_bytes(pid) // (1024 * 1024)


@pytest.mark.alone  # compares processes' memory measured at different moments: not beside other tests' load
def test_a_workers_memory_limiter_limits_the_whole_collector(tmp_path):
    """The soft limit sits above what any one process uses but below the collector's total (PSS,
    what the limiter measures): the workers refuse (retryably), because the limit is the
    collector's, not each worker's."""
    probe = CollectorProcess(tmp_path / "probe", ingest_workers=2).start()
    try:
        sizes = [_pss_mib(pid) for pid in [probe.proc.pid, *_worker_pids(probe)]]
    finally:
        probe.stop()
    soft = max(sizes) + (sum(sizes) - max(sizes)) // 2  # > any process, < all of them together
    limiter = f"""
  memory_limiter/collector:
    check_interval: 100ms
    limit_mib: {soft + 50}
    spike_limit_mib: 50
"""
    collector = CollectorProcess(tmp_path / "c", ingest_workers=2, processors="memory_limiter/collector, batch",
                                 extra_processors_yaml=limiter).start()
    try:
        time.sleep(0.5)
        answers = {grpc_send(collector.grpc_endpoint, make_request(5)[0])[1] for _ in range(6)}
        assert answers == {"RESOURCE_EXHAUSTED"}, (sizes, soft, answers)
        assert stored_counts(collector)[0] == 0
    finally:
        collector.stop()


def test_health_follows_the_workers(tmp_path):
    """The supervisor reports unhealthy as soon as a worker is found dead, healthy once replaced
    (the main process wires this to the health check)."""
    from collector.config import load_config
    from collector.ingest import IngestWorkers
    from collector.service import run_worker
    from collector.telemetry import SelfTelemetry

    config = load_config(CollectorProcess(tmp_path, ingest_workers=2).config_path)
    reports: list[bool] = []
    workers = IngestWorkers(config, None, SelfTelemetry(), worker_main=run_worker, on_health=reports.append)
    workers.start()
    try:
        reports.clear()
        workers.processes[1].kill()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (False in reports and reports[-1] is True):
            time.sleep(0.1)
        assert False in reports and True in reports[reports.index(False):], reports
        assert workers.restarts == 1
        assert all(p.is_alive() for p in workers.processes)
    finally:
        workers.stop()
    assert not any(p.is_alive() for p in workers.processes)
