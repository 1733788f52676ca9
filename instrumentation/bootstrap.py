"""One call to trace an LLM / multi-agent app: ``instrumentation.init()``.

It honours the standard OpenTelemetry variables (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_TRACES_SAMPLER(_ARG)``,
``OTEL_TRACES_EXPORTER``, ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``,
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, ``OTEL_BSP_*``) and
instruments only what is needed, lazily: each library is instrumented when the
app imports it (LiteLLM: openinference; CrewAI, OpenAI, Anthropic SDKs and the
``@workflow/@agent/@task/@tool`` decorators: traceloop; requests/httpx: W3C
``traceparent`` + ``baggage``; threading: context into threads and pools).

Nothing here phones home: CrewAI telemetry/tracking and Traceloop telemetry are
off unless the user sets them, LiteLLM uses its bundled price map.
``OTEL_SDK_DISABLED`` is never set.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Any, Callable, Iterable

from opentelemetry import trace as trace_api

_log = logging.getLogger(__name__)

# Environment defaults applied with setdefault (a user's explicit value always wins).
SAFE_ENV_DEFAULTS = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",  # a verbose Flow's start asks PyPI for a newer CrewAI
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TRACELOOP_TELEMETRY": "false",
    "TRACELOOP_SUPPRESS_WARNINGS": "true",
    "TRACELOOP_METRICS_ENABLED": "false",
}

# The instrumentations init() manages, by the entry-point name users put in
# OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, with the module whose import triggers them.
MANAGED = {
    "litellm": "litellm",
    "crewai": "crewai",
    # not `openai`: LiteLLM imports it at start-up, and traceloop's instrumentor imports all of
    # `openai.resources` (~1.3 s) to wrap it. The resources load when a client is first used
    # (by the app, or by LiteLLM's OpenAI-compatible providers, whose calls are suppressed).
    "openai": "openai.resources",
    "anthropic": "anthropic",
    "requests": "requests",
    "httpx": "httpx",
    "httpx2": "httpx2",  # the Anthropic SDK's HTTP client (2.x)
    "threading": None,  # immediate
    "traceloop": "traceloop.sdk.tracing.tracing",  # the @workflow/@agent/@task/@tool decorators
}

# Entry-point values that must never be loaded next to ours (duplicate LLM spans).
DUPLICATE_INSTRUMENTORS = frozenset({
    "opentelemetry.instrumentation.litellm:LiteLLMInstrumentor",  # traceloop's LiteLLM: 2nd root span
})

_lock = threading.RLock()
_state: dict[str, Any] = {"provider": None, "processor": None, "hooks": set(), "done": set(),
                          "owns_provider": False, "init_seconds": None}


# --------------------------------------------------------------------------- environment
def apply_safe_env_defaults() -> None:
    for key, value in SAFE_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from instrumentation.processor import SPAN_ONLY, capture_mode

    os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "true" if capture_mode() == SPAN_ONLY else "false")
    if capture_mode() == SPAN_ONLY:  # the Anthropic SDK's own spans follow the same switch
        os.environ.setdefault("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", "content")
    # never: os.environ["OTEL_SDK_DISABLED"] (it would disable the user's own tracing too)


def disabled_instrumentations() -> set[str]:
    raw = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {x.strip() for x in raw.split(",") if x.strip()}


# --------------------------------------------------------------------------- tracing pipeline
def _build_exporters() -> list:
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters = []
    for name in names:
        if name in ("none", ""):
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name in ("otlp", "otlp_proto_http", "otlp_proto_grpc"):
            protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
            from instrumentation.exporter import DeferredSpanExporter, ResilientSpanExporter

            grpc = name == "otlp_proto_grpc" or (name == "otlp" and protocol == "grpc")
            exporters.append(ResilientSpanExporter(DeferredSpanExporter(functools.partial(_otlp_exporter, grpc))))
        else:
            _log.warning("OTEL_TRACES_EXPORTER=%s is not supported by instrumentation.init(); ignored", name)
    return exporters


def _otlp_exporter(grpc: bool):
    """The OTLP exporter; endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*."""
    if grpc:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def _prepend_processor(provider, processor) -> None:
    """Put ``processor`` first, so it rewrites spans before any exporting processor sees them."""
    multi = getattr(provider, "_active_span_processor", None)
    if multi is not None and hasattr(multi, "_span_processors"):
        with multi._lock:
            if processor not in multi._span_processors:
                multi._span_processors = (processor,) + tuple(multi._span_processors)
    else:  # pragma: no cover - unknown provider
        provider.add_span_processor(processor)


def find_genai_processor(provider):
    from instrumentation.processor import GenAISpanProcessor

    multi = getattr(provider, "_active_span_processor", None)
    for p in getattr(multi, "_span_processors", ()):
        if isinstance(p, GenAISpanProcessor):
            return p
    return None


def install_processor(provider=None, capture: str | None = None):
    """Ensure the GenAI processor runs first on ``provider`` (default: the global SDK provider)."""
    from opentelemetry.sdk.trace import TracerProvider

    from instrumentation.processor import GenAISpanProcessor

    provider = provider or trace_api.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    existing = find_genai_processor(provider)
    if existing is not None:
        return existing
    processor = GenAISpanProcessor(capture=capture)
    _prepend_processor(provider, processor)
    _state["processor"] = processor
    return processor


def setup_tracing(service_name: str | None = None, exporter=None, *, span_processor=None,
                  capture: str | None = None, batch: bool = True, set_global: bool = True):
    """The tracer provider: an existing global SDK provider is reused, else one is created."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    current = trace_api.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        attrs = {}
        if service_name and not os.environ.get("OTEL_SERVICE_NAME"):
            attrs["service.name"] = service_name
        provider = TracerProvider(resource=Resource.create(attrs))  # sampler from OTEL_TRACES_SAMPLER(_ARG)
        _state["owns_provider"] = True
        exporters = [exporter] if exporter is not None else _build_exporters()
        for exp in exporters:
            provider.add_span_processor(BatchSpanProcessor(exp) if batch else SimpleSpanProcessor(exp))
        if set_global:
            trace_api.set_tracer_provider(provider)  # noqa: GT104 - this is the bootstrap that sets it
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    if exporter is not None and not _state["owns_provider"]:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    install_processor(provider, capture=capture)
    _state["provider"] = provider
    from instrumentation import processes

    processes.install(provider)  # child processes' spans, flush on os._exit and SIGTERM
    return provider


