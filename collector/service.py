"""Wires a validated config into running components, starts them, and stops them in order.

Data flows receiver -> processors (one instance per pipeline) -> fan-out to exporters (shared
across pipelines of a signal). A logs pipeline is built the same way from each component's logs
instance (`Factory.create_logs`); an exporter in both a traces and a logs pipeline runs twice,
one instance (and queue) per signal. Start goes against the flow (exporters first, receivers last) so nothing is
accepted before it has somewhere to go; shutdown goes with it (receivers stop taking data, the
batch processors flush, the exporters drain their queues).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import Connection

from collector import memory
from collector.child_process import detach_from_parent_signals
from collector.component import (CallerBlocking, ComponentId, Consumer, Host, LogsReceiver, PermanentError,
                                 ReadinessReporter, RoomChecking, signal_id)
from collector.config import CollectorConfig, PipelineConfig, load_config
from collector.exporterhelper import QueueWriter
from collector.ingest import IngestWorkers
from collector.pdata import Traces
from collector.telemetry import SelfTelemetry

log = logging.getLogger(__name__)


class BuildError(Exception):
    """A component's factory refused its (valid-looking) settings: `key` is its config section, e.g.
    `processors.genai_cost`, so the error can be located like any other config error."""

    def __init__(self, key: str, cause: Exception):
        super().__init__(f"{key}: {cause}")
        self.key, self.cause = key, cause


def _create(key: str, create, *args):
    try:
        return create(*args)
    except Exception as exc:  # noqa: BLE001 - any factory failure is reported against its config key
        raise BuildError(key, exc) from exc


class FanOut:
    """Hands the same batch to several consumers; fails if any of them fails.

    Exporters with a sending queue are asked for room first (`check_room`), so one full queue
    refuses the request before any exporter has it: otherwise the client's retry would store it
    twice in the others. (A queue filling between the check and the put can still do that.)
    A queued exporter's `consume` only puts the batch in its queue; one without a queue
    (`blocks_caller`) pushes in the caller's thread, so it runs beside the others, and a slow or
    stuck destination delays only the answer to this request, not the other exporters' copies."""

    def __init__(self, consumers: list[Consumer]):
        self.consumers = consumers
        self._blocking = [c for c in consumers if isinstance(c, CallerBlocking) and c.blocks_caller] if len(consumers) > 1 else []
        self._room_checks = [c.check_room for c in consumers if isinstance(c, RoomChecking)]
        # Threads are created on first use only: building a pipeline starts nothing.
        self._pool = concurrent.futures.ThreadPoolExecutor(len(self._blocking), "fanout") if self._blocking else None

    def consume(self, traces: Traces) -> None:
        if len(self.consumers) == 1:
            self.consumers[0].consume(traces)
            return
        size = traces.serialized_size()  # once, not per exporter; also writes pending patches before threads read
        for check_room in self._room_checks:
            check_room(size)
        running = [self._pool.submit(consumer.consume, traces) for consumer in self._blocking]
        failure: BaseException | None = None
        for consumer in self.consumers:
            if consumer in self._blocking:
                continue
            try:
                consumer.consume(traces)
            except Exception as exc:  # noqa: BLE001 - the others still get the batch; the first error is raised
                failure = failure or exc
        for future in running:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001
                failure = failure or exc
        if failure is not None:
            raise failure


class NoPipeline:
    """The consumer of a receiver for a signal no pipeline takes from it."""

    def __init__(self, signal: str):
        self.signal = signal

    def consume(self, _data) -> None:
        raise PermanentError(f"no {self.signal} pipeline takes data from this receiver")


