"""`otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON; gzip, zstd, snappy, lz4, deflate),
answering as the spec says, with otelcol's connection limits.

    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
            max_recv_msg_size_mib: 16       # larger messages are refused before they are buffered (otelcol: 4)
            max_concurrent_streams: 100     # per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)
            max_connections: 1000           # more are closed at accept
            max_in_flight_bytes_mib: 256    # request bytes held at once; more -> RESOURCE_EXHAUSTED + RetryInfo
            read_timeout: 30s               # a stream must deliver its request (a connection finish its
                                            # handshake) within this; late -> DEADLINE_EXCEEDED
            read_buffer_size: 524288
            keepalive:
              server_parameters:            # each 0 = none
                max_connection_idle: 0s
                max_connection_age: 0s
                max_connection_age_grace: 0s
                time: 2h
                timeout: 20s
              enforcement_policy:
                min_time: 5m                # clients pinging more often are sent GOAWAY
                permit_without_stream: false
            # auth: {authenticator: bearertokenauth}
            # tls: {cert_file: /certs/server.crt, key_file: /certs/server.key}
          http:
            endpoint: 0.0.0.0:4318          # POST /v1/traces; with a logs pipeline also /v1/logs and /v1/scores
            max_request_body_size_mib: 64   # larger bodies (also once decompressed) get 413
            read_header_timeout: 10s        # request line + headers; late -> 408 and closed
            read_timeout: 60s               # the whole request, body included
            idle_timeout: 60s               # keep-alive connections between requests
            max_header_bytes: 65536         # -> 431
            max_header_count: 100           # -> 431
            max_connections: 1000           # the oldest connection not working on a request makes room
            max_in_flight_bytes_mib: 256    # request bytes held at once; more -> 429 + Retry-After
                                            # (bodies up to 1 MiB may use a quarter more)
            compression_algorithms: [gzip, zstd, zlib, deflate, snappy, x-snappy-framed, lz4]
            max_json_depth: 64              # deeper OTLP/JSON -> 400

Answers: 200 with `partial_success` when some spans were dropped as invalid; 400 with a
google.rpc.Status message for a payload that cannot be decoded (also an unknown Content-Encoding,
as confighttp answers); 408 for a request not received in time; 413 for too large; 415 for an
unknown content type; 431 for too many or too large headers; 429/503 with Retry-After when the
pipeline or the endpoint cannot take more now (gRPC: INVALID_ARGUMENT, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED with RetryInfo, UNAVAILABLE). Anything unexpected is a 500 / INTERNAL with a
generic message, and logged. A request is stored whole or refused whole. Nothing one client sends
stops another: decoding runs off the servers' event loops, bodies over 1 MiB on their own thread,
so large requests queue behind each other and not in front of small ones. The limits are
per process: with `ingest_workers: N`, each worker has them.

A request is answered once the pipeline has taken it: with `batch`, once the batch it joined is in
the exporters' durable queues. That wait is on the server's event loop (collector/acks.py), not on
a receiver thread: the threads only decode, validate and hand over, so every request in flight
(up to the in-flight bytes limit) can wait in the same batch, over HTTP as over gRPC, and a batch
fills by size instead of waiting for its timer. The request's in-flight bytes and its memory
admission stay held until it is answered.

Logs (a `service.pipelines.logs` names this receiver): gRPC LogsService/Export and `POST /v1/logs`
(`logs_url_path`), protobuf and JSON, through the same limits, decoding, memory admission and
authentication as traces; a tenant-bound token stamps `tenant.id` on every record. Records with
an invalid trace/span id are dropped and counted in `partial_success.rejected_log_records`.
`POST /v1/scores` takes scores as JSON (collector/scores.py), authenticated and tenant-bound the
same way, and hands them to the logs pipeline as `gen_ai.evaluation.result` events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import threading
from concurrent import futures
from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from collector import acks, memory
from collector.component import (
    Component, ComponentId, ConsumeError, Consumer, Factory, Host, Kind, PermanentError, ResourceExhaustedError,
    RetryableError, StrictConfig, UnauthenticatedError,
)
from collector.confighelpers import Duration, HostPort, split_host_port
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from collector import plogs, scores
from collector.pdata import DEFAULT_MAX_JSON_DEPTH, ExportTraceServiceResponse, Traces, encode_otlp_json
from collector.ratelimited_log import RateLimitedLog
from collector.receivers.decoding import DECODERS, BodyTooLarge, decompress
from collector.receivers.validation import ValidationConfig, sanitize

# The servers (grpc, uvicorn, Starlette, the HTTP guard, google.rpc's messages) are imported where
# they are built and answer, not here: loading a config imports this module to validate its
# receiver, and `genaitrace validate / trace / query` start no server (~0.1 s of a CLI command).
if TYPE_CHECKING:
    import grpc
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response

    from collector.receivers.httpguard import ConnectionTable, HttpLimits

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# Bodies larger than this are decoded and processed by the receiver's one "large" thread, so that
# huge requests wait for each other, not small requests for them. One: their decoding holds the GIL
# (json.loads, protobuf's JSON mapping, upb's parse and serialize), so a second thread would add no
# throughput, only longer pauses for every other thread, the servers' event loops included.
# The threads only do that CPU work (and the exporter's put for a request that fills a batch): no
# thread waits for a request's answer, so their number does not bound the requests in flight.
LARGE_REQUEST_BYTES = 1 * MIB
_LARGE_THREADS = 1
_SMALL_THREADS = 16


class AuthConfig(StrictConfig):
    authenticator: str


class TLSServerConfig(StrictConfig):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class KeepaliveServerParameters(StrictConfig):
    """configgrpc's keepalive.server_parameters (grpc-go's keepalive.ServerParameters); 0 = none."""
    max_connection_idle: Duration = 0.0
    max_connection_age: Duration = 0.0
    max_connection_age_grace: Duration = 0.0
    time: Duration = 2 * 3600.0
    timeout: Duration = 20.0


class KeepaliveEnforcementPolicy(StrictConfig):
    """configgrpc's keepalive.enforcement_policy: clients pinging more often than `min_time` (or
    without a stream, unless permitted) are told to go away (GOAWAY ENHANCE_YOUR_CALM)."""
    min_time: Duration = 300.0
    permit_without_stream: bool = False


class KeepaliveServerConfig(StrictConfig):
    server_parameters: KeepaliveServerParameters = KeepaliveServerParameters()
    enforcement_policy: KeepaliveEnforcementPolicy = KeepaliveEnforcementPolicy()


class _EndpointLimits(StrictConfig):
    max_connections: int = Field(1000, ge=1)
    max_in_flight_bytes_mib: float = Field(256, gt=0)

    def _check_in_flight(self, largest_mib: float, key: str):
        if self.max_in_flight_bytes_mib < largest_mib:
            raise ValueError(f"max_in_flight_bytes_mib ({self.max_in_flight_bytes_mib:g}) is below {key} "
                             f"({largest_mib:g}): a request of the largest allowed size could never be taken")
        return self


class GrpcConfig(_EndpointLimits):
    endpoint: HostPort = "0.0.0.0:4317"
    # gRPC buffers a whole message before our code sees it, but refuses one over this limit as soon
    # as its length prefix arrives: the limit bounds what concurrent large requests can hold
    # (48 requests of 60 MiB: 3.3 GiB buffered at 64, refused unbuffered at 16).
    max_recv_msg_size_mib: float = Field(16, gt=0)
    max_concurrent_streams: int = Field(100, ge=1)
    read_buffer_size: int = Field(512 * 1024, ge=0)
    read_timeout: Duration = Field(30.0, gt=0)
    keepalive: KeepaliveServerConfig = KeepaliveServerConfig()
    auth: AuthConfig | None = None
    tls: TLSServerConfig | None = None

    @model_validator(mode="after")
    def _in_flight_fits_a_message(self):
        return self._check_in_flight(self.max_recv_msg_size_mib, "max_recv_msg_size_mib")


class HttpConfig(_EndpointLimits):
    endpoint: HostPort = "0.0.0.0:4318"
    max_request_body_size_mib: float = Field(64, gt=0)
    traces_url_path: str = "/v1/traces"
    logs_url_path: str = "/v1/logs"
    read_header_timeout: Duration = Field(10.0, gt=0)
    read_timeout: Duration = Field(60.0, gt=0)
    idle_timeout: Duration = Field(60.0, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_header_count: int = Field(100, ge=8)
    compression_algorithms: list[str] = list(DECODERS)
    max_json_depth: int = Field(DEFAULT_MAX_JSON_DEPTH, ge=16, le=512)
    auth: AuthConfig | None = None
    tls: TLSServerConfig | None = None

    @field_validator("compression_algorithms", mode="before")
    @classmethod
    def _lower_case(cls, names):
        return [str(name).strip().lower() for name in names] if isinstance(names, list) else names

    @model_validator(mode="after")
    def _check(self):
        unknown = [name for name in self.compression_algorithms if name not in DECODERS]
        if unknown:
            raise ValueError(f"compression_algorithms: unknown {unknown}; valid: {', '.join(DECODERS)}")
        if self.read_timeout < self.read_header_timeout:
            raise ValueError("read_timeout must not be shorter than read_header_timeout")
        return self._check_in_flight(self.max_request_body_size_mib, "max_request_body_size_mib")

    def limits(self) -> HttpLimits:
        from collector.receivers.httpguard import HttpLimits

        return HttpLimits(self.read_header_timeout, self.read_timeout, self.idle_timeout, self.max_header_bytes,
                          self.max_header_count, self.max_connections)


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


def _raise_fd_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards the hard one, as Go's runtime does at start: the
    connection caps are only a defence if the process can hold that many sockets and its files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open-file limit %d is below the receivers' connection caps plus headroom (%d): a flood of "
                    "connections can exhaust it; lower max_connections or raise the limit", soft, wanted)


class InFlightBytes:
    """Request bytes one endpoint holds at once (bodies being read, decoded or processed).

    Requests up to LARGE_REQUEST_BYTES may go a quarter over the limit: a few large uploads that
    fill it must not lock out the small requests of every other client."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._small_limit = limit + limit // 4
        self._lock = threading.Lock()

    def take(self, size: int, request_size: int | None = None) -> bool:
        """Hold `size` more bytes for a request of `request_size` (default: `size`) bytes so far."""
        small = (size if request_size is None else request_size) <= LARGE_REQUEST_BYTES
        with self._lock:
            if self.used + size > (self._small_limit if small else self.limit):
                return False
            self.used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