# --------------------------------------------------------------------------- instrumentors
_deferred: list[Callable[[], Any]] = []


def after_current_instrumenting(fn: Callable[[], Any]) -> None:
    """Run ``fn`` when the instrumenting now under way is over (an instrumentor module that imports a
    library other hooks wait for is not loadable until its own import has finished)."""
    with _lock:
        _deferred.append(fn)


def run_deferred() -> None:
    while True:
        with _lock:
            if not _deferred:
                return
            fn = _deferred.pop(0)
        try:
            fn()
        except Exception as exc:
            from instrumentation.safety import report

            report("deferred instrumenting", exc)


def _once(key: str, fn: Callable[[], Any]) -> None:
    with _lock:
        if key in _state["done"]:
            return
        _state["done"].add(key)
    try:
        fn()
    except Exception:
        _log.warning("instrumenting %s failed; the app continues uninstrumented for it", key, exc_info=True)
    run_deferred()


def _instrument_litellm() -> None:
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.litellm import LiteLLMInstrumentor

    from instrumentation._patches import patch_litellm_dispatch_loop, patch_openinference_litellm
    from instrumentation.processor import SPAN_ONLY, capture_mode

    hide = capture_mode() != SPAN_ONLY
    inst = LiteLLMInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument(config=TraceConfig(hide_inputs=hide, hide_outputs=hide,
                                           hide_input_messages=hide, hide_output_messages=hide))
    patch_openinference_litellm()
    _block_traceloop_litellm()
    import wrapt

    wrapt.register_post_import_hook(lambda module: _once("litellm.dispatch_loop",
                                                         lambda: patch_litellm_dispatch_loop(module)),
                                    "litellm._service_logger")


def _block_traceloop_litellm() -> None:
    """Mark traceloop's LiteLLM instrumentor as done so nobody turns it on next to openinference."""
    try:
        from opentelemetry.instrumentation.litellm import LiteLLMInstrumentor as TLLiteLLM
    except Exception:
        return
    inst = TLLiteLLM()
    if inst.is_instrumented_by_opentelemetry:
        try:
            inst.uninstrument()  # noqa: GT104 - traceloop's LiteLLM spans would duplicate openinference's
        except Exception:
            pass
    inst._is_instrumented_by_opentelemetry = True  # instrument() is now a no-op
    inst._uninstrument = lambda **kw: None


