"""Wires a validated config into running components, starts them, and stops them in order.

Data flows receiver -> processors (one instance per pipeline) -> fan-out to exporters (shared
across pipelines). Start goes against the flow (exporters first, receivers last) so nothing is
accepted before it has somewhere to go; shutdown goes with it (receivers stop taking data, the
batch processors flush, the exporters drain their queues).
"""

from __future__ import annotations

import logging
import time

from collector.component import ComponentId, Consumer, Host
from collector.config import CollectorConfig, PipelineConfig
from collector.pdata import Traces
from collector.telemetry import SelfTelemetry

log = logging.getLogger(__name__)


class FanOut:
    """Hands the same batch to several consumers; fails if any of them fails."""

    def __init__(self, consumers: list[Consumer]):
        self.consumers = consumers

    def consume(self, traces: Traces) -> None:
        for consumer in self.consumers:
            consumer.consume(traces)


class Service:
    def __init__(self, config: CollectorConfig):
        self.config = config
        self.telemetry = SelfTelemetry()
        self.extensions: dict[ComponentId, object] = {}
        self.exporters: dict[ComponentId, object] = {}
        self.processors: list[object] = []
        self.receivers: dict[ComponentId, object] = {}
        self.started_in_s = 0.0

    def start(self) -> None:
        began = time.monotonic()
        cfg = self.config
        if cfg.telemetry.metrics_address:
            self.telemetry.serve(cfg.telemetry.metrics_address)
        host = Host(
            telemetry=self.telemetry,
            config_path=cfg.path,
            exporter_configs={cid: c.config for cid, c in cfg.exporters.items()},
        )
        for cid in cfg.service_extensions:
            component = cfg.extensions[cid]
            extension = component.factory.create(cid, component.config, None)
            extension.start(host)
            self.extensions[cid] = host.extensions[cid] = extension
        for cid in {cid for p in cfg.pipelines for cid in p.exporters}:
            component = cfg.exporters[cid]
            self.exporters[cid] = component.factory.create(cid, component.config, None)
            self.exporters[cid].start(host)
        heads: dict[ComponentId, list[Consumer]] = {}
        for pipeline in cfg.pipelines:
            head = self._build_pipeline(pipeline, host)
            for cid in pipeline.receivers:
                heads.setdefault(cid, []).append(head)
        for cid, consumers in heads.items():
            component = cfg.receivers[cid]
            self.receivers[cid] = component.factory.create(cid, component.config, FanOut(consumers))
            self.receivers[cid].start(host)
        for extension in self.extensions.values():
            if hasattr(extension, "ready"):
                extension.ready = True
        self.started_in_s = time.monotonic() - began
        log.info("collector started in %.2fs: %d receivers, %d pipelines, %d exporters",
                 self.started_in_s, len(self.receivers), len(cfg.pipelines), len(self.exporters))

    def _build_pipeline(self, pipeline: PipelineConfig, host: Host) -> Consumer:
        consumer: Consumer = FanOut([self.exporters[cid] for cid in pipeline.exporters])
        for cid in reversed(pipeline.processors):
            component = self.config.processors[cid]
            processor = component.factory.create(cid, component.config, consumer)
            processor.start(host)
            self.processors.append(processor)
            consumer = processor
        return consumer

    def shutdown(self) -> None:
        for extension in self.extensions.values():
            if hasattr(extension, "ready"):
                extension.ready = False
        for stage in (self.receivers.values(), reversed(self.processors), self.exporters.values(),
                      reversed(list(self.extensions.values()))):
            for component in stage:
                try:
                    component.shutdown()
                except Exception:  # noqa: BLE001 - keep shutting the rest down
                    log.exception("error shutting down %s", getattr(component, "id", component))
        self.telemetry.shutdown()