SCORES_URL_PATH = "/v1/scores"


class _Outcome:
    """How one request ended, in protocol-neutral terms."""

    def __init__(self, rejected: int = 0, message: str = "", accepted: int = 0, item: str = "spans"):
        self.rejected, self.message, self.accepted, self.item = rejected, message, accepted, item


class _Busy(Exception):
    """The endpoint holds as many request bytes as it may (max_in_flight_bytes_mib)."""


class OTLPReceiver(Component):
    def __init__(self, component_id: ComponentId, config: OTLPReceiverConfig, next_consumer: Consumer):
        self.id, self.config, self.next = component_id, config, next_consumer
        self.logs: Consumer | None = None  # set when a logs pipeline names this receiver
        self.telemetry = None
        self._grpc_server: grpc.aio.Server | None = None
        self._grpc_loop: asyncio.AbstractEventLoop | None = None
        self._grpc_thread: threading.Thread | None = None
        self._http_server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._authenticators: dict[str, object] = {}
        self._shared_ports = False
        self._log = RateLimitedLog(log, interval_s=10)
        self._small = futures.ThreadPoolExecutor(_SMALL_THREADS, thread_name_prefix="otlp-request")
        self._large = futures.ThreadPoolExecutor(_LARGE_THREADS, thread_name_prefix="otlp-large-request")
        protocols = config.protocols
        self._in_flight = {t: InFlightBytes(int(getattr(protocols, t).max_in_flight_bytes_mib * MIB))
                           for t in ("grpc", "http") if getattr(protocols, t) is not None}
        self.http_connections: ConnectionTable | None = None

    # --- shared request handling ---

    def _threads_for(self, size: int) -> futures.ThreadPoolExecutor:
        return self._large if size > LARGE_REQUEST_BYTES else self._small

    async def _run(self, transport: str, size: int, handle, *args) -> _Outcome:
        """`handle(pending, *args)` on a receiver thread (decode, validate, hand to the pipeline),
        then the pipeline's answer awaited here, on the event loop: a request waiting for its batch
        to be taken holds no thread. Raises the ConsumeError the client is to be told."""
        loop = asyncio.get_running_loop()
        outcome, settled = await loop.run_in_executor(self._threads_for(size), _hand_to_pipeline, handle, args)
        try:
            await asyncio.wrap_future(settled)
        except Exception as exc:  # noqa: BLE001 - classified for the client below
            refusal = self._refusal(exc, outcome.accepted, transport, outcome.item)
            if refusal is exc:
                raise
            raise refusal from exc
        self._count(f"receiver_accepted_{outcome.item}", outcome.accepted, transport)
        if outcome.rejected:
            self._count(f"receiver_refused_{outcome.item}", outcome.rejected, transport, "invalid")
        return outcome

    def _accept(self, traces: Traces, transport: str, headers: dict[str, str], raw: bytes | None = None) -> _Outcome:
        """Authenticate, sanitize and hand to the pipeline; raises ConsumeError when refused.
        `raw`: the protobuf payload `traces` was parsed from, for the native scan (None for JSON)."""
        auth = getattr(self.config.protocols, transport).auth
        if auth is not None:
            self._authenticators[transport].authenticate(headers, traces)
        rejected, message = sanitize(traces, self.config.validation, raw)
        return self._hand_over(self.next, traces, traces.span_count(), rejected, message, transport, "spans")

    def set_logs_consumer(self, consumer: Consumer) -> None:
        self.logs = consumer

    def _accept_logs(self, logs: "plogs.Logs", transport: str, headers: dict[str, str]) -> _Outcome:
        """Logs as `_accept` takes spans: authenticated (a tenant-bound token stamps the records),
        ids checked, handed to the logs pipelines."""
        if getattr(self.config.protocols, transport).auth is not None:
            self._authenticators[transport].authenticate_logs(headers, logs)
        rejected, message = plogs.sanitize(logs)
        return self._hand_over(self.logs, logs, logs.record_count(), rejected, message, transport, "log_records")

    def _hand_over(self, consumer: Consumer, data, count: int, rejected: int, message: str, transport: str,
                   item: str) -> _Outcome:
        """Give `data` to the pipeline; it is counted as accepted once its answer came (`_run`)."""
        try:
            if count:
                consumer.consume(data)
        except Exception as exc:  # noqa: BLE001 - classified for the client
            refusal = self._refusal(exc, count, transport, item)
            if refusal is exc:
                raise
            raise refusal from exc
        return _Outcome(rejected, message, count, item)

    def _refusal(self, exc: Exception, count: int, transport: str, item: str) -> ConsumeError:
        """Count a refused request and return what its client is told: a ConsumeError as it is;
        anything else (a failing store) logged and retryable, so it does not become a 500 loop."""
        if isinstance(exc, ConsumeError):
            self._count(f"receiver_refused_{item}", count, transport, "retryable" if exc.retryable else "invalid")
            return exc
        self._log.log(logging.ERROR, "pipeline-error", "receiver %s: pipeline failed: %r", self.id, exc)
        self._count(f"receiver_refused_{item}", count, transport, "error")
        return RetryableError("pipeline error; retry later")

    def _internal_error(self, transport: str, exc: BaseException) -> str:
        """Log an unexpected failure (rate-limited, with its traceback) and return what the client is told."""
        if self._log.error(f"internal-{transport}", "receiver %s: unexpected error handling an OTLP/%s request: %r",
                           self.id, transport, exc):
            log.debug("receiver %s: traceback", self.id, exc_info=exc)
        return "internal error while handling the request; it was not stored"

    def _count(self, name: str, value: int, transport: str, reason: str | None = None) -> None:
        if self.telemetry is not None:
            labels = {"receiver": str(self.id), "transport": transport}
            if reason:
                labels["reason"] = reason
            self.telemetry.count(name, value, **labels)

    def _busy(self, transport: str, size: int) -> _Busy:
        budget = self._in_flight[transport]
        self._log.warning(f"busy-{transport}", "receiver %s: OTLP/%s request of %d bytes refused: %d of %d in-flight "
                          "bytes in use (max_in_flight_bytes_mib)", self.id, transport, size, budget.used, budget.limit)
        return _Busy(f"the receiver holds {budget.used} request bytes (limit {budget.limit}); retry later")

    # --- lifecycle ---

    def start(self, host: Host) -> None:
        self.telemetry = host.telemetry
        self._shared_ports = host.shared_ports
        protocols = self.config.protocols
        for transport in ("grpc", "http"):
            cfg = getattr(protocols, transport)
            if cfg is not None and cfg.auth is not None:
                self._authenticators[transport] = host.extension(cfg.auth.authenticator)
        _raise_fd_limit(sum(getattr(protocols, t).max_connections for t in self._in_flight) + 1024)
        if protocols.grpc is not None:
            self._start_grpc(protocols.grpc)
        if protocols.http is not None:
            self._start_http(protocols.http)

    def shutdown(self) -> None:
        if self._grpc_server is not None:
            asyncio.run_coroutine_threadsafe(self._grpc_server.stop(grace=5), self._grpc_loop).result(timeout=15)
            self._grpc_loop.call_soon_threadsafe(self._grpc_loop.stop)
            self._grpc_thread.join(timeout=10)
        if self._http_server is not None:
            self._http_server.should_exit = True
            self._http_thread.join(timeout=10)
        self._small.shutdown(wait=False, cancel_futures=True)
        self._large.shutdown(wait=False, cancel_futures=True)

    # --- gRPC ---

    def _start_grpc(self, cfg: GrpcConfig) -> None:
        loop = asyncio.new_event_loop()
        ready: futures.Future = futures.Future()

        async def serve() -> None:
            try:
                server = self._grpc_build(cfg)
                await server.start()
            except BaseException as exc:  # noqa: BLE001 - reported to start() below
                ready.set_exception(exc)
                return
            ready.set_result(server)

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.create_task(serve())
            loop.run_forever()

        self._grpc_thread = threading.Thread(target=run, name="otlp-grpc", daemon=True)
        self._grpc_thread.start()
        try:
            self._grpc_server = ready.result(timeout=30)
        except Exception as exc:
            loop.call_soon_threadsafe(loop.stop)
            raise OSError(f"receiver {self.id}: cannot listen on {cfg.endpoint} (gRPC): {exc}") from exc
        self._grpc_loop = loop
        log.info("receiver %s: OTLP/gRPC on %s", self.id, cfg.endpoint)

    def _grpc_build(self, cfg: GrpcConfig) -> grpc.aio.Server:
        import grpc

        server = grpc.aio.server(options=_grpc_options(cfg, self._shared_ports))
        server.add_generic_rpc_handlers((_GrpcTraceService(self, cfg).handler(),))
        if self.logs is not None:
            server.add_generic_rpc_handlers((_GrpcLogsService(self, cfg).handler(),))
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
            raise OSError("address in use?")
        return server

    # --- HTTP ---

    def _start_http(self, cfg: HttpConfig) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        from collector.receivers.httpguard import ConnectionTable, guarded_protocol

        routes = [Route(cfg.traces_url_path, self._http_traces, methods=["POST"])]
        if self.logs is not None:
            routes += [Route(cfg.logs_url_path, self._http_logs, methods=["POST"]),
                       Route(SCORES_URL_PATH, self._http_scores, methods=["POST"])]
        app = Starlette(routes=routes)
        host, port = split_host_port(cfg.endpoint)
        ssl = {"ssl_certfile": cfg.tls.cert_file, "ssl_keyfile": cfg.tls.key_file} if cfg.tls else {}
        self.http_connections = ConnectionTable(cfg.limits(), self._log, str(self.id))
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            http=guarded_protocol(self.http_connections), timeout_keep_alive=int(max(1, cfg.idle_timeout)),
            backlog=2048, **ssl,
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
        return await self._http_export(request, self._http_request, ExportTraceServiceResponse)

    async def _http_logs(self, request: Request) -> Response:
        return await self._http_export(request, self._http_logs_request, ExportLogsServiceResponse)

    async def _http_scores(self, request: Request) -> Response:
        return await self._http_export(request, self._http_scores_request, None)

    async def _http_export(self, request: Request, handle, response_type) -> Response:
        """One OTLP/HTTP export (or, `response_type` None, a JSON scores body): content type,
        encoding, credentials, body within the limits, then `handle` on a receiver thread."""
        from starlette.requests import ClientDisconnect
        from starlette.responses import Response

        cfg = self.config.protocols.http
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = content_type == "application/json"
        if response_type is None and not as_json:
            return _http_error(415, f"unsupported content type {content_type!r}; scores are application/json", True)
        if content_type not in ("application/x-protobuf", "application/json"):
            return _http_error(415, f"unsupported content type {content_type!r}; use application/x-protobuf or application/json", as_json)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity") and encoding not in cfg.compression_algorithms:
            return _http_error(400, f"unsupported Content-Encoding: {encoding!r}; enabled: {', '.join(cfg.compression_algorithms)}", as_json)
        authenticator = self._authenticators.get("http")
        if authenticator is not None:  # an Authenticator (component.py) always has `check`
            try:  # credentials first: an unauthenticated client gets no body decoded for it
                authenticator.check({k.lower(): v for k, v in request.headers.items()})
            except PermanentError as exc:
                return _http_error(exc.http_status, str(exc), as_json)
        budget = self._in_flight["http"]
        held = 0
        try:
            body, held = await _read_body(request, int(cfg.max_request_body_size_mib * MIB), budget,
                                          lambda size: self._busy("http", size))
            headers = {k.lower(): v for k, v in request.headers.items()}
            outcome = await self._run("http", len(body), handle, body, encoding, as_json, headers, cfg)
        except _Busy as exc:
            return _http_error(429, str(exc), as_json, retry_after=1, close=True)
        except RetryableError as exc:
            code = 429 if isinstance(exc, ResourceExhaustedError) else 503
            return _http_error(code, str(exc), as_json, retry_after=exc.retry_after_s)
        except PermanentError as exc:
            return _http_error(exc.http_status, str(exc), as_json, close=exc.http_status == 413)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody reads it: the connection is gone
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            return _http_error(500, self._internal_error("http", exc), as_json)
        finally:
            budget.give_back(held)
        if response_type is None:
            return Response(json.dumps({"accepted": outcome.accepted}), media_type="application/json")
        response = _export_response(response_type, outcome)
        if as_json:
            return Response(encode_otlp_json(response), media_type="application/json")
        return Response(response.SerializeToString(), media_type="application/x-protobuf")

    def _http_request(self, pending: acks.Deferred, body: bytes, encoding: str, as_json: bool,
                      headers: dict[str, str], cfg: HttpConfig) -> _Outcome:
        """Decode and accept one OTLP/HTTP body, on a receiver thread, if the memory limiter admits it
        (its admission held until the request is answered)."""
        body = decompress(body, encoding, int(cfg.max_request_body_size_mib * MIB))
        pending.hold(memory.admission(len(body)))
        traces = Traces.from_json(body, max_depth=cfg.max_json_depth) if as_json else Traces.from_protobuf(body)
        return self._accept(traces, "http", headers, traces.to_protobuf())

    def _http_logs_request(self, pending: acks.Deferred, body: bytes, encoding: str, as_json: bool,
                           headers: dict[str, str], cfg: HttpConfig) -> _Outcome:
        body = decompress(body, encoding, int(cfg.max_request_body_size_mib * MIB))
        pending.hold(memory.admission(len(body)))
        logs = plogs.Logs.from_json(body, max_depth=cfg.max_json_depth) if as_json else plogs.Logs.from_protobuf(body)
        return self._accept_logs(logs, "http", headers)

    def _http_scores_request(self, pending: acks.Deferred, body: bytes, encoding: str, _as_json: bool,
                             headers: dict[str, str], cfg: HttpConfig) -> _Outcome:
        body = decompress(body, encoding, int(cfg.max_request_body_size_mib * MIB))
        pending.hold(memory.admission(len(body)))
        return self._accept_logs(scores.to_logs(scores.parse(body)), "http", headers)


