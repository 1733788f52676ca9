"""`memory_limiter` processor: refuse data before the collector grows past its limit.

    processors:
      memory_limiter:
        check_interval: 1s
        limit_mib: 1024          # hard limit of the collector's memory (all its processes, PSS)
        spike_limit_mib: 256     # refuse above limit - spike (the soft limit); default 20% of the limit
        # or: limit_percentage: 75, spike_limit_percentage: 20 (of the machine's/cgroup's memory)

Put it first in the pipeline. What is measured is the whole collector: the main process, its
ingest workers and conversion workers, each page counted once (PSS: see collector/memory.py).

Two refusals, both retryable (gRPC RESOURCE_EXHAUSTED with RetryInfo / HTTP 429 with Retry-After),
so clients back off and retry instead of the collector being OOM-killed with acknowledged data
in memory:
  - above the soft limit, every request is refused until memory is back below it;
  - below it, a receiver asks the limiter before decoding a request (`collector.memory.admission`)
    and the limiter admits it only if the requests already in flight, each counted at
    `DECODE_EXPANSION` times its size, leave room under the soft limit: a burst of large concurrent
    requests is refused, not decoded and buffered. The spike allowance (limit - soft limit) is
    for the request bodies the receivers hold before asking (their `max_in_flight_bytes_mib`).

Every refusal is counted (`otelcol_processor_refused_spans`, `otelcol_memory_limiter_refused_requests`)
and logged, at most once per 10 s per reason. The state is a metric (`otelcol_memory_limiter_refusing`,
`otelcol_memory_limiter_used_bytes`, `..._soft_limit_bytes`, `..._hard_limit_bytes`) and part of
`/health`'s answer: as in otelcol, the health check stays 200 while the limiter refuses (the
collector is up and answering, and a 503 would get it restarted by its orchestrator, losing what
sits in memory), with `"memory_limiter": "refusing"` in the body.
"""

from __future__ import annotations

import logging
import threading

from pydantic import Field, model_validator

from collector import memory
from collector.component import ComponentId, Consumer, Factory, Host, Kind, Processor, ResourceExhaustedError, StrictConfig
from collector.confighelpers import Duration
from collector.pdata import Traces
from collector.ratelimited_log import RateLimitedLog

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# What a request costs while it is decoded and processed, in multiples of its serialized size:
# the received bytes, the parsed message, the copy handed to the queue (measured in
# tests/test_memory_limiter.py: a 48 MiB request added 2.6x its size to the process at peak).
DECODE_EXPANSION = 3


class MemoryLimiterConfig(StrictConfig):
    check_interval: Duration = Field(1.0, gt=0)
    limit_mib: float = Field(0, ge=0)
    spike_limit_mib: float = Field(0, ge=0)
    limit_percentage: float = Field(0, ge=0, le=100)
    spike_limit_percentage: float = Field(0, ge=0, le=100)

    @model_validator(mode="after")
    def _one_limit(self) -> "MemoryLimiterConfig":
        if not self.limit_mib and not self.limit_percentage:
            raise ValueError("set limit_mib (or limit_percentage)")
        if self.limit_mib and self.spike_limit_mib >= self.limit_mib:
            raise ValueError("spike_limit_mib must be below limit_mib")
        if self.limit_percentage and self.spike_limit_percentage >= self.limit_percentage:
            raise ValueError("spike_limit_percentage must be below limit_percentage")
        return self

    def limits(self) -> tuple[int, int]:
        """(soft, hard) in bytes."""
        if self.limit_mib:
            hard = int(self.limit_mib * MIB)
            spike = int((self.spike_limit_mib or self.limit_mib * 0.2) * MIB)
        else:
            total = memory.total_memory_bytes()
            hard = int(total * self.limit_percentage / 100)
            spike = int(total * (self.spike_limit_percentage or self.limit_percentage * 0.2) / 100)
        return hard - spike, hard


