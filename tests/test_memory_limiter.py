"""The memory limiter with ingest workers: it measures the whole collector once (PSS), accepts at
idle under the shipped limit, and refuses a burst of large concurrent requests before decoding
them, staying under its limit while small clients are still served. Every refusal is counted.

Figures (idle PSS vs summed RSS, peak under the burst) go to .pytest_cache/memory_limiter.json.
"""

from __future__ import annotations

import json
import threading
import time

import grpc
import httpx
import pytest

from collector.memory import process_tree, proportional_bytes, resident_bytes
from support.harness import REPO, CollectorProcess
from support.otlp_load import make_request

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(300), pytest.mark.alone]

MIB = 1024 * 1024
FIGURES = REPO / ".pytest_cache" / "memory_limiter.json"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _record(name: str, **figures) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = figures
    FIGURES.write_text(json.dumps(data, indent=2))


def _tree_mib(root: int) -> tuple[int, int]:
    """(PSS summed, RSS summed) of a process tree, in MiB."""
    pids = process_tree(root)
    return sum(map(proportional_bytes, pids)) // MIB, sum(map(resident_bytes, pids)) // MIB


def _limiter_yaml(name: str, limit_mib: int, spike_mib: int) -> str:
    return f"""
  memory_limiter/{name}:
    check_interval: 100ms
    limit_mib: {limit_mib}
    spike_limit_mib: {spike_mib}
"""


def _send_small(endpoint: str) -> str:
    with grpc.insecure_channel(endpoint) as channel:
        try:
            channel.unary_unary(EXPORT)(make_request(5)[0].SerializeToString(), timeout=10)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


def test_two_workers_accept_at_idle_under_the_shipped_limit(tmp_path):
    """The shipped block (1 GiB, spike 512 MiB) with two ingest workers: the collector's idle memory
    counted once is below the soft limit, so requests are accepted, and health says so."""
    collector = CollectorProcess(tmp_path, ingest_workers=2, processors="memory_limiter/shipped, batch",
                                 extra_processors_yaml=_limiter_yaml("shipped", 1024, 512)).start()
    try:
        time.sleep(1)
        pss, rss = _tree_mib(collector.proc.pid)
        answers = [_send_small(collector.grpc_endpoint) for _ in range(5)]
        health = httpx.get(collector.health_url, timeout=5)
        used = collector.metric("otelcol_memory_limiter_used_bytes") / MIB
        _record("idle, 2 ingest workers", pss_sum_mib=pss, rss_sum_mib=rss, limiter_used_mib=round(used),
                soft_limit_mib=512)
    finally:
        collector.stop()
    assert answers == ["OK"] * 5, (answers, pss, rss)
    assert health.status_code == 200 and health.json()["memory_limiter"] == "accepting"
    assert pss < 512 and pss < rss, (pss, rss)
    assert used > 0