def _hand_to_pipeline(handle, args: tuple) -> tuple[_Outcome, futures.Future]:
    """Run `handle` with deferred acknowledgement: its outcome so far, and the future of its answer."""
    with acks.deferring() as pending:
        outcome = handle(pending, *args)
    return outcome, pending.settled()


async def _read_body(request: Request, limit: int, budget: InFlightBytes, busy) -> tuple[bytes, int]:
    """The body, at most `limit` bytes, and how many in-flight bytes it holds: the declared length
    is taken from the budget before reading; a chunked body takes its chunks as they come."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    held = int(declared) if declared and declared.isdigit() else 0
    if not budget.take(held):
        raise busy(held)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
            if size > held:
                if not budget.take(size - held, size):
                    raise busy(size)
                held = size
            chunks.append(chunk)
    except BaseException:
        budget.give_back(held)
        raise
    return b"".join(chunks), held


def _http_error(code: int, message: str, as_json: bool, retry_after: float | None = None, close: bool = False) -> Response:
    from google.rpc import status_pb2
    from starlette.responses import Response

    grpc_code = {400: 3, 401: 16, 403: 7, 408: 4, 413: 8, 415: 3, 429: 8, 431: 8, 500: 13, 503: 14}.get(code, 2)
    status = status_pb2.Status(code=grpc_code, message=message)
    headers = {"Retry-After": str(max(1, int(round(retry_after))))} if retry_after is not None else {}
    if close:  # the client may still be sending a body nobody will read
        headers["Connection"] = "close"
    if as_json:
        return Response(json.dumps({"code": grpc_code, "message": message}), status_code=code,
                        media_type="application/json", headers=headers)
    return Response(status.SerializeToString(), status_code=code, media_type="application/x-protobuf", headers=headers)


def _grpc_options(cfg: GrpcConfig, shared_ports: bool) -> list[tuple[str, int]]:
    """configgrpc's settings as grpc core channel arguments."""
    ms = lambda seconds: int(seconds * 1000)  # noqa: E731
    params, policy = cfg.keepalive.server_parameters, cfg.keepalive.enforcement_policy
    options = [
        ("grpc.max_receive_message_length", int(cfg.max_recv_msg_size_mib * MIB)),
        ("grpc.so_reuseport", int(shared_ports)),
        ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
        ("grpc.max_allowed_incoming_connections", cfg.max_connections),
        # A connection that never finishes its TLS/HTTP/2 handshake is closed like a stalled stream.
        ("grpc.server_handshake_timeout_ms", ms(cfg.read_timeout)),
        ("grpc.keepalive_time_ms", ms(params.time)),
        ("grpc.keepalive_timeout_ms", ms(params.timeout)),
        ("grpc.http2.min_ping_interval_without_data_ms", ms(policy.min_time)),
        ("grpc.keepalive_permit_without_calls", int(policy.permit_without_stream)),
    ]
    if cfg.read_buffer_size:
        options.append(("grpc.experimental.tcp_read_chunk_size", cfg.read_buffer_size))
    for key, seconds in (("grpc.max_connection_idle_ms", params.max_connection_idle),
                         ("grpc.max_connection_age_ms", params.max_connection_age),
                         ("grpc.max_connection_age_grace_ms", params.max_connection_age_grace)):
        if seconds > 0:
            options.append((key, ms(seconds)))
    return options


