"""`debug` exporter: logs what passes through, for trying a pipeline out.

    exporters:
      debug:
        verbosity: basic     # basic: one line per batch; detailed: one line per span
"""

from __future__ import annotations

import logging

from pydantic import Field

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig
from collector.pdata import Traces, service_name

log = logging.getLogger("collector.debug")


class DebugConfig(StrictConfig):
    verbosity: str = Field("basic", pattern="^(basic|normal|detailed)$")


class DebugExporter(Component):
    """Writes to the log as the batch passes: no queue, no retry (a log write does not fail)."""

    def __init__(self, component_id: ComponentId, config: DebugConfig):
        self.id, self.config = component_id, config

    def consume(self, traces: Traces) -> None:
        log.info("%s: %d spans in %d resources", self.id, traces.span_count(), len(traces.resource_spans))
        if self.config.verbosity == "detailed":
            for rs, _scope, span in traces.spans():
                log.info("  %s %s %s trace=%s span=%s %.3fms", service_name(rs.resource), span.name,
                         span.status.code, span.trace_id.hex(), span.span_id.hex(),
                         (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)


factory = Factory("debug", Kind.EXPORTER, DebugConfig, lambda cid, cfg, _next: DebugExporter(cid, cfg))