class MemoryLimiter(Processor):
    def __init__(self, component_id: ComponentId, config: MemoryLimiterConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self.soft_limit, self.hard_limit = config.limits()
        self.refusing = False
        self.used = 0
        self.in_flight = 0  # admitted request bytes x DECODE_EXPANSION, not yet released
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._telemetry = None
        self._log = RateLimitedLog(log, interval_s=10)

    # --- lifecycle: the watcher thread and the admission gate exist only between start and shutdown ---

    def start(self, host: Host) -> None:
        self._telemetry = host.telemetry
        self.check()
        if self.refusing:
            log.error("memory_limiter %s: the collector already uses %d MiB at start, above the soft limit of %d MiB "
                      "(limit_mib - spike_limit_mib): every request will be refused until it is lower; raise limit_mib",
                      self.id, self.used // MIB, self.soft_limit // MIB)
        memory.set_admission_gate(self.admit)
        self._thread = threading.Thread(target=self._watch, name=f"memory-limiter-{self.id}", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        memory.set_admission_gate(None)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.config.check_interval):
            self.check()

    # --- measuring ---

    def check(self) -> None:
        used = memory.collector_bytes()
        if used > self.soft_limit:
            memory.release_free_memory()  # allocators keep freed pages: hand them back before deciding we are full
            used = memory.collector_bytes()
        was_refusing, self.used, self.refusing = self.refusing, used, used > self.soft_limit
        if self.refusing != was_refusing:
            log.warning("memory_limiter %s: %s: %d MiB used, soft limit %d MiB", self.id,
                        "refusing data" if self.refusing else "accepting data again", used // MIB, self.soft_limit // MIB)
        self._report()

    def state(self) -> str:
        return "refusing" if self.refusing else "accepting"

    # --- refusing ---

    def admit(self, request_bytes: int):
        """The admission gate (collector.memory.admission): a release function, or ResourceExhaustedError."""
        cost = request_bytes * DECODE_EXPANSION
        with self._lock:
            if self.refusing:
                reason = "above_soft_limit"
            else:
                # The room left under the soft limit at the last measurement, shared by the processes
                # that admit requests (ingest workers). The spike allowance above it is for what the
                # receivers hold before they ask (request bodies being read: max_in_flight_bytes_mib).
                headroom = (self.soft_limit - self.used) // memory.admitting_processes()
                fits = self.in_flight + cost <= headroom
                reason = None if fits else "in_flight"
            if reason is None:
                self.in_flight += cost
        if reason is not None:
            self._refuse(reason, request_bytes)

        def release() -> None:
            with self._lock:
                self.in_flight -= cost

        return release

    def _refuse(self, reason: str, request_bytes: int = 0, spans: int = 0):
        if self._telemetry is not None:
            self._telemetry.count("memory_limiter_refused_requests", 1, processor=str(self.id), reason=reason)
            self._telemetry.count("processor_refused_spans", spans, processor=str(self.id))
        if reason == "above_soft_limit":
            message = (f"memory_limiter: the collector uses {self.used // MIB} MiB, above the soft limit of "
                       f"{self.soft_limit // MIB} MiB; retry later")
        else:
            message = (f"memory_limiter: a request of {request_bytes // MIB} MiB does not fit beside the "
                       f"{self.in_flight // MIB} MiB being decoded under the {self.soft_limit // MIB} MiB soft limit; retry later")
        self._log.warning(reason, "%s (refused)", message)
        raise ResourceExhaustedError(message, retry_after_s=max(1.0, self.config.check_interval))

    def consume(self, traces: Traces) -> None:
        if self.refusing:
            self._refuse("above_soft_limit", spans=traces.span_count())
        self.next.consume(traces)

    def _report(self) -> None:
        if self._telemetry is not None:
            self._telemetry.memory_limiter(str(self.id), self.refusing, self.used, self.soft_limit, self.hard_limit)


factory = Factory("memory_limiter", Kind.PROCESSOR, MemoryLimiterConfig, MemoryLimiter, signals=("traces", "logs"),
                  create_logs=MemoryLimiter)
