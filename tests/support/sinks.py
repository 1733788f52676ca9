"""Where a component under test hands its output: the next consumer in-process (`Sink`), the
collector's own telemetry a started component registers its metrics with (`Telemetry`), and an
OTLP/HTTP destination that records every request body it is sent (`HttpSink`)."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry


class Sink:
    """The next consumer: keeps every batch it is handed, in order. With `fail` set to an exception
    it raises that instead, as a refusing exporter would."""

    def __init__(self, fail: Exception | None = None):
        self.batches: list = []
        self.fail = fail

    def consume(self, traces) -> None:
        if self.fail is not None:
            raise self.fail
        self.batches.append(traces)

    @property
    def traces(self):
        """The last batch handed on (None before the first)."""
        return self.batches[-1] if self.batches else None

    @property
    def span_count(self) -> int:
        return sum(batch.span_count() for batch in self.batches)


class Telemetry:
    """The collector's self-telemetry as `Host(telemetry=...)` offers it: a registry of its own per
    test, so metrics from one test never show in another's."""

    def __init__(self):
        self.registry = CollectorRegistry()


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        server: HttpSink = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if (self.headers.get("content-encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        with server.lock:
            server.bodies.append(body)
        self.send_response(server.status)
        for key, value in server.answer_headers.items():
            self.send_header(key, value)
        self.send_header("content-length", "0")
        self.end_headers()


class HttpSink(ThreadingHTTPServer):
    """An OTLP/HTTP destination on 127.0.0.1: records each request body (gunzipped) in `bodies` and
    answers every POST with `status` and `headers`. Use it as a context manager (serves on a thread).

        with HttpSink() as sink:
            exporter endpoint = sink.url + "/v1/traces"
    """

    daemon_threads = True

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, port: int = 0):
        super().__init__(("127.0.0.1", port), _Recorder)
        self.status, self.answer_headers = status, dict(headers or {})
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def posts(self) -> int:
        return len(self.bodies)

    def __enter__(self) -> "HttpSink":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
