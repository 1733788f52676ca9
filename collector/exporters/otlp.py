"""`otlp` exporter: OTLP/gRPC to Tempo or any OTLP receiver.

    exporters:
      otlp/tempo:
        endpoint: tempo:4317
        tls: {insecure: true}
        headers: {authorization: "Bearer ${env:TEMPO_TOKEN}"}
        compression: gzip
        timeout: 10s
        sending_queue:
          storage: file_storage
          batch: {max_size: 3670016}   # bytes of serialized protobuf per request (default 3.5 MiB)

Requests are never larger than `sending_queue.batch.max_size` (exporterhelper splits larger
batches by resource, scope and span), below the 4 MiB that otelcol's OTLP receiver, Tempo and
Jaeger accept by default. Answers are classified as the OTLP specification says: CANCELLED,
DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retried, and
RESOURCE_EXHAUSTED only when the server sent RetryInfo (its delay is honoured); every other code
(INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED without RetryInfo...) drops the request,
counted in `otelcol_exporter_send_failed_spans` and logged, and the next one is sent.
"""

from __future__ import annotations

import logging

import grpc
from google.rpc import error_details_pb2, status_pb2
from pydantic import Field

from collector.component import ComponentId, Factory, Kind, PermanentError, RetryableError, StrictConfig
from collector.confighelpers import HostPort
from collector.exporterhelper import BatchConfig, ExportRequest, ExporterSettings, QueueConfig, QueuedRetryExporter
from collector.pdata import ExportTraceServiceResponse

log = logging.getLogger(__name__)

# OTLP/gRPC: these codes mean "try again later"; RESOURCE_EXHAUSTED only with RetryInfo (see
# `_retry_delay`); anything else means the data itself was refused.
RETRYABLE_CODES = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
}
# Below the 4 MiB default receive limit of otelcol's OTLP receiver (and Tempo's, Jaeger's).
DEFAULT_MAX_REQUEST_BYTES = int(3.5 * 1024 * 1024)
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


class TLSClientConfig(StrictConfig):
    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class OTLPQueueConfig(QueueConfig):
    batch: BatchConfig = BatchConfig(max_size=DEFAULT_MAX_REQUEST_BYTES)


class OTLPGrpcConfig(ExporterSettings):
    endpoint: HostPort
    sending_queue: OTLPQueueConfig = OTLPQueueConfig()
    tls: TLSClientConfig = TLSClientConfig()
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    compression: str = Field("gzip", pattern="^(gzip|none|)$")


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()


class OTLPGrpcExporter:
    def __init__(self, component_id: ComponentId, config: OTLPGrpcConfig):
        self.id, self.config = component_id, config
        self.channel: grpc.Channel | None = None
        self.helper = QueuedRetryExporter(component_id, config, self.push, start=self._start, shutdown=self._close)

    def _start(self, _host) -> None:
        compression = grpc.Compression.Gzip if self.config.compression == "gzip" else grpc.Compression.NoCompression
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if self.config.tls.insecure:
            self.channel = grpc.insecure_channel(self.config.endpoint, options=options, compression=compression)
        else:
            credentials = grpc.ssl_channel_credentials(
                _read(self.config.tls.ca_file), _read(self.config.tls.key_file), _read(self.config.tls.cert_file)
            )
            self.channel = grpc.secure_channel(self.config.endpoint, credentials, options=options, compression=compression)
        # The batch goes out as the bytes it is queued as: no parse, no re-serialization.
        self.export = self.channel.unary_unary(_EXPORT_METHOD, request_serializer=None,
                                               response_deserializer=ExportTraceServiceResponse.FromString)

    def push(self, request: ExportRequest) -> None:
        metadata = [(k.lower(), v) for k, v in self.config.headers.items()]
        try:
            response = self.export(request.data(), timeout=request.timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            raise _classify(self.config.endpoint, exc) from exc
        if response.partial_success.rejected_spans:
            # The rest was stored: retrying would duplicate it, so report and move on.
            log.warning("exporter %s: %s rejected %d spans: %s", self.id, self.config.endpoint,
                        response.partial_success.rejected_spans, response.partial_success.error_message)

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()


def _retry_delay(exc: grpc.RpcError) -> float | None:
    """The delay of the RetryInfo in the error's google.rpc.Status details, if the server sent one."""
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # noqa: BLE001 - unreadable details are no RetryInfo
            return None
        for detail in status.details:
            if detail.type_url == _RETRY_INFO_TYPE:
                info = error_details_pb2.RetryInfo.FromString(detail.value)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def _classify(endpoint: str, exc: grpc.RpcError) -> Exception:
    """What a failed export means for the retry sender, per the OTLP specification."""
    code, text = exc.code(), f"{endpoint}: {exc.code().name}: {exc.details()}"
    if code in RETRYABLE_CODES:
        return ConnectionError(text)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        delay = _retry_delay(exc)
        if delay is not None:  # the server is throttling: come back after the delay it asked for
            return RetryableError(text, retry_after_s=delay)
    return PermanentError(f"{endpoint} refused the data: {code.name}: {exc.details()}")


def _create(component_id: ComponentId, config: OTLPGrpcConfig, _next) -> QueuedRetryExporter:
    return OTLPGrpcExporter(component_id, config).helper


factory = Factory("otlp", Kind.EXPORTER, OTLPGrpcConfig, _create)
