"""Every component type the collector knows, by kind. Adding a component = one module + one line here."""

from __future__ import annotations

import importlib

from collector.component import Factory, Kind

# Modules are imported on demand so that `validate` and the CLI never pay for what a config
# does not use. Each module exposes a `factory`.
_MODULES: dict[Kind, dict[str, str]] = {
    Kind.RECEIVER: {
        "otlp": "collector.receivers.otlp",
    },
    Kind.PROCESSOR: {
        "batch": "processors.batch",
        "memory_limiter": "processors.memory_limiter",
        "redaction": "processors.redaction",
        "genai_normalizer": "processors.genai_normalizer",
        "genai_cost": "processors.genai_cost",
        "genai_metrics": "processors.genai_metrics",
    },
    Kind.EXPORTER: {
        "clickhouse": "collector.exporters.clickhouse",
        "otlp": "collector.exporters.otlp",
        "otlphttp": "collector.exporters.otlphttp",
        "debug": "collector.exporters.debug",
    },
    Kind.EXTENSION: {
        "health_check": "collector.extensions.health_check",
        "sqlquery": "collector.extensions.sqlquery",
        "file_storage": "collector.extensions.file_storage",
        "bearertokenauth": "collector.extensions.bearertokenauth",
    },
}


def types(kind: Kind) -> list[str]:
    return sorted(_MODULES[kind])


def factory(kind: Kind, type_: str) -> Factory | None:
    module = _MODULES[kind].get(type_)
    return importlib.import_module(module).factory if module else None


# Extensions that receivers (and other extensions) may name as `auth: {authenticator: <id>}`.
_AUTHENTICATORS = ("bearertokenauth",)


def authenticator_types() -> list[str]:
    return sorted(_AUTHENTICATORS)


def is_authenticator(type_: str) -> bool:
    return type_ in _AUTHENTICATORS
