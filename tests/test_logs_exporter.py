"""The ClickHouse exporter's logs side (otel_logs) with a disk queue: what `consume` acknowledged
survives kill -9 of the process and lands once after the restart (replays deduplicated by their
insert token). Each phase runs in its own process (one chdb path per process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Phase 1: acknowledge batches of SDK-encoded evaluation events one by one, printing each ack;
# the test kills it with SIGKILL mid-stream. Phase 2: restart on the same queue, drain, count.
CHILD = r"""
import json, os, sys, time
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from collector.component import ComponentId, Host
from collector.exporters.clickhouse import ClickHouseConfig
from collector.exporters.clickhouse_logs import create_logs
from collector.extensions.file_storage import FileStorage, FileStorageConfig
from collector.plogs import Logs

phase, data, per_batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
storage = FileStorage(ComponentId("file_storage"), FileStorageConfig(directory=data + "/queue"))
storage.start(None)
config = ClickHouseConfig(endpoint=f"chdb://{data}/chdb", sending_queue={"storage": "file_storage"},
                          retry_on_failure={"initial_interval": "50ms"})
exporter = create_logs(ComponentId("clickhouse"), config, None)
exporter.start(Host(extensions={ComponentId("file_storage"): storage}))
if phase == "produce":
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("test")
    for batch in range(10_000):
        for i in range(per_batch):
            logger.emit(event_name="gen_ai.evaluation.result",
                        attributes={"gen_ai.evaluation.name": "seq", "gen_ai.evaluation.score.value": float(batch * per_batch + i)})
        logs = Logs.from_protobuf(encode_logs(memory.get_finished_logs()).SerializeToString())
        memory.clear()
        exporter.consume(logs)             # returns once the batch is in the disk queue
        print(f"acked {batch}", flush=True)
else:
    deadline = time.monotonic() + 120
    while exporter.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    store = exporter.push.__self__.store
    rows = store.query("SELECT LogAttributes['gen_ai.evaluation.score.value'] AS v, count() AS n "
                       "FROM otel.otel_logs GROUP BY v").result_rows
    print(json.dumps({"distinct": len(rows), "dupes": sum(n - 1 for _, n in rows),
                      "values": sorted(float(v) for v, _ in rows)}), flush=True)
    exporter.shutdown()
"""


def _child(phase: str, data: Path, per_batch: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, phase, str(data), str(per_batch)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)
def test_acknowledged_log_records_survive_kill_9_and_land_once(tmp_path):
    per_batch = 50
    producer = _child("produce", tmp_path, per_batch)
    acked = -1
    started = time.monotonic()
    for line in producer.stdout:
        if line.startswith("acked "):
            acked = int(line.split()[1])
            if acked >= 20 or time.monotonic() - started > 120:
                break
    os.kill(producer.pid, signal.SIGKILL)  # mid-stream: the exporter may be inserting a batch right now
    producer.wait(timeout=30)
    assert acked >= 1, producer.stderr.read()[-2000:]
    checker = _child("check", tmp_path, per_batch)
    out, err = checker.communicate(timeout=240)
    assert checker.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    acknowledged = set(range((acked + 1) * per_batch))
    stored = {int(v) for v in result["values"]}
    assert result["dupes"] == 0
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged records"
    assert stored <= set(range((acked + 2) * per_batch))  # at most the batch in flight at the kill besides
