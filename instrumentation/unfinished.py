"""Calls whose span can end before the instrumentation sees the call end: a stream the app leaves.

An application that stops reading a stream (a ``break`` in its loop, a user pressing "stop", a
stream dropped after ``next()``) still pays for the call: the provider read the whole prompt and
wrote tokens until the connection closed. The instrumentor ends the span when the stream is closed
or collected, without the usage the provider would have sent last. The stream wrapper registers
here, while the call runs, the call's span and what it can tell about the call if that happens
(estimated usage, the mark that the stream was left); the GenAI span processor asks for it when the
span ends, and the stream wrapper forgets it when the stream ends normally.

A stream still open when the process exits (kept in a variable until the end of a script) would
never end its span: the instrumentor ends it when the stream is collected, after the exporters
have shut down. ``end_open()`` ends those spans first (the process hooks call it at exit, on
SIGTERM and before ``os._exit``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping

# What a call that ends unfinished adds to its span's attributes, given the attributes it ended with.
Completion = Callable[[Mapping[str, Any]], dict]

_LIMIT = 4096  # a span that never ends is forgotten after this many newer calls
# Reentrant: end_open() runs in the SIGTERM handler, which may interrupt this thread inside register().
_lock = threading.RLock()
_pending: OrderedDict[int, tuple[Any, Completion]] = OrderedDict()


def _forget_all_in_child() -> None:
    # A forked child inherits the parent's table: those calls are the parent's to end (ending a copy
    # in the child would export the parent's span a second time). And a fresh lock: another thread
    # of the parent may have held it at the fork, and that thread does not exist in the child.
    global _lock
    _lock = threading.RLock()
    _pending.clear()


os.register_at_fork(after_in_child=_forget_all_in_child)


def register(span, complete: Completion) -> None:
    with _lock:
        _pending[span.get_span_context().span_id] = (span, complete)
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
        entry = _pending.pop(span_id, None)
    return entry[1] if entry is not None else None


def end_open() -> int:
    """End the span of every call still unfinished (at exit); returns how many were ended."""
    with _lock:
        spans = [span for span, _ in _pending.values()]
    ended = 0
    for span in spans:
        if span.is_recording():
            span.end()  # the GenAI span processor takes the completion in on_end
            ended += 1
    return ended
