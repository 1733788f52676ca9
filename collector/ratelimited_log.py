"""Log lines that a client or a destination can trigger at any rate: at most one per key and interval.

    drops = RateLimitedLog(log, interval_s=10)
    drops.error("permanent", "exporter %s: dropping %d spans: %s", exporter_id, spans, why)

The first line of a key is written at once; within the interval the others are counted, and the
next line written says how many were suppressed. The counts live in the metrics, not here: this
only keeps a flood of refusals from flooding the log.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0):
        self.logger, self.interval_s = logger, interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args) -> bool:
        """Write the line unless one of `key` was written less than `interval_s` ago; True if written."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar lines suppressed in the last {self.interval_s:g}s)"
        self.logger.log(level, message, *args)
        return True

    def error(self, key: str, message: str, *args) -> bool:
        return self.log(logging.ERROR, key, message, *args)

    def warning(self, key: str, message: str, *args) -> bool:
        return self.log(logging.WARNING, key, message, *args)
