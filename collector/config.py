"""Loading `otel-collector.yaml`: the OpenTelemetry Collector's own configuration format.

    receivers:  {otlp: {protocols: {grpc: {endpoint: 0.0.0.0:4317}}}}
    processors: {batch: {}}
    exporters:  {clickhouse: {endpoint: "${env:CLICKHOUSE_ENDPOINT:-chdb:///./data/chdb}"}}
    extensions: {health_check: {}}
    service:
      extensions: [health_check]
      pipelines:
        traces: {receivers: [otlp], processors: [batch], exporters: [clickhouse]}

Every error names the file, the line and the dotted key, and says what would be valid, because a
collector that refuses to start with "validation error" and nothing else costs an on-call hour.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from collector import registry
from collector.component import ComponentId, Factory, Kind


class ConfigError(Exception):
    """A configuration problem, located as `file:line: key: message`."""

    def __init__(self, path: str, line: int | None, key: str, message: str):
        self.path, self.line, self.key, self.message = path, line, key, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


# `${env:VAR}`, `${env:VAR:-default}` and the older bare `${VAR}`; `$$` escapes a dollar.
_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            return default if default is not None else ""
        return value

    return _ENV_REF.sub(replace, text)


_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used (int, float, bool, null)


@dataclass
class _Located:
    """A parsed YAML document plus the line of every dotted key path in it."""

    value: Any
    lines: dict[str, int] = field(default_factory=dict)


def _build(node: yaml.Node, path: str, lines: dict[str, int], environ) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines, environ)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, f"{path}[{i}]", lines, environ) for i, item in enumerate(node.value)]
    raw = node.value
    if isinstance(raw, str) and "$" in raw:
        expanded = expand_env(raw, environ)
        # Like otelcol, a value that is wholly one env reference takes the type its text has
        # (`${env:PORT}` -> int); a reference inside a longer string stays a string.
        if _ENV_REF.fullmatch(raw.strip()):
            try:
                return yaml.safe_load(expanded) if expanded.strip() else expanded
            except yaml.YAMLError:
                return expanded
        return expanded
    return _SCALARS.construct_object(node, deep=True)


def load_yaml(path: str | Path, environ: dict[str, str] | None = None) -> _Located:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read config file: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(path, mark.line + 1 if mark else None, "", f"invalid YAML: {exc}") from exc
    lines: dict[str, int] = {}
    if node is None:
        return _Located({}, lines)
    value = _build(node, "", lines, environ)
    if not isinstance(value, dict):
        raise ConfigError(path, 1, "", "the top level must be a mapping of receivers, processors, exporters, service")
    return _Located(value, lines)


@dataclass
class ComponentConfig:
    id: ComponentId
    factory: Factory
    config: BaseModel


@dataclass
class PipelineConfig:
    name: str
    receivers: list[ComponentId]
    processors: list[ComponentId]
    exporters: list[ComponentId]


@dataclass
class TelemetryConfig:
    metrics_address: str | None = "127.0.0.1:8888"
    log_level: str = "info"


@dataclass
class CollectorConfig:
    path: str
    receivers: dict[ComponentId, ComponentConfig]
    processors: dict[ComponentId, ComponentConfig]
    exporters: dict[ComponentId, ComponentConfig]
    extensions: dict[ComponentId, ComponentConfig]
    service_extensions: list[ComponentId]
    pipelines: list[PipelineConfig]
    telemetry: TelemetryConfig
    # Processes running the receivers and processors on shared ports; this one owns the exporters.
    ingest_workers: int = 1


_SECTIONS: dict[str, Kind] = {
    "receivers": Kind.RECEIVER,
    "processors": Kind.PROCESSOR,
    "exporters": Kind.EXPORTER,
    "extensions": Kind.EXTENSION,
}
_TOP_LEVEL = set(_SECTIONS) | {"service", "connectors"}
_SERVICE_KEYS = ("extensions", "pipelines", "telemetry", "ingest_workers")


class _Loader:
    def __init__(self, path: str, located: _Located):
        self.path, self.doc, self.lines = path, located.value, located.lines

    def error(self, key: str, message: str) -> ConfigError:
        line = None
        probe = key
        while probe and line is None:  # fall back to the nearest enclosing key that has a line
            line = self.lines.get(probe)
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return ConfigError(self.path, line, key, message)

    def load(self) -> CollectorConfig:
        for key in self.doc:
            if key not in _TOP_LEVEL:
                raise self.error(key, f"unknown top-level section; valid: {', '.join(sorted(_TOP_LEVEL))}")
        sections = {name: self._section(name, kind) for name, kind in _SECTIONS.items()}
        service = self.doc.get("service")
        if not isinstance(service, dict):
            raise self.error("service", "a `service` section with `pipelines` is required")
        for key in service:
            if key not in _SERVICE_KEYS:
                raise self.error(f"service.{key}", f"unknown key; valid: {', '.join(_SERVICE_KEYS)}")
        pipelines = self._pipelines(service.get("pipelines"), sections)
        service_extensions = self._id_list("service.extensions", service.get("extensions") or [], sections["extensions"])
        self._check_references(sections, service_extensions)
        ingest_workers = self._ingest_workers(service.get("ingest_workers", 1), pipelines, sections["exporters"])
        return CollectorConfig(
            path=self.path,
            receivers=sections["receivers"],
            processors=sections["processors"],
            exporters=sections["exporters"],
            extensions=sections["extensions"],
            service_extensions=service_extensions,
            pipelines=pipelines,
            telemetry=self._telemetry(service.get("telemetry") or {}),
            ingest_workers=ingest_workers,
        )

    def _section(self, name: str, kind: Kind) -> dict[ComponentId, ComponentConfig]:

        raw = self.doc.get(name) or {}
        if not isinstance(raw, dict):
            raise self.error(name, f"must be a mapping of {kind.value} ids to their settings")
        result = {}
        for key, settings in raw.items():
            try:
                cid = ComponentId.parse(key)
            except ValueError as exc:
                raise self.error(f"{name}.{key}", str(exc)) from exc
            factory = registry.factory(kind, cid.type)
            if factory is None:
                valid = ", ".join(registry.types(kind))
                raise self.error(f"{name}.{key}", f"unknown {kind.value} type {cid.type!r}; valid {kind.value} types: {valid}")
            result[cid] = ComponentConfig(cid, factory, self._validate(f"{name}.{key}", factory, settings))
        return result

    def _validate(self, key: str, factory: Factory, settings: Any) -> BaseModel:
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise self.error(key, f"settings must be a mapping, got {type(settings).__name__}")
        try:
            return factory.config_model.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
            full = f"{key}.{loc}" if loc else key
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                valid = ", ".join(sorted(factory.config_model.model_fields))
                message = f"unknown key; valid keys here: {valid}"
            elif "input" in first and first["type"] != "missing":
                message = f"{message} (got {first['input']!r})"
            raise self.error(full, message) from exc

    def _check_references(self, sections, service_extensions: list[ComponentId]) -> None:
        """A component naming another (a queue's storage, sqlquery's exporter) must name one that runs."""
        by_kind = {kind: sections[name] for name, kind in _SECTIONS.items()}
        for name, kind in _SECTIONS.items():
            for cid, component in sections[name].items():
                if kind is Kind.EXTENSION and cid not in service_extensions:
                    continue  # defined but not enabled: never started, so what it names is moot
                for field_name, (ref_kind, ref) in component.config.references().items():
                    key = f"{name}.{cid}.{field_name}"
                    try:
                        ref_id = ComponentId.parse(ref)
                    except ValueError as exc:
                        raise self.error(key, str(exc)) from exc
                    defined = by_kind[ref_kind]
                    if ref_id not in defined:
                        valid = ", ".join(str(c) for c in defined) or "none are defined"
                        raise self.error(key, f"references {ref_kind.value} {ref_id}, which is not defined; defined: {valid}")
                    if ref_kind is Kind.EXTENSION and ref_id not in service_extensions:
                        raise self.error(key, f"references extension {ref_id}, which is not enabled in service.extensions")

    def _id_list(self, key: str, raw: Any, defined: dict[ComponentId, ComponentConfig]) -> list[ComponentId]:
        if not isinstance(raw, list):
            raise self.error(key, "must be a list of component ids")
        ids = []
        for i, item in enumerate(raw):
            try:
                cid = ComponentId.parse(str(item))
            except ValueError as exc:
                raise self.error(f"{key}[{i}]", str(exc)) from exc
            if cid not in defined:
                valid = ", ".join(str(c) for c in defined) or "none are defined"
                raise self.error(f"{key}[{i}]", f"references {cid} which is not defined; defined: {valid}")
            ids.append(cid)
        return ids

    def _pipelines(self, raw: Any, sections) -> list[PipelineConfig]:
        if not isinstance(raw, dict) or not raw:
            raise self.error("service.pipelines", "at least one pipeline (e.g. `traces`) is required")
        pipelines = []
        for name, spec in raw.items():
            key = f"service.pipelines.{name}"
            signal = name.split("/", 1)[0]
            if signal != "traces":
                raise self.error(key, f"unsupported signal {signal!r}; this collector handles `traces` pipelines")
            if not isinstance(spec, dict):
                raise self.error(key, "must be a mapping with receivers, processors, exporters")
            for sub in spec:
                if sub not in ("receivers", "processors", "exporters"):
                    raise self.error(f"{key}.{sub}", "unknown key; valid: receivers, processors, exporters")
            receivers = self._id_list(f"{key}.receivers", spec.get("receivers") or [], sections["receivers"])
            processors = self._id_list(f"{key}.processors", spec.get("processors") or [], sections["processors"])
            exporters = self._id_list(f"{key}.exporters", spec.get("exporters") or [], sections["exporters"])
            if not receivers:
                raise self.error(f"{key}.receivers", "a pipeline needs at least one receiver")
            if not exporters:
                raise self.error(f"{key}.exporters", "a pipeline needs at least one exporter")
            pipelines.append(PipelineConfig(name, receivers, processors, exporters))
        return pipelines

    def _ingest_workers(self, raw: Any, pipelines: list[PipelineConfig], exporters) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 64:
            raise self.error("service.ingest_workers", f"must be a whole number from 1 to 64 (got {raw!r})")
        if raw > 1:  # the workers hand data over through the exporters' disk queues
            for cid in dict.fromkeys(c for p in pipelines for c in p.exporters):
                queue = exporters[cid].config.sending_queue
                if not (queue.enabled and queue.storage):
                    raise self.error(f"exporters.{cid}.sending_queue.storage",
                                     "service.ingest_workers > 1 needs every pipeline exporter to queue on disk: "
                                     "set sending_queue.storage to a file_storage extension")
        return raw

    def _telemetry(self, raw: dict) -> TelemetryConfig:
        metrics = raw.get("metrics") or {}
        logs = raw.get("logs") or {}
        address = metrics.get("address", "127.0.0.1:8888") if metrics.get("level") != "none" else None
        return TelemetryConfig(metrics_address=address, log_level=str(logs.get("level", "info")))


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> CollectorConfig:
    """Parse, substitute env vars, validate every component's typed config and the pipelines."""
    return _Loader(str(path), load_yaml(path, environ)).load()