def _instrument_crewai() -> None:
    """The project's CrewAI spans (instrumentation/crewai.py). traceloop's CrewAIInstrumentor is not
    loaded: every wrapper it installs is one that patch_crewai() replaces. If anything imports it
    later (Traceloop.init(), another distro), it is marked as done, so it adds no second set."""
    import wrapt

    from instrumentation.crewai import patch_crewai

    patch_crewai()
    wrapt.register_post_import_hook(lambda _mod: _once("crewai.traceloop", _block_traceloop_crewai),
                                    "opentelemetry.instrumentation.crewai")


def _block_traceloop_crewai() -> None:
    from opentelemetry.instrumentation.crewai import CrewAIInstrumentor

    from instrumentation.crewai import patch_crewai

    inst = CrewAIInstrumentor()
    if inst.is_instrumented_by_opentelemetry:
        patch_crewai()  # it ran first: its wrappers are peeled, ours stay
    inst._is_instrumented_by_opentelemetry = True  # instrument() is now a no-op
    inst._uninstrument = lambda **kw: None  # its unwrap() would remove our wrappers


def _instrument_openai() -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    from instrumentation._patches import patch_openai_responses, patch_openai_streams

    inst = OpenAIInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()
    patch_openai_streams()
    patch_openai_responses()


def anthropic_sdk_traces_itself() -> bool:
    """Anthropic SDKs with their own OpenTelemetry spans (2.x: ``anthropic._tracing``), not turned off.

    Their call span is exact (a stream's usage from ``message_delta``, not added to
    ``message_start``'s) and parents the SDK's HTTP span; traceloop's span beside it would be a
    second LLM span for the same call, in a trace of its own.
    """
    import importlib.util

    if os.environ.get("ANTHROPIC_OPEN_TELEMETRY", "").strip().lower() == "false":
        return False
    try:
        return importlib.util.find_spec("anthropic._tracing") is not None
    except (ImportError, ValueError):
        return False


def _instrument_anthropic() -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    if anthropic_sdk_traces_itself():
        _log.debug("genaitrace: the Anthropic SDK emits its own spans; traceloop's instrumentor is not applied")
        return
    inst = AnthropicInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()


def _instrument_requests() -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    inst = RequestsInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()


class _NotForThisThread:
    """A sys.meta_path finder: `import <name>` fails in the thread that made it, and only there."""

    def __init__(self, name: str):
        self.name, self.thread = name, threading.get_ident()

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _httpx_instrumentation():
    """opentelemetry-instrumentation-httpx's module. It imports httpx2 when installed, to define its
    httpx2 instrumentor (~50 ms, for the many apps whose httpx is 0.x and never import httpx2): so
    unless the app has imported httpx2, the module is imported without it (hidden from this thread
    only, so another thread's import of httpx2 is never refused), and `_instrument_httpx2` gives the
    httpx2 instrumentor its module when the app imports httpx2."""
    import sys

    if "opentelemetry.instrumentation.httpx" in sys.modules or "httpx2" in sys.modules:
        import opentelemetry.instrumentation.httpx as module

        return module
    blocker = _NotForThisThread("httpx2")
    sys.meta_path.insert(0, blocker)
    try:
        import opentelemetry.instrumentation.httpx as module
    finally:
        sys.meta_path.remove(blocker)
    return module


def _instrument_httpx() -> None:
    inst = _httpx_instrumentation().HTTPXClientInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()


def _instrument_httpx2() -> None:
    import httpx2

    instrumentor = _httpx_instrumentation().HTTPX2ClientInstrumentor
    if getattr(instrumentor, "_module", httpx2) is None:  # its module was imported without httpx2
        instrumentor._module = httpx2
    inst = instrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()


def _instrument_threading() -> None:
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    inst = ThreadingInstrumentor()
    if not inst.is_instrumented_by_opentelemetry:
        inst.instrument()


