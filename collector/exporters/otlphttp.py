"""`otlphttp` exporter: OTLP/HTTP protobuf, e.g. to Tempo's :4318.

    exporters:
      otlphttp/tempo:
        endpoint: http://tempo:4318          # /v1/traces is appended
        # traces_endpoint: http://tempo:4318/v1/traces   (used as is, overrides endpoint)
        headers: {X-Scope-OrgID: acme}
        compression: gzip
        timeout: 10s
        sending_queue:
          storage: file_storage
          batch: {max_size: 3670016}   # bytes of serialized protobuf per request (default 3.5 MiB)

Requests are split to `sending_queue.batch.max_size` (see the `otlp` exporter). Answers follow
the OTLP/HTTP specification: 429, 502, 503 and 504 are retried, after the Retry-After the server
sent if it is longer than the backoff; every other status (400, 401, 403, 404, 413, 500...) drops
the request, counted in `otelcol_exporter_send_failed_spans` and logged.
"""

from __future__ import annotations

import gzip
import logging
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlparse

import httpx
from google.rpc import status_pb2
from pydantic import Field, field_validator, model_validator

from collector.component import ComponentId, Factory, Kind, PermanentError, RetryableError
from collector.exporterhelper import BatchConfig, ExportRequest, ExporterSettings, QueueConfig, QueuedRetryExporter
from collector.pdata import ExportTraceServiceResponse

log = logging.getLogger(__name__)

# OTLP/HTTP: retry these; every other 4xx/5xx means the payload itself is refused.
RETRYABLE_STATUS = {429, 502, 503, 504}
DEFAULT_MAX_REQUEST_BYTES = int(3.5 * 1024 * 1024)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"invalid endpoint {value!r}; expected http(s)://host:port")
    return value


class OTLPHttpQueueConfig(QueueConfig):
    batch: BatchConfig = BatchConfig(max_size=DEFAULT_MAX_REQUEST_BYTES)


class OTLPHttpConfig(ExporterSettings):
    sending_queue: OTLPHttpQueueConfig = OTLPHttpQueueConfig()
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

    def push(self, request: ExportRequest) -> None:
        body = request.data()
        headers = {"Content-Type": "application/x-protobuf"}
        if self.config.compression == "gzip":
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self.client.post(self.url, content=body, headers=headers, timeout=request.timeout_s)
        status = response.status_code
        if status in RETRYABLE_STATUS:
            text = f"{self.url}: HTTP {status}: {_error_text(response)}"
            delay = _retry_after(response.headers.get("retry-after"))
            raise RetryableError(text, retry_after_s=delay) if delay is not None else ConnectionError(text)
        if status >= 300:
            raise PermanentError(f"{self.url} refused the data: HTTP {status}: {_error_text(response)}")
        if response.content and response.headers.get("content-type", "").startswith("application/x-protobuf"):
            parsed = ExportTraceServiceResponse.FromString(response.content)
            if parsed.partial_success.rejected_spans:
                log.warning("exporter %s: %s rejected %d spans: %s", self.id, self.url,
                            parsed.partial_success.rejected_spans, parsed.partial_success.error_message)

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()


def _error_text(response: httpx.Response) -> str:
    """The server's message: a google.rpc.Status (as OTLP/HTTP answers errors) or its text, shortened."""
    if response.headers.get("content-type", "").startswith("application/x-protobuf"):
        try:
            return status_pb2.Status.FromString(response.content).message[:200]
        except Exception:  # noqa: BLE001 - not a Status after all: show the bytes as text
            pass
    return response.text[:200]


def _create(component_id: ComponentId, config: OTLPHttpConfig, _next) -> QueuedRetryExporter:
    return OTLPHttpExporter(component_id, config).helper


factory = Factory("otlphttp", Kind.EXPORTER, OTLPHttpConfig, _create)
