"""`genai_metrics` processor: Prometheus metrics derived from the GenAI spans passing through.

    processors:
      genai_metrics:
        max_models: 50        # distinct model label values; later ones are counted as `other`
        max_agents: 100
        max_tenants: 200
        max_providers: 20
        legacy_metric_names: false   # true: also the previous release's names (one release only)

    service:
      pipelines:
        traces:
          processors: [memory_limiter, genai_normalizer, genai_cost, genai_metrics, batch]

A pass-through processor: spans are not changed. Put it after `genai_cost` (so the cost is
known) and before `batch`. Spans are counted once the next consumer has accepted them, so a
request the client retries after a refusal is not counted twice. Served on the collector's own
metrics endpoint (`service.telemetry.metrics.address`), next to the `otelcol_*` health metrics.

GenAI semantic-convention histograms (names as the OpenTelemetry -> Prometheus translation
writes them, the spec's bucket boundaries; the metric names are in the `semconv` package, from the
semantic-conventions-genai repository's model/gen-ai/metrics.yaml and usage-metrics.yaml):

    gen_ai_client_inference_usage_input_tokens    {gen_ai_operation_name, gen_ai_provider_name,
    gen_ai_client_inference_usage_output_tokens    gen_ai_request_model, gen_ai_agent_name}
    gen_ai_client_operation_duration_seconds      {gen_ai_operation_name, gen_ai_provider_name,
                                                   gen_ai_request_model, error_type, gen_ai_agent_name}
    gen_ai_invoke_agent_duration_seconds          {gen_ai_agent_name, error_type}
    gen_ai_execute_tool_duration_seconds          {gen_ai_tool_name, error_type}
    gen_ai_workflow_duration_seconds              {gen_ai_workflow_name, error_type}

Migration from the previous release: `gen_ai_client_token_usage{gen_ai_token_type}` (semconv's
`gen_ai.client.token.usage`, replaced by the two inference usage histograms) is emitted only with
`legacy_metric_names: true`, for one release; the dashboards and alert rules use the new names.

Calls are inference spans and `plan` spans that report token usage themselves (under
`gen_ai_operation_name="plan"` / `operation="plan"`, never as chat); a plan span without usage is
left to the call beneath it.

Counters with the names users' dashboards and alerts already know (labels `provider`, `model`,
`agent_name`, `tenant`, `operation`):

    llm_requests_total{..., status="ok|error"}     inference calls
    llm_errors_total{..., error_type}              failed inference calls
    llm_tokens_total{..., token_type}              input, output, cache_read, cache_creation, reasoning
    llm_cost_usd_total                             `gen_ai.usage.cost_usd` of priced calls
    llm_unpriced_requests_total{..., reason}       calls without a price (cost unknown, not zero)
    agent_runs_total{agent_name, tenant, status}   `invoke_agent` spans

Bounded cardinality: no ids are labels; each of model, agent, tenant and provider keeps the
first N distinct values it sees and counts the rest as `other`; a missing value is `unknown`.
Inference spans marked `delegated` by `genai_cost` (a framework span wrapping the provider SDK's)
are skipped, so tokens and requests are not counted twice.
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field

import semconv
from collector import acks
from collector.component import ComponentId, Consumer, Factory, Host, Kind, Processor, StrictConfig
from collector.pdata import Traces

# https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

INFERENCE_OPERATIONS = semconv.INFERENCE_OPERATIONS
# Calls: inference spans, and `plan` spans that report usage themselves (counted under
# operation="plan", never as chat).
CALL_OPERATIONS = semconv.USAGE_OPERATIONS
OP_KEY = semconv.GEN_AI_OPERATION_NAME
OTHER, UNKNOWN = "other", "unknown"

# (token_type label, attribute): the label values are the product's (`cache_creation` kept for the
# dashboards and alerts that filter on it); the attribute is read under its current name, then
# its earlier ones (`semconv.read_order`), never summed.
_TOKEN_KEYS = (
    ("input", semconv.GEN_AI_USAGE_INPUT_TOKENS),
    ("output", semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cache_read", semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_creation", semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
    ("reasoning", semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
)
_READ = {name: semconv.read_order(name) for name in
         [key for _, key in _TOKEN_KEYS] + [semconv.COST_STATUS, semconv.COST_UNPRICED_REASON]}


def _no_usage(attributes) -> bool:
    return _get(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS) is None and \
        _get(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS) is None


def _get(attributes, name: str):
    """The attribute under its current name, else under an earlier one."""
    for key in _READ[name]:
        value = attributes.get(key)
        if value is not None:
            return value
    return None
_STATUS_ERROR = 2
# Spans whose duration is a semconv metric of its own (agent, tool, workflow).
_TIMED_OPERATIONS = frozenset({semconv.OP_INVOKE_AGENT, semconv.OP_EXECUTE_TOOL, semconv.OP_INVOKE_WORKFLOW})


class GenAIMetricsConfig(StrictConfig):
    max_models: int = Field(50, ge=1)
    max_agents: int = Field(100, ge=1)
    max_tenants: int = Field(200, ge=1)
    max_providers: int = Field(20, ge=1)
    max_tools: int = Field(100, ge=1)
    max_workflows: int = Field(100, ge=1)
    # The previous release's metric names beside the current ones (see the module docstring).
    legacy_metric_names: bool = False


class _Capped:
    """The first `limit` distinct values pass; later ones become `other`."""

    def __init__(self, limit: int):
        self.limit, self.seen, self._lock = limit, set(), threading.Lock()

    def __call__(self, value: str) -> str:
        if not value:
            return UNKNOWN
        if value in self.seen:
            return value
        with self._lock:
            if value in self.seen or len(self.seen) < self.limit:
                self.seen.add(value)
                return value
        return OTHER


def prometheus_name(name: str, unit: str = "") -> str:
    """A semconv name as Prometheus spells it (OpenTelemetry's Prometheus compatibility rules: dots
    become underscores, a histogram in seconds gets `_seconds`): one spelling for metric and label
    names, derived from `semconv`, never written twice."""
    return name.replace(".", "_") + ("_seconds" if unit == "s" else "")


_OPERATION, _PROVIDER, _MODEL, _AGENT, _TOOL, _WORKFLOW, _TOKEN_TYPE, _ERROR_TYPE = map(prometheus_name, (
    semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_AGENT_NAME, semconv.GEN_AI_TOOL_NAME, semconv.GEN_AI_WORKFLOW_NAME, semconv.GEN_AI_TOKEN_TYPE,
    semconv.ERROR_TYPE))


def _histogram(name: str, unit: str, description: str, labels: list[str], buckets, registry) -> Histogram:
    return Histogram(prometheus_name(name, unit), f"{description} (GenAI semconv {name})", labels,
                     buckets=buckets, registry=registry)


class GenAIMetrics:
    """The metric families, registered once per registry (several processors may share one)."""

    def __init__(self, registry: CollectorRegistry):
        common = ["provider", "model", "agent_name", "tenant", "operation"]
        call = [_OPERATION, _PROVIDER, _MODEL]
        self.registry, self._lock, self._legacy = registry, threading.Lock(), None
        self.input_tokens = _histogram(semconv.METRIC_INFERENCE_INPUT_TOKENS, "", "Input tokens per inference call",
                                       call + [_AGENT], TOKEN_BUCKETS, registry)
        self.output_tokens = _histogram(semconv.METRIC_INFERENCE_OUTPUT_TOKENS, "", "Output tokens per inference call",
                                        call + [_AGENT], TOKEN_BUCKETS, registry)
        self.agent_duration = _histogram(semconv.METRIC_INVOKE_AGENT_DURATION, "s", "Agent invocation duration",
                                         [_AGENT, _ERROR_TYPE], DURATION_BUCKETS, registry)
        self.tool_duration = _histogram(semconv.METRIC_EXECUTE_TOOL_DURATION, "s", "Tool execution duration",
                                        [_TOOL, _ERROR_TYPE], DURATION_BUCKETS, registry)
        self.workflow_duration = _histogram(semconv.METRIC_WORKFLOW_DURATION, "s", "Workflow duration",
                                            [_WORKFLOW, _ERROR_TYPE], DURATION_BUCKETS, registry)
        self.duration = _histogram(semconv.METRIC_CLIENT_OPERATION_DURATION, "s", "GenAI operation duration",
                                   call + [_ERROR_TYPE, _AGENT], DURATION_BUCKETS, registry)
        self.requests = Counter("llm_requests", "LLM inference calls", common + ["status"], registry=registry)
        self.errors = Counter("llm_errors", "Failed LLM inference calls", common + ["error_type"], registry=registry)
        self.tokens = Counter("llm_tokens", "Tokens used by LLM calls (input includes cache reads/writes, "
                              "output includes reasoning)", common + ["token_type"], registry=registry)
        self.cost = Counter("llm_cost_usd", "Cost of priced LLM calls in USD", common, registry=registry)
        self.unpriced = Counter("llm_unpriced_requests", "LLM calls without a price (their cost is unknown)",
                                common + ["reason"], registry=registry)
        self.agent_runs = Counter("agent_runs", "Agent invocations (invoke_agent spans)",
                                  ["agent_name", "tenant", "status"], registry=registry)

    def legacy_token_usage(self) -> Histogram:
        """The previous release's token histogram, registered when a processor asks for it."""
        with self._lock:
            if self._legacy is None:
                self._legacy = _histogram(
                    semconv.METRIC_CLIENT_TOKEN_USAGE, "", "Deprecated (legacy_metric_names), replaced by "
                    f"{prometheus_name(semconv.METRIC_INFERENCE_INPUT_TOKENS)} and _output_tokens",
                    [_OPERATION, _PROVIDER, _MODEL, _TOKEN_TYPE, _AGENT], TOKEN_BUCKETS, self.registry)
            return self._legacy