def _shim_traceloop_decorators() -> None:
    """Let traceloop's @workflow/@agent/@task/@tool use our provider without Traceloop.init()."""
    from traceloop.sdk.tracing.tracing import TracerWrapper

    if hasattr(TracerWrapper, "instance"):
        return
    obj = object.__new__(TracerWrapper)
    obj._TracerWrapper__tracer_provider = trace_api.get_tracer_provider()
    obj._TracerWrapper__spans_processors = []
    obj._TracerWrapper__spans_processor = None
    TracerWrapper.instance = obj
    TracerWrapper.flush = lambda self: None  # our provider flushes itself


INSTRUMENT_FUNCS: dict[str, Callable[[], None]] = {
    "litellm": _instrument_litellm,
    "crewai": _instrument_crewai,
    "openai": _instrument_openai,
    "anthropic": _instrument_anthropic,
    "requests": _instrument_requests,
    "httpx": _instrument_httpx,
    "httpx2": _instrument_httpx2,
    "threading": _instrument_threading,
    "traceloop": _shim_traceloop_decorators,
}


def _if(precondition: Callable[[], bool], fn: Callable[[], None]) -> None:
    if precondition():
        fn()


def _module_available(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def instrument(names: Iterable[str] | None = None, lazy: bool = True,
               precondition: Callable[[], bool] | None = None) -> list[str]:
    """Instrument ``names`` (default: all managed ones not disabled). Returns the names scheduled.

    With ``lazy`` each library is instrumented when the app first imports it
    (immediately if it is already imported), so unused libraries cost nothing.
    ``precondition`` is asked at that moment; False leaves the library uninstrumented.
    """
    import wrapt

    disabled = disabled_instrumentations()
    wanted = list(names) if names is not None else list(MANAGED)
    scheduled = []
    for name in wanted:
        if name in disabled or name not in INSTRUMENT_FUNCS:
            continue
        module = MANAGED.get(name)
        fn = INSTRUMENT_FUNCS[name]
        if precondition is not None:
            fn = functools.partial(_if, precondition, fn)
        if module is None:
            _once(name, fn)
        elif not _module_available(module):
            continue
        elif lazy:
            with _lock:
                if name in _state["hooks"]:
                    scheduled.append(name)
                    continue
                _state["hooks"].add(name)
            wrapt.register_post_import_hook(lambda _mod, _n=name, _f=fn: _once(_n, _f), module)
        else:
            _once(name, fn)
        scheduled.append(name)
    return scheduled


# --------------------------------------------------------------------------- public API
def init(service_name: str | None = None, *, exporter=None, span_processor=None, capture: str | None = None,
         instrumentations: Iterable[str] | None = None, batch: bool = True, lazy: bool = True):
    """Trace this process: GenAI-semconv spans for LiteLLM, CrewAI, tools and agents.

    Idempotent and never raises: on any failure the app runs untraced and a warning is logged.

    service_name       used when ``OTEL_SERVICE_NAME`` is not set
    exporter           a SpanExporter to use instead of the one from ``OTEL_TRACES_EXPORTER``
    span_processor     an extra SpanProcessor (added after the GenAI one)
    capture            override ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    instrumentations   which of ``MANAGED`` to enable (default: all, minus the disabled ones)
    batch              BatchSpanProcessor (default) or SimpleSpanProcessor for ``exporter``
    lazy               instrument each library when it is imported (default) or now

    Returns the SDK TracerProvider (or None if tracing could not be set up).
    """
    t0 = time.perf_counter()
    try:
        if capture:
            os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", capture)
        apply_safe_env_defaults()
        with _lock:
            provider = setup_tracing(service_name, exporter, span_processor=span_processor, capture=capture,
                                     batch=batch)
        instrument(instrumentations, lazy=lazy)
        _state["init_seconds"] = time.perf_counter() - t0
        return provider
    except Exception:
        _log.warning("instrumentation.init() failed; continuing without tracing", exc_info=True)
        return None


def shutdown(timeout_millis: int = 5000) -> None:
    """Flush and stop the provider init() created (also runs at exit). Never raises."""
    provider = _state.get("provider")
    if provider is None:
        return
    try:
        provider.force_flush(timeout_millis)
    except Exception:
        pass
    if _state.get("owns_provider"):
        try:
            provider.shutdown()
        except Exception:
            pass


def force_flush(timeout_millis: int = 5000) -> bool:
    provider = _state.get("provider") or trace_api.get_tracer_provider()
    try:
        return bool(provider.force_flush(timeout_millis))
    except Exception:
        return False
