"""Application-side instrumentation for LLM / multi-agent apps.

This package must stay light to import: apps import it before their frameworks.
Nothing here imports crewai, litellm, traceloop or the OpenTelemetry SDK at
import time; the public helpers are resolved lazily. It shares only ``semconv``
with the collector (names and the dialect mapping, ``semconv.genai_mapping``).

    import instrumentation
    instrumentation.init()                        # one call, honours OTEL_* variables
    with instrumentation.attributes(tenant_id="acme", session_id="s-1"):
        ...                                       # every span below carries them
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "init",
    "shutdown",
    "attributes",
    "context",
    "inject",
    "extract",
    "attach_carrier",
]

_LAZY = {
    "init": ("instrumentation.bootstrap", "init"),
    "shutdown": ("instrumentation.bootstrap", "shutdown"),
    "attributes": ("instrumentation.baggage", "attributes"),
    "context": ("instrumentation.baggage", "context"),
    "inject": ("instrumentation.baggage", "inject"),
    "extract": ("instrumentation.baggage", "extract"),
    "attach_carrier": ("instrumentation.baggage", "attach_carrier"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'instrumentation' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
