"""Deferred acknowledgements: a receiver hands a request to its pipeline without a thread waiting
for the pipeline's answer.

A pipeline's `consume` answers synchronously: when it returns, the data has been taken. The batch
processor only returns once the batch the request joined has been taken by the exporters' durable
queues, so a caller that blocks holds its thread for up to the batch's `timeout`. A receiver with a
fixed pool of threads would then cap the requests that can wait in a batch at the pool's size
(16 requests of 128 spans never fill a batch of 8,192: every batch waits for its timer).

A receiver that must not hold a thread for that wait runs `consume` inside `deferring()`. A
component that would wait for a later event (the batch being taken) registers that event's future
with `defer(future)` and returns at once; a component that must act only once the data is
accepted (a metric of accepted spans) registers it with `on_accepted`. The receiver then waits
for `Deferred.settled()` on its event loop, and answers the client with its outcome. Outside
`deferring()` nothing changes: `defer` returns False (the caller blocks as before) and
`on_accepted` runs its callback at once.

    with acks.deferring() as pending:
        pending.hold(memory.admission(size))  # released when the answer is known
        pipeline.consume(traces)
    await asyncio.wrap_future(pending.settled())  # raises the pipeline's error, if any
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Callable, ContextManager, Iterator

log = logging.getLogger(__name__)

_current: ContextVar["Deferred | None"] = ContextVar("genaitrace_deferred_ack", default=None)


class Deferred:
    """What one request's pipeline still owes it: futures of later events, callbacks to run once
    they all succeeded, and resources to hold until they ended either way."""

    def __init__(self) -> None:
        self._futures: list[Future] = []
        self._on_accepted: list[Callable[[], None]] = []
        self._holds = contextlib.ExitStack()
        self._settled: Future | None = None

    def hold(self, context: ContextManager) -> None:
        """Enter `context` now, exit it when the request's answer is known (not when the thread
        that entered it moves on): e.g. the memory limiter's admission of the request's bytes."""
        self._holds.enter_context(context)

    def settled(self, accepted: bool = True) -> Future:
        """A future that ends when every deferred future has: with None when all succeeded (after
        the `on_accepted` callbacks ran), else with the first failure. `accepted` False: the
        request was refused before it was fully handed over; the callbacks are dropped."""
        if self._settled is not None:
            return self._settled
        settled = self._settled = Future()
        settled.set_running_or_notify_cancel()  # an awaiting task that is cancelled cannot cancel it
        if not accepted:
            self._on_accepted.clear()
        remaining = [len(self._futures)]
        lock = threading.Lock()

        def one_done(_future: Future | None) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] > 0:
                    return
            self._finish(settled)

        if not self._futures:
            remaining[0] = 1
            one_done(None)
        for future in self._futures:
            future.add_done_callback(one_done)
        return settled

    def _finish(self, settled: Future) -> None:
        failure = next((f.exception() for f in self._futures if f.exception() is not None), None)
        if failure is None:
            for callback in self._on_accepted:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - the data is accepted; a failing callback must not refuse it
                    log.exception("acknowledgement callback failed")
        try:
            self._holds.close()
        except Exception:  # noqa: BLE001 - releasing must not lose the answer
            log.exception("releasing a request's resources failed")
        if failure is None:
            settled.set_result(None)
        else:
            settled.set_exception(failure)


@contextlib.contextmanager
def deferring() -> Iterator[Deferred]:
    """Run a pipeline's `consume` with deferred acknowledgement (see the module docstring). On an
    exception the request is refused: its holds are released once what was already deferred ended."""
    pending = Deferred()
    token = _current.set(pending)
    try:
        yield pending
    except BaseException:
        pending.settled(accepted=False)
        raise
    finally:
        _current.reset(token)


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Run the enclosed code outside the current request's deferral, its callers waiting for every
    answer: what a batch hands on for many requests (a later batch processor, an exporter) must
    be taken before that batch counts as taken, not be owed to whichever request filled it."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def defer(future: Future) -> bool:
    """Register `future` as part of the current request's answer. False outside `deferring()`:
    the caller must then wait for it itself."""
    pending = _current.get()
    if pending is None or pending._settled is not None:
        return False
    pending._futures.append(future)
    return True


def on_accepted(callback: Callable[[], None]) -> None:
    """Run `callback` once the current request's data is accepted (at once outside `deferring()`)."""
    pending = _current.get()
    if pending is None or pending._settled is not None:
        callback()
    else:
        pending._on_accepted.append(callback)
