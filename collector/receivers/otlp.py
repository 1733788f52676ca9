"""`otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON, gzip), answering as the spec says.

    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
            max_recv_msg_size_mib: 64       # gRPC's own default of 4 MiB is too small for real batches
            # auth: {authenticator: bearertokenauth}
            # tls: {cert_file: /certs/server.crt, key_file: /certs/server.key}
          http:
            endpoint: 0.0.0.0:4318          # POST /v1/traces
            max_request_body_size_mib: 64   # larger bodies (also after gunzip) get 413

Answers: 200 with `partial_success` when some spans were dropped as invalid; 400 with a
google.rpc.Status message for a payload that cannot be decoded; 413 for too large; 415 for an
unknown content type; 429/503 with Retry-After when the pipeline cannot take more now (gRPC:
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE). Nothing one client sends stops another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import zlib
from concurrent import futures

import grpc
import uvicorn
from google.rpc import status_pb2
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.component import (
    Component, ComponentId, ConsumeError, Consumer, Factory, Host, Kind, PermanentError, ResourceExhaustedError,
    RetryableError, StrictConfig, UnauthenticatedError,
)
from collector.confighelpers import HostPort, split_host_port
from collector.pdata import ExportTraceServiceResponse, Traces, encode_otlp_json
from collector.receivers.validation import ValidationConfig, sanitize

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class AuthConfig(StrictConfig):
    authenticator: str


class TLSServerConfig(StrictConfig):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class GrpcConfig(StrictConfig):
    endpoint: HostPort = "0.0.0.0:4317"
    max_recv_msg_size_mib: float = Field(64, gt=0)
    max_concurrent_streams: int = Field(16, ge=1)
    auth: AuthConfig | None = None
    tls: TLSServerConfig | None = None


class HttpConfig(StrictConfig):
    endpoint: HostPort = "0.0.0.0:4318"
    max_request_body_size_mib: float = Field(64, gt=0)
    traces_url_path: str = "/v1/traces"
    auth: AuthConfig | None = None
    tls: TLSServerConfig | None = None


class Protocols(StrictConfig):
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None


class OTLPReceiverConfig(StrictConfig):
    protocols: Protocols = Protocols(grpc=GrpcConfig(), http=HttpConfig())
    # Limits and repairs applied to every span received: see collector/receivers/validation.py.
    validation: ValidationConfig = ValidationConfig()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class _Outcome:
    """How one request ended, in protocol-neutral terms."""

    def __init__(self, rejected: int = 0, message: str = ""):
        self.rejected, self.message = rejected, message


class OTLPReceiver(Component):
    def __init__(self, component_id: ComponentId, config: OTLPReceiverConfig, next_consumer: Consumer):
        self.id, self.config, self.next = component_id, config, next_consumer
        self.telemetry = None
        self._grpc_server: grpc.Server | None = None
        self._http_server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._authenticators: dict[str, object] = {}
        self._shared_ports = False

    # --- shared request handling ---

    def _accept(self, traces: Traces, transport: str, headers: dict[str, str], raw: bytes | None = None) -> _Outcome:
        """Authenticate, sanitize and hand to the pipeline; raises ConsumeError when refused.
        `raw`: the protobuf payload `traces` was parsed from, for the native scan (None for JSON)."""
        auth = getattr(self.config.protocols, transport).auth
        if auth is not None:
            self._authenticators[transport].authenticate(headers, traces)
        rejected, message = sanitize(traces, self.config.validation, raw)
        count = traces.span_count()
        try:
            if count:
                self.next.consume(traces)
        except ConsumeError as exc:
            self._count("receiver_refused_spans", count, transport, "retryable" if exc.retryable else "invalid")
            raise
        except Exception as exc:  # noqa: BLE001 - a failing store must not become a 500 loop for clients
            log.exception("receiver %s: pipeline failed", self.id)
            self._count("receiver_refused_spans", count, transport, "error")
            raise RetryableError(f"pipeline error: {exc}") from exc
        self._count("receiver_accepted_spans", count, transport)
        if rejected:
            self._count("receiver_refused_spans", rejected, transport, "invalid")
        return _Outcome(rejected, message)

    def _count(self, name: str, value: int, transport: str, reason: str | None = None) -> None:
        if self.telemetry is not None:
            labels = {"receiver": str(self.id), "transport": transport}
            if reason:
                labels["reason"] = reason
            self.telemetry.count(name, value, **labels)

    # --- lifecycle ---

    def start(self, host: Host) -> None:
        self.telemetry = host.telemetry
        self._shared_ports = host.shared_ports
        protocols = self.config.protocols
        for transport in ("grpc", "http"):
            cfg = getattr(protocols, transport)
            if cfg is not None and cfg.auth is not None:
                self._authenticators[transport] = host.extension(cfg.auth.authenticator)
        if protocols.grpc is not None:
            self._start_grpc(protocols.grpc)
        if protocols.http is not None:
            self._start_http(protocols.http)

    def shutdown(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=5).wait()
        if self._http_server is not None:
            self._http_server.should_exit = True
            self._http_thread.join(timeout=10)

    # --- gRPC ---

    def _start_grpc(self, cfg: GrpcConfig) -> None:
        max_bytes = int(cfg.max_recv_msg_size_mib * MIB)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_concurrent_streams, thread_name_prefix="otlp-grpc"),
            options=[("grpc.max_receive_message_length", max_bytes), ("grpc.so_reuseport", int(self._shared_ports))],
            maximum_concurrent_rpcs=cfg.max_concurrent_streams * 4,
        )
        server.add_generic_rpc_handlers((_GrpcTraceService(self).handler(),))
        if cfg.tls is not None:
            credentials = grpc.ssl_server_credentials(
                [(open(cfg.tls.key_file, "rb").read(), open(cfg.tls.cert_file, "rb").read())],
                root_certificates=open(cfg.tls.client_ca_file, "rb").read() if cfg.tls.client_ca_file else None,
                require_client_auth=bool(cfg.tls.client_ca_file),
            )
            bound = server.add_secure_port(cfg.endpoint, credentials)
        else:
            bound = server.add_insecure_port(cfg.endpoint)
        if not bound:
            raise OSError(f"receiver {self.id}: cannot listen on {cfg.endpoint} (gRPC): address in use?")
        server.start()
        self._grpc_server = server
        log.info("receiver %s: OTLP/gRPC on %s", self.id, cfg.endpoint)

    # --- HTTP ---

    def _start_http(self, cfg: HttpConfig) -> None:
        app = Starlette(routes=[Route(cfg.traces_url_path, self._http_traces, methods=["POST"])])
        host, port = split_host_port(cfg.endpoint)
        ssl = {"ssl_certfile": cfg.tls.cert_file, "ssl_keyfile": cfg.tls.key_file} if cfg.tls else {}
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            timeout_keep_alive=30, **ssl,
        ))
        ready = threading.Event()
        failure: list[BaseException] = []

        sockets = [_reuseport_socket(host, port)] if self._shared_ports else None

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.serve(sockets=sockets))
            except BaseException as exc:  # noqa: BLE001 - reported to start() below
                failure.append(exc)
            finally:
                ready.set()

        self._http_thread = threading.Thread(target=serve, name="otlp-http", daemon=True)
        self._http_thread.start()
        while not server.started and not ready.is_set():
            ready.wait(0.02)
        if not server.started:
            raise OSError(f"receiver {self.id}: cannot listen on {cfg.endpoint} (HTTP): {failure[0] if failure else 'failed'}")
        self._http_server = server
        log.info("receiver %s: OTLP/HTTP on %s%s", self.id, cfg.endpoint, cfg.traces_url_path)

    async def _http_traces(self, request: Request) -> Response:
        cfg = self.config.protocols.http
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = content_type == "application/json"
        if content_type not in ("application/x-protobuf", "application/json"):
            return _http_error(415, f"unsupported content type {content_type!r}; use application/x-protobuf or application/json", as_json)
        limit = int(cfg.max_request_body_size_mib * MIB)
        authenticator = self._authenticators.get("http")
        if authenticator is not None and hasattr(authenticator, "check"):
            try:  # credentials first: an unauthenticated client gets no body decoded for it
                authenticator.check({k.lower(): v for k, v in request.headers.items()})
            except PermanentError as exc:
                return _http_error(exc.http_status, str(exc), as_json)
        try:
            body = await _read_body(request, limit)
            if request.headers.get("content-encoding", "").lower() == "gzip":
                body = _gunzip(body, limit)
            traces = Traces.from_json(body) if as_json else Traces.from_protobuf(body)
            outcome = await asyncio.get_running_loop().run_in_executor(
                None, self._accept, traces, "http", {k.lower(): v for k, v in request.headers.items()},
                None if as_json else body,
            )
        except _TooLarge as exc:
            return _http_error(413, str(exc), as_json)
        except RetryableError as exc:
            code = 429 if isinstance(exc, ResourceExhaustedError) else 503
            return _http_error(code, str(exc), as_json, retry_after=exc.retry_after_s)
        except PermanentError as exc:
            return _http_error(exc.http_status, str(exc), as_json)
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        if as_json:
            return Response(encode_otlp_json(response), media_type="application/json")
        return Response(response.SerializeToString(), media_type="application/x-protobuf")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Bounded decompression: a 1 MB gzip bomb must not become 10 GB in memory."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PermanentError(f"invalid gzip body: {exc}") from exc
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    if not decompressor.eof:
        raise PermanentError("invalid gzip body: truncated")
    return out


def _http_error(code: int, message: str, as_json: bool, retry_after: float | None = None) -> Response:
    grpc_code = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}.get(code, 2)
    status = status_pb2.Status(code=grpc_code, message=message)
    headers = {"Retry-After": str(max(1, int(round(retry_after))))} if retry_after is not None else None
    if as_json:
        return Response(json.dumps({"code": grpc_code, "message": message}), status_code=code,
                        media_type="application/json", headers=headers)
    return Response(status.SerializeToString(), status_code=code, media_type="application/x-protobuf", headers=headers)


class _GrpcTraceService:
    """OTLP's TraceService/Export, taking the request as bytes: the receiver parses it itself, so a
    malformed payload is INVALID_ARGUMENT with the decoder's message, and the native scan gets the
    bytes without a second serialization."""

    def __init__(self, receiver: OTLPReceiver):
        self.receiver = receiver

    def handler(self) -> grpc.GenericRpcHandler:
        export = grpc.unary_unary_rpc_method_handler(
            self.Export, request_deserializer=None, response_serializer=ExportTraceServiceResponse.SerializeToString)
        return grpc.method_handlers_generic_handler(_TRACE_SERVICE, {"Export": export})

    def Export(self, payload: bytes, context):  # noqa: N802 - the OTLP service's method name
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        try:
            outcome = self.receiver._accept(Traces.from_protobuf(payload), "grpc", headers, payload)
        except RetryableError as exc:
            context.set_trailing_metadata((("retry-after", str(int(exc.retry_after_s))),))
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, ResourceExhaustedError) else grpc.StatusCode.UNAVAILABLE
            context.abort(code, str(exc))
        except UnauthenticatedError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except PermanentError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        return response


factory = Factory("otlp", Kind.RECEIVER, OTLPReceiverConfig, OTLPReceiver)
