"""Real third-party processes on loopback for the interop tests, as fixtures and process wrappers:
the otelcol distribution built from interop/otelcol, Jaeger v2 from interop/jaeger, the OTel Go SDK sender from interop/gosdk and the
OTel JS SDK from interop/js. `./run.sh test` builds them once per machine into .cache/interop.

A missing binary skips its tests on a developer's machine (with the reason), and fails them in CI
(CI=true): CI must prove the interop, not skip it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.harness import REPO, free_port

INTEROP = REPO / "interop"
BIN = REPO / ".cache" / "interop" / "bin"


def _go_env() -> dict[str, str]:
    """Go's cache locations, read at import (test collection), before tests/conftest.py points HOME
    at a temp dir: run.sh downloaded and built into the caches under the real HOME."""
    try:
        out = subprocess.run(["go", "env", "-json", "GOMODCACHE", "GOCACHE", "GOPATH"], capture_output=True, text=True, timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return {}
    return json.loads(out.stdout) if out.returncode == 0 else {}


GO_ENV = _go_env()


def require(path: Path, what: str) -> Path:
    """The built peer at `path`, or a skip (a failure under CI) saying how to build it."""
    if path.exists():
        return path
    reason = f"{what} not built ({path.relative_to(REPO)} missing): run ./run.sh test, which builds it"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    return require(BIN / "otelcol-genaitrace", "the otelcol distribution (interop/otelcol)")


@pytest.fixture(scope="session")
def jaeger_binary() -> Path:
    return require(BIN / "jaeger", "Jaeger v1.75.0 (interop/jaeger)")


@pytest.fixture(scope="session")
def gosdk_binary() -> Path:
    return require(BIN / "gosdk-sender", "the OTel Go SDK sender (interop/gosdk)")


@pytest.fixture(scope="session")
def js_sender() -> Path:
    require(INTEROP / "js" / "node_modules" / "@opentelemetry" / "sdk-trace-node", "the OTel JS SDK (npm ci in interop/js)")
    return INTEROP / "js" / "sender.js"


class GoProcess:
    """A Go collector-style program (otelcol, Jaeger) run with a YAML config; healthy when its
    health endpoint answers 200."""

    def __init__(self, binary: Path, workdir: Path, config: str, health_url: str, name: str):
        self.binary, self.workdir, self.health_url, self.name = binary, Path(workdir), health_url, name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"{name}.yaml"
        self.config_path.write_text(config)
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "GoProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), f"--config={self.config_path}"], cwd=self.workdir,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "GoProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Otelcol(GoProcess):
    """The otelcol distribution with a test's config. The config may use {health}, {metrics},
    {grpc} and {http} for free loopback ports (the health_check extension, the internal telemetry's
    Prometheus reader and an OTLP receiver)."""

    def __init__(self, binary: Path, workdir: Path, config: str, **fields):
        self.ports = {key: free_port() for key in ("health", "metrics", "grpc", "http")}
        self.grpc_endpoint = f"127.0.0.1:{self.ports['grpc']}"
        self.http_url = f"http://127.0.0.1:{self.ports['http']}/v1/traces"
        self.metrics_url = f"http://127.0.0.1:{self.ports['metrics']}/metrics"
        super().__init__(binary, workdir, config.format(**self.ports, **fields),
                         f"http://127.0.0.1:{self.ports['health']}/", "otelcol")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of one of otelcol's own Prometheus samples over label sets that include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(httpx.get(self.metrics_url, timeout=5).text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


# otelcol's own telemetry (Prometheus on a free port) and health check: every test config ends with
# these, plus its own `pipelines:` under `service:`.
OTELCOL_SERVICE_COMMON = """
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
{extensions}
service:
  extensions: [health_check{extension_ids}]
  telemetry:
    logs:
      level: info
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {metrics}
"""


def otelcol_config(body: str, pipelines: str, extensions: dict[str, str] | None = None) -> str:
    """A full otelcol config: `body` (receivers/processors/exporters), the common service section
    with `extensions` (name -> its indented YAML) beside health_check, and `pipelines` (indented
    under service). The result still has otelcol's own {ports} to fill."""
    extensions = extensions or {}
    common = OTELCOL_SERVICE_COMMON.replace("{extensions}", "\n".join(f"  {name}:\n{yaml}" for name, yaml in extensions.items()))
    common = common.replace("{extension_ids}", "".join(f", {name}" for name in extensions))
    return body + common + "  pipelines:\n" + pipelines


class Jaeger(GoProcess):
    """Jaeger v2 (all-in-one) with an in-memory store, OTLP receivers and its query API on loopback."""

    CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
processors:
  batch: {{}}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""

    def __init__(self, binary: Path, workdir: Path):
        self.ports = {key: free_port() for key in ("health", "query_http", "query_grpc", "grpc", "http")}
        self.grpc_endpoint = f"127.0.0.1:{self.ports['grpc']}"
        self.query_url = f"http://127.0.0.1:{self.ports['query_http']}"
        super().__init__(binary, workdir, self.CONFIG.format(**self.ports),
                         f"http://127.0.0.1:{self.ports['health']}/status", "jaeger")


def send_genai_traces(target: str, traces: int, protocol: str = "grpc", service: str = "interop-app") -> list[str]:
    """`traces` GenAI traces of 3 spans each (agent -> chat, agent -> tool) made and sent with the
    OpenTelemetry Python SDK's own OTLP exporter; returns their trace ids (hex)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=target, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=target)
    provider = TracerProvider(resource=Resource.create({"service.name": service, "tenant.id": "acme"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000, max_export_batch_size=256))
    tracer = provider.get_tracer("tests.interop", "1.0.0")
    trace_ids = []
    for number in range(traces):
        with tracer.start_as_current_span(f"invoke_agent agent-{number % 5}", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"agent-{number % 5}"}) as agent:
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 500, "trace.number": number}):
                pass
            with tracer.start_as_current_span("execute_tool search", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}):
                pass
        trace_ids.append(format(agent.get_span_context().trace_id, "032x"))
    assert provider.force_flush(30_000), "the SDK could not flush its spans"
    provider.shutdown()
    return trace_ids
