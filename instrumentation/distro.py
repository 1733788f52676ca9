"""The project's OpenTelemetry distro and configurator, for ``opentelemetry-instrument``.

Registered through entry points (see pyproject.toml)::

    opentelemetry_distro         genaitrace = instrumentation.distro:GenAIDistro
    opentelemetry_configurator   genaitrace = instrumentation.distro:GenAIConfigurator
    opentelemetry_pre_instrument genaitrace = instrumentation.distro:pre_instrument
    opentelemetry_post_instrument genaitrace = instrumentation.distro:post_instrument

``opentelemetry-instrument`` loads every ``opentelemetry_instrumentor`` entry point
installed (39 with this stack). The distro makes that give exactly one span per
LLM call:

* traceloop's ``litellm`` instrumentor (same entry-point name as openinference's,
  so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=litellm`` cannot single it out) is
  never loaded: it adds a second, unnested root span for every call;
* the GenAI-relevant instrumentors (openinference LiteLLM, traceloop CrewAI/OpenAI/
  Anthropic, requests, httpx, threading) are applied lazily, with the project's
  fix-ups, when the app imports the library (see ``instrumentation.bootstrap``);
* every other instrumentor loads as usual.

The pre/post hooks make the same guarantees when another distro or configurator
was picked (several installed and ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``
unset): the duplicate instrumentor is neutralised before anything is instrumented,
and afterwards the GenAI span processor is put in front of the provider's pipeline
and the CrewAI / LiteLLM fix-ups are applied.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

_log = logging.getLogger(__name__)

# entry-point value -> the name init()'s lazy instrumentation knows it by
_LAZY_ENTRY_POINTS = {
    "openinference.instrumentation.litellm:LiteLLMInstrumentor": "litellm",
    "opentelemetry.instrumentation.crewai:CrewAIInstrumentor": "crewai",
    "opentelemetry.instrumentation.openai:OpenAIInstrumentor": "openai",
    "opentelemetry.instrumentation.anthropic:AnthropicInstrumentor": "anthropic",
    "opentelemetry.instrumentation.requests:RequestsInstrumentor": "requests",
    "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor": "httpx",
    "opentelemetry.instrumentation.threading:ThreadingInstrumentor": "threading",
}


class GenAIDistro(BaseDistro):
    """Env defaults (OTLP traces, nothing phones home) and de-duplicated instrumentors."""

    def _configure(self, **kwargs):
        from instrumentation.bootstrap import apply_safe_env_defaults

        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
        os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
        apply_safe_env_defaults()

    def load_instrumentor(self, entry_point, **kwargs):
        from instrumentation.bootstrap import DUPLICATE_INSTRUMENTORS, instrument

        value = getattr(entry_point, "value", "")
        if value in DUPLICATE_INSTRUMENTORS:
            _log.debug("genaitrace: skipping duplicate instrumentor %s (%s)", entry_point.name, value)
            return
        name = _LAZY_ENTRY_POINTS.get(value)
        if name is not None:
            instrument([name], lazy=True)
            return
        super().load_instrumentor(entry_point, **kwargs)


class GenAIConfigurator(_BaseConfigurator):
    """Sets up the tracer provider exactly like ``instrumentation.init()`` (same env variables)."""

    def _configure(self, **kwargs):
        from instrumentation.bootstrap import setup_tracing

        setup_tracing()


def pre_instrument() -> None:
    """Runs before any instrumentor, whichever distro was chosen."""
    try:
        from instrumentation.bootstrap import _block_traceloop_litellm, _module_available, apply_safe_env_defaults

        apply_safe_env_defaults()
        if _module_available("litellm"):
            _block_traceloop_litellm()
    except Exception:
        _log.debug("genaitrace pre_instrument failed", exc_info=True)


def post_instrument() -> None:
    """Runs after every instrumentor: processor in front, fix-ups applied, decorators wired."""
    try:
        import sys

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
