"""The collector's own health metrics, named as otelcol names them, served for Prometheus.

    service:
      telemetry:
        metrics: {address: 127.0.0.1:8888}

Components add their own metrics (e.g. the GenAI span metrics) to `registry`. With ingest
worker processes (`service.ingest_workers`), every process writes its values to files in one
directory (prometheus-client's multiprocess mode) and the main process serves their sum.
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from collector import memory
from collector.confighelpers import split_host_port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # scrapes every few seconds would flood the log
        pass


class _ProcessMemory:
    """The serving process's memory, part by part (`collector.memory.breakdown`), read at scrape time:
    `genaitrace_process_memory_bytes{part=...}`. otelcol reports its RSS and Go heap
    (`otelcol_process_memory_rss`, `otelcol_process_runtime_heap_alloc_bytes`); a Python process
    with an embedded engine needs more parts to say where its memory is."""

    def collect(self):
        family = GaugeMetricFamily("genaitrace_process_memory_bytes",
                                   "This process's memory by part (parts overlap: see collector.memory.breakdown)",
                                   labels=["part"])
        for part, value in sorted(memory.breakdown().items()):
            family.add_metric([part], value)
        yield family


class SelfTelemetry:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir:
            # prometheus-client picks its value store when a metric is created; every metric of
            # this process is created after this point (here and by components).
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
            values.ValueClass = values.get_value_class()
        self.registry = CollectorRegistry()
        r = self.registry
        self._counters = {
            "receiver_accepted_spans": Counter(
                "otelcol_receiver_accepted_spans", "Spans accepted and acknowledged", ["receiver", "transport"], registry=r
            ),
            "receiver_refused_spans": Counter(
                "otelcol_receiver_refused_spans", "Spans refused (bad data or backpressure)", ["receiver", "transport", "reason"], registry=r
            ),
            "receiver_accepted_log_records": Counter(
                "otelcol_receiver_accepted_log_records", "Log records accepted and acknowledged", ["receiver", "transport"], registry=r
            ),
            "receiver_refused_log_records": Counter(
                "otelcol_receiver_refused_log_records", "Log records refused (bad data or backpressure)",
                ["receiver", "transport", "reason"], registry=r
            ),
            "exporter_sent_spans": Counter("otelcol_exporter_sent_spans", "Spans pushed to the destination", ["exporter"], registry=r),
            "exporter_send_failed_spans": Counter(
                "otelcol_exporter_send_failed_spans", "Spans dropped after a permanent failure", ["exporter"], registry=r
            ),
            "exporter_send_failed_requests": Counter(
                "otelcol_exporter_send_failed_requests", "Push attempts that failed (and were retried)", ["exporter"], registry=r
            ),
            "exporter_split_requests": Counter(
                "otelcol_exporter_split_requests", "Requests sent as parts of a batch larger than sending_queue.batch.max_size",
                ["exporter"], registry=r
            ),
            "processor_refused_spans": Counter(
                "otelcol_processor_refused_spans", "Spans refused by a processor (e.g. memory_limiter)", ["processor"], registry=r
            ),
            "processor_batch_batch_size_trigger_send": Counter(
                "otelcol_processor_batch_batch_size_trigger_send", "Batches sent because they were full",
                ["processor"], registry=r
            ),
            "processor_batch_timeout_trigger_send": Counter(
                "otelcol_processor_batch_timeout_trigger_send", "Batches sent because the oldest request waited the timeout",
                ["processor"], registry=r
            ),
            "memory_limiter_refused_requests": Counter(
                "otelcol_memory_limiter_refused_requests", "Requests refused by the memory limiter, by reason "
                "(above_soft_limit, in_flight)", ["processor", "reason"], registry=r
            ),
        }
        # The memory limiter's state: every ingest process measures the same process tree, so the
        # largest value of the live processes is the collector's.
        self._limiter = {
            name: Gauge(f"otelcol_memory_limiter_{name}", text, ["processor"], registry=r, multiprocess_mode="livemax")
            for name, text in (("refusing", "1 while the memory limiter refuses data"),
                               ("used_bytes", "The collector's memory (PSS of every process) at the last check"),
                               ("soft_limit_bytes", "Above this the memory limiter refuses data"),
                               ("hard_limit_bytes", "The memory limit"))
        }
        self._queue_size = Gauge("otelcol_exporter_queue_size", "Requests in the sending queue", ["exporter"], registry=r,
                                 multiprocess_mode="livemax")
        self._queue_bytes = Gauge("otelcol_exporter_queue_bytes", "Bytes in the sending queue", ["exporter"], registry=r,
                                  multiprocess_mode="livemax")
        self._queue_capacity = Gauge("otelcol_exporter_queue_capacity_bytes", "Sending queue bound in bytes", ["exporter"],
                                     registry=r, multiprocess_mode="livemax")
        self._server = None

    def count(self, name: str, value: float, **labels: str) -> None:
        if value:
            self._counters[name].labels(**labels).inc(value)

    def queue_size(self, exporter: str, items: int, size_bytes: int, capacity_bytes: int) -> None:
        self._queue_size.labels(exporter=exporter).set(items)
        self._queue_bytes.labels(exporter=exporter).set(size_bytes)
        self._queue_capacity.labels(exporter=exporter).set(capacity_bytes)

    def memory_limiter(self, processor: str, refusing: bool, used: int, soft: int, hard: int) -> None:
        for name, value in (("refusing", int(refusing)), ("used_bytes", used), ("soft_limit_bytes", soft),
                            ("hard_limit_bytes", hard)):
            self._limiter[name].labels(processor=processor).set(value)

    def memory_limiter_state(self) -> str | None:
        """"refusing" if a memory limiter of any live process refuses, "accepting", or None without one."""
        if self.multiprocess_dir:  # the workers' values, from their files
            families = MultiProcessCollector(None, self.multiprocess_dir).collect()
        else:  # this process's gauge only: the health check asks on every poll
            families = self._limiter["refusing"].collect()
        values = [sample.value for family in families if family.name == "otelcol_memory_limiter_refusing"
                  for sample in family.samples]
        if not values:
            return None
        return "refusing" if max(values) > 0 else "accepting"

    def process_ended(self, pid: int) -> None:
        if self.multiprocess_dir:
            mark_process_dead(pid, self.multiprocess_dir)

    def serve(self, address: str) -> None:
        registry = self.registry
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, self.multiprocess_dir)
        registry.register(_ProcessMemory())
        host, port = split_host_port(address)
        self._server = make_server(host, port, make_wsgi_app(registry), handler_class=_QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="telemetry", daemon=True).start()

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
