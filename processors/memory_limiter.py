"""`memory_limiter` processor: refuse data before the process grows past its limit.

    processors:
      memory_limiter:
        check_interval: 1s
        limit_mib: 1024          # hard limit of the process's resident memory
        spike_limit_mib: 256     # refuse above limit - spike (the soft limit)
        # or: limit_percentage: 75, spike_limit_percentage: 20 (of the machine's/cgroup's memory)

Put it first in the pipeline. Above the soft limit every request is refused with a retryable
error (gRPC RESOURCE_EXHAUSTED / HTTP 429 with Retry-After), so clients back off and retry
instead of the collector being OOM-killed with acknowledged data in memory.
"""

from __future__ import annotations

import threading

from pydantic import Field, model_validator

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, ResourceExhaustedError, StrictConfig
from collector.confighelpers import Duration
from collector.memory import release_free_memory, resident_bytes, total_memory_bytes
from collector.pdata import Traces


class MemoryLimiterConfig(StrictConfig):
    check_interval: Duration = 1.0
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
        return self

    def limits(self) -> tuple[int, int]:
        """(soft, hard) in bytes."""
        if self.limit_mib:
            hard = int(self.limit_mib * 1024 * 1024)
            spike = int((self.spike_limit_mib or self.limit_mib * 0.2) * 1024 * 1024)
        else:
            total = total_memory_bytes()
            hard = int(total * self.limit_percentage / 100)
            spike = int(total * (self.spike_limit_percentage or self.limit_percentage * 0.2) / 100)
        return hard - spike, hard


class MemoryLimiter(Processor):
    def __init__(self, component_id: ComponentId, config: MemoryLimiterConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self.soft_limit, self.hard_limit = config.limits()
        self.refusing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"memory-limiter-{component_id}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.config.check_interval):
            self.check()

    def check(self) -> None:
        used = resident_bytes()
        if used > self.soft_limit:
            release_free_memory()  # allocators keep freed pages: hand them back before deciding we are full
            used = resident_bytes()
        self.refusing = used > self.soft_limit

    def consume(self, traces: Traces) -> None:
        if self.refusing:
            raise ResourceExhaustedError(
                f"memory_limiter: resident memory above the soft limit of {self.soft_limit // (1024 * 1024)} MiB; retry later",
                retry_after_s=max(1.0, self.config.check_interval),
            )
        self.next.consume(traces)

    def shutdown(self) -> None:
        self._stop.set()


factory = Factory("memory_limiter", Kind.PROCESSOR, MemoryLimiterConfig, MemoryLimiter)
