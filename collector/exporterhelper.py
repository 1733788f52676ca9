"""Timeout, retry and the sending queue, composed around every exporter's one push function.

As in the contrib collector's exporterhelper, an exporter only writes `push(request)` (an
`ExportRequest`: the batch's serialized payloads, its span count, the time it may take and a
dedup token); this module gives every exporter the same `timeout`, `retry_on_failure` and
`sending_queue` settings, as a chain of small senders:

    consume -> QueueSender -> SplitSender -> RetrySender -> TimeoutSender -> PushSender(push)

Each sender does one thing and hands the request on; `QueuedRetryExporter` builds the chain and
runs its lifecycle (the queue sender's consumer thread starts and drains with the component).

    exporters:
      clickhouse:
        timeout: 10s
        retry_on_failure: {enabled: true, initial_interval: 1s, max_interval: 30s, max_elapsed_time: 0s}
        sending_queue:
          enabled: true
          storage: file_storage      # a file_storage extension: the queue survives kill -9
          max_size_mib: 512          # the queue's bound in serialized bytes
          max_batch_spans: 50000     # queued requests are merged into pushes of at most this many spans...
          flush_interval: 200ms      # ...waiting at most this long for more
          num_consumers: 2           # pushes in flight at once, each its own batch (otelcol's key)
          batch: {sizer: bytes, max_size: 25165824}   # ...and at most this many bytes (larger ones are split)

`consume` puts the batch in the queue (on disk when `storage` names a `file_storage` extension)
and returns: the receiver acknowledges only then. Each exporter has its own queue and consumer
threads, so a slow or stuck destination delays only its own exporter; the fan-out asks every queue
for room before giving a batch to any (see service.FanOut), so a queue that has filled up during
a long outage refuses new data for the whole pipeline (backpressure: RESOURCE_EXHAUSTED / 429)
rather than storing it in only some destinations. With a disk queue a batch is never dropped for
a retryable failure; a permanent failure (the destination refuses the data itself) drops the
batch at once, counted in `otelcol_exporter_send_failed_spans` and logged (rate-limited).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Literal, Protocol

from pydantic import Field

from collector.component import (
    Component, ComponentId, ConsumeError, Host, Kind, PermanentError, RetryableError, StrictConfig,
)
from collector.confighelpers import Duration
from collector.otlp_split import WireFormatError, split_request
from collector.pdata import Traces
from collector.persistent_queue import DiskQueue, MemoryQueue, QueuedBatch
from collector.ratelimited_log import RateLimitedLog

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class RetryConfig(StrictConfig):
    enabled: bool = True
    initial_interval: Duration = 1.0
    randomization_factor: float = Field(0.5, ge=0, le=1)
    multiplier: float = Field(1.5, ge=1)
    max_interval: Duration = 30.0
    # 0 = keep retrying. Applies only to in-memory queues: a disk queue never gives up on a batch.
    max_elapsed_time: Duration = 300.0


class BatchConfig(StrictConfig):
    """otelcol's `sending_queue.batch`, measured in serialized bytes (the only sizer here)."""

    sizer: Literal["bytes"] = "bytes"
    # No push is larger: queued requests are merged up to it, a larger one is split. Insert size
    # sets the embedded engine's cost (its merges took 49 us/span after 4k-span inserts, 20 after
    # 50k: bench/README.md), so ClickHouse takes large pushes; OTLP exporters default below the
    # 4 MiB that OTLP receivers accept.
    max_size: int = Field(24 * MIB, gt=1024)


class QueueConfig(StrictConfig):
    enabled: bool = True
    # Id of a `file_storage` extension; without it the queue lives in memory and dies with the process.
    storage: str | None = None
    max_size_mib: float = Field(256, gt=0)
    # Converting and inserting a batch transiently takes several times its serialized size: a
    # span bound keeps that memory bounded whatever the span size.
    max_batch_spans: int = Field(50_000, gt=0)
    # How long a consumer waits for more data before pushing a partial batch.
    flush_interval: Duration = 0.2
    # Consumer threads, each taking its own batch (otelcol: num_consumers, default 10). Two let one
    # batch be converted while the previous one is written: a clickhouse push is a conversion
    # (native, off the GIL) then an insert, and the embedded engine takes one insert at a time. Each
    # one more holds one more batch in memory while it is pushed.
    num_consumers: int = Field(2, ge=1, le=64)
    batch: BatchConfig = BatchConfig()


