"""`health_check` extension: `GET /` answers 200 once every component has started, 503 while stopping.

    extensions:
      health_check:
        endpoint: 127.0.0.1:13133
"""

from __future__ import annotations

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

    def _handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, str, bytes]:
        if self.ready:
            return 200, "application/json", b'{"status":"Server available"}'
        return 503, "application/json", b'{"status":"Server not available"}'

    def start(self, host) -> None:
        self._server = start_http_server(self.config.endpoint, "health_check", self._handle)

    def shutdown(self) -> None:
        self.ready = False
        stop_http_server(self._server)


factory = Factory("health_check", Kind.EXTENSION, HealthCheckConfig, lambda cid, cfg, _next: HealthCheck(cid, cfg))
