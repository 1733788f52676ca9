"""The scale-out tier as deploy/scale-out ships it: the real otelcol `loadbalancing` exporter, with
deploy/scale-out/lb/otelcol-lb.yaml as is (only its listen addresses and the three backend
hostnames rewritten to free loopback ports), routing by trace id to three of our collectors, each
with its own embedded store. Every trace lands whole on one instance, the totals add up, and a
backend restarted mid-run loses no span the load balancer acknowledged."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from support.harness import REPO, CollectorProcess
from support.peers import GoProcess, otelcol_binary, send_genai_traces  # noqa: F401 (fixture)
from support.harness import free_port

LB_MANIFEST = REPO / "deploy" / "scale-out" / "lb" / "otelcol-lb.yaml"
ROUNDS, TRACES_PER_ROUND = 12, 25


def lb_config(backends: list[str]) -> tuple[str, dict]:
    """The manifest with loopback listen ports and `backends` as the static resolver's hostnames."""
    config = yaml.safe_load(LB_MANIFEST.read_text())
    ports = {key: free_port() for key in ("grpc", "http", "health", "metrics")}
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{ports['grpc']}"
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{ports['http']}"
    config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{ports['health']}"
    config["exporters"]["loadbalancing"]["resolver"]["static"]["hostnames"] = backends
    # Its own metrics on a free port instead of otelcol's default :8888.
    config["service"]["telemetry"]["metrics"]["readers"] = [
        {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": ports["metrics"]}}}}]
    return yaml.safe_dump(config, sort_keys=False), ports


def traces_by_instance(collectors: list[CollectorProcess]) -> list[dict[str, int]]:
    """For each collector, trace id -> spans it stored."""
    return [{row["trace"]: row["spans"] for row in c.query(
        "SELECT TraceId AS trace, count() AS spans FROM otel.otel_traces GROUP BY TraceId")} for c in collectors]


def test_loadbalancing_routes_whole_traces_and_survives_a_backend_restart(tmp_path, otelcol_binary):
    collectors = [CollectorProcess(tmp_path / f"collector-{n}") for n in (1, 2, 3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda c: c.start(), collectors))
    text, ports = lb_config([c.grpc_endpoint for c in collectors])
    lb = GoProcess(otelcol_binary, tmp_path / "lb", text, f"http://127.0.0.1:{ports['health']}/", "otelcol-lb")
    sent: list[str] = []
    try:
        lb.start()
        restarted = threading.Event()

        def restart_one_backend() -> None:
            time.sleep(3)
            collectors[1].stop()  # SIGTERM: it flushes what it acknowledged, then is down
            time.sleep(2)
            collectors[1].start()
            restarted.set()

        restarter = threading.Thread(target=restart_one_backend)
        restarter.start()
        for _ in range(ROUNDS):  # every round acknowledged by the load balancer before the next
            sent += send_genai_traces(f"127.0.0.1:{ports['grpc']}", TRACES_PER_ROUND)
            time.sleep(0.5)
        restarter.join()
        assert restarted.is_set()

        expected = len(sent) * 3
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored = sum(sum(instance.values()) for instance in traces_by_instance(collectors))
            if stored >= expected:
                break
            time.sleep(1)
        time.sleep(1)
        instances = traces_by_instance(collectors)
    finally:
        lb.stop()
        for collector in collectors:
            collector.stop()

    per_instance = [sum(instance.values()) for instance in instances]
    print(f"\nsent {len(sent)} traces / {len(sent) * 3} spans through loadbalancing; stored per instance "
          f"{per_instance} = {sum(per_instance)}; restarted collector-2 mid-run")
    # Totals add up: every acknowledged span stored, none twice.
    assert sum(per_instance) == len(sent) * 3
    seen = [trace for instance in instances for trace in instance]
    assert sorted(seen) == sorted(sent)  # each trace on exactly one instance
    # Whole: the instance that has a trace has all its 3 spans.
    assert all(spans == 3 for instance in instances for spans in instance.values())
    # Routed: every instance got a share.
    assert all(count > 0 for count in per_instance)
