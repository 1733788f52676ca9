"""Exports that respect their destination (issue 19, item 4) and exporterhelper's senders.

  - batches larger than an OTLP receiver's 4 MiB limit arrive whole, split by resource, scope
    and span; a span too large on its own is dropped with a metric, the rest arrive;
  - a destination that refuses the data for good (INVALID_ARGUMENT, RESOURCE_EXHAUSTED without
    RetryInfo, HTTP 400/413) gets it once, not forever, while ClickHouse keeps storing;
  - a destination that never answers does not stall ClickHouse in the same pipeline;
  - the timeout is enforced on every push, whatever the push does.

The OTLP destination is a plain grpcio server with default options: a 4 MiB receive limit, as
otelcol's OTLP receiver, Tempo and Jaeger have by default.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from collector.component import ComponentId, ConsumeError, PermanentError, RetryableError
from collector.exporterhelper import ExportRequest, ExportTimeout, QueuedRetryExporter, RetryConfig, TimeoutSender, PushSender
from collector.exporters.otlp import OTLPGrpcConfig, OTLPGrpcExporter
from collector.exporters.otlphttp import OTLPHttpConfig, OTLPHttpExporter
from collector.otlp_split import split_request
from support.harness import CollectorProcess, free_port
from support.otlp_load import grpc_send, make_request, stored_counts
from support.sinks import HttpSink

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(240), pytest.mark.alone]

MIB = 1024 * 1024
RECEIVER_LIMIT = 4 * MIB  # grpcio's default max receive message length
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class OTLPDestination:
    """A gRPC OTLP trace receiver with grpcio's defaults, recording what arrives. `answer(payload)`
    returns None to accept, or (code, message, trailing metadata) to refuse; `hang` never answers."""

    def __init__(self, answer=None, hang: bool = False):
        self.answer, self.hang = answer, hang
        self.sizes: list[int] = []
        self.span_ids: list[str] = []
        self.attempts = 0
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(8))  # default options: 4 MiB receive limit
        handler = grpc.unary_unary_rpc_method_handler(self._export, request_deserializer=None,
                                                      response_serializer=ExportTraceServiceResponse.SerializeToString)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _export(self, payload: bytes, context):
        with self.lock:
            self.attempts += 1
        if self.hang:
            self.released.wait(120)
            context.abort(grpc.StatusCode.UNAVAILABLE, "released")
        refusal = self.answer(payload) if self.answer else None
        if refusal is not None:
            code, message, trailers = refusal
            if trailers:
                context.set_trailing_metadata(trailers)
            context.abort(code, message)
        request = ExportTraceServiceRequest.FromString(payload)
        with self.lock:
            self.sizes.append(len(payload))
            self.span_ids += [s.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return ExportTraceServiceResponse()

    def __enter__(self) -> "OTLPDestination":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.stop(grace=0)


def _exporters_yaml(otlp_endpoint: str, otlp_extra: str = "") -> str:
    return f"""
  clickhouse:
    endpoint: chdb://{{data}}/chdb
    database: otel
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
  otlp:
    endpoint: {otlp_endpoint}
    tls: {{insecure: true}}
    timeout: 2s
    retry_on_failure: {{initial_interval: 100ms, max_interval: 500ms}}
    sending_queue: {{storage: file_storage, flush_interval: 50ms}}
{otlp_extra}"""


def _collector(tmp_path, destination: OTLPDestination, otlp_extra: str = "") -> CollectorProcess:
    return CollectorProcess(tmp_path, processors="batch", exporters_yaml=_exporters_yaml(destination.endpoint, otlp_extra),
                            exporter_ids="clickhouse, otlp")


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


# --- splitting, on the wire -------------------------------------------------------------------------


def _spans(data: bytes) -> list[bytes]:
    request = ExportTraceServiceRequest.FromString(data)
    return [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_split_keeps_every_span_in_order_under_the_limit_with_its_resource_and_scope():
    requests = [make_request(900, attrs={"gen_ai.input.messages": "x" * 2000})[0] for _ in range(3)]
    for request in requests:  # a second scope in each resource
        scope = request.resource_spans[0].scope_spans.add()
        scope.scope.name = "second-scope"
        scope.spans.add().CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    data = b"".join(r.SerializeToString() for r in requests)
    result = split_request(data, 1_000_000)
    assert len(result.parts) > 5 and result.oversize_spans == 0
    assert all(len(part) <= 1_000_000 for part, _ in result.parts)
    assert [s for part, _ in result.parts for s in _spans(part)] == _spans(data)
    for part, spans in result.parts:
        parsed = ExportTraceServiceRequest.FromString(part)
        assert spans == len(_spans(part))
        for rs in parsed.resource_spans:
            assert rs.resource.attributes[0].value.string_value == "reliability-test"
            for ss in rs.scope_spans:
                assert ss.spans and (ss.scope.name in ("", "second-scope"))


def test_a_span_larger_than_the_limit_is_reported_and_left_out():
    big = make_request(1, attrs={f"k{i}": "y" * 100_000 for i in range(12)})[0]
    small, small_ids = make_request(10)
    result = split_request(big.SerializeToString() + small.SerializeToString(), 1_000_000)
    assert result.oversize_spans == 1 and result.largest_oversize > 1_000_000
    assert [s.hex() for part, _ in result.parts for s in _spans(part)] == small_ids


# --- against a receiver with the standard 4 MiB limit -------------------------------------------------


def test_oversize_batches_arrive_split_at_a_4mib_receiver(tmp_path):
    """Requests of ~10 MiB (the collector takes up to 64 MiB) reach the 4 MiB destination whole,
    in parts under its limit; one span of 5 MiB is dropped and counted; ClickHouse stores all."""
    with OTLPDestination() as destination:
        collector = _collector(tmp_path, destination).start()
        try:
            sent: list[str] = []
            for _ in range(3):
                request, ids = make_request(4000, attrs={"gen_ai.input.messages": "m" * 2500})
                assert request.ByteSize() > 2 * RECEIVER_LIMIT
                assert grpc_send(collector.grpc_endpoint, request, timeout=60)[0]
                sent += ids
            huge, huge_ids = make_request(1, attrs={f"part.{i}": "z" * 250_000 for i in range(20)})
            assert grpc_send(collector.grpc_endpoint, huge, timeout=60)[0]
            _wait(lambda: len(destination.span_ids) >= len(sent), 90, "every span at the 4 MiB destination")
            _wait(lambda: stored_counts(collector)[0] == len(sent) + 1, 60, "every span in ClickHouse")
            _wait(lambda: collector.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") >= 1, 30,
                  "the oversize span counted")
            split = collector.metric("otelcol_exporter_split_requests_total", exporter="otlp")
            log = collector.log()
        finally:
            collector.stop()
        assert sorted(destination.span_ids) == sorted(sent)  # each once, the 5 MiB span not at all
        assert huge_ids[0] not in destination.span_ids
        assert max(destination.sizes) <= int(3.5 * MIB) < RECEIVER_LIMIT
        assert split >= 3 and destination.attempts == len(destination.sizes)  # nothing refused, nothing retried
        assert "larger than sending_queue.batch.max_size" in log
        print("split sizes (bytes):", sorted(destination.sizes))


def test_a_permanent_refusal_is_dropped_once_and_clickhouse_keeps_storing(tmp_path):
    """INVALID_ARGUMENT is permanent: each batch is tried once, dropped with a metric and a log
    line; the same pipeline's ClickHouse stores everything meanwhile."""
    refuse = lambda _payload: (grpc.StatusCode.INVALID_ARGUMENT, "schema says no", ())  # noqa: E731
    with OTLPDestination(answer=refuse) as destination:
        collector = _collector(tmp_path, destination).start()
        try:
            sent = []
            for _ in range(5):
                request, ids = make_request(200)
                assert grpc_send(collector.grpc_endpoint, request)[0]
                sent += ids
                time.sleep(0.2)
            _wait(lambda: stored_counts(collector)[0] == len(sent), 60, "ClickHouse stores everything")
            _wait(lambda: collector.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") == len(sent), 30,
                  "every span refused by the OTLP destination counted")
            attempts = destination.attempts
            time.sleep(2)  # a retrying exporter would try again within 100-500 ms
            assert destination.attempts == attempts <= 5
            log = collector.log()
        finally:
            collector.stop()
        assert "INVALID_ARGUMENT" in log and "dropping" in log


