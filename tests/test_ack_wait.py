"""Issue 17, first bullet: a request's acknowledgement waits for its batch on the receiver's event
loop, not on a receiver thread, so the requests in flight, not the receiver's thread count, decide
how many can wait in one batch (over HTTP as over gRPC).

The receiver tests are structural, not timed: 40 requests in flight (more than the receiver's 16
threads), a batch sized for exactly all of them and a timer far beyond the clients' patience. With
a thread held per waiting request the batch could gather at most 16 requests, would never fill,
and every client would time out; without, the 40th request fills it, and the sink sees one batch
of all 40. The acks and batch tests pin the contract the receiver relies on.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
import httpx
import pytest

from collector import acks
from collector.component import ComponentId, Host, ResourceExhaustedError
from collector.receivers.otlp import _SMALL_THREADS, OTLPReceiver, OTLPReceiverConfig
from collector.telemetry import SelfTelemetry
from processors.batch import BatchConfig, BatchProcessor
from support.harness import free_port
from support.otlp_load import make_request
from support.sinks import Sink

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
IN_FLIGHT = 40  # more requests than the receiver has threads
SPANS = 20      # per request
TIMER = 120.0   # the batch's timeout: never reached within a client's patience
PATIENCE = 30.0  # seconds a client waits for its answer


def _spans_per_batch(sink: Sink) -> list[int]:
    return [batch.span_count() for batch in sink.batches]


@contextlib.contextmanager
def running_receiver(sink: Sink, send_batch_size: int, timeout: float = TIMER):
    """otlp -> batch -> sink, started as the service starts them, on free loopback ports."""
    telemetry = SelfTelemetry()
    batch = BatchProcessor(ComponentId("batch"), BatchConfig(send_batch_size=send_batch_size, timeout=timeout), sink)
    grpc_port, http_port = free_port(), free_port()
    config = OTLPReceiverConfig.model_validate({"protocols": {
        "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}, "http": {"endpoint": f"127.0.0.1:{http_port}"}}})
    receiver = OTLPReceiver(ComponentId("otlp"), config, batch)
    host = Host(telemetry=telemetry)
    batch.start(host)
    receiver.start(host)
    try:
        yield receiver, telemetry, {"grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"}
    finally:
        receiver.shutdown()
        batch.shutdown()


def _send_all(protocol: str, endpoint: str, bodies: list[bytes]) -> list[str]:
    """Every body at once, one client thread each; what each was answered."""
    if protocol == "http":
        def send(body: bytes) -> str:
            response = httpx.post(f"http://{endpoint}/v1/traces", content=body, timeout=PATIENCE,
                                  headers={"content-type": "application/x-protobuf"})
            return str(response.status_code)
    else:
        channel = grpc.insecure_channel(endpoint)
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)

        def send(body: bytes) -> str:
            try:
                export(body, timeout=PATIENCE)
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name
    with ThreadPoolExecutor(len(bodies)) as clients:
        try:
            return list(clients.map(send, bodies))
        finally:
            if protocol == "grpc":
                channel.close()


def _counter(telemetry: SelfTelemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name + "_total", labels) or 0.0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_more_requests_than_threads_fill_one_batch(protocol):
    assert IN_FLIGHT > _SMALL_THREADS, "the test must hold more requests than the receiver has threads"
    sink = Sink()
    bodies = [make_request(SPANS)[0].SerializeToString() for _ in range(IN_FLIGHT)]
    with running_receiver(sink, send_batch_size=IN_FLIGHT * SPANS) as (_receiver, telemetry, endpoints):
        answers = _send_all(protocol, endpoints[protocol], bodies)
    ok = "200" if protocol == "http" else "OK"
    assert answers == [ok] * IN_FLIGHT
    # one batch, sent because it was full: every request waited in it at the same time
    assert _spans_per_batch(sink) == [IN_FLIGHT * SPANS]
    assert _counter(telemetry, "otelcol_processor_batch_batch_size_trigger_send", processor="batch") == 1
    assert _counter(telemetry, "otelcol_processor_batch_timeout_trigger_send", processor="batch") == 0
    assert _counter(telemetry, "otelcol_receiver_accepted_spans", receiver="otlp", transport=protocol) == IN_FLIGHT * SPANS


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_refused_batch_refuses_every_request_in_it(protocol):
    """The answer still comes from the batch being taken: an exporter that refuses it refuses every
    request that waited in it (429 / RESOURCE_EXHAUSTED, to be retried), and none is counted accepted."""
    sink = Sink(fail=ResourceExhaustedError("queue full", retry_after_s=2))
    count = 20
    bodies = [make_request(SPANS)[0].SerializeToString() for _ in range(count)]
    with running_receiver(sink, send_batch_size=count * SPANS) as (_receiver, telemetry, endpoints):
        answers = _send_all(protocol, endpoints[protocol], bodies)
    assert answers == ["429" if protocol == "http" else "RESOURCE_EXHAUSTED"] * count
    assert _counter(telemetry, "otelcol_receiver_accepted_spans", receiver="otlp", transport=protocol) == 0
    assert _counter(telemetry, "otelcol_receiver_refused_spans", receiver="otlp", transport=protocol,
                    reason="retryable") == count * SPANS


def test_http_429_carries_retry_after_from_a_refused_batch():
    sink = Sink(fail=ResourceExhaustedError("queue full", retry_after_s=3))
    with running_receiver(sink, send_batch_size=1) as (_receiver, _telemetry, endpoints):
        response = httpx.post(f"http://{endpoints['http']}/v1/traces", content=make_request(5)[0].SerializeToString(),
                              headers={"content-type": "application/x-protobuf"}, timeout=PATIENCE)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


# --- the contract the receiver relies on -------------------------------------------------------

class _Traces:
    """The little of pdata.Traces the batch processor uses."""

    def __init__(self, spans: int):
        self.spans = spans

    def span_count(self) -> int:
        return self.spans

    @classmethod
    def merge(cls, parts):
        return cls(sum(p.spans for p in parts))


def test_batch_blocks_callers_outside_deferring():
    """Any caller that did not ask for a deferred answer still returns only once its batch is taken."""
    sink = Sink()
    batch = BatchProcessor(ComponentId("batch"), BatchConfig(send_batch_size=1000, timeout=0.05), sink)
    batch.start(Host())
    try:
        batch.consume(_Traces(3))
        assert _spans_per_batch(sink) == [3]
    finally:
        batch.shutdown()


def test_batch_defers_inside_deferring_and_settles_when_taken():
    sink = Sink()
    batch = BatchProcessor(ComponentId("batch"), BatchConfig(send_batch_size=10, timeout=TIMER), sink)
    batch.start(Host())
    released, accepted = [], []

    @contextlib.contextmanager
    def admission():
        yield
        released.append(True)

    try:
        with acks.deferring() as first:
            first.hold(admission())
            batch.consume(_Traces(6))
            acks.on_accepted(lambda: accepted.append("first"))
        settled = first.settled()
        assert sink.batches == [] and not settled.done() and not released and not accepted
        with acks.deferring() as second:  # fills the batch: sent in this thread
            batch.consume(_Traces(4))
        assert _spans_per_batch(sink) == [10]
        assert second.settled().result(timeout=5) is None
        assert settled.result(timeout=5) is None
        assert released == [True] and accepted == ["first"]
    finally:
        batch.shutdown()


def test_a_failed_batch_fails_the_deferred_answer_and_releases_its_holds():
    refusal = ResourceExhaustedError("queue full")
    batch = BatchProcessor(ComponentId("batch"), BatchConfig(send_batch_size=5, timeout=TIMER),
                           Sink(fail=refusal))
    batch.start(Host())
    released, accepted = [], []

    @contextlib.contextmanager
    def admission():
        try:
            yield
        finally:
            released.append(True)

    try:
        with acks.deferring() as pending:
            pending.hold(admission())
            batch.consume(_Traces(5))
            acks.on_accepted(lambda: accepted.append(True))
        with pytest.raises(ResourceExhaustedError):
            pending.settled().result(timeout=5)
        assert released == [True] and accepted == []
    finally:
        batch.shutdown()


def test_a_request_refused_while_handing_over_releases_its_holds_and_is_not_accepted():
    released, accepted = [], []
    outstanding: Future = Future()

    @contextlib.contextmanager
    def admission():
        yield
        released.append(True)

    with pytest.raises(ValueError):
        with acks.deferring() as pending:
            pending.hold(admission())
            assert acks.defer(outstanding)
            acks.on_accepted(lambda: accepted.append(True))
            raise ValueError("refused by a later stage")
    assert not released  # what was already deferred still holds the request's memory
    outstanding.set_result(None)
    assert released == [True] and accepted == []


def test_outside_deferring_nothing_is_deferred():
    ran = []
    assert acks.defer(Future()) is False
    acks.on_accepted(lambda: ran.append(True))
    assert ran == [True]


def test_a_batch_counts_as_taken_only_once_a_later_batch_took_it():
    """batch -> batch: a request is answered when the second batch is taken, not when the first
    batch it joined was handed to the second (nor is that wait owed to the request that filled it)."""
    sink = Sink()
    second = BatchProcessor(ComponentId("batch/2"), BatchConfig(send_batch_size=20, timeout=TIMER), sink)
    first = BatchProcessor(ComponentId("batch/1"), BatchConfig(send_batch_size=10, timeout=TIMER), second)
    for processor in (second, first):
        processor.start(Host())
    stored_when_answered: list[list[int]] = []
    try:
        with acks.deferring() as waiting_request:
            first.consume(_Traces(5))
        answer = waiting_request.settled()
        answer.add_done_callback(lambda _: stored_when_answered.append(_spans_per_batch(sink)))
        # fills the first batch, which the second takes without being full
        filler = threading.Thread(target=_consume_deferred, args=(first, 5))
        filler.start()
        _consume_deferred(first, 10)  # fills a first batch again, and with it the second
        filler.join(10)
        assert answer.result(timeout=5) is None
        assert stored_when_answered == [[20]]
    finally:
        for processor in (first, second):
            processor.shutdown()


def _consume_deferred(batch: BatchProcessor, spans: int) -> None:
    with acks.deferring() as pending:
        batch.consume(_Traces(spans))
    pending.settled().result(timeout=10)
