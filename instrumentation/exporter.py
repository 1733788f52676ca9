"""A circuit breaker around the span exporter: a collector that is down costs one export timeout,
not one per batch (without it, exit with a dead collector took ~36 s for 20k spans)."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Callable, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger(__name__)


class ResilientSpanExporter(SpanExporter):
    """After a failed export, drop batches for ``cooldown_s`` instead of retrying each one.

    Memory stays bounded by the BatchSpanProcessor queue (``OTEL_BSP_MAX_QUEUE_SIZE``); the app's
    threads never wait for the collector. ``dropped_spans`` counts what was discarded.
    """

    def __init__(self, inner: SpanExporter, cooldown_s: float = 30.0):
        self.inner = inner
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.dropped_spans = 0
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def export(self, spans: Sequence) -> SpanExportResult:
        if self.is_open:
            with self._lock:
                self.dropped_spans += len(spans)
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not kill the export thread
            _log.debug("span export raised", exc_info=True)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            with self._lock:
                self.failures += 1
                self.dropped_spans += len(spans)
                self._open_until = time.monotonic() + self.cooldown_s
            if self.failures == 1 or self.failures % 100 == 0:
                _log.warning("span export failed; dropping spans for %.0fs (collector down or slow?)",
                             self.cooldown_s)
        else:
            self._open_until = 0.0
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False


class DeferredSpanExporter(SpanExporter):
    """Builds the real exporter on its first use, in the span processor's export thread.

    The OTLP exporters import their transport (``requests``, or ``grpc``) when imported: a few
    hundred milliseconds of the app's start-up for a program that may never end a span.
    """

    def __init__(self, factory: Callable[[], SpanExporter]):
        self._factory = factory
        self._inner: SpanExporter | None = None
        self._lock = threading.Lock()
        self._shut = False
        # A forked child builds its own: the parent's pooled connections are not the child's to use.
        reset = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: (reset() or (lambda: None))())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._inner = None

    def _get(self) -> SpanExporter:
        with self._lock:
            if self._inner is None:
                self._inner = self._factory()
            return self._inner

    def export(self, spans: Sequence) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        return self._get().export(spans)

    def shutdown(self) -> None:
        self._shut = True
        with self._lock:
            inner = self._inner
        if inner is not None:
            inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis)
