"""A real collector process for tests: free loopback ports, a temp data dir, a config, and SQL.

    with CollectorProcess(tmp_path) as collector:
        send spans to collector.grpc_endpoint / collector.http_url
        rows = collector.wait_for_rows("SELECT count() AS n FROM otel.otel_traces", lambda r: r[0]["n"] == 3)

`exporters_yaml` / `processors` / `extra_yaml` let a test change the pipeline; everything runs on
127.0.0.1 only.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


_handed_out: set[int] = set()


def _worker_stripe() -> tuple[int, int]:
    """(index, count) of this pytest-xdist worker, so parallel workers draw from disjoint ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return int(worker.removeprefix("gw") or 0) % max(count, 1), max(count, 1)


def free_port() -> int:
    """A free port below the kernel's ephemeral range. A port the kernel hands out (bind to 0) can be
    handed out again, to any outgoing connection (a health poll, a load generator), between here and
    the collector binding it: its start then fails with EADDRINUSE. Ports below the range are never
    picked for outgoing connections. A port is handed out once per test process (a collector asks
    for five before it binds any: a random draw could repeat one), and each xdist worker draws from
    its own residue class."""
    low_ephemeral = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    index, count = _worker_stripe()
    for _ in range(200):
        port = random.randrange(10_000, max(10_001, low_ephemeral))
        port -= (port - index) % count
        if port < 10_000 or port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


DEFAULT_EXPORTERS = """
  clickhouse:
    endpoint: chdb://{data}/chdb
    database: otel
    ttl: 0s
    sending_queue:
      storage: file_storage
      flush_interval: 50ms
    retry_on_failure:
      initial_interval: 200ms
      max_interval: 1s
"""

# reliability tests read back every stored span id (hundreds of thousands on a fast machine)
SQL_RESULT_LIMITS = "    limits: {{max_result_rows: 10000000, max_result_bytes_mib: 1024}}\n"

CONFIG_TEMPLATE = """
extensions:
  health_check:
    endpoint: 127.0.0.1:{health_port}
  file_storage:
    directory: {data}/queue
  sqlquery:
    endpoint: 127.0.0.1:{query_port}
    exporter: clickhouse
""" + SQL_RESULT_LIMITS + """receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
      http:
        endpoint: 127.0.0.1:{http_port}
        max_request_body_size_mib: {max_body_mib}
processors:
  batch:
    send_batch_size: 8192
    timeout: 50ms
  memory_limiter:
    limit_mib: 4096
    spike_limit_mib: 512
  genai_normalizer: {{}}
  genai_cost: {{}}
{extra_processors}
exporters:
{exporters}
{extra_yaml}
service:
  extensions: [{extensions}]
  ingest_workers: {ingest_workers}
  telemetry:
    metrics:
      address: 127.0.0.1:{metrics_port}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{processors}]
      exporters: [{exporter_ids}]
"""


class CollectorProcess:
    def __init__(self, workdir: Path, *, processors: str = "memory_limiter, genai_normalizer, genai_cost, batch", exporters_yaml: str | None = None,
                 exporter_ids: str = "clickhouse", extra_processors_yaml: str = "", extra_yaml: str = "",
                 max_body_mib: float = 16, env: dict | None = None, config_text: str | None = None,
                 extensions: str = "health_check, file_storage, sqlquery", ingest_workers: int = 1,
                 launcher: list[str] | None = None):
        self.workdir = Path(workdir)
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.grpc_port, self.http_port = free_port(), free_port()
        self.health_port, self.query_port, self.metrics_port = free_port(), free_port(), free_port()
        self.grpc_endpoint = f"127.0.0.1:{self.grpc_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}/v1/traces"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.query_url = f"http://127.0.0.1:{self.query_port}/v1/query"
        self.health_url = f"http://127.0.0.1:{self.health_port}/"
        self.config_path = self.workdir / "otel-collector.yaml"
        fields = dict(
            data=self.data, grpc_port=self.grpc_port, http_port=self.http_port, health_port=self.health_port,
            query_port=self.query_port, metrics_port=self.metrics_port, max_body_mib=max_body_mib,
            processors=processors, exporter_ids=exporter_ids, extra_yaml=extra_yaml,
            extra_processors=extra_processors_yaml, extensions=extensions, ingest_workers=ingest_workers,
        )
        # A test's own exporters YAML may say {data} for this collector's data directory.
        fields["exporters"] = (exporters_yaml or DEFAULT_EXPORTERS).replace("{data}", str(self.data))
        self.config_path.write_text(config_text.format(**fields) if config_text else CONFIG_TEMPLATE.format(**fields))
        self.env = {**os.environ, **(env or {})}
        # What runs the collector: the CLI, or a test's own entry point (e.g. tests/support/fault_injection.py).
        self.launcher = launcher or ["-m", "collector.cli"]
        self.log_path = self.workdir / "collector.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds = 0.0

    # --- lifecycle ---

    def start(self, timeout: float = 60) -> "CollectorProcess":
        began = time.monotonic()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, *self.launcher, "run", "--config", str(self.config_path)],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    self.start_seconds = time.monotonic() - began
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector not healthy after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the collector flushes what it acknowledged."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- data ---

    def query(self, sql: str, parameters: dict | None = None) -> list[dict]:
        response = httpx.post(self.query_url, json={"sql": sql, "parameters": parameters}, timeout=60)
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(body.get("error"))
        return [dict(zip(body["columns"], row)) for row in body["rows"]]

    def wait_for_rows(self, sql: str, done: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        rows: list[dict] = []
        while time.monotonic() < deadline:
            rows = self.query(sql)
            if done(rows):
                return rows
            time.sleep(0.1)
        raise AssertionError(f"condition not met after {timeout}s; last rows: {rows[:5]}\n{self.log()[-3000:]}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample from /metrics, over label sets that include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(httpx.get(self.metrics_url, timeout=5).text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total
