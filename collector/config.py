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
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ValidationError, field_validator

from collector import registry
from collector.component import ComponentId, Factory, Kind, StrictConfig
from collector.confighelpers import HostPort
from collector.secretkeys import is_secret_key, key_name


class ConfigError(Exception):
    """A configuration problem, located as `file:line: key: message`."""

    def __init__(self, path: str, line: int | None, key: str, message: str):
        self.path, self.line, self.key, self.message = path, line, key, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


# `${env:VAR}`, `${env:VAR:-default}` and the older bare `${VAR}`; `$$` escapes a dollar.
_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, environ) -> tuple[str, list[str]]:
    """`text` with every reference replaced, and the variables it named that are unset with no default."""
    unset: list[str] = []

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                unset.append(name)
            return default if default is not None else ""
        return value

    return _ENV_REF.sub(replace, text), unset


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    return _expand(text, os.environ if environ is None else environ)[0]


def is_credential_key(path: str) -> bool:
    """A config field holding a credential (password, token, authorization header) or naming one
    (a TLS private key file): an unset variable there is an error, not an empty string."""
    return is_secret_key(path) or key_name(path) == "key_file"


_SCALARS = yaml.SafeLoader("")  # only its scalar constructors are used (int, float, bool, null)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Aliases let a few lines of YAML expand to billions of nodes; no real config comes near this.
_MAX_NODES = 200_000


@dataclass
class _Located:
    """A parsed YAML document plus the line of every dotted key path in it."""

    value: Any
    lines: dict[str, int] = field(default_factory=dict)
    # Unset variables outside credentials: empty, as in otelcol, but worth a word.
    warnings: list[str] = field(default_factory=list)


