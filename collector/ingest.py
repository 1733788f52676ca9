"""Ingest worker processes: the receivers and processors on more than one core.

    service:
      ingest_workers: 2     # default 1: everything in one process

A Python process runs one thread at a time, and a busy collector spends most of it receiving:
decoding, validating, normalising and pricing spans. With `ingest_workers: N` (N > 1), N worker
processes run the receivers and processors, all listening on the configured ports (SO_REUSEPORT:
the kernel spreads connections over them). They hand batches to this, the main process, through
the exporters' disk queues, and acknowledge a request once its batch is committed there, exactly
as one process does. The main process owns the exporters (one writer per store, as the embedded
ClickHouse requires), the extensions that serve something (health check, SQL endpoint) and the
metrics endpoint, which sums every process's metrics. A worker that dies is started again; what
it acknowledged is on disk already. A worker's `memory_limiter` measures the whole collector (the
main process and every worker), so its limit is the collector's, as with one process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable

from collector.config import CollectorConfig

# What each worker process runs: (config_path, metrics_dir, log_level, parent_pid, ready) -> None.
# It builds the worker's pipelines, so it lives with the service (service.run_worker), which is
# above this module: the supervisor only starts, watches and stops processes.
WorkerMain = Callable[[str, "str | None", int, int, Connection], None]

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks copied by fork


class IngestWorkers:
    """Starts the worker processes, restarts any that die, stops them before the exporters drain."""

    def __init__(self, config: CollectorConfig, metrics_dir: str | None, telemetry, *, worker_main: WorkerMain,
                 on_health: Callable[[bool], None] = lambda healthy: None, start_timeout_s: float = 120):
        self.config, self.metrics_dir, self.telemetry = config, metrics_dir, telemetry
        self.worker_main = worker_main  # a module-level function: spawn pickles it by name
        self.on_health = on_health  # False while a worker is down: the health check says so
        self.start_timeout_s = start_timeout_s
        self.processes: list[multiprocessing.Process | None] = [None] * config.ingest_workers
        self.restarts = 0
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        pending = [self._spawn(index) for index in range(len(self.processes))]
        for index, conn in enumerate(pending):
            self._wait_ready(index, conn)
        self._supervisor = threading.Thread(target=self._supervise, name="ingest-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self, index: int) -> Connection:
        ours, theirs = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(
            target=self.worker_main, name=f"ingest-{index}", daemon=True,
            args=(self.config.path, self.metrics_dir, logging.getLogger().level, os.getpid(), theirs),
        )
        process.start()
        theirs.close()
        self.processes[index] = process
        return ours

    def _wait_ready(self, index: int, conn: Connection) -> None:
        process = self.processes[index]
        if not conn.poll(self.start_timeout_s):
            process.kill()
            raise RuntimeError(f"ingest worker {index} did not start within {self.start_timeout_s:.0f}s")
        try:
            message = conn.recv()
        except EOFError:
            message = f"exited with code {process.exitcode}"
        conn.close()
        if message != "ready":
            raise RuntimeError(f"ingest worker {index} failed to start: {message}")

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for index, process in enumerate(self.processes):
                if process is None or process.is_alive() or self._stopping.is_set():
                    continue
                log.error("ingest worker %d (pid %d) exited with code %s; starting it again",
                          index, process.pid, process.exitcode)
                self.on_health(False)
                self.telemetry.process_ended(process.pid)
                self.restarts += 1
                try:
                    self._wait_ready(index, self._spawn(index))
                except Exception:  # noqa: BLE001 - keep supervising; the next round tries again
                    log.exception("ingest worker %d: restart failed", index)
                    time.sleep(1.0)
            if not self._stopping.is_set() and all(p is not None and p.is_alive() for p in self.processes):
                self.on_health(True)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM: each worker stops its receivers and flushes its processors into the queues."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        alive = [p for p in self.processes if p is not None and p.is_alive()]
        for process in alive:
            process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in alive:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.error("ingest worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.join(5)
