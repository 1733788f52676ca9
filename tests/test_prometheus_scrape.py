"""A real Prometheus scrapes a real collector's /metrics (with `genai_metrics` in the pipeline),
evaluates the alert and recording rules on it, and sees the values the spans imply."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support import seed_data
from support.harness import REPO, CollectorProcess, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = pytest.mark.skipif(not Path(PROMETHEUS).exists(),
                                reason="prometheus missing: apt-get install -y prometheus (the README test command does)")

PROM_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}/genai-alerts.yml
  - {rules}/budgets.yml
scrape_configs:
  - job_name: genaitrace-collector
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
"""


@pytest.fixture
def stack(tmp_path):
    collector = CollectorProcess(tmp_path / "collector", processors="memory_limiter, genai_metrics, batch",
                                 extra_processors_yaml="  genai_metrics:\n    max_models: 20\n")
    collector.start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(PROM_CONFIG.format(
        rules=REPO / "deploy" / "prometheus" / "rules", metrics_port=collector.metrics_port))
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", prom)
        yield collector, f"http://127.0.0.1:{port}", tmp_path / "prometheus.log"
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        collector.stop()


def _wait_ready(url: str, prom: subprocess.Popen, timeout: float = 60) -> None:
    """Prometheus answers its API with plain-text 503s until the TSDB and rules are loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and prom.poll() is None:
        try:
            if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready after {timeout}s (exit code {prom.poll()})")


def collector_rss(collector: CollectorProcess) -> float:
    with open(f"/proc/{collector.proc.pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def promql(url: str, query: str) -> list[dict]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(url: str, query: str, done, timeout: float = 30, log: Path | None = None):
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        try:
            result = promql(url, query)
            if done(result):
                return result
        except (httpx.TransportError, ValueError):  # not up yet, or a plain-text 503 while loading
            pass
        time.sleep(0.5)
    raise AssertionError(f"{query}: {result}\n{log.read_text()[-2000:] if log else ''}")


def test_prometheus_scrapes_genai_metrics_from_a_running_collector(stack):
    collector, prom, log = stack
    truth = seed_data.generate(days=1, traces_per_day=25, seed=11)
    response = httpx.post(collector.http_url, content=seed_data.to_traces(truth.spans).to_protobuf(),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text
    calls = truth.calls

    rows = wait_for(prom, "sum(llm_requests_total)", lambda r: r and float(r[0]["value"][1]) >= len(calls), log=log)
    assert float(rows[0]["value"][1]) == len(calls)
    cost = float(promql(prom, "sum(llm_cost_usd_total)")[0]["value"][1])
    assert math.isclose(cost, sum(c.attrs.get("gen_ai.usage.cost_usd", 0) for c in calls), rel_tol=1e-6)
    inp = float(promql(prom, 'sum(llm_tokens_total{token_type="input"})')[0]["value"][1])
    assert inp == sum(c.attrs.get("gen_ai.usage.input_tokens", 0) for c in calls)
    by_tenant = {r["metric"]["tenant"] for r in promql(prom, "sum by (tenant) (llm_requests_total)")}
    assert by_tenant == {"acme", "globex", "initech"}
    # the semconv histograms with the spec's buckets
    buckets = promql(prom, 'count by (le) (gen_ai_client_operation_duration_seconds_bucket)')
    assert {r["metric"]["le"] for r in buckets} >= {"0.01", "1.28", "81.92", "+Inf"}
    assert float(promql(prom, "sum(gen_ai_client_operation_duration_seconds_count)")[0]["value"][1]) == len(calls)
    # the collector's own health metrics, through the same scrape
    accepted = float(promql(prom, "sum(otelcol_receiver_accepted_spans_total)")[0]["value"][1])
    assert accepted == len(truth.spans)
    # where the collector's memory is: resident anonymous + file-backed is its RSS, and the embedded
    # engine's allocator reports what it holds (collector.memory.breakdown)
    parts = {r["metric"]["part"]: float(r["value"][1]) for r in promql(prom, "genaitrace_process_memory_bytes")}
    assert {"resident_anonymous", "resident_file", "malloc_in_use", "engine_allocated", "engine_resident"} <= set(parts), parts
    assert 0 < parts["engine_allocated"] <= parts["engine_resident"], parts
    rss = collector_rss(collector)
    assert abs(parts["resident_anonymous"] + parts["resident_file"] + parts.get("resident_shmem", 0) - rss) < 0.2 * rss, (parts, rss)
    # the rule files load and evaluate against the real metrics
    rules = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {g["name"] for g in rules} >= {"genai-alerts", "genai-budgets", "genai-collector-health"}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [r for g in rules for r in g["rules"] if r["health"] != "ok"]
    wait_for(prom, "genai:tenant_cost_usd:rolling_24h", lambda r: len(r) == 3, log=log)
    assert {r["metric"]["tenant"] for r in promql(prom, "genai:tenant_daily_budget_usd")} == {"acme", "globex", "initech"}
