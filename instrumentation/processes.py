"""Spans from every process an app starts, exported and parented; and the last spans of a process
that is stopped with a signal.

``install(provider)`` (called once by ``instrumentation.init()`` and the distro's configurator):

* **fork** (``os.fork``, multiprocessing's ``fork``/``forkserver`` children, ``ProcessPoolExecutor``
  workers, pre-fork servers): the SDK's batch processor restarts its export thread in the child
  (its own at-fork handler). What a forked child never runs is ``atexit``: multiprocessing's
  children and most pre-fork workers leave through ``os._exit``. ``os._exit`` is wrapped to flush
  first (bounded by ``FLUSH_TIMEOUT_S``).
* **spawn** (a fresh interpreter): it instruments itself (the same ``PYTHONPATH``/environment), and
  ``multiprocessing.Process.start`` / ``ProcessPoolExecutor.submit`` carry the caller's trace
  context (W3C ``traceparent`` + ``baggage``) to the child, which continues the trace.
* **pools** made before the request (``ProcessPoolExecutor``, ``multiprocessing.Pool`` and its
  ``ThreadPool``): each task carries its caller's context (``submit``; ``apply_async``, ``map``,
  ``starmap``, ``imap`` and their variants), whatever the worker inherited when it started.
* **SIGTERM** (what container orchestrators send): when the process has no handler of its own
  (``SIG_DFL``), one is installed that flushes, restores ``SIG_DFL`` and raises the signal again, so
  the process still dies of SIGTERM. An app (or uvicorn) that installs its own handler replaces it;
  uvicorn restores the previous handler and re-raises the signal after its graceful shutdown, which
  then flushes. A process that re-raises SIGTERM (or SIGHUP) with the default action in place
  (gunicorn's UvicornWorker resets SIGTERM to it) flushes first: ``signal.raise_signal`` is wrapped. SIGINT's default handler raises KeyboardInterrupt, so exit handlers run anyway.
  A SIGTERM that arrives while the process is already leaving through its exit handlers (the SDK's
  own shutdown is then exporting the last spans, and a flush would do nothing) lets that exit
  finish, with its own exit status, for at most ``FLUSH_TIMEOUT_S``; then the process dies of it.
  ``multiprocessing.Pool.terminate()`` (what leaving ``with Pool(...)`` does) signals workers that
  are exiting on their own: a spawned worker lost its spans that way in about one run of three.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading

from instrumentation import unfinished
from instrumentation.safety import guarded

FLUSH_TIMEOUT_S = 5.0

# Where a process is in its exit: running its exit handlers; a SIGTERM's deferred delivery started;
# that delivery due (``_on_sigterm``).
_NOT_EXITING = {"exiting": False, "terminate_later": False, "terminate_now": False}
_state = {"installed": False, "provider": None, **_NOT_EXITING}


def flush(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Flush the provider from a helper thread, bounded: the caller may hold a lock the export needs
    (a signal handler interrupts arbitrary code)."""
    provider = _state["provider"]
    if provider is None:
        return
    _end_unfinished()

    def run():
        with guarded("processes.flush"):
            provider.force_flush(int(timeout_s * 1000))
        with guarded("processes.flush_events"):  # the log records (provider errors) made here, if any
            from instrumentation import events

            events.flush(int(timeout_s * 1000))

    worker = threading.Thread(target=run, name="genaitrace-flush", daemon=True)
    worker.start()
    worker.join(timeout_s)


def _end_unfinished() -> None:
    with guarded("processes.end_unfinished"):
        unfinished.end_open()


def _on_exit() -> None:
    """The first exit handler (registered after the provider's): from here on the provider's own
    shutdown exports what is left, so a SIGTERM must not cut it off (``_on_sigterm``)."""
    _state["exiting"] = True
    _end_unfinished()


# --------------------------------------------------------------------------- flush before the end
def _flush_before(module, name: str, needs_flush) -> None:
    """Wrap ``module.name``, a call that ends the process without exit handlers, to flush first when
    ``needs_flush(arg)`` says so. Once per process; the wrapper never stands in the call's way."""
    original = getattr(module, name)
    if getattr(original, "_genaitrace", False):
        return

    def ending(arg):
        try:
            if needs_flush(arg):
                flush()
        except BaseException:  # never stand between the process and its end
            pass
        original(arg)

    ending._genaitrace = True  # type: ignore[attr-defined]
    ending.__wrapped__ = original  # type: ignore[attr-defined]
    ending.__name__ = name
    setattr(module, name, ending)


def _wrap_os_exit() -> None:
    # os._exit skips atexit: these spans would be lost (every forked multiprocessing child)
    _flush_before(os, "_exit", lambda code: True)


# --------------------------------------------------------------------------- spawn: trace context
class _ContextCall:
    """A picklable callable that runs ``fn`` inside the caller's trace context (ProcessPoolExecutor)."""

    def __init__(self, fn, carrier: dict):
        self.fn, self.carrier = fn, carrier

    def __call__(self, *args, **kwargs):
        from instrumentation.baggage import attach_carrier

        with attach_carrier(self.carrier):
            return self.fn(*args, **kwargs)


def _carrier() -> dict:
    from instrumentation.baggage import inject

    return inject({})