class ExporterSettings(StrictConfig):
    """Base for exporter configs: the settings exporterhelper gives every exporter."""

    timeout: Duration = Field(10.0, gt=0)
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: QueueConfig = QueueConfig()

    def references(self) -> dict:
        storage = self.sending_queue.storage if self.sending_queue.enabled else None
        return {"sending_queue.storage": (Kind.EXTENSION, storage)} if storage else {}


@dataclass(frozen=True)
class ExportRequest:
    """What a push function gets: one batch, serialized, with its limits."""

    payloads: tuple[bytes, ...]  # serialized ExportTraceServiceRequests; their concatenation is one
    spans: int
    timeout_s: float
    # Stable across replays of the same queued batch (and part of it): lets a store drop a batch
    # it already has. Empty when the request was never queued.
    dedup_token: str = ""
    # The batch was being delivered when a previous process stopped: the store may hold all, part
    # or none of it, and its dedup token alone does not say which (see the clickhouse exporter).
    replayed: bool = False

    def data(self) -> bytes:
        """The whole batch as one serialized ExportTraceServiceRequest."""
        return self.payloads[0] if len(self.payloads) == 1 else b"".join(self.payloads)

    def traces(self) -> Traces:
        """The batch parsed; raises PermanentError for bytes that are not OTLP."""
        return Traces.from_protobuf(self.data())


PushFunc = Callable[[ExportRequest], None]


class Sender(Protocol):
    def send(self, request: ExportRequest) -> None: ...


class ExportTimeout(TimeoutError):
    """A push did not return within `timeout`: retryable (the destination may be slow or gone)."""


class _Stopping(Exception):
    pass


class PushSender:
    """The end of the chain: the exporter's own push function."""

    def __init__(self, push: PushFunc):
        self.push = push

    def send(self, request: ExportRequest) -> None:
        self.push(request)