# One metric family set per registry (processors of several pipelines share it). Keyed by the
# registry object itself, weakly: an id() key could be reused by a new registry after GC.
_families: "weakref.WeakKeyDictionary[CollectorRegistry, GenAIMetrics]" = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry) -> GenAIMetrics:
    with _families_lock:
        family = _families.get(registry)
        if family is None:
            family = _families[registry] = GenAIMetrics(registry)
        return family


def _num(value) -> float:
    if value is None or isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class GenAIMetricsProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: GenAIMetricsConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self.model = _Capped(config.max_models)
        self.agent = _Capped(config.max_agents)
        self.tenant = _Capped(config.max_tenants)
        self.provider = _Capped(config.max_providers)
        self.error_type = _Capped(50)
        self.tool = _Capped(config.max_tools)
        self.workflow = _Capped(config.max_workflows)
        self.metrics: GenAIMetrics | None = None
        self._children: dict[tuple, object] = {}

    def start(self, host: Host) -> None:
        registry = host.telemetry.registry if host.telemetry is not None else CollectorRegistry()
        self.metrics = metrics_for(registry)

    def consume(self, traces: Traces) -> None:
        self.next.consume(traces)
        acks.on_accepted(lambda: self._record_accepted(traces))  # count only what the pipeline accepted

    def _record_accepted(self, traces: Traces) -> None:
        if self.metrics is None:
            self.metrics = metrics_for(CollectorRegistry())
        try:
            self.record(traces)
        except Exception:  # noqa: BLE001 - metrics must never fail an accepted request
            import logging

            logging.getLogger(__name__).exception("genai_metrics: recording failed")

    def _child(self, metric, *labels):
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, traces: Traces) -> None:
        m = self.metrics
        child = self._child
        for row in traces.genai_rows():  # the rows the GenAI processors read and patched
            a = row.attributes
            op = a.get(OP_KEY)
            if type(op) is not str or (op not in CALL_OPERATIONS and op not in _TIMED_OPERATIONS):
                continue
            if op not in INFERENCE_OPERATIONS and op not in _TIMED_OPERATIONS and _no_usage(a):
                continue  # a plan span without usage of its own: the call beneath it is counted
            tenant = self.tenant(str(a.get("tenant.id") or row.resource.get("tenant.id") or ""))
            agent = self.agent(str(a.get("gen_ai.agent.name") or ""))
            error = row.status_code == _STATUS_ERROR
            seconds = max(row.end_time_unix_nano - row.start_time_unix_nano, 0) / 1e9
            if op in _TIMED_OPERATIONS:
                error_type = self.error_type(str(a.get(semconv.ERROR_TYPE) or "_OTHER")[:64]) if error else ""
                if op == semconv.OP_INVOKE_AGENT:
                    child(m.agent_runs, agent, tenant, "error" if error else "ok").inc()
                    child(m.agent_duration, agent, error_type).observe(seconds)
                elif op == semconv.OP_EXECUTE_TOOL:
                    child(m.tool_duration, self.tool(str(a.get(semconv.GEN_AI_TOOL_NAME) or "")), error_type).observe(seconds)
                else:
                    workflow = self.workflow(str(a.get(semconv.GEN_AI_WORKFLOW_NAME) or ""))
                    child(m.workflow_duration, workflow, error_type).observe(seconds)
                continue
            status = _get(a, semconv.COST_STATUS)
            if status == "delegated":
                continue
            provider = self.provider(str(a.get("gen_ai.provider.name") or ""))
            model = self.model(str(a.get("gen_ai.request.model") or a.get("gen_ai.response.model") or ""))
            common = (provider, model, agent, tenant, op)
            error_type = self.error_type(str(a.get("error.type") or "_OTHER")[:64]) if error else ""
            child(m.requests, *common, "error" if error else "ok").inc()
            if error:
                child(m.errors, *common, error_type).inc()
            child(m.duration, op, provider, model, error_type, agent).observe(seconds)
            for token_type, key in _TOKEN_KEYS:
                n = _num(_get(a, key))
                if n > 0:
                    child(m.tokens, *common, token_type).inc(n)
            for (token_type, key), histogram in zip(_TOKEN_KEYS[:2], (m.input_tokens, m.output_tokens)):
                value = _get(a, key)
                if value is not None:
                    child(histogram, op, provider, model, agent).observe(_num(value))
                    if self.config.legacy_metric_names:
                        child(m.legacy_token_usage(), op, provider, model, token_type, agent).observe(_num(value))
            cost = _num(a.get(semconv.COST_USD))
            if cost > 0:
                child(m.cost, *common).inc(cost)
            if status == "unpriced":
                reason = str(_get(a, semconv.COST_UNPRICED_REASON) or UNKNOWN)[:64]
                child(m.unpriced, *common, reason).inc()


def _create(component_id: ComponentId, config: GenAIMetricsConfig, next_consumer: Consumer) -> GenAIMetricsProcessor:
    return GenAIMetricsProcessor(component_id, config, next_consumer)


factory = Factory("genai_metrics", Kind.PROCESSOR, GenAIMetricsConfig, _create)
