"""The project's OpenTelemetry distro and configurator, for ``opentelemetry-instrument``.

Registered through entry points (see pyproject.toml)::

    opentelemetry_distro         genaitrace = instrumentation.distro:GenAIDistro
    opentelemetry_configurator   genaitrace = instrumentation.distro:GenAIConfigurator
    opentelemetry_pre_instrument genaitrace = instrumentation.distro:pre_instrument
    opentelemetry_post_instrument genaitrace = instrumentation.distro:post_instrument

``opentelemetry-instrument`` loads every ``opentelemetry_instrumentor`` entry point
installed (39 with this stack), and loading one imports the library it instruments (an
empty program took 5.7 s, importing lancedb, chromadb, pandas...). This distro imports
nothing the app does not: each instrumentor is loaded when the app imports its library
(a post-import hook on the library's top-level module, found from the instrumentor's
``instruments`` requirement without importing either). And it gives exactly one span
per LLM call:

* traceloop's ``litellm`` instrumentor (same entry-point name as openinference's,
  so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=litellm`` cannot single it out) is
  never loaded: it adds a second, unnested root span for every call;
* the GenAI-relevant instrumentors (openinference LiteLLM, traceloop CrewAI/OpenAI/
  Anthropic, requests, httpx, threading) are applied lazily, with the project's
  fix-ups, when the app imports the library (see ``instrumentation.bootstrap``);
* every other instrumentor loads, as usual, once its library is imported.

The pre/post hooks make the same guarantees when another distro or configurator
was picked (several installed and ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``
unset): the duplicate instrumentor is neutralised before anything is instrumented,
and afterwards the GenAI span processor is put in front of the provider's pipeline
and the CrewAI / LiteLLM fix-ups are applied.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading

from opentelemetry.instrumentation.distro import BaseDistro

_log = logging.getLogger(__name__)

# entry-point value -> the name init()'s lazy instrumentation knows it by
_LAZY_ENTRY_POINTS = {
    "openinference.instrumentation.litellm:LiteLLMInstrumentor": "litellm",
    "opentelemetry.instrumentation.crewai:CrewAIInstrumentor": "crewai",
    "opentelemetry.instrumentation.openai:OpenAIInstrumentor": "openai",
    "opentelemetry.instrumentation.anthropic:AnthropicInstrumentor": "anthropic",
    "opentelemetry.instrumentation.requests:RequestsInstrumentor": "requests",
    "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor": "httpx",
    "opentelemetry.instrumentation.httpx:HTTPX2ClientInstrumentor": "httpx2",
    "opentelemetry.instrumentation.threading:ThreadingInstrumentor": "threading",
}


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _top_level_module(dist_name: str) -> str | None:
    """The importable top-level module of an installed distribution, without importing it."""
    guess = dist_name.replace("-", "_").replace(".", "_").lower()
    if _importable(guess):
        return guess
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution(dist_name)
    except (PackageNotFoundError, ValueError):
        return None
    names = (dist.read_text("top_level.txt") or "").split()
    if not names:  # wheels without top_level.txt: the first path part of the installed files
        for path in dist.files or ():
            first = path.parts[0] if path.parts else ""
            if first and not first.endswith((".dist-info", ".data", ".pth")) and first != "__pycache__" \
                    and not first.startswith(".."):
                names.append(first[:-3] if first.endswith(".py") else first)
    return next((n for n in names if _importable(n)), None)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _requirements(dist) -> list[str]:
    """``dist.requires``, read without the email parser (a millisecond per distribution, ~40 of them)."""
    if dist is None:
        return []
    try:
        text = dist.read_text("METADATA")
    except Exception:
        text = None
    if not text:  # egg-info and other layouts: the library's own reader
        return list(getattr(dist, "requires", None) or [])
    found = []
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line; the description follows
        if line.startswith("Requires-Dist:"):
            found.append(line[len("Requires-Dist:"):].strip())
    return found


# Libraries whose instrumentor imports more of the library than the app's own import does: the hook
# waits for a module the app imports only when it starts using the library. chromadb's instrumentor
# imports chromadb.api.segment (the local server's API, ~0.1 s) although `import chromadb` does not
# (crewai imports chromadb at start-up and most crews never make a client); every chromadb client is
# made through one of these implementations, and a Collection, what the instrumentor wraps, only
# comes from a client.
_FIRST_USE_MODULES = {
    "chromadb": ["chromadb.api.async_fastapi", "chromadb.api.fastapi", "chromadb.api.rust", "chromadb.api.segment"],
}


def instrumented_modules(entry_point) -> list[str] | None:
    """Modules whose import should load this instrumentor: the top-level modules of its
    ``instruments`` extra (or those in ``_FIRST_USE_MODULES``); None when it names libraries and
    none of them is installed."""
    dist = getattr(entry_point, "dist", None)
    wanted = []
    for requirement in _requirements(dist):
        if "instruments" in requirement.partition(";")[2]:
            match = _REQUIREMENT_NAME.match(requirement)
            if match:
                wanted.append(match.group(1))
    modules = [m for m in map(_top_level_module, wanted) if m]
    if wanted and not modules:
        return None
    if not modules and _importable(entry_point.name):
        modules = [entry_point.name]  # stdlib instrumentors (asyncio, logging) name their module
    return sorted({first_use for m in modules for first_use in _FIRST_USE_MODULES.get(m, [m])})


# --------------------------------------------------------------------------- dependency checks, deferred
# opentelemetry-instrument checks every installed instrumentor's ``instruments`` requirements
# against the installed versions before handing it to the distro: ~40 METADATA files parsed and
# versions looked up (~0.1 s) for libraries most apps never import. While the distro loads the
# instrumentors, that check is deferred to the moment one is really loaded (its library imported);
# the verdict and its log line are the same, only later. post_instrument() puts the original back.
_DEFERRED_CHECK = "get_dist_dependency_conflicts"


def _defer_dependency_checks() -> None:
    import sys

    loader = sys.modules.get("opentelemetry.instrumentation.auto_instrumentation._load")
    if loader is not None and callable(getattr(loader, _DEFERRED_CHECK, None)):
        setattr(loader, _DEFERRED_CHECK, _no_conflict_yet)


def _restore_dependency_checks() -> None:
    import sys

    loader = sys.modules.get("opentelemetry.instrumentation.auto_instrumentation._load")
    if loader is not None and getattr(loader, _DEFERRED_CHECK, None) is _no_conflict_yet:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

        setattr(loader, _DEFERRED_CHECK, get_dist_dependency_conflicts)


def _no_conflict_yet(_dist):
    return None


def dependencies_satisfied(entry_point) -> bool:
    """The check opentelemetry-instrument would have made first: the instrumented library is installed
    in a supported version. A conflict is logged as opentelemetry-instrument logs it."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return True
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    conflict = get_dist_dependency_conflicts(dist)
    if conflict is None:
        return True
    _log.debug("genaitrace: instrumentor %s not loaded: %s", entry_point.name, conflict)
    return False


