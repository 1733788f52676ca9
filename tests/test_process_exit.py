"""A process that is signalled while it is already exiting keeps its last spans.

`multiprocessing.Pool.terminate()` (what leaving `with Pool(...)` does) sends SIGTERM to workers
that may be leaving on their own, their exit handlers (the SDK's shutdown) exporting the last spans.
Dying at once there lost them: a spawned pool worker lost its spans in about one run of three.
Here the real OTel SDK and OTLP/HTTP exporter export to a receiver that holds the first export,
so the signal lands during the exit's export every time."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import instrumentation
    from opentelemetry import trace

    instrumentation.init(service_name="exiting-app")
    tracer = trace.get_tracer("exiting-app")
    for n in range(2):
        with tracer.start_as_current_span(f"last-{n}"):
            pass
    # and leave normally: the SDK's shutdown exports the two spans, one request each
""")


class HoldingReceiver:
    """OTLP/HTTP traces receiver that answers its first request only when released."""

    def __init__(self):
        self.names: list[str] = []
        self.first_arrived, self.release = threading.Event(), threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.names += [span.name for rs in request.resource_spans for ss in rs.scope_spans
                                   for span in ss.spans]
                if not receiver.first_arrived.is_set():
                    receiver.first_arrived.set()
                    receiver.release.wait(30)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = HoldingReceiver()
    yield r
    r.close()


def _start_child(tmp_path: Path, endpoint: str) -> subprocess.Popen:
    program = tmp_path / "exiting_app.py"
    program.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(REPO), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
               OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1", OTEL_BSP_SCHEDULE_DELAY="600000")
    return subprocess.Popen([sys.executable, str(program)], env=env, stderr=subprocess.PIPE, text=True)


def test_sigterm_during_the_exit_export_lets_it_finish(tmp_path, receiver):
    child = _start_child(tmp_path, receiver.endpoint)
    try:
        assert receiver.first_arrived.wait(60), "the exiting app never exported"
        child.send_signal(signal.SIGTERM)  # as Pool.terminate() does, while the exit's export runs
        time.sleep(0.5)
        receiver.release.set()
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert sorted(receiver.names) == ["last-0", "last-1"], stderr
    assert child.returncode == 0, stderr  # it was leaving on its own, and did


def test_an_exit_export_that_hangs_still_ends_with_the_signal(tmp_path, receiver):
    """Bounded: FLUSH_TIMEOUT_S after the signal, the process dies of it as it would have at once."""
    from instrumentation.processes import FLUSH_TIMEOUT_S

    child = _start_child(tmp_path, receiver.endpoint)
    try:
        assert receiver.first_arrived.wait(60), "the exiting app never exported"
        signalled = time.monotonic()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=FLUSH_TIMEOUT_S + 25)
        waited = time.monotonic() - signalled
    finally:
        receiver.release.set()
        child.kill()
    assert child.returncode == -signal.SIGTERM
    assert waited >= FLUSH_TIMEOUT_S - 0.5
