"""`health_check` extension: `GET /` answers 200 once every component has started, 503 while stopping.

The body says more: `{"status": "Server available", "memory_limiter": "refusing"}` while a
memory_limiter refuses data. That stays a 200, as in otelcol (whose memory limiter does not make
the collector unhealthy): the collector is up and answering clients with retryable refusals, and a
503 would get it restarted by its orchestrator, dropping what it holds in memory.

    extensions:
      health_check:
        endpoint: 127.0.0.1:13133
"""

from __future__ import annotations

import json

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig
from collector.confighelpers import HostPort
from collector.httpserver import start_http_server, stop_http_server


class HealthCheckConfig(StrictConfig):
    endpoint: HostPort = "127.0.0.1:13133"


class HealthCheck(Component):
    def __init__(self, component_id: ComponentId, config: HealthCheckConfig):
        self.id, self.config = component_id, config
        self.ready = False
        self._server = None
        self._telemetry = None

    def _handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
        answer = {"status": "Server available" if self.ready else "Server not available"}
        limiter = self._telemetry.memory_limiter_state() if self._telemetry is not None else None
        if limiter is not None:
            answer["memory_limiter"] = limiter
        return (200 if self.ready else 503), "application/json", json.dumps(answer).encode()

    def start(self, host) -> None:
        self._telemetry = host.telemetry
        self._server = start_http_server(self.config.endpoint, "health_check", self._handle)

    def shutdown(self) -> None:
        self.ready = False
        stop_http_server(self._server)


factory = Factory("health_check", Kind.EXTENSION, HealthCheckConfig, lambda cid, cfg, _next: HealthCheck(cid, cfg))