class _Composer:
    """YAML nodes -> plain values, with env substitution, line numbers, and the checks that need
    the source: a key given twice in one mapping (YAML keeps one silently) and an unset variable
    in a credential."""

    def __init__(self, path: str, environ):
        self.path, self.environ = path, environ
        self.lines: dict[str, int] = {}
        self.warnings: list[str] = []
        self._nodes = 0

    def build(self, node: yaml.Node, path: str) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise ConfigError(self.path, node.start_mark.line + 1, path, f"the document expands to more than {_MAX_NODES} nodes (aliases?)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict:
        result: dict[str, Any] = {}
        # `<<: *defaults` first: the keys written here then win over the merged ones, lines included.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                    if not isinstance(source, yaml.MappingNode):
                        raise ConfigError(self.path, source.start_mark.line + 1, path, "`<<` merges a mapping (or a list of mappings)")
                    result.update({k: v for k, v in self._mapping(source, path).items() if k not in result})
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(self.path, line, child, f"duplicate key: first at line {first_line[key]}, again at line "
                                  f"{line}; YAML would silently keep only the second, so say it once")
            first_line[key] = line
            self.lines[child] = line
            result[key] = self.build(value_node, child)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        raw = node.value
        if not (isinstance(raw, str) and "$" in raw):
            return _SCALARS.construct_object(node, deep=True)
        expanded, unset = _expand(raw, self.environ)
        for name in unset:
            if is_credential_key(path):
                raise ConfigError(self.path, node.start_mark.line + 1, path,
                                  f"environment variable {name} is not set, and this is a credential: set it, or write "
                                  f"${{env:{name}:-}} if an empty value is really meant")
            self.warnings.append(f"{self.path}:{node.start_mark.line + 1}: {path}: environment variable {name} "
                                 f"is not set; using an empty string")
        # Like otelcol, a value that is wholly one env reference takes the type its text has
        # (`${env:PORT}` -> int); a reference inside a longer string stays a string.
        if _ENV_REF.fullmatch(raw.strip()):
            try:
                return yaml.safe_load(expanded) if expanded.strip() else expanded
            except yaml.YAMLError:
                return expanded
        return expanded


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
    composer = _Composer(path, os.environ if environ is None else environ)
    if node is None:
        return _Located({})
    value = composer.build(node, "")
    if not isinstance(value, dict):
        raise ConfigError(path, 1, "", "the top level must be a mapping of receivers, processors, exporters, service")
    return _Located(value, composer.lines, composer.warnings)


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
    signal: str = "traces"  # traces | logs: the part of `name` before any `/`


class TelemetryMetricsSettings(StrictConfig):
    level: Literal["none", "basic", "normal", "detailed"] = "normal"
    address: HostPort = "127.0.0.1:8888"


class TelemetryLogsSettings(StrictConfig):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class TelemetrySettings(StrictConfig):
    """`service.telemetry`: the subset of otelcol's settings this collector honours; any other key
    is an error rather than a setting that silently does nothing."""

    metrics: TelemetryMetricsSettings = TelemetryMetricsSettings()
    logs: TelemetryLogsSettings = TelemetryLogsSettings()


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
    # Things worth saying that do not stop the collector (an unset variable outside a credential).
    warnings: list[str] = field(default_factory=list)
    # The line of every dotted key, for errors found after loading (a factory refusing its settings).
    lines: dict[str, int] = field(default_factory=dict, repr=False)

    def error(self, key: str, message: str) -> "ConfigError":
        return ConfigError(self.path, _line_of(self.lines, key), key, message)


_SECTIONS: dict[str, Kind] = {
    "receivers": Kind.RECEIVER,
    "processors": Kind.PROCESSOR,
    "exporters": Kind.EXPORTER,
    "extensions": Kind.EXTENSION,
}
_TOP_LEVEL = set(_SECTIONS) | {"service", "connectors"}
SIGNALS = ("traces", "logs")
_SERVICE_KEYS = ("extensions", "pipelines", "telemetry", "ingest_workers")


def _line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of `key`, or of the nearest enclosing key that has one."""
    probe = key
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe.rsplit(".", 1)[0] if "." in probe else ""
    return None


class _Loader:
    def __init__(self, path: str, located: _Located):
        self.path, self.doc, self.lines, self.warnings = path, located.value, located.lines, located.warnings

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, _line_of(self.lines, key), key, message)

    def load(self) -> CollectorConfig:
        for key in self.doc:
            if key not in _TOP_LEVEL:
                raise self.error(key, f"unknown top-level section; valid: {', '.join(sorted(_TOP_LEVEL - {'connectors'}))}")
        if self.doc.get("connectors"):
            raise self.error("connectors", "connectors (count, spanmetrics, ...) are not supported yet: remove this "
                             "section; genai_metrics (a processor) derives metrics from spans")
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
        telemetry = self._telemetry(service.get("telemetry"))
        self._check_listeners(sections, pipelines, service_extensions, telemetry.metrics_address)
        ingest_workers = self._ingest_workers(service.get("ingest_workers", 1), pipelines, sections["exporters"])
        return CollectorConfig(
            path=self.path,
            receivers=sections["receivers"],
            processors=sections["processors"],
            exporters=sections["exporters"],
            extensions=sections["extensions"],
            service_extensions=service_extensions,
            pipelines=pipelines,
            telemetry=telemetry,
            ingest_workers=ingest_workers,
            warnings=list(self.warnings),
            lines=self.lines,
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
            result[cid] = ComponentConfig(cid, factory, self._validate(f"{name}.{key}", factory.config_model, settings))
        return result

    def _validate(self, key: str, model: type[BaseModel], settings: Any) -> BaseModel:
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise self.error(key, f"settings must be a mapping, got {type(settings).__name__}")
        try:
            return model.model_validate(settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
            full = f"{key}.{loc}" if loc else key
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                valid = ", ".join(sorted(_model_at(model, first["loc"][:-1]).model_fields))
                message = f"unknown key; valid keys here: {valid}"
            elif "input" in first and first["type"] != "missing":
                message = f"{message} (got {_shown(full, first['input'])!r})"
            raise self.error(full, message) from exc

    def _check_references(self, sections, service_extensions: list[ComponentId]) -> None:
        """A component naming another (a queue's storage, sqlquery's exporter) must name one that runs."""
        by_kind = {kind: sections[name] for name, kind in _SECTIONS.items()}
        for name, kind in _SECTIONS.items():
            for cid, component in sections[name].items():
                if kind is Kind.EXTENSION and cid not in service_extensions:
                    continue  # defined but not enabled: never started, so what it names is moot
                references = {**component.config.references(), **_authenticators(component.config)}
                for field_name, (ref_kind, ref) in references.items():
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
                    if key_name(field_name) == "authenticator" and not registry.is_authenticator(ref_id.type):
                        valid = ", ".join(registry.authenticator_types())
                        raise self.error(key, f"extension {ref_id} is not an authenticator; authenticator types: {valid}")

    def _check_listeners(self, sections, pipelines, service_extensions, metrics_address: str | None) -> None:
        """Two servers of this collector on one port: `run` would fail to bind the second (or, with
        ingest workers' SO_REUSEPORT, split its traffic with the first)."""
        listeners: list[tuple[str, str]] = []  # (dotted key, host:port)
        running = {"receivers": {c for p in pipelines for c in p.receivers}, "extensions": set(service_extensions)}
        for name, ids in running.items():
            for cid in ids:
                listeners += [(f"{name}.{cid}.{path}", endpoint) for path, endpoint in _endpoints(sections[name][cid].config)]
        if metrics_address:
            listeners.append(("service.telemetry.metrics.address", metrics_address))
        seen: dict[int, list[tuple[str, str]]] = {}
        for key, endpoint in listeners:
            host, _, port = endpoint.rpartition(":")
            if not port.isdigit():
                continue  # reported by the endpoint's own validation
            for other_key, other_host in seen.get(int(port), []):
                if host == other_host or {host, other_host} & _WILDCARD_HOSTS:
                    raise self.error(key, f"port {port} is also where {other_key} listens ({other_host or '*'}:{port}); "
                                          "every server of the collector needs a port of its own")
            seen.setdefault(int(port), []).append((key, host))

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
            if cid in ids:  # otelcol refuses it too: a component would be built or started twice
                raise self.error(f"{key}[{i}]", f"{cid} is listed twice (first at {key}[{ids.index(cid)}])")
            ids.append(cid)
        return ids

    def _pipelines(self, raw: Any, sections) -> list[PipelineConfig]:
        if not isinstance(raw, dict) or not raw:
            raise self.error("service.pipelines", "at least one pipeline (e.g. `traces`) is required")
        pipelines = []
        for name, spec in raw.items():
            key = f"service.pipelines.{name}"
            signal = name.split("/", 1)[0]
            if signal not in SIGNALS:
                raise self.error(key, f"unsupported signal {signal!r}; this collector handles {' and '.join(SIGNALS)} pipelines")
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
            for part, ids in (("receivers", receivers), ("processors", processors), ("exporters", exporters)):
                self._check_signal(f"{key}.{part}", signal, ids, sections[part])
            pipelines.append(PipelineConfig(name, receivers, processors, exporters, signal))
        return pipelines

    def _check_signal(self, key: str, signal: str, ids: list[ComponentId], section) -> None:
        for i, cid in enumerate(ids):
            if signal not in section[cid].factory.signals:
                able = sorted({c.factory.type for c in section.values() if signal in c.factory.signals})
                raise self.error(f"{key}[{i}]", f"{cid} does not handle {signal}; in a {signal} pipeline use "
                                 + (", ".join(able) if able else f"a component that handles {signal}"))

    def _ingest_workers(self, raw: Any, pipelines: list[PipelineConfig], exporters) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 64:
            raise self.error("service.ingest_workers", f"must be a whole number from 1 to 64 (got {raw!r})")
        if raw > 1:  # the workers hand data over through the exporters' disk queues
            for cid in dict.fromkeys(c for p in pipelines for c in p.exporters):
                if "sending_queue" not in type(exporters[cid].config).model_fields:
                    raise self.error(f"exporters.{cid}",
                                     f"the {cid.type} exporter has no sending queue, and service.ingest_workers > 1 "
                                     "hands every batch to the exporters through their disk queues: remove it from "
                                     "the pipelines or set service.ingest_workers to 1")
                queue = exporters[cid].config.sending_queue
                if not (queue.enabled and queue.storage):
                    raise self.error(f"exporters.{cid}.sending_queue.storage",
                                     "service.ingest_workers > 1 needs every pipeline exporter to queue on disk: "
                                     "set sending_queue.storage to a file_storage extension")
        return raw

    def _telemetry(self, raw: Any) -> TelemetryConfig:
        settings = self._validate("service.telemetry", TelemetrySettings, raw)
        metrics = settings.metrics
        return TelemetryConfig(metrics_address=None if metrics.level == "none" else metrics.address,
                               log_level=settings.logs.level)


def _shown(key: str, value: Any) -> Any:
    """A value as an error may quote it: credentials (by key, at any depth) never appear."""
    if is_credential_key(key):
        return "<hidden>"
    if isinstance(value, dict):
        return {k: _shown(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(key, v) for v in value]
    return value


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The nested model a validation error's location points into (for its list of valid keys);
    list indices and mapping keys (e.g. a tenant's name) are stepped over."""
    for part in loc:
        field_info = model.model_fields.get(part) if isinstance(part, str) else None
        if field_info is None:
            continue
        nested = _model_type(field_info.annotation)
        if nested is None:
            return model
        model = nested
    return model


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """`X`, `X | None`, `Optional[X]` with X a model -> X."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def _endpoints(config: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """Every `endpoint` a receiver's or extension's settings hold, at any depth: where it listens."""
    found: list[tuple[str, str]] = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        if name == "endpoint" and isinstance(value, str):
            found.append((f"{prefix}{name}", value))
        elif isinstance(value, BaseModel):
            found += _endpoints(value, f"{prefix}{name}.")
    return found


def _authenticators(config: BaseModel, prefix: str = "") -> dict[str, tuple[Kind, str]]:
    """Every `...auth.authenticator: <extension id>` in a component's settings, as otelcol's
    configauth names them, at any depth (a receiver's protocols, an extension's endpoint)."""
    found: dict[str, tuple[Kind, str]] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        path = f"{prefix}{name}"
        if name == "authenticator" and isinstance(value, str):
            found[path] = (Kind.EXTENSION, value)
        elif isinstance(value, BaseModel):
            found.update(_authenticators(value, f"{path}."))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    found.update(_authenticators(item, f"{path}.{key}."))
    return found


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> CollectorConfig:
    """Parse, substitute env vars, validate every component's typed config and the pipelines."""
    return _Loader(str(path), load_yaml(path, environ)).load()