def test_a_destination_that_never_answers_does_not_stall_clickhouse(tmp_path):
    with OTLPDestination(hang=True) as destination:
        collector = _collector(tmp_path, destination, otlp_extra="").start()
        try:
            sent, began = [], time.monotonic()
            for _ in range(10):
                request, ids = make_request(100)
                ok, code, _ = grpc_send(collector.grpc_endpoint, request, timeout=5)
                assert ok, code
                sent += ids
            acked_in = time.monotonic() - began
            _wait(lambda: stored_counts(collector)[0] == len(sent), 30, "ClickHouse stores while OTLP hangs")
            _wait(lambda: collector.metric("otelcol_exporter_send_failed_requests_total", exporter="otlp") >= 2, 30,
                  "the OTLP exporter's timeouts counted")
            log = collector.log()
        finally:
            destination.released.set()
            collector.stop()
        assert acked_in < 10, acked_in
        assert destination.attempts >= 1 and "2s timeout" in log


# --- the answers, per the OTLP specification ----------------------------------------------------------


def _grpc_exporter(endpoint: str) -> OTLPGrpcExporter:
    exporter = OTLPGrpcExporter(ComponentId("otlp"), OTLPGrpcConfig(endpoint=endpoint, tls={"insecure": True}))
    exporter._start(None)
    return exporter