def _patch_multiprocessing() -> None:
    """When the app imports them (~40 ms of imports an app that starts no process should not pay)."""
    import wrapt

    wrapt.register_post_import_hook(_guarded_hook("processes.multiprocessing", _patch_process),
                                    "multiprocessing.process")
    wrapt.register_post_import_hook(_guarded_hook("processes.pool", _patch_process_pool),
                                    "concurrent.futures.process")
    wrapt.register_post_import_hook(_guarded_hook("processes.mp_pool", _patch_mp_pool), "multiprocessing.pool")


def _guarded_hook(place: str, patch):
    def hook(module):
        with guarded(place):
            patch(module)
    return hook


def _patch_process(mp_process) -> None:
    import wrapt

    def start(wrapped, instance, args, kwargs):
        with guarded("processes.start"):
            instance._genaitrace_carrier = _carrier()
        return wrapped(*args, **kwargs)

    def bootstrap(wrapped, instance, args, kwargs):  # in the child, around run() (subclasses too)
        carrier = getattr(instance, "_genaitrace_carrier", None)
        if not carrier:
            return wrapped(*args, **kwargs)
        from instrumentation.baggage import attach_carrier

        with attach_carrier(carrier):
            return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(mp_process, "BaseProcess.start", start)
    wrapt.wrap_function_wrapper(mp_process, "BaseProcess._bootstrap", bootstrap)


def _patch_process_pool(futures_process) -> None:
    import wrapt

    def submit(wrapped, instance, args, kwargs):
        if not args:
            return wrapped(*args, **kwargs)
        carrier = None
        with guarded("processes.submit"):
            carrier = _carrier()
        if not carrier:
            return wrapped(*args, **kwargs)
        return wrapped(_ContextCall(args[0], carrier), *args[1:], **kwargs)

    wrapt.wrap_function_wrapper(futures_process, "ProcessPoolExecutor.submit", submit)


def _in_callers_context(wrapped, instance, args, kwargs):
    """Pool task methods (func first): the task runs in the caller's trace context. The workers
    were made when the pool was (often before any request), so what they inherited is not it."""
    carrier = None
    if args:
        with guarded("processes.mp_pool_task"):
            carrier = _carrier()
    if not carrier:
        return wrapped(*args, **kwargs)
    return wrapped(_ContextCall(args[0], carrier), *args[1:], **kwargs)


def _patch_mp_pool(mp_pool) -> None:
    """multiprocessing.Pool and ThreadPool: apply/apply_async, map/starmap (and _async), imap(_unordered)."""
    import wrapt

    for method in ("apply_async", "_map_async", "imap", "imap_unordered"):
        if hasattr(mp_pool.Pool, method):
            wrapt.wrap_function_wrapper(mp_pool, f"Pool.{method}", _in_callers_context)


# --------------------------------------------------------------------------- SIGTERM
_FATAL_BY_DEFAULT = (signal.SIGTERM, signal.SIGHUP)


def _wrap_raise_signal() -> None:
    """A process that re-raises a signal whose action is the default one dies of it at once. uvicorn
    does so after its graceful shutdown, and its gunicorn worker class resets SIGTERM to the default
    first (so the handler installed below is gone): flush before such a signal is raised."""
    _flush_before(signal, "raise_signal",
                  lambda signum: signum in _FATAL_BY_DEFAULT and signal.getsignal(signum) is signal.SIG_DFL)


def _on_sigterm(signum, frame):
    if _state["exiting"] and not _state["terminate_now"] and _terminate_later(signum):
        # The exit handlers are exporting the last spans (the SDK's processors are shut down: a
        # flush would return at once with nothing done). Let them finish, bounded.
        return
    flush()
    _die_of(signum)


def _die_of(signum) -> None:
    """As if we had never been here: the default action, so the exit status says SIGTERM."""
    signal.signal(signum, signal.SIG_DFL)
    getattr(signal.raise_signal, "__wrapped__", signal.raise_signal)(signum)  # flushed already


def _terminate_later(signum) -> bool:
    """Deliver `signum` again after FLUSH_TIMEOUT_S if the process is still there; the handler then
    dies of it (a handler only runs on the main thread, so the timer signals instead of dying).
    False if no timer could be started: the caller dies now, as without this."""
    if _state["terminate_later"]:
        return True  # a second signal while the first one's time runs

    def expire():
        _state["terminate_now"] = True
        os.kill(os.getpid(), signum)

    try:
        timer = threading.Timer(FLUSH_TIMEOUT_S, expire)
        timer.daemon = True
        timer.start()
    except Exception:  # noqa: BLE001 - e.g. no new threads at this point of the interpreter's exit
        return False
    _state["terminate_later"] = True
    return True


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def install(provider) -> None:
    """Once per process (idempotent); never raises."""
    if _state["installed"]:
        _state["provider"] = provider
        return
    _state.update(installed=True, provider=provider)
    # Registered after the provider's own exit hook, so it runs first (atexit is last in, first out):
    # the spans of streams still open are ended while the exporters still run.
    atexit.register(_on_exit)
    # A child forked while this process was leaving is not leaving (and has no timer thread).
    os.register_at_fork(after_in_child=lambda: _state.update(_NOT_EXITING))
    with guarded("processes.os_exit"):
        _wrap_os_exit()
    with guarded("processes.multiprocessing"):
        _patch_multiprocessing()
    with guarded("processes.sigterm"):
        _install_sigterm()
    with guarded("processes.raise_signal"):
        _wrap_raise_signal()