def _retry_trailers(code: grpc.StatusCode, message: str, retry_after_s: float) -> tuple:
    """RetryInfo in grpc-status-details-bin: OTLP clients retry RESOURCE_EXHAUSTED only with it."""
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import error_details_pb2, status_pb2

    seconds = max(1, int(round(retry_after_s)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()), ("retry-after", str(seconds)))


class _GrpcTraceService:
    """OTLP's TraceService/Export on grpc.aio, taking the request as bytes: the receiver parses it
    itself, so a malformed payload is INVALID_ARGUMENT with the decoder's message, and the native
    scan gets the bytes without a second serialization.

    Registered as client-streaming (the same frames on the wire as a unary call) so the request is
    read with a deadline: a stream that sends headers and stalls costs a coroutine, not a thread,
    and ends with DEADLINE_EXCEEDED after `read_timeout`. Decoding and the pipeline run on the
    receiver's threads; the wait for the pipeline's answer is on this loop (`OTLPReceiver._run`)."""

    def __init__(self, receiver: OTLPReceiver, cfg: GrpcConfig):
        self.receiver, self.cfg = receiver, cfg

    SERVICE, RESPONSE = _TRACE_SERVICE, ExportTraceServiceResponse

    def handler(self) -> grpc.GenericRpcHandler:
        import grpc

        export = grpc.stream_unary_rpc_method_handler(
            self.export, request_deserializer=None, response_serializer=self.RESPONSE.SerializeToString)
        return grpc.method_handlers_generic_handler(self.SERVICE, {"Export": export})

    async def export(self, _requests, context: grpc.aio.ServicerContext):
        import grpc

        receiver = self.receiver
        try:
            payload = await self._read_one(context)
        except asyncio.TimeoutError:
            receiver._log.warning("grpc-read-timeout", "receiver %s: OTLP/gRPC stream from %s did not deliver its request "
                                  "within read_timeout (%gs)", receiver.id, context.peer(), self.cfg.read_timeout)
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"request not received within {self.cfg.read_timeout:g}s")
        except PermanentError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # noqa: BLE001 - never a traceback (or grpc's "Unexpected <class>") to the client
            await context.abort(grpc.StatusCode.INTERNAL, receiver._internal_error("grpc", exc))
        budget = receiver._in_flight["grpc"]
        if not budget.take(len(payload)):
            message = str(receiver._busy("grpc", len(payload)))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message,
                                _retry_trailers(grpc.StatusCode.RESOURCE_EXHAUSTED, message, 1))
        headers = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        try:
            outcome = await receiver._run("grpc", len(payload), self._export, payload, headers)
        except RetryableError as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, ResourceExhaustedError) else grpc.StatusCode.UNAVAILABLE
            failure = (code, str(exc), _retry_trailers(code, str(exc), exc.retry_after_s))
        except UnauthenticatedError as exc:
            failure = (grpc.StatusCode.UNAUTHENTICATED, str(exc), ())
        except PermanentError as exc:
            failure = (grpc.StatusCode.INVALID_ARGUMENT, str(exc), ())
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            failure = (grpc.StatusCode.INTERNAL, receiver._internal_error("grpc", exc), ())
        else:
            failure = None
        finally:
            budget.give_back(len(payload))
        if failure is not None:
            await context.abort(*failure)
        return _export_response(self.RESPONSE, outcome)

    async def _read_one(self, context) -> bytes:
        """The stream's one request message, then its end, within `read_timeout`."""
        import grpc

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.read_timeout
        payload = await asyncio.wait_for(context.read(), self.cfg.read_timeout)
        if payload is grpc.aio.EOF:
            raise PermanentError("no request message")
        end = await asyncio.wait_for(context.read(), max(0.001, deadline - loop.time()))
        if end is not grpc.aio.EOF:
            raise PermanentError("more than one request message on a unary call")
        return payload

    def _export(self, pending: acks.Deferred, payload: bytes, headers: dict[str, str]) -> _Outcome:
        pending.hold(memory.admission(len(payload)))  # the memory limiter's answer, before decoding
        return self.receiver._accept(Traces.from_protobuf(payload), "grpc", headers, payload)


class _GrpcLogsService(_GrpcTraceService):
    """LogsService/Export: the same reading, limits and answers as TraceService."""

    SERVICE, RESPONSE = _LOGS_SERVICE, ExportLogsServiceResponse

    def _export(self, pending: acks.Deferred, payload: bytes, headers: dict[str, str]) -> _Outcome:
        pending.hold(memory.admission(len(payload)))
        return self.receiver._accept_logs(plogs.Logs.from_protobuf(payload), "grpc", headers)


def _export_response(response_type, outcome: _Outcome):
    """An Export response, with partial_success when some items were dropped."""
    response = response_type()
    if outcome.rejected:
        field = "rejected_spans" if response_type is ExportTraceServiceResponse else "rejected_log_records"
        setattr(response.partial_success, field, outcome.rejected)
        response.partial_success.error_message = outcome.message
    return response


factory = Factory("otlp", Kind.RECEIVER, OTLPReceiverConfig, OTLPReceiver, signals=("traces", "logs"))