def _retry_info(seconds: int) -> tuple:
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    status = status_pb2.Status(code=8, message="slow down")
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


@pytest.mark.parametrize("code, trailers, expected", [
    (grpc.StatusCode.INVALID_ARGUMENT, (), PermanentError),
    (grpc.StatusCode.PERMISSION_DENIED, (), PermanentError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, (), PermanentError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "retry-info", RetryableError),
    (grpc.StatusCode.UNAVAILABLE, (), ConnectionError),
    (grpc.StatusCode.DATA_LOSS, (), ConnectionError),
])
def test_grpc_answers_are_classified_as_the_spec_says(code, trailers, expected):
    answer = lambda _p: (code, "no", _retry_info(7) if trailers == "retry-info" else ())  # noqa: E731
    with OTLPDestination(answer=answer) as destination:
        exporter = _grpc_exporter(destination.endpoint)
        try:
            with pytest.raises(expected) as raised:
                exporter.push(ExportRequest((make_request(3)[0].SerializeToString(),), 3, 5))
        finally:
            exporter._close()
    if expected is RetryableError:
        assert raised.value.retry_after_s == 7


@pytest.mark.parametrize("status, headers, expected, delay", [
    (400, {}, PermanentError, None),
    (413, {}, PermanentError, None),
    (500, {}, PermanentError, None),
    (429, {"Retry-After": "9"}, RetryableError, 9),
    (503, {}, ConnectionError, None),
    (502, {}, ConnectionError, None),
])
def test_http_answers_are_classified_as_the_spec_says(status, headers, expected, delay):
    with HttpSink(status, headers) as destination:
        exporter = OTLPHttpExporter(ComponentId("otlphttp"), OTLPHttpConfig(endpoint=destination.url))
        exporter._start(None)
        try:
            with pytest.raises(expected) as raised:
                exporter.push(ExportRequest((make_request(3)[0].SerializeToString(),), 3, 5))
        finally:
            exporter._close()
    if delay is not None:
        assert raised.value.retry_after_s == delay


# --- timeout and retry senders -------------------------------------------------------------------------


def test_the_timeout_is_enforced_whatever_the_push_does():
    """A push that blocks (an embedded insert cannot be interrupted) times out; no second push
    starts while it is stuck; once it returns, the next attempt runs."""
    release, calls = threading.Event(), []

    def stuck_push(request: ExportRequest) -> None:
        calls.append(request.dedup_token)
        release.wait(30)

    sender = TimeoutSender(ComponentId("clickhouse"), PushSender(stuck_push), timeout_s=0.3)
    request = ExportRequest((b"",), 0, 0.3, "clickhouse:q:1")
    began = time.monotonic()
    with pytest.raises(ExportTimeout):
        sender.send(request)
    assert 0.25 < time.monotonic() - began < 2
    with pytest.raises(ExportTimeout, match="has not returned"):
        sender.send(request)
    assert calls == ["clickhouse:q:1"]
    release.set()
    time.sleep(0.1)
    sender.send(request)  # the same token again: a store that deduplicates keeps the batch once
    assert calls == ["clickhouse:q:1", "clickhouse:q:1"]


def test_a_push_stuck_past_its_timeout_holds_back_the_other_consumers_too():
    """With several consumers, one push stuck past the timeout (an embedded insert that cannot be
    interrupted) makes every consumer's next attempt fail at once: a stuck destination holds one
    thread, not one per consumer (pushes merely running do not: the num_consumers test below)."""
    release, started = threading.Event(), []

    def push(request: ExportRequest) -> None:
        started.append(request.dedup_token)
        if request.dedup_token == "stuck":
            release.wait(30)

    sender = TimeoutSender(ComponentId("clickhouse"), PushSender(push), timeout_s=0.3)
    with pytest.raises(ExportTimeout):
        sender.send(ExportRequest((b"",), 0, 0.3, "stuck"))
    failed: list[BaseException] = []

    def other_consumer() -> None:
        try:
            sender.send(ExportRequest((b"",), 0, 0.3, "other"))
        except ExportTimeout as exc:
            failed.append(exc)

    thread = threading.Thread(target=other_consumer)
    thread.start()
    thread.join(5)
    assert started == ["stuck"] and len(failed) == 1 and "has not returned" in str(failed[0])
    release.set()
    time.sleep(0.1)
    sender.send(ExportRequest((b"",), 0, 0.3, "other"))
    assert started == ["stuck", "other"]


