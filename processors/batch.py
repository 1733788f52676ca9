"""`batch` processor: merges concurrent requests into larger batches.

    processors:
      batch:
        send_batch_size: 8192      # flush when this many spans are waiting
        timeout: 200ms             # or when the oldest has waited this long

Unlike the Go collector's batch processor, a request is not acknowledged when it enters the
batch but when the batch it joined has been taken by the next consumer (the exporters' durable
queues). Callers wait at most `timeout` longer; in exchange an acknowledged span is never sitting
only in memory, and the disk queue pays one fsync per batch instead of one per request.

A batch is sent when the spans of every request waiting in it reach `send_batch_size`, whichever
thread each came from. A caller that runs the pipeline inside `collector.acks.deferring()` (the
OTLP receiver) does not wait here: it gets the batch's future to wait on (on its event loop), so
the number of requests a batch can gather is not bounded by anyone's thread count. Any other
caller blocks until the batch is taken, as before.

Counted in the collector's metrics (as otelcol's batch processor): batches sent because they were
full, `otelcol_processor_batch_batch_size_trigger_send`, and because the oldest request waited
`timeout`, `otelcol_processor_batch_timeout_trigger_send`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from pydantic import Field

from collector import acks
from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.confighelpers import Duration
from collector.pdata import Traces


class BatchConfig(StrictConfig):
    send_batch_size: int = Field(8192, ge=1)
    timeout: Duration = 0.2


class BatchProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: BatchConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self._lock = threading.Lock()
        self._pending: list[Traces] = []
        self._spans = 0
        self._done: Future = Future()
        self._oldest = 0.0
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._timer: threading.Thread | None = None
        self._telemetry = None

    def start(self, host) -> None:
        """The flush timer starts here, not in the constructor: building a component (as `validate`
        does) has no side effects."""
        self._telemetry = host.telemetry
        self._timer = threading.Thread(target=self._flush_on_timeout, name=f"batch-{self.id}", daemon=True)
        self._timer.start()

    def consume(self, traces: Traces) -> None:
        with self._lock:
            if not self._pending:
                self._oldest = time.monotonic()
                self._wake.notify()
            self._pending.append(traces)
            self._spans += traces.span_count()
            done = self._done
            full = self._spans >= self.config.send_batch_size
            batch = self._take() if full else None
        if batch is not None:
            self._count("processor_batch_batch_size_trigger_send")
            self._send(*batch)
        if not acks.defer(done):  # the caller waits on its own loop; else here, for the answer
            done.result()  # re-raises the downstream error to this request's receiver

    def _take(self) -> tuple[list[Traces], Future]:
        pending, done = self._pending, self._done
        self._pending, self._spans, self._done = [], 0, Future()
        return pending, done

    def _send(self, pending: list[Traces], done: Future) -> None:
        try:
            with acks.waiting():  # taken means taken downstream too, not owed to the request that filled it
                self.next.consume(pending[0] if len(pending) == 1 else type(pending[0]).merge(pending))  # Traces or Logs
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear about it
            done.set_exception(exc)
        else:
            done.set_result(None)

    def _flush_on_timeout(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped and not self._pending:
                    return
                wait = self._oldest + self.config.timeout - time.monotonic()
                batch = self._take() if wait <= 0 or self._stopped else None
            if batch is not None:
                self._count("processor_batch_timeout_trigger_send")
                self._send(*batch)
            else:
                time.sleep(min(wait, self.config.timeout))

    def _count(self, name: str) -> None:
        if self._telemetry is not None:
            self._telemetry.count(name, 1, processor=str(self.id))

    def shutdown(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()
        if self._timer is not None:
            self._timer.join(timeout=5)


factory = Factory("batch", Kind.PROCESSOR, BatchConfig, BatchProcessor, signals=("traces", "logs"),
                  create_logs=BatchProcessor)
