"""Calls whose span can end before the instrumentation sees the call end: a stream the app leaves.

An application that stops reading a stream (a ``break`` in its loop, a user pressing "stop", a
stream dropped after ``next()``) still pays for the call: the provider read the whole prompt and
wrote tokens until the connection closed. The instrumentor ends the span when the stream is closed
or collected, without the usage the provider would have sent last. The stream wrapper registers
here, while the call runs, what it can tell about the call if that happens (estimated usage); the
GenAI span processor asks for it when the span ends, and the stream wrapper forgets it when the
stream ends normally.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

# What a call that ends unfinished adds to its span's attributes.
Completion = Callable[[], dict]

_LIMIT = 4096  # a span that never ends is forgotten after this many newer calls
_lock = threading.Lock()
_pending: OrderedDict[int, Completion] = OrderedDict()


def register(span_id: int, complete: Completion) -> None:
    with _lock:
        _pending[span_id] = complete
        while len(_pending) > _LIMIT:
            _pending.popitem(last=False)


def forget(span_id: int) -> None:
    with _lock:
        _pending.pop(span_id, None)


def take(span_id: int) -> Completion | None:
    """The completion registered for this span (once), or None when the call ended normally."""
    if not _pending:  # the common case, without the lock
        return None
    with _lock:
        return _pending.pop(span_id, None)
