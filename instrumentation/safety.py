"""Instrumentation must never break the application: its own failures are caught, logged once per
place, and counted.

    with guarded("litellm.stream.chunk"):
        ...instrumentation-only work...

    @guard("litellm.result")                 # returns None instead of raising
    def record(span, result): ...

``failures()`` returns ``{place: count}`` (what a test or a debugging user looks at).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import Counter
from typing import Callable, Iterator, TypeVar

_log = logging.getLogger("instrumentation")
_lock = threading.Lock()
_counts: Counter[str] = Counter()

F = TypeVar("F", bound=Callable)


def report(place: str, exc: BaseException) -> None:
    """Count a failure of the instrumentation at ``place``; log it the first time only."""
    with _lock:
        _counts[place] += 1
        first = _counts[place] == 1
    if first:
        _log.warning("genaitrace instrumentation error in %s (the application is unaffected; "
                     "further errors here are counted, not logged): %s: %s", place, type(exc).__name__, exc,
                     exc_info=_log.isEnabledFor(logging.DEBUG))


@contextlib.contextmanager
def guarded(place: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        report(place, exc)


def guard(place: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report(place, exc)
                return None
        return wrapper  # type: ignore[return-value]
    return decorate


def failures() -> dict[str, int]:
    with _lock:
        return dict(_counts)