class GenAIDistro(BaseDistro):
    """Env defaults (OTLP traces, nothing phones home) and de-duplicated instrumentors."""

    def _configure(self, **kwargs):
        from instrumentation.bootstrap import apply_safe_env_defaults

        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
        apply_safe_env_defaults()
        _defer_dependency_checks()  # this distro runs them itself, when it loads an instrumentor

    def load_instrumentor(self, entry_point, **kwargs):
        from instrumentation.bootstrap import DUPLICATE_INSTRUMENTORS, instrument

        value = getattr(entry_point, "value", "")
        if value in DUPLICATE_INSTRUMENTORS:
            _log.debug("genaitrace: skipping duplicate instrumentor %s (%s)", entry_point.name, value)
            return
        name = _LAZY_ENTRY_POINTS.get(value)
        if name is not None:
            instrument([name], lazy=True, precondition=lambda: dependencies_satisfied(entry_point))
            return
        modules = instrumented_modules(entry_point)
        if modules is None:  # its library is not installed: what the dependency check would have said
            _log.debug("genaitrace: instrumentor %s not loaded: its library is not installed", entry_point.name)
            return
        if not modules:  # nothing to wait for: as opentelemetry-instrument would
            if dependencies_satisfied(entry_point):
                super().load_instrumentor(entry_point, **kwargs)
            return
        import wrapt

        def load():
            if dependencies_satisfied(entry_point):
                BaseDistro.load_instrumentor(self, entry_point, **kwargs)

        once = _Once(load, entry_point.name, getattr(entry_point, "module", None))
        for module in modules:
            wrapt.register_post_import_hook(lambda _mod, _once=once: _once(), module)


