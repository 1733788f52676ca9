"""The component model, as in the OpenTelemetry Collector.

A component is one module holding a pydantic config model, a class, and a module-level `factory`.
The pipeline only wires components together through the `Consumer` interface: a receiver hands
`Traces` to the first processor, each processor hands them on to the next consumer, and the last
one fans out to the exporters. A consumer that returns has taken responsibility for the data (an
exporter returns once the data sits in its durable queue); one that raises has not, and the error
travels back to the receiver, which answers its client accordingly.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

# The errors live below the component model (pdata raises them too); re-exported here.
from collector.errors import (  # noqa: F401
    ConsumeError,
    PermanentError,
    ResourceExhaustedError,
    RetryableError,
    UnauthenticatedError,
)

if TYPE_CHECKING:
    from collector.pdata import Traces
    from collector.plogs import Logs
    from collector.telemetry import SelfTelemetry


class Kind(enum.Enum):
    RECEIVER = "receiver"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    EXTENSION = "extension"


_ID_PART = re.compile(r"^[A-Za-z0-9_\-.]+$")


@dataclass(frozen=True)
class ComponentId:
    """`type` or `type/name`, e.g. `otlp/tempo`."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> "ComponentId":
        type_, _, name = text.strip().partition("/")
        if not type_ or not _ID_PART.match(type_) or (name and not _ID_PART.match(name)) or text.strip().endswith("/"):
            raise ValueError(f"invalid component id {text!r}; expected `type` or `type/name`")
        return cls(type_, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


def signal_id(cid: ComponentId, signal: str) -> ComponentId:
    """The id of a component's instance for `signal`: its own for traces, `type[logs]/name` for logs
    (a name no configured component can have): what its queue file and telemetry are named after."""
    return cid if signal == "traces" else ComponentId(f"{cid.type}[{signal}]", cid.name)


class StrictConfig(BaseModel):
    """Base of every component config: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def references(self) -> dict[str, tuple["Kind", str]]:
        """Other components this one names, as {field: (kind, id)}; the loader checks they exist."""
        return {}


class Consumer(Protocol):
    def consume(self, traces: "Traces") -> None: ...


class Component:
    """Lifecycle shared by every component; both methods are optional to override."""

    # An extension the ingest worker processes run too (service.ingest_workers > 1), because their
    # receivers use it (auth, the queues' file storage); the others run in the main process only.
    ingest_side: bool = False

    def start(self, host: "Host") -> None:  # noqa: B027 - intentionally empty default
        pass

    def shutdown(self) -> None:  # noqa: B027
        pass


# ---- Contracts between components and the service, declared (not found by getattr) ----------


@runtime_checkable
class RoomChecking(Protocol):
    """An exporter whose `consume` only enqueues: the fan-out asks every one of them for room before
    any has the batch, so one full queue refuses the request before the others store a copy."""

    def check_room(self, size: int) -> None:
        """Raise ResourceExhaustedError if a batch of `size` serialized bytes does not fit."""


@runtime_checkable
class CallerBlocking(Protocol):
    """An exporter that may push in the caller's thread (no sending queue) when `blocks_caller`:
    the fan-out runs it beside the others."""

    blocks_caller: bool


@runtime_checkable
class ReadinessReporter(Protocol):
    """An extension that reports the collector's readiness (health_check): the service sets `ready`
    once every component started, and clears it while stopping or short of an ingest worker."""

    ready: bool


class LogsReceiver(Protocol):
    """A receiver with a logs signal (`Factory.signals`): the service hands it the consumer of its
    logs pipelines after `create`."""

    def set_logs_consumer(self, consumer: Consumer) -> None: ...


class Authenticator(Protocol):
    """An extension that receivers and sqlquery name as `auth: {authenticator: <id>}` (the registry
    lists which types are authenticators)."""

    def check(self, headers: dict[str, str]) -> str | None:
        """The tenant bound to the request's credentials (None: not bound); raises
        UnauthenticatedError if they are missing or unknown."""

    def authenticate(self, headers: dict[str, str], traces: "Traces") -> None:
        """`check`, then stamp the tenant on every resource and span."""

    def authenticate_logs(self, headers: dict[str, str], logs: "Logs") -> None:
        """`check`, then stamp the tenant on every resource and log record."""


@runtime_checkable
class StoreConfig(Protocol):
    """An exporter config whose destination can be opened for reading (clickhouse): what sqlquery
    and the CLI query."""

    def open_store(self, endpoint: Any = None) -> Any: ...


@dataclass
class Host:
    """What a started component may reach: extensions (e.g. auth) and the collector's own telemetry."""

    extensions: dict[ComponentId, Any] = field(default_factory=dict)
    telemetry: "SelfTelemetry | None" = None
    config_path: str = ""
    # Validated exporter configs by id, for extensions that work with an exporter's destination.
    exporter_configs: dict[ComponentId, Any] = field(default_factory=dict)
    # Several ingest processes listen on the same ports (SO_REUSEPORT; the kernel spreads connections).
    shared_ports: bool = False

    def extension(self, cid: ComponentId | str) -> Any:
        cid = ComponentId.parse(cid) if isinstance(cid, str) else cid
        try:
            return self.extensions[cid]
        except KeyError:
            raise LookupError(f"extension {cid} is not enabled in service.extensions") from None


@dataclass(frozen=True)
class Factory:
    """How the config loader validates a component's settings and the pipeline builds it.

    `create(id, config, next_consumer)` for processors; `create(id, config, None)` for exporters
    and extensions; receivers get the consumer that feeds their pipelines.
    """

    type: str
    kind: Kind
    config_model: type[BaseModel]
    create: Callable[[ComponentId, Any, "Consumer | None"], Any]
    # The pipelines (signals) it can be in. A logs-capable processor or exporter builds its logs
    # instance with `create_logs` (same arguments as `create`); a receiver takes its logs consumer
    # in `set_logs_consumer(consumer)` after `create`.
    signals: tuple[str, ...] = ("traces",)
    create_logs: Callable[[ComponentId, Any, "Consumer | None"], Any] | None = None


class Processor(Component):
    """A processor that rewrites each batch in place, then passes it on.

    Subclasses implement `process`; the few that must control the flow itself (batch,
    memory_limiter) override `consume` instead.
    """

    def __init__(self, component_id: ComponentId, config: Any, next_consumer: Consumer):
        self.id, self.config, self.next = component_id, config, next_consumer

    def process(self, traces: "Traces") -> "Traces":
        return traces

    def consume(self, traces: "Traces") -> None:
        self.next.consume(self.process(traces))