def test_a_burst_of_large_requests_is_refused_within_the_limit(tmp_path):
    """Concurrent large gRPC requests against two workers: the limiter admits as many as fit beside
    the ones being decoded and refuses the others (RESOURCE_EXHAUSTED, retryable), memory stays
    under the limit, every refusal is counted, and small clients are served meanwhile."""
    probe = CollectorProcess(tmp_path / "probe", ingest_workers=2).start()
    try:
        time.sleep(1)
        idle, _ = _tree_mib(probe.proc.pid)
    finally:
        probe.stop()
    # The spike allowance covers what the receivers hold before asking (2 workers x 256 MiB in flight).
    limit, spike = idle + 900, 550
    collector = CollectorProcess(tmp_path / "c", ingest_workers=2, processors="memory_limiter/burst, batch",
                                 extra_processors_yaml=_limiter_yaml("burst", limit, spike)).start()
    # Under the receiver's 16 MiB message limit, so gRPC hands them over and the limiter decides.
    large = make_request(1, attrs={"gen_ai.input.messages": "x" * (12 * MIB)})[0].SerializeToString()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_mib(collector.proc.pid)[0])
            time.sleep(0.02)

    large_answers: list[str] = []
    small_answers: list[str] = []

    def send_large() -> None:
        with grpc.insecure_channel(collector.grpc_endpoint, options=[("grpc.max_send_message_length", 64 * MIB)]) as channel:
            try:
                channel.unary_unary(EXPORT)(large, timeout=60)
                large_answers.append("OK")
            except grpc.RpcError as exc:
                large_answers.append(exc.code().name)

    def send_small_during_burst() -> None:
        while not stop.is_set():
            small_answers.append(_send_small(collector.grpc_endpoint))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    small = threading.Thread(target=send_small_during_burst)
    senders = [threading.Thread(target=send_large) for _ in range(48)]
    try:
        sampler.start()
        small.start()
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        stop.set()
        sampler.join(10)
        small.join(30)
        refused = collector.metric("otelcol_memory_limiter_refused_requests_total")
        log = collector.log()
    finally:
        stop.set()
        collector.stop()
    _record("burst of 48 x 12 MiB gRPC requests, 2 ingest workers", idle_pss_mib=idle, limit_mib=limit,
            peak_pss_mib=peak[0], large_ok=large_answers.count("OK"), large_refused=len(large_answers) - large_answers.count("OK"),
            small_ok=small_answers.count("OK"), small_total=len(small_answers), limiter_refusals=refused)
    assert "RESOURCE_EXHAUSTED" in large_answers and set(large_answers) <= {"OK", "RESOURCE_EXHAUSTED"}, large_answers
    assert "OK" in large_answers
    assert refused > 0 and "memory_limiter" in log
    assert small_answers.count("OK") > 0, small_answers
    assert peak[0] < limit, f"peak {peak[0]} MiB over the {limit} MiB limit (idle {idle} MiB)"


def test_messages_over_the_grpc_limit_are_refused_before_they_are_buffered(tmp_path):
    """48 concurrent 60 MiB gRPC requests against two workers with the shipped limits: each is refused
    from its length prefix (RESOURCE_EXHAUSTED), so the collector never holds them (the issue saw a
    3.1 GiB peak against a 2 GiB limit), and small clients are served meanwhile."""
    collector = CollectorProcess(tmp_path / "c", ingest_workers=2).start()
    huge = make_request(1, attrs={"gen_ai.input.messages": "x" * (60 * MIB)})[0].SerializeToString()
    try:
        time.sleep(1)
        idle, _ = _tree_mib(collector.proc.pid)
        peak, stop, answers, small_answers = [0], threading.Event(), [], []

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_mib(collector.proc.pid)[0])
                time.sleep(0.02)

        def send_huge() -> None:
            with grpc.insecure_channel(collector.grpc_endpoint, options=[("grpc.max_send_message_length", -1)]) as channel:
                try:
                    channel.unary_unary(EXPORT)(huge, timeout=60)
                    answers.append("OK")
                except grpc.RpcError as exc:
                    answers.append(exc.code().name)

        def send_small() -> None:
            while not stop.is_set():
                small_answers.append(_send_small(collector.grpc_endpoint))
                time.sleep(0.05)

        threads = [threading.Thread(target=sample), threading.Thread(target=send_small)]
        senders = [threading.Thread(target=send_huge) for _ in range(48)]
        for thread in threads + senders:
            thread.start()
        for sender in senders:
            sender.join(120)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        collector.stop()
    _record("48 x 60 MiB gRPC requests over the 16 MiB message limit, 2 ingest workers", idle_pss_mib=idle,
            peak_pss_mib=peak[0], refused=answers.count("RESOURCE_EXHAUSTED"), small_ok=small_answers.count("OK"),
            small_total=len(small_answers))
    assert answers == ["RESOURCE_EXHAUSTED"] * 48, answers
    assert peak[0] < idle + 256, f"peak {peak[0]} MiB, idle {idle} MiB"
    assert small_answers and small_answers.count("OK") == len(small_answers), small_answers
