"""`otlphttp` exporter: OTLP/HTTP protobuf, e.g. to Tempo's :4318.

    exporters:
      otlphttp/tempo:
        endpoint: http://tempo:4318          # /v1/traces is appended
        # traces_endpoint: http://tempo:4318/v1/traces   (used as is, overrides endpoint)
        headers: {X-Scope-OrgID: acme}
        compression: gzip
        timeout: 10s
        sending_queue: {storage: file_storage}
"""

from __future__ import annotations

import gzip
import logging
from urllib.parse import urlparse

import httpx
from pydantic import Field, field_validator, model_validator

from collector.component import ComponentId, Factory, Kind, PermanentError
from collector.exporterhelper import ExporterSettings, PushRequest, QueuedRetryExporter
from collector.pdata import ExportTraceServiceResponse, Traces

log = logging.getLogger(__name__)

# OTLP/HTTP: retry these; every other 4xx/5xx means the payload itself is refused.
RETRYABLE_STATUS = {429, 502, 503, 504}


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"invalid endpoint {value!r}; expected http(s)://host:port")
    return value


class OTLPHttpConfig(ExporterSettings):
    endpoint: str | None = None
    traces_endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    compression: str = Field("gzip", pattern="^(gzip|none|)$")

    @field_validator("endpoint", "traces_endpoint")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @model_validator(mode="after")
    def _has_endpoint(self) -> "OTLPHttpConfig":
        if not (self.endpoint or self.traces_endpoint):
            raise ValueError("endpoint (or traces_endpoint) is required, e.g. http://tempo:4318")
        return self

    def url(self) -> str:
        return self.traces_endpoint or self.endpoint.rstrip("/") + "/v1/traces"


class OTLPHttpExporter:
    def __init__(self, component_id: ComponentId, config: OTLPHttpConfig):
        self.id, self.config = component_id, config
        self.url = config.url()
        self.client: httpx.Client | None = None
        self.helper = QueuedRetryExporter(component_id, config, self.push, start=self._start, shutdown=self._close)

    def _start(self, _host) -> None:
        self.client = httpx.Client(headers=self.config.headers)

    def push(self, traces: Traces, request: PushRequest) -> None:
        body = traces.to_protobuf()
        headers = {"Content-Type": "application/x-protobuf"}
        if self.config.compression == "gzip":
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self.client.post(self.url, content=body, headers=headers, timeout=request.timeout_s)
        if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
            raise ConnectionError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise PermanentError(f"{self.url} refused the data: HTTP {response.status_code}: {response.text[:200]}")
        if response.content and response.headers.get("content-type", "").startswith("application/x-protobuf"):
            parsed = ExportTraceServiceResponse.FromString(response.content)
            if parsed.partial_success.rejected_spans:
                log.warning("exporter %s: %s rejected %d spans: %s", self.id, self.url,
                            parsed.partial_success.rejected_spans, parsed.partial_success.error_message)

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()


def _create(component_id: ComponentId, config: OTLPHttpConfig, _next) -> QueuedRetryExporter:
    return OTLPHttpExporter(component_id, config).helper


factory = Factory("otlphttp", Kind.EXPORTER, OTLPHttpConfig, _create)
