"""`otlp` exporter: OTLP/gRPC to Tempo or any OTLP receiver.

    exporters:
      otlp/tempo:
        endpoint: tempo:4317
        tls: {insecure: true}
        headers: {authorization: "Bearer ${env:TEMPO_TOKEN}"}
        compression: gzip
        timeout: 10s
        sending_queue: {storage: file_storage}
"""

from __future__ import annotations

import logging

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from pydantic import Field

from collector.component import ComponentId, Factory, Kind, PermanentError, StrictConfig
from collector.confighelpers import HostPort
from collector.exporterhelper import ExporterSettings, PushRequest, QueuedRetryExporter
from collector.pdata import Traces

log = logging.getLogger(__name__)

# OTLP/gRPC: these codes mean "try again later"; anything else means the data itself was refused.
RETRYABLE_CODES = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class TLSClientConfig(StrictConfig):
    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class OTLPGrpcConfig(ExporterSettings):
    endpoint: HostPort
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
        self.stub = TraceServiceStub(self.channel)

    def push(self, traces: Traces, request: PushRequest) -> None:
        metadata = [(k.lower(), v) for k, v in self.config.headers.items()]
        try:
            response = self.stub.Export(traces.request, timeout=request.timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() in RETRYABLE_CODES:
                raise ConnectionError(f"{self.config.endpoint}: {exc.code().name}: {exc.details()}") from exc
            raise PermanentError(f"{self.config.endpoint} refused the data: {exc.code().name}: {exc.details()}") from exc
        if response.partial_success.rejected_spans:
            # The rest was stored: retrying would duplicate it, so report and move on.
            log.warning("exporter %s: %s rejected %d spans: %s", self.id, self.config.endpoint,
                        response.partial_success.rejected_spans, response.partial_success.error_message)

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()


def _create(component_id: ComponentId, config: OTLPGrpcConfig, _next) -> QueuedRetryExporter:
    return OTLPGrpcExporter(component_id, config).helper


factory = Factory("otlp", Kind.EXPORTER, OTLPGrpcConfig, _create)
