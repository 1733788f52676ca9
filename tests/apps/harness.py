"""The app matrix: run a small application twice, as a user would, and check what it exported.

    run = run_app(env, "litellm_sync.py")      # env: the session's AppEnvironment (conftest.py)
    run.check(requests=3, llm_calls=3)         # every assertion below, or call them one by one

Each app runs as a subprocess twice, side by side, each run against its own fake LLM server and in
its own working directory:

1. uninstrumented: ``python app.py``;
2. instrumented, with environment variables only, exactly the README's:
   ``OTEL_SERVICE_NAME=... OTEL_EXPORTER_OTLP_ENDPOINT=... OTEL_PYTHON_DISTRO=genaitrace
   OTEL_PYTHON_CONFIGURATOR=genaitrace opentelemetry-instrument python app.py``.

The instrumented run exports to :class:`TeeReceiver`, which records every byte the app sent
(for the canary scan) and forwards each request unchanged to a real collector process
(``tests/support/harness.py`` ``CollectorProcess``); the spans are then read back with SQL from the
collector's store, after the collector's GenAI normaliser and cost processors ran.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

import semconv

APPS_DIR = Path(__file__).resolve().parent
REPO = APPS_DIR.parent.parent
OTEL_INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")

# Apps plant this marker in every piece of content (prompts, system instructions, tool arguments,
# embedding inputs, task text...). With capture off it must not appear in any exported byte.
CANARY = "zqcanary"

INFERENCE_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings")

SPAN_COLUMNS = ("TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, SpanAttributes, "
                "ResourceAttributes, StatusCode, StatusMessage, ScopeName, "
                "`Events.Name` AS EventNames, `Events.Attributes` AS EventAttributes, "
                "`Links.TraceId` AS LinkTraceIds, `Links.Attributes` AS LinkAttributes")


# ----------------------------------------------------------------------------- the OTLP tee
class _TeeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        tee: TeeReceiver = self.server.tee  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        encoding = (self.headers.get("content-encoding") or "").lower()
        with tee.lock:
            tee.bodies.append(gzip.decompress(body) if encoding == "gzip" else body)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "content-encoding", "authorization")}
        try:
            answer = httpx.post(tee.forward_url, content=body, headers=headers, timeout=30)
            status, payload = answer.status_code, answer.content
            ctype = answer.headers.get("content-type", "application/x-protobuf")
        except httpx.HTTPError as exc:
            status, payload, ctype = 503, str(exc).encode(), "text/plain"
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class TeeReceiver:
    """OTLP/HTTP on 127.0.0.1: records each request body (decompressed), forwards it to the collector."""

    def __init__(self, forward_url: str):
        self.forward_url = forward_url
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _TeeHandler)
        self.httpd.daemon_threads = True
        self.httpd.tee = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "TeeReceiver":
        threading.Thread(target=self.httpd.serve_forever, name="otlp-tee", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def take(self) -> list[bytes]:
        with self.lock:
            bodies, self.bodies = self.bodies, []
        return bodies


def exported_spans(bodies: list[bytes]) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    count = 0
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        count += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return count


# ----------------------------------------------------------------------------- environment + runs
@dataclass
class AppEnvironment:
    """What every app run shares: the collector process (each run has its own fake LLM and tee)."""

    collector: object     # tests/support/harness.py CollectorProcess
    tmp: Path


def app_env(fake, **extra: str) -> dict:
    """The environment of both runs: no OTEL_* variable of the test's own, the fake server's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONUNBUFFERED="1", FAKE_LLM_URL=fake.base_url, FAKE_LLM_ROOT=fake.url,
               OPENAI_API_KEY="sk-fake", ANTHROPIC_API_KEY="sk-ant-fake", MISTRAL_API_KEY="fake",
               LITELLM_LOCAL_MODEL_COST_MAP="True")  # offline: both runs use LiteLLM's bundled prices
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR / "programs"), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class AppRun:
    app: str
    service: str
    bare: subprocess.CompletedProcess
    instrumented: subprocess.CompletedProcess
    raw: list[bytes]                       # every OTLP request body the app exported
    spans: list[dict]                      # the stored rows of this run (SQL on the collector)
    provider_requests: list[dict] = field(default_factory=list)  # what the fake LLM server received

    # --- views ---
    def llm_spans(self) -> list[dict]:
        return [s for s in self.spans if s["SpanAttributes"].get("gen_ai.operation.name") in INFERENCE_OPERATIONS]

    def traces(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for s in self.spans:
            out.setdefault(s["TraceId"], []).append(s)
        return out

    def describe(self) -> str:
        lines = [f"{self.app} ({self.service}): {len(self.spans)} spans"]
        by_id = {s["SpanId"]: s for s in self.spans}
        for s in sorted(self.spans, key=lambda s: (s["TraceId"], s["ParentSpanId"] != "")):
            parent = by_id.get(s["ParentSpanId"], {}).get("SpanName", s["ParentSpanId"] or "-")
            lines.append(f"  {s['TraceId'][:8]} {s['SpanKind']:<16} {s['SpanName']!r} <- {parent!r}")
        return "\n".join(lines)

    # --- assertions ---
    def assert_output_identical(self) -> None:
        assert self.bare.returncode == 0, f"bare run failed:\n{self.bare.stderr[-3000:]}"
        assert self.instrumented.returncode == 0, f"instrumented run failed:\n{self.instrumented.stderr[-3000:]}"
        assert self.instrumented.stdout == self.bare.stdout, (
            f"{self.app}: output differs\n--- bare ---\n{self.bare.stdout[-2000:]}\n"
            f"--- instrumented ---\n{self.instrumented.stdout[-2000:]}\n{self.instrumented.stderr[-2000:]}")
        assert "Traceback" not in self.instrumented.stderr, self.instrumented.stderr[-3000:]

    def assert_one_trace_per_request(self, requests: int) -> None:
        traces = self.traces()
        assert len(traces) == requests, f"{len(traces)} traces for {requests} requests\n{self.describe()}"
        for trace_id, spans in traces.items():
            roots = [s for s in spans if not s["ParentSpanId"]]
            assert len(roots) == 1, f"trace {trace_id}: {len(roots)} roots\n{self.describe()}"

    def assert_no_orphans(self) -> None:
        ids = {(s["TraceId"], s["SpanId"]) for s in self.spans}
        orphans = [s for s in self.spans if s["ParentSpanId"] and (s["TraceId"], s["ParentSpanId"]) not in ids]
        assert not orphans, f"orphans: {[s['SpanName'] for s in orphans]}\n{self.describe()}"

    def assert_no_duplicates(self, llm_calls: int | None = None) -> None:
        """One LLM span per provider call, never one inference span inside another."""
        llm = self.llm_spans()
        expected = len(self.provider_requests) if llm_calls is None else llm_calls
        assert len(llm) == expected, f"{len(llm)} LLM spans for {expected} calls\n{self.describe()}"
        by_id = {s["SpanId"]: s for s in self.spans}
        for s in llm:
            parent = by_id.get(s["ParentSpanId"])
            while parent is not None:
                assert parent["SpanAttributes"].get("gen_ai.operation.name") not in INFERENCE_OPERATIONS, (
                    f"LLM span {s['SpanName']} nested in LLM span {parent['SpanName']}\n{self.describe()}")
                parent = by_id.get(parent["ParentSpanId"])
        assert len({s["SpanId"] for s in self.spans}) == len(self.spans), "a span was stored twice"

    def assert_priced(self) -> None:
        """Every LLM call priced, or marked unpriced with a reason; estimated tokens marked as such."""
        for s in self.llm_spans():
            a = s["SpanAttributes"]
            if s["StatusCode"] == "Error" and "gen_ai.usage.input_tokens" not in a:
                assert a.get(semconv.COST_STATUS) == "unpriced" and a.get(semconv.COST_UNPRICED_REASON), a
                continue
            if semconv.COST_USD in a:
                assert float(a[semconv.COST_USD]) >= 0
            else:
                assert a.get(semconv.COST_STATUS) == "unpriced" and a.get(semconv.COST_UNPRICED_REASON), (
                    f"{s['SpanName']} neither priced nor unpriced with a reason: {a}")
            estimated = a.get(semconv.USAGE_ESTIMATED)
            assert estimated in (None, "true", "false"), a

    def assert_no_canary(self) -> None:
        """Content capture is off by default: no planted content in any exported byte or stored column."""
        marker = CANARY.encode()
        for body in self.raw:
            assert marker not in body, f"{self.app}: canary in exported bytes: {_around(body, marker)}"
        dumped = json.dumps(self.spans, default=str)
        assert CANARY not in dumped, f"{self.app}: canary in stored spans: {_around(dumped.encode(), marker)}"

    def assert_errors_typed(self) -> None:
        for s in self.spans:
            if s["StatusCode"] == "Error" and s["SpanAttributes"].get("gen_ai.operation.name"):
                assert s["SpanAttributes"].get("error.type"), f"{s['SpanName']} failed without error.type"
                assert s["StatusMessage"], f"{s['SpanName']} failed without a status description"

    def check(self, requests: int, llm_calls: int | None = None, canary: bool = True) -> None:
        self.assert_output_identical()
        self.assert_no_orphans()
        self.assert_one_trace_per_request(requests)
        self.assert_no_duplicates(llm_calls)
        self.assert_priced()
        self.assert_errors_typed()
        if canary:
            self.assert_no_canary()


def _around(data: bytes, marker: bytes, width: int = 120) -> str:
    at = data.find(marker)
    return data[max(0, at - width): at + width].decode("utf-8", "replace")


def _start(cmd: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_app(environment: AppEnvironment, app: str, *args: str, timeout: float = 240,
            env: dict | None = None, settle_s: float = 1.0) -> AppRun:
    """Run ``tests/apps/programs/<app>`` bare and under opentelemetry-instrument; collect what it exported.

    The two runs go side by side, each against its own fake LLM server, so that what the provider
    received is the instrumented run's alone; the OTLP tee is the run's own too.
    """
    from instrumentation.fakellm import FakeLLMServer

    path = str(APPS_DIR / "programs" / app)
    service = f"app-{Path(app).stem}-{uuid.uuid4().hex[:8]}"
    bare_cwd, cwd = environment.tmp / f"{service}-bare", environment.tmp / service
    bare_cwd.mkdir()
    cwd.mkdir()
    with FakeLLMServer() as bare_fake, FakeLLMServer() as fake:
        tee = TeeReceiver(environment.collector.http_url).start()
        try:
            bare_process = _start([sys.executable, path, *args], app_env(bare_fake, **(env or {})), bare_cwd)
            instrumented_env = app_env(fake, **(env or {}), OTEL_SERVICE_NAME=service,
                                       OTEL_EXPORTER_OTLP_ENDPOINT=tee.endpoint,
                                       OTEL_PYTHON_DISTRO="genaitrace", OTEL_PYTHON_CONFIGURATOR="genaitrace")
            try:
                instrumented = _finish(_start([OTEL_INSTRUMENT, sys.executable, path, *args],
                                              instrumented_env, cwd), timeout)
            finally:
                bare = _finish(bare_process, timeout)
            provider_requests = fake.requests
            # Children (fork, spawn) may still be exporting for a moment after the parent exits.
            time.sleep(settle_s)
            raw = tee.take()
        finally:
            tee.stop()
    return AppRun(app, service, bare, instrumented, raw, _stored_spans(environment.collector, service, raw),
                  provider_requests)


def _stored_spans(collector, service: str, raw: list[bytes]) -> list[dict]:
    """The run's rows in the collector's store, once every span the app exported has arrived."""
    expected = exported_spans(raw)
    if not expected:
        return []
    where = f"WHERE ServiceName = '{service}'"  # our own name: letters, digits, dashes
    collector.wait_for_rows(f"SELECT count() AS n FROM otel.otel_traces {where}",
                            lambda r: r[0]["n"] >= expected, timeout=60)
    spans = collector.query(f"SELECT {SPAN_COLUMNS} FROM otel.otel_traces {where}")
    for s in spans:
        s["SpanAttributes"] = _as_dict(s["SpanAttributes"])
        s["ResourceAttributes"] = _as_dict(s["ResourceAttributes"])
    return spans


def _as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    return dict(value or [])
