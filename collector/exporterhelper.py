"""Retry, timeout and the sending queue, wrapped around every exporter's push function.

As in the contrib collector's exporterhelper, an exporter only writes `push(traces, request)`;
this module gives every exporter the same `timeout`, `retry_on_failure` and `sending_queue`
settings and behaviour:

    exporters:
      clickhouse:
        timeout: 10s
        retry_on_failure: {enabled: true, initial_interval: 1s, max_interval: 30s, max_elapsed_time: 0s}
        sending_queue: {enabled: true, storage: file_storage, max_size_mib: 512, max_batch_spans: 50000, max_batch_mib: 24}

`consume` puts the batch in the queue (on disk when `storage` names a `file_storage` extension)
and returns: the receiver acknowledges only then. A consumer thread takes batches off the queue
and pushes them, retrying with exponential backoff. With a disk queue a batch is never dropped for
a retryable failure: it waits, and the queue's byte bound turns a long outage into backpressure
(RESOURCE_EXHAUSTED / 429 to clients) instead of loss.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pydantic import Field

from collector.component import Component, ComponentId, ConsumeError, Host, Kind, PermanentError, StrictConfig
from collector.confighelpers import Duration
from collector.pdata import Traces
from collector.persistent_queue import DiskQueue, MemoryQueue, QueuedBatch

log = logging.getLogger(__name__)


class RetryConfig(StrictConfig):
    enabled: bool = True
    initial_interval: Duration = 1.0
    randomization_factor: float = Field(0.5, ge=0, le=1)
    multiplier: float = Field(1.5, ge=1)
    max_interval: Duration = 30.0
    # 0 = keep retrying. Applies only to in-memory queues: a disk queue never gives up on a batch.
    max_elapsed_time: Duration = 300.0


class QueueConfig(StrictConfig):
    enabled: bool = True
    # Id of a `file_storage` extension; without it the queue lives in memory and dies with the process.
    storage: str | None = None
    max_size_mib: float = Field(256, gt=0)
    # Several queued requests are merged into one push of up to this many spans and serialized
    # bytes: large inserts, but bounded memory (converting and inserting a batch transiently
    # takes several times its serialized size). Insert size sets the embedded engine's cost: its
    # background merges took 49 us/span after 4k-span inserts, 20 after 50k (bench/README.md).
    max_batch_spans: int = Field(50_000, gt=0)
    max_batch_mib: float = Field(24, gt=0)
    # How long a consumer waits for more data before pushing a partial batch.
    flush_interval: Duration = 0.2


class ExporterSettings(StrictConfig):
    """Base for exporter configs: the settings exporterhelper gives every exporter."""

    timeout: Duration = 10.0
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: QueueConfig = QueueConfig()

    def references(self) -> dict:
        storage = self.sending_queue.storage if self.sending_queue.enabled else None
        return {"sending_queue.storage": (Kind.EXTENSION, storage)} if storage else {}


@dataclass(frozen=True)
class PushRequest:
    """What a push function gets besides the spans."""

    timeout_s: float
    # Stable across replays of the same queued batch: lets a store drop a batch it already has.
    dedup_token: str


PushFunc = Callable[[Traces, PushRequest], None]
# Optional alternative for queued batches: the batch's serialized ExportTraceServiceRequest payloads,
# unparsed and unmerged (e.g. to convert them in another process). Same retry, timeout and ack.
PushPayloadsFunc = Callable[[list[bytes], PushRequest], None]


class _Stopping(Exception):
    pass


# Fault injection for the durability tests: SIGKILL the process right after the Nth successful push
# of a queued batch, before it is acknowledged in the queue (the store has it, the queue still does
# too). The replay after restart must then be deduplicated by the store. Never set in production.
FAULT_KILL_AFTER_PUSH_ENV = "GENAITRACE_FAULT_KILL_AFTER_PUSH"


def open_queue(component_id: ComponentId, queue_cfg: QueueConfig, host: Host) -> MemoryQueue | DiskQueue:
    max_bytes = int(queue_cfg.max_size_mib * 1024 * 1024)
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


class QueuedRetryExporter(Component):
    """Turns a push function into a pipeline consumer with queue, retry and timeout."""

    def __init__(self, component_id: ComponentId, settings: ExporterSettings, push: PushFunc,
                 start: Callable[[Host], None] | None = None, shutdown: Callable[[], None] | None = None,
                 push_payloads: PushPayloadsFunc | None = None):
        self.id, self.settings, self._push = component_id, settings, push
        self._push_payloads = push_payloads
        self._start_hook, self._shutdown_hook = start, shutdown
        self._queue: MemoryQueue | DiskQueue | None = None
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None
        self._telemetry = None
        self._started = threading.Event()
        self._pushes = 0
        self._kill_after = int(os.environ.get(FAULT_KILL_AFTER_PUSH_ENV) or 0)

    # --- lifecycle ---

    def start(self, host: Host) -> None:
        self._telemetry = host.telemetry
        queue_cfg = self.settings.sending_queue
        self._host = host
        if self._start_hook:
            try:
                self._start_hook(host)
                self._started.set()
            except Exception as exc:
                # A destination that is down when the collector starts must not stop it from
                # accepting data: with a queue, data waits there and the consumer connects later.
                if not (queue_cfg.enabled and _is_unreachable(exc)):
                    raise
                log.warning("exporter %s: destination unreachable at start, queueing until it is back: %s", self.id, exc)
        else:
            self._started.set()
        if queue_cfg.enabled:
            self._queue = open_queue(self.id, queue_cfg, host)
            self._consumer = threading.Thread(target=self._consume_loop, name=f"exporter-{self.id}", daemon=True)
            self._consumer.start()

    def _start_until_reachable(self) -> bool:
        """Retry the exporter's start (connect, create schema) with backoff; False when stopping."""
        retry = self.settings.retry_on_failure
        interval = retry.initial_interval
        while not self._started.is_set():
            try:
                self._start_hook(self._host)
                self._started.set()
                log.info("exporter %s: destination reachable, delivering the queue", self.id)
            except Exception as exc:  # noqa: BLE001 - keep trying; the queue bounds what waits
                self._count("exporter_send_failed_requests", 1)
                log.warning("exporter %s: destination still unreachable, retrying in %.1fs: %s", self.id, interval, exc)
                if self._stop.wait(interval):
                    return False
                interval = min(interval * retry.multiplier, retry.max_interval)
        return True

    def shutdown(self, drain_timeout_s: float = 10.0) -> None:
        """Flush what can be flushed; a disk queue keeps the rest for the next start."""
        if self._queue is not None:
            deadline = time.monotonic() + (drain_timeout_s if self._started.is_set() else 0)
            while time.monotonic() < deadline and self._queue.stats()[0] > 0:
                time.sleep(0.05)
            self._stop.set()
            if self._consumer:
                self._consumer.join(timeout=max(0.5, deadline - time.monotonic() + 5))
            left = self._queue.stats()[0]
            if left and not self._queue.durable:
                log.error("exporter %s: %d queued requests lost at shutdown (in-memory queue)", self.id, left)
            elif left:
                log.warning("exporter %s: %d requests stay in the disk queue for the next start", self.id, left)
            self._queue.close()
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
        if self._queue is None:
            request = PushRequest(self.settings.timeout, "")
            self._send_with_retry(lambda: self._push(traces, request), traces.span_count(), give_up=True)
            return
        self._queue.put(traces.to_protobuf(), traces.span_count())
        self._report_queue()

    def _consume_loop(self) -> None:
        cfg = self.settings.sending_queue
        if not self._start_until_reachable():
            return
        while not self._stop.is_set():
            batch = self._queue.next_batch(cfg.max_batch_spans, int(cfg.max_batch_mib * 1024 * 1024), cfg.flush_interval)
            if batch is None:
                self._report_queue()  # ingest processes may have changed it meanwhile
                continue
            self._deliver(batch)
            self._report_queue()

    def _deliver(self, batch: QueuedBatch) -> None:
        # The queue's instance id makes the token unique across queue files and process lifetimes;
        # the batch id makes it stable across replays of this batch.
        request = PushRequest(self.settings.timeout, f"{self.id}:{self._queue.instance}:{batch.id}")
        if self._push_payloads is not None:
            push_payloads, payloads = self._push_payloads, batch.payloads
            send, spans = (lambda: push_payloads(payloads, request)), batch.spans
        else:
            try:
                traces = Traces.merge(Traces.from_protobuf(p) for p in batch.payloads)
            except PermanentError as exc:  # a corrupt queue entry: drop it, keep the consumer alive
                log.error("exporter %s: dropping %d spans, unreadable queue entry: %s", self.id, batch.spans, exc)
                self._count("exporter_send_failed_spans", batch.spans)
                self._queue.ack(batch)
                return
            send, spans = (lambda: self._push(traces, request)), traces.span_count()
        try:
            self._send_with_retry(send, spans, give_up=not self._queue.durable)
            self._pushes += 1
            if self._kill_after and self._pushes >= self._kill_after:
                log.error("exporter %s: fault injection: SIGKILL after push %d, before ack", self.id, self._pushes)
                os.kill(os.getpid(), signal.SIGKILL)
        except _Stopping:
            self._queue.requeue(batch)
            return
        except ConsumeError as exc:
            log.error("exporter %s: dropping %d spans: %s", self.id, batch.spans, exc)
            self._count("exporter_send_failed_spans", batch.spans)
        self._queue.ack(batch)

    def _send_with_retry(self, send: Callable[[], None], spans: int, give_up: bool) -> None:
        retry = self.settings.retry_on_failure
        interval, started, attempt = retry.initial_interval, time.monotonic(), 0
        while True:
            attempt += 1
            try:
                send()
                self._count("exporter_sent_spans", spans)
                return
            except PermanentError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a store is worth a retry
                self._count("exporter_send_failed_requests", 1)
                elapsed = time.monotonic() - started
                out_of_time = give_up and retry.max_elapsed_time and elapsed + interval > retry.max_elapsed_time
                if not retry.enabled or out_of_time:
                    raise ConsumeError(f"giving up after {attempt} attempts in {elapsed:.1f}s: {exc}") from exc
                delay = interval * (1 + retry.randomization_factor * (2 * random.random() - 1))
                log.warning("exporter %s: push failed (attempt %d), retrying in %.1fs: %s", self.id, attempt, delay, exc)
                if self._stop.wait(delay):
                    raise _Stopping() from exc
                interval = min(interval * retry.multiplier, retry.max_interval)

    # --- telemetry ---

    def _count(self, name: str, value: int) -> None:
        if self._telemetry is not None:
            self._telemetry.count(name, value, exporter=str(self.id))

    def _report_queue(self) -> None:
        if self._telemetry is not None and self._queue is not None:
            items, size = self._queue.stats()
            self._telemetry.queue_size(str(self.id), items, size, self._queue.max_bytes)
