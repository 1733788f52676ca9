"""`convert_workers`: protobuf -> Arrow in worker processes stores exactly what in-process conversion stores.

Three levels: the worker function against `traces_to_arrow` (in process), the exporter's
worker path with its insert deduplication token (a script, like test_durability's), and two real
collectors, one converting in process and one in a worker, fed the same requests: same rows.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from support.harness import REPO, CollectorProcess
from support.otlp_load import http_send
from support.reference_columns import varied_request

from support.workload import make_request as workload_request
from collector.exporters.clickhouse import _split
from collector.pdata import Traces
from collector.storage import columns


def test_worker_function_matches_in_process_conversion():
    payloads = [varied_request(seed).SerializeToString() for seed in range(4)] + [b""]
    payloads.append(workload_request(700, seed=5).SerializeToString())
    expected = columns.traces_to_arrow(Traces.merge(Traces.from_protobuf(p) for p in payloads))
    table = columns.arrow_from_ipc(columns.payloads_to_arrow_ipc(payloads))
    assert table.schema.equals(columns.ARROW_SCHEMA)
    assert table.num_rows == expected.num_rows > 700
    assert table.equals(expected)
    assert columns.arrow_from_ipc(columns.payloads_to_arrow_ipc([])).num_rows == 0
    # several workers: consecutive runs of the payloads, concatenated back in order
    # (runs of about equal bytes: the big workload payload last leaves one run, first makes several)
    for ordered in (payloads, payloads[::-1]):
        expected = columns.traces_to_arrow(Traces.merge(Traces.from_protobuf(p) for p in ordered))
        for workers in (2, 3):
            parts = _split(ordered, workers)
            assert 1 <= len(parts) <= workers and [p for part in parts for p in part] == ordered
            tables = [columns.arrow_from_ipc(columns.payloads_to_arrow_ipc(part)) for part in parts]
            assert pa.concat_tables(tables).combine_chunks().equals(expected)
    assert len(_split(payloads[::-1], 2)) == 2 and len(_split(payloads[::-1], 3)) == 3


WORKER_DEDUP_SCRIPT = """
import sys
from collector.exporters.clickhouse import ClickHouseConfig, ClickHouseExporter
from collector.exporterhelper import ExportRequest
from collector.component import ComponentId
sys.path.insert(0, "tests")
from support.otlp_load import make_request
exporter = ClickHouseExporter(ComponentId("clickhouse"), ClickHouseConfig(endpoint="chdb://" + sys.argv[1],
                                                                        convert_workers=int(sys.argv[2])))
exporter._start(None)
assert exporter.helper.push == exporter.push   # the one push, at the end of the sender chain
batch = (make_request(60)[0].SerializeToString(), make_request(40)[0].SerializeToString())
other = (make_request(100)[0].SerializeToString(),)
exporter.push(ExportRequest(batch, 100, 5, "clickhouse:q1:1"))
exporter.push(ExportRequest(batch, 100, 5, "clickhouse:q1:1"))   # a replay: same token
exporter.push(ExportRequest(other, 100, 5, "clickhouse:q2:1"))   # another queue's batch 1: new token
exporter.push(ExportRequest((), 0, 5, "clickhouse:q2:2"))        # nothing to insert
print("ROWS", exporter.store.query("SELECT count() FROM otel.otel_traces").result_rows[0][0])
exporter._shutdown()
print("DONE")
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_path_keeps_the_dedup_token(tmp_path, workers):
    out = subprocess.run([sys.executable, "-c", WORKER_DEDUP_SCRIPT, str(tmp_path / "chdb"), str(workers)], capture_output=True,
                         text=True, timeout=180, cwd=REPO)
    assert "ROWS 200" in out.stdout and "DONE" in out.stdout, out.stdout + out.stderr[-2000:]


def _exporter_yaml(workers: int) -> str:
    return f"""
  clickhouse:
    endpoint: chdb://{{data}}/chdb
    database: otel
    ttl: 0s
    convert_workers: {workers}
    sending_queue:
      storage: file_storage
      flush_interval: 50ms
"""


def test_collector_with_a_worker_stores_the_same_rows(tmp_path):
    requests = [workload_request(300, seed=s) for s in range(6)]
    spans = sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)
    sql = "SELECT * FROM otel.otel_traces ORDER BY TraceId, SpanId, Timestamp"
    stored = {}
    for workers in (0, 1):
        collector = CollectorProcess(tmp_path / f"workers-{workers}", exporters_yaml=_exporter_yaml(workers)).start(timeout=120)
        try:
            for request in requests:
                assert http_send(collector.http_url, request).status_code == 200
            collector.wait_for_rows("SELECT count() AS n FROM otel.otel_traces", lambda r: r[0]["n"] >= spans, timeout=60)
            stored[workers] = collector.query(sql)
        finally:
            assert collector.stop() == 0
        log = collector.log()
        assert "Traceback" not in log, log[-3000:]
    assert len(stored[1]) == len(stored[0]) == spans
    assert stored[1] == stored[0]


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _wait_gone(pids: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    return {p for p in pids if Path(f"/proc/{p}").exists()}


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_workers_leave_with_the_collector(tmp_path, how):
    collector = CollectorProcess(tmp_path, exporters_yaml=_exporter_yaml(1)).start(timeout=120)
    workers = _children(collector.proc.pid)
    assert workers, "convert_workers: 1 started no worker process"
    if how == "sigterm":
        assert collector.stop() == 0
    else:
        collector.kill()  # no shutdown: the worker notices its parent is gone
    assert _wait_gone(workers) == set()