class _Once:
    """Load an instrumentor the first time one of its modules is imported; never raise into the import."""

    def __init__(self, load, name: str, instrumentor_module: str | None = None):
        self._load, self._name, self._instrumentor_module = load, name, instrumentor_module
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        if self._wait_for_instrumentor_module():
            return
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            self._load()
        except Exception as exc:
            from instrumentation.safety import report

            report(f"load instrumentor {self._name}", exc)
        from instrumentation.bootstrap import run_deferred

        run_deferred()

    def _wait_for_instrumentor_module(self) -> bool:
        """The library can be imported by the instrumentor's own module, half-way through its import
        (opentelemetry-instrumentation-httpx imports httpx2 to define HTTPX2ClientInstrumentor): then
        the entry point cannot be loaded yet; it is, once the instrumenting that imported it is over."""
        import sys

        module = sys.modules.get(self._instrumentor_module or "")
        if not getattr(getattr(module, "__spec__", None), "_initializing", False):
            return False
        from instrumentation.bootstrap import after_current_instrumenting

        after_current_instrumenting(self)
        return True


class GenAIConfigurator:
    """Sets up the tracer provider exactly like ``instrumentation.init()`` (same env variables).

    ``opentelemetry-instrument`` only calls ``configure()``; not deriving from the SDK's
    ``_BaseConfigurator`` keeps its module (and the metrics and logs SDKs it imports) out of
    the app's start-up.
    """

    _instance = None

    def __new__(cls, *args, **kwargs):  # one configuration per process, as _BaseConfigurator does
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def configure(self, **kwargs):
        self._configure(**kwargs)

    def _configure(self, **kwargs):
        from instrumentation.bootstrap import setup_tracing

        setup_tracing()


def pre_instrument() -> None:
    """Runs before any instrumentor, whichever distro was chosen."""
    try:
        from instrumentation.bootstrap import _block_traceloop_litellm, _module_available, apply_safe_env_defaults

        apply_safe_env_defaults()
        if _module_available("litellm"):  # when the app imports litellm, not before
            import wrapt

            wrapt.register_post_import_hook(lambda _mod: _block_traceloop_litellm(), "litellm")
    except Exception:
        _log.debug("genaitrace pre_instrument failed", exc_info=True)


def post_instrument() -> None:
    """Runs after every instrumentor: processor in front, fix-ups applied, decorators wired."""
    try:
        import sys

        _restore_dependency_checks()
        from instrumentation import bootstrap

        bootstrap.install_processor()
        if "openinference.instrumentation.litellm" in sys.modules:
            from openinference.instrumentation.litellm import LiteLLMInstrumentor

            if LiteLLMInstrumentor().is_instrumented_by_opentelemetry:
                from instrumentation._patches import patch_openinference_litellm

                patch_openinference_litellm()
        if "opentelemetry.instrumentation.crewai" in sys.modules:
            from opentelemetry.instrumentation.crewai import CrewAIInstrumentor

            if CrewAIInstrumentor().is_instrumented_by_opentelemetry:
                from instrumentation.crewai import patch_crewai

                patch_crewai()
        bootstrap.instrument(["traceloop"], lazy=True)
    except Exception:
        _log.debug("genaitrace post_instrument failed", exc_info=True)