class Service:
    """`role`: "all" runs everything here; with `service.ingest_workers` > 1 the main process runs
    as "main" (extensions, exporters, the worker processes) and each worker as "ingest"
    (receivers and processors, exporters reduced to writers of their disk queues); see ingest.py."""

    def __init__(self, config: CollectorConfig, role: str = "all", metrics_dir: str | None = None):
        memory.limit_malloc_arenas()  # before any thread starts; see there why
        if role == "all" and config.ingest_workers > 1:
            role = "main"
            metrics_dir = tempfile.mkdtemp(prefix="genaitrace-metrics-")
        self.config, self.role, self._metrics_dir = config, role, metrics_dir
        self.telemetry = SelfTelemetry(metrics_dir)
        self.extensions: dict[ComponentId, object] = {}
        self.exporters: dict[ComponentId, object] = {}
        self.processors: list[object] = []
        self.receivers: dict[ComponentId, object] = {}
        self.workers: IngestWorkers | None = None
        self.started_in_s = 0.0
        self._stopping = False
        self._built = False
        self._started: set[int] = set()  # id() of each component started: only those are shut down

    def build(self) -> None:
        """Create every component this process runs, wired as it will run, and start none: no port
        is bound and no thread started. `start` starts them; `genaitrace validate` stops here."""
        for cid in self.config.service_extensions:
            component = self.config.extensions[cid]
            extension = _create(f"extensions.{cid}", component.factory.create, cid, component.config, None)
            if self.role == "ingest" and not extension.ingest_side:
                continue  # serves something (a port, the store): the main process runs it
            self.extensions[cid] = extension
        for pipeline_signal, cid in dict.fromkeys((p.signal, cid) for p in self.config.pipelines for cid in p.exporters):
            component = self.config.exporters[cid]
            if self.role == "ingest":  # the main process's exporter for this signal reads the same queue file
                self.exporters[signal_id(cid, pipeline_signal)] = QueueWriter(signal_id(cid, pipeline_signal), component.config)
            else:
                create = component.factory.create if pipeline_signal == "traces" else component.factory.create_logs
                self.exporters[signal_id(cid, pipeline_signal)] = _create(f"exporters.{cid}", create, cid, component.config, None)
        if self.role != "main":
            self._build_pipelines()
        self._built = True

    def start(self) -> None:
        began = time.monotonic()
        cfg = self.config
        if cfg.telemetry.metrics_address and self.role != "ingest":
            self.telemetry.serve(cfg.telemetry.metrics_address)
        host = Host(
            telemetry=self.telemetry,
            config_path=cfg.path,
            exporter_configs={cid: c.config for cid, c in cfg.exporters.items()},
            shared_ports=self.role == "ingest",
        )
        if not self._built:
            self.build()
        for cid, extension in self.extensions.items():
            self._start(extension, host)
            host.extensions[cid] = extension
        for exporter in self.exporters.values():
            self._start(exporter, host)
        if self.role == "main":
            self.workers = IngestWorkers(cfg, self._metrics_dir, self.telemetry, worker_main=run_worker,
                                         on_health=self._set_ready)
            self.workers.start()
        else:  # processors from each pipeline's end to its start, then the receivers
            for component in (*self.processors, *self.receivers.values()):
                self._start(component, host)
        memory.tune_garbage_collector()
        self._set_ready(True)
        self.started_in_s = time.monotonic() - began
        log.info("collector started in %.2fs: %d receivers, %d pipelines, %d exporters, %d ingest workers",
                 self.started_in_s, len(self.receivers), len(cfg.pipelines), len(self.exporters),
                 cfg.ingest_workers if self.role == "main" else 0)

    def _start(self, component, host: Host) -> None:
        self._started.add(id(component))  # before: one that fails half-way is shut down too
        component.start(host)

    def _build_pipelines(self) -> None:
        heads: dict[tuple[ComponentId, str], list[Consumer]] = {}
        for pipeline in self.config.pipelines:
            head = self._build_pipeline(pipeline)
            for cid in pipeline.receivers:
                heads.setdefault((cid, pipeline.signal), []).append(head)
        for cid in dict.fromkeys(cid for cid, _ in heads):
            component = self.config.receivers[cid]
            traces = heads.get((cid, "traces"))
            receiver = _create(f"receivers.{cid}", component.factory.create, cid, component.config,
                               FanOut(traces) if traces else NoPipeline("traces"))
            if (cid, "logs") in heads:
                logs_receiver: LogsReceiver = receiver
                logs_receiver.set_logs_consumer(FanOut(heads[(cid, "logs")]))
            self.receivers[cid] = receiver

    def _build_pipeline(self, pipeline: PipelineConfig) -> Consumer:
        consumer: Consumer = FanOut([self.exporters[signal_id(cid, pipeline.signal)] for cid in pipeline.exporters])
        for cid in reversed(pipeline.processors):
            component = self.config.processors[cid]
            create = component.factory.create if pipeline.signal == "traces" else component.factory.create_logs
            processor = _create(f"processors.{cid}", create, cid, component.config, consumer)
            self.processors.append(processor)
            consumer = processor
        return consumer

    def _set_ready(self, ready: bool) -> None:
        """What the health check answers: not ready while starting, stopping, or short of a worker."""
        if ready and self._stopping:
            return
        for extension in self.extensions.values():
            if isinstance(extension, ReadinessReporter):
                extension.ready = ready

    def shutdown(self) -> None:
        self._stopping = True
        self._set_ready(False)
        if self.workers is not None:
            self.workers.stop()  # the workers flush into the queues before the exporters drain them
        for stage in (self.receivers.values(), reversed(self.processors), self.exporters.values(),
                      reversed(list(self.extensions.values()))):
            for component in stage:
                if id(component) not in self._started:
                    continue  # built, never started: holds nothing
                try:
                    component.shutdown()
                except Exception:  # noqa: BLE001 - keep shutting the rest down
                    log.exception("error shutting down %s", getattr(component, "id", component))
        self.telemetry.shutdown()
        if self.role == "main" and self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


def run_worker(config_path: str, metrics_dir: str | None, log_level: int, parent_pid: int, ready: Connection) -> None:
    """An ingest worker process (`service.ingest_workers` > 1; ingest.py starts and watches it): the
    receivers and processors of every pipeline, writing to the exporters' queues."""
    detach_from_parent_signals(parent_pid)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s ingest-{os.getpid()} %(name)s: %(message)s")
    config = load_config(config_path)
    # The limit is the collector's; the workers admit requests against shares of its headroom.
    memory.measure_process_tree(parent_pid, admitting_processes=config.ingest_workers)
    service = Service(config, role="ingest", metrics_dir=metrics_dir)
    try:
        service.start()
    except Exception as exc:  # noqa: BLE001 - reported to the main process, which reports it
        ready.send(f"{type(exc).__name__}: {exc}")
        service.shutdown()
        raise SystemExit(1) from None
    ready.send("ready")
    ready.close()
    stop.wait()
    service.shutdown()