class TimeoutSender:
    """Enforces `timeout` on every push, whatever the push does inside (a client without a deadline,
    an embedded engine that cannot be interrupted): the push runs on a thread of its own and the
    sender stops waiting after `timeout`. A push that timed out may still complete: the request
    is retried with the same dedup token, so a store that deduplicates (ClickHouse's
    insert_deduplication_token) keeps it once; an OTLP destination may receive it twice
    (at-least-once, as otelcol). While a timed-out push has not returned, no other push is started
    (by any consumer): attempts fail at once and are retried, so a stuck destination holds one
    thread, not one per try or per consumer."""

    def __init__(self, exporter_id: ComponentId, next_sender: Sender, timeout_s: float):
        self.id, self.next, self.timeout_s = exporter_id, next_sender, timeout_s
        self._lock = threading.Lock()
        self._timed_out: list[threading.Thread] = []  # pushes given up on that may not have returned

    def send(self, request: ExportRequest) -> None:
        request = replace(request, timeout_s=self.timeout_s)  # the push's own deadline (gRPC, HTTP) is this one
        with self._lock:
            self._timed_out = [push for push in self._timed_out if push.is_alive()]
            if self._timed_out:
                raise ExportTimeout(f"a previous push (timed out after {self.timeout_s:g}s) has not returned yet")
        failure: list[BaseException] = []

        def push() -> None:
            try:
                self.next.send(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting sender below
                failure.append(exc)

        # A daemon thread per push (pushes are whole batches: its cost does not show): a push that
        # never returns must not keep the process from exiting at shutdown.
        running = threading.Thread(target=push, name=f"push-{self.id}", daemon=True)
        running.start()
        running.join(self.timeout_s)
        if running.is_alive():
            with self._lock:
                self._timed_out.append(running)
            raise ExportTimeout(f"push did not complete within the {self.timeout_s:g}s timeout")
        if failure:
            raise failure[0]


class RetrySender:
    """Retries what failed for a reason that may pass, with exponential backoff and jitter, waiting
    at least what the destination asked (gRPC RetryInfo, HTTP Retry-After). A PermanentError is
    never retried. `give_up`: stop after `max_elapsed_time` (in-memory queue, or no queue)."""

    def __init__(self, exporter_id: ComponentId, next_sender: Sender, cfg: RetryConfig, stop: threading.Event,
                 give_up: bool, on_failure: Callable[[], None]):
        self.id, self.next, self.cfg, self.stop, self.give_up = exporter_id, next_sender, cfg, stop, give_up
        self.on_failure = on_failure

    def send(self, request: ExportRequest) -> None:
        retry = self.cfg
        interval, started, attempt = retry.initial_interval, time.monotonic(), 0
        while True:
            attempt += 1
            try:
                self.next.send(request)
                return
            except PermanentError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure of a destination is worth a retry
                self.on_failure()
                elapsed = time.monotonic() - started
                delay = interval * (1 + retry.randomization_factor * (2 * random.random() - 1))
                if isinstance(exc, RetryableError):  # the destination said when to come back
                    delay = max(delay, exc.retry_after_s)
                out_of_time = self.give_up and retry.max_elapsed_time and elapsed + delay > retry.max_elapsed_time
                if not retry.enabled or out_of_time:
                    raise ConsumeError(f"giving up after {attempt} attempts in {elapsed:.1f}s: {exc}") from exc
                log.warning("exporter %s: push failed (attempt %d), retrying in %.1fs: %s", self.id, attempt, delay, exc)
                if self.stop.wait(delay):
                    raise _Stopping() from exc
                interval = min(interval * retry.multiplier, retry.max_interval)


def open_queue(component_id: ComponentId, queue_cfg: QueueConfig, host: Host) -> MemoryQueue | DiskQueue:
    max_bytes = int(queue_cfg.max_size_mib * MIB)
    if queue_cfg.storage:
        storage = host.extension(queue_cfg.storage)
        return DiskQueue(storage.path_for(f"exporter-{component_id}.queue.sqlite"), max_bytes)
    return MemoryQueue(max_bytes)


class QueueWriter:
    """An exporter as an ingest process sees it (`service.ingest_workers`): it only puts batches
    in the exporter's disk queue. The main process owns the exporter, and consumes the queue."""

    def __init__(self, component_id: ComponentId, settings: ExporterSettings):
        self.id, self.settings = component_id, settings
        self._queue: DiskQueue | None = None

    def start(self, host: Host) -> None:
        self._queue = open_queue(self.id, self.settings.sending_queue, host)

    def check_room(self, size: int) -> None:
        self._queue.check_room(size)

    def consume(self, traces: Traces) -> None:
        self._queue.put(traces.to_protobuf(), traces.span_count())

    def shutdown(self) -> None:
        if self._queue is not None:
            self._queue.close()


def _is_unreachable(exc: BaseException) -> bool:
    """True when an error (or any error it wraps) says the destination cannot be reached right now."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in (
            "NewConnectionError", "MaxRetryError", "ConnectTimeoutError",
        ):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class ExporterTelemetry:
    """The counters every sender of one exporter reports to (otelcol's exporter metrics), and the
    rate-limited log of what it drops. Counting starts once the host's telemetry is there."""

    def __init__(self, exporter_id: ComponentId):
        self.id = exporter_id
        self.telemetry = None
        self._drops = RateLimitedLog(log, interval_s=10)

    def count(self, name: str, value: int) -> None:
        if self.telemetry is not None:
            self.telemetry.count(name, value, exporter=str(self.id))

    def drop(self, spans: int, why: str, reason: str = "permanent") -> None:
        self.count("exporter_send_failed_spans", spans)
        self._drops.error(reason, "exporter %s: dropping %d spans: %s", self.id, spans, why)

    def queue_size(self, queue: MemoryQueue | DiskQueue) -> None:
        if self.telemetry is not None:
            items, size = queue.stats()
            self.telemetry.queue_size(str(self.id), items, size, queue.max_bytes)


class SplitSender:
    """Sends a request larger than `sending_queue.batch.max_size` as parts (spans are never cut;
    a span larger than the limit on its own is dropped). A part the destination refuses for good is
    dropped (counted, logged); the other parts go on."""

    def __init__(self, next_sender: Sender, max_size: int, telemetry: ExporterTelemetry):
        self.next, self.max_size, self.telemetry = next_sender, max_size, telemetry

    def send(self, request: ExportRequest) -> None:
        parts = [request] if sum(map(len, request.payloads)) <= self.max_size else self._split(request)
        for part in parts:
            try:
                self.next.send(part)
                self.telemetry.count("exporter_sent_spans", part.spans)
            except PermanentError as exc:
                self.telemetry.drop(part.spans, str(exc))

    def _split(self, request: ExportRequest) -> list[ExportRequest]:
        try:
            result = split_request(request.data(), self.max_size)
        except WireFormatError as exc:
            self.telemetry.drop(request.spans, f"unreadable batch: {exc}")
            return []
        if result.oversize_spans:
            self.telemetry.drop(result.oversize_spans, f"{result.oversize_spans} spans are larger than "
                                f"sending_queue.batch.max_size ({self.max_size} bytes) on their own "
                                f"(largest: {result.largest_oversize} bytes)", reason="too_large")
        self.telemetry.count("exporter_split_requests", len(result.parts))
        # Part tokens are stable across replays: the split of the same batch is the same.
        return [ExportRequest((data,), spans, request.timeout_s, f"{request.dedup_token}:{index}" if request.dedup_token else "",
                              request.replayed)
                for index, (data, spans) in enumerate(result.parts)]


class QueueSender:
    """The sending queue, the chain's first sender: `send` puts the request in the queue (in memory,
    or on disk with a `file_storage` extension, fsync'd) and returns, and the receiver acknowledges
    then. Its consumer threads merge queued requests into pushes (`max_batch_spans`, `batch.max_size`,
    `flush_interval`) and hand each to the next sender, with a dedup token stable across replays;
    `num_consumers` threads do so at once, each with its own batch (acknowledged in any order);
    a request the next sender gave up on (an in-memory queue's `max_elapsed_time`) is dropped,
    one interrupted by shutdown stays queued.

    `ready()`: blocks until the destination can take pushes (False when stopping)."""

    def __init__(self, exporter_id: ComponentId, cfg: QueueConfig, next_sender: Sender, stop: threading.Event,
                 ready: Callable[[], bool], telemetry: ExporterTelemetry):
        self.id, self.cfg, self.next, self.stop = exporter_id, cfg, next_sender, stop
        self.ready, self.telemetry = ready, telemetry
        self.queue: MemoryQueue | DiskQueue | None = None
        self._consumers: list[threading.Thread] = []

    def start(self, host: Host) -> None:
        self.queue = open_queue(self.id, self.cfg, host)
        self._consumers = [threading.Thread(target=self._consume_loop, name=f"exporter-{self.id}-{n}", daemon=True)
                           for n in range(self.cfg.num_consumers)]
        for consumer in self._consumers:
            consumer.start()

    def check_room(self, size: int) -> None:
        if self.queue is not None:
            self.queue.check_room(size)

    def send(self, request: ExportRequest) -> None:
        self.queue.put(request.data(), request.spans)
        self.telemetry.queue_size(self.queue)

    def pending(self) -> int:
        """Requests still queued (the ingest processes' puts included)."""
        return self.queue.stats()[0] if self.queue is not None else 0

    def shutdown(self, drain_timeout_s: float) -> None:
        """Deliver for up to `drain_timeout_s`; a disk queue keeps the rest for the next start."""
        if self.queue is None:
            return
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and self.pending() > 0:
            time.sleep(0.05)
        self.stop.set()
        for consumer in self._consumers:
            consumer.join(timeout=max(0.5, deadline - time.monotonic() + 5))
        left = self.pending()
        if left and not self.queue.durable:
            log.error("exporter %s: %d queued requests lost at shutdown (in-memory queue)", self.id, left)
        elif left:
            log.warning("exporter %s: %d requests stay in the disk queue for the next start", self.id, left)
        self.queue.close()

    def _consume_loop(self) -> None:
        if not self.ready():
            return
        while not self.stop.is_set():
            batch = self.queue.next_batch(self.cfg.max_batch_spans, self.cfg.batch.max_size, self.cfg.flush_interval)
            if batch is not None:
                self._deliver(batch)
            self.telemetry.queue_size(self.queue)  # ingest processes may have changed it meanwhile

    def _deliver(self, batch: QueuedBatch) -> None:
        # The queue's instance id makes the token unique across queue files and process lifetimes;
        # the batch id makes it stable across replays of this batch.
        request = ExportRequest(tuple(batch.payloads), batch.spans, timeout_s=0.0,  # TimeoutSender sets it
                                dedup_token=f"{self.id}:{self.queue.instance}:{batch.id}", replayed=batch.replayed)
        if batch.replayed:
            log.info("exporter %s: replaying batch %d (%d spans), which was being delivered when the collector "
                     "last stopped", self.id, batch.id, batch.spans)
        try:
            self.next.send(request)
        except _Stopping:
            self.queue.requeue(batch)
            return
        except ConsumeError as exc:  # an in-memory queue's retries gave up on it
            self.telemetry.drop(batch.spans, str(exc))
        self.queue.ack(batch)


class QueuedRetryExporter(Component):
    """An exporter: its one push function at the end of the sender chain, as a pipeline consumer.

        consume -> QueueSender -> SplitSender -> RetrySender -> TimeoutSender -> PushSender(push)

    (without `sending_queue`, `consume` starts at SplitSender and returns once pushed).
    `start`/`shutdown`: the exporter's own (connect, create schema / close), called by this
    component's lifecycle; constructing it starts nothing."""

    def __init__(self, component_id: ComponentId, settings: ExporterSettings, push: PushFunc,
                 start: Callable[[Host], None] | None = None, shutdown: Callable[[], None] | None = None):
        self.id, self.settings, self.push = component_id, settings, push
        self._start_hook, self._shutdown_hook = start, shutdown
        self._stop = threading.Event()
        self._started = threading.Event()
        self._starting = threading.Lock()  # one consumer retries the start; the others wait for it
        self._host: Host | None = None
        self._telemetry = ExporterTelemetry(component_id)
        queue_cfg = settings.sending_queue
        timeout = TimeoutSender(component_id, PushSender(push), settings.timeout)
        # Without a queue (or with one in memory) a batch is given up after max_elapsed_time; a disk
        # queue keeps it until it is delivered or refused.
        retry = RetrySender(component_id, timeout, settings.retry_on_failure, self._stop,
                            give_up=not (queue_cfg.enabled and queue_cfg.storage),
                            on_failure=lambda: self._telemetry.count("exporter_send_failed_requests", 1))
        self._split = SplitSender(retry, queue_cfg.batch.max_size, self._telemetry)
        self._queue = (QueueSender(component_id, queue_cfg, self._split, self._stop, self._start_until_reachable,
                                   self._telemetry) if queue_cfg.enabled else None)

    @property
    def blocks_caller(self) -> bool:
        """Without a sending queue, `consume` pushes (with retries) before it returns."""
        return self._queue is None

    # --- lifecycle ---

    def start(self, host: Host) -> None:
        self._telemetry.telemetry, self._host = host.telemetry, host
        if self._start_hook:
            try:
                self._start_hook(host)
                self._started.set()
            except Exception as exc:
                # A destination that is down when the collector starts must not stop it from
                # accepting data: with a queue, data waits there and the consumer connects later.
                if not (self._queue is not None and _is_unreachable(exc)):
                    raise
                log.warning("exporter %s: destination unreachable at start, queueing until it is back: %s", self.id, exc)
        else:
            self._started.set()
        if self._queue is not None:
            self._queue.start(host)

    def _start_until_reachable(self) -> bool:
        """Retry the exporter's start (connect, create schema) with backoff; False when stopping."""
        with self._starting:
            return self._retry_start()

    def _retry_start(self) -> bool:
        retry = self.settings.retry_on_failure
        interval = retry.initial_interval
        while not self._started.is_set():
            if self._stop.is_set():
                return False
            try:
                self._start_hook(self._host)
                self._started.set()
                log.info("exporter %s: destination reachable, delivering the queue", self.id)
            except Exception as exc:  # noqa: BLE001 - keep trying; the queue bounds what waits
                self._telemetry.count("exporter_send_failed_requests", 1)
                log.warning("exporter %s: destination still unreachable, retrying in %.1fs: %s", self.id, interval, exc)
                if self._stop.wait(interval):
                    return False
                interval = min(interval * retry.multiplier, retry.max_interval)
        return True

    def shutdown(self, drain_timeout_s: float = 10.0) -> None:
        """Flush what can be flushed (only to a destination that was reached); a disk queue keeps the rest."""
        if self._queue is not None:
            self._queue.shutdown(drain_timeout_s if self._started.is_set() else 0)
        self._stop.set()
        if self._shutdown_hook:
            self._shutdown_hook()

    # --- data path ---

    def check_room(self, size: int) -> None:
        """Raise QueueFull now if `consume` of a batch of `size` serialized bytes would: a fan-out
        asks every exporter before giving the batch to any, so a full queue refuses the request
        instead of the others storing it twice when the client retries."""
        if self._queue is not None:
            self._queue.check_room(size)

    def consume(self, traces: Traces) -> None:
        request = ExportRequest((traces.to_protobuf(),), traces.span_count(), self.settings.timeout)
        if self._queue is not None:
            self._queue.send(request)
            return
        try:
            self._split.send(request)
        except _Stopping:
            raise RetryableError(f"exporter {self.id} is shutting down") from None

    def pending(self) -> int:
        """Requests in the sending queue, not yet delivered (0 without a queue)."""
        return self._queue.pending() if self._queue is not None else 0