@pytest.mark.parametrize("consumers", [1, 3])
def test_num_consumers_pushes_that_many_batches_at_once(tmp_path, consumers):
    """`sending_queue.num_consumers` (otelcol's key): each consumer thread takes its own batch, so
    a slow push does not hold the next batch back; every batch is acknowledged once, in any order."""
    from collector.component import Host
    from collector.exporterhelper import ExporterSettings
    from collector.pdata import Traces

    lock, in_flight, most, pushed = threading.Lock(), [0], [0], []

    def slow_push(request: ExportRequest) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.3)
        with lock:
            in_flight[0] -= 1
            pushed.append(request.spans)

    # One span per batch: each queued request is a batch of its own.
    settings = ExporterSettings(timeout=5, sending_queue={"num_consumers": consumers, "max_batch_spans": 1,
                                                          "flush_interval": 0.05})
    exporter = QueuedRetryExporter(ComponentId("otlp"), settings, slow_push)
    exporter.start(Host())
    try:
        for _ in range(6):
            exporter.consume(Traces(make_request(1)[0]))
        _wait(lambda: len(pushed) == 6 and exporter.pending() == 0, 10, "all six batches pushed")
    finally:
        exporter.shutdown()
    assert most[0] == consumers and pushed == [1] * 6


def test_a_queued_batch_is_retried_after_a_timeout_with_the_same_dedup_token(tmp_path):
    from collector.component import Host
    from collector.exporterhelper import ExporterSettings

    tokens, first = [], threading.Event()

    def push(request: ExportRequest) -> None:
        tokens.append(request.dedup_token)
        if not first.is_set():
            first.set()
            time.sleep(0.6)  # longer than the timeout: this attempt is abandoned

    settings = ExporterSettings(timeout=0.2, retry_on_failure=RetryConfig(initial_interval=0.7, max_interval=1),
                                sending_queue={"flush_interval": 0.05})
    exporter = QueuedRetryExporter(ComponentId("clickhouse"), settings, push)
    exporter.start(Host())
    try:
        exporter.consume(__import__("collector.pdata", fromlist=["Traces"]).Traces(make_request(5)[0]))
        _wait(lambda: len(tokens) >= 2, 10, "the retry")
    finally:
        exporter.shutdown()
    assert len(set(tokens)) == 1 and tokens[0].startswith("clickhouse:")


def test_an_in_memory_queue_gives_up_after_max_elapsed_time():
    from collector.exporterhelper import ExporterSettings, RetrySender

    def failing(_request):
        raise ConnectionError("down")

    settings = ExporterSettings(retry_on_failure=RetryConfig(initial_interval=0.05, max_interval=0.1, max_elapsed_time=0.3))
    sender = RetrySender(ComponentId("otlp"), PushSender(failing), settings.retry_on_failure, threading.Event(),
                         give_up=True, on_failure=lambda: None)
    with pytest.raises(ConsumeError, match="giving up"):
        sender.send(ExportRequest((b"",), 0, 1))


def test_an_exporter_without_a_queue_does_not_hold_back_the_others():
    """Without a sending queue an exporter pushes in the caller's thread: the fan-out runs it beside
    the others, so the exporter after a stuck one still gets the batch at once."""
    from collector.component import Host
    from collector.exporterhelper import ExporterSettings
    from collector.pdata import Traces
    from collector.service import FanOut

    release, got = threading.Event(), []

    class Fast:
        def consume(self, traces) -> None:
            got.append(time.monotonic())

    settings = ExporterSettings(timeout=5, sending_queue={"enabled": False}, retry_on_failure={"enabled": False})
    slow = QueuedRetryExporter(ComponentId("otlp"), settings, lambda _request: release.wait(5))
    slow.start(Host())
    fan_out = FanOut([slow, Fast()])
    began = time.monotonic()
    caller = threading.Thread(target=fan_out.consume, args=(Traces(make_request(3)[0]),))
    caller.start()
    try:
        _wait(lambda: got, 3, "the second exporter got the batch")
        assert got[0] - began < 1 and caller.is_alive()  # the answer still waits for the slow one
    finally:
        release.set()
        caller.join(10)
        slow.shutdown()
    assert not caller.is_alive()
