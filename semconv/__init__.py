"""The one place where genaitrace's attribute and metric names are defined.

A leaf package (standard library only, imports nothing of the project), read by the app-side
instrumentation and by the collector (normaliser, cost, metrics, views, dashboards); its
`genai_mapping` module applies the dialect maps for both. It holds:

* the current GenAI semantic-convention names we read and write (`GEN_AI_*`, `ERROR_TYPE`, ...);
* `NEWER_THAN_PACKAGE`: current names that the pinned `opentelemetry-semantic-conventions`
  package does not know yet, each with the public source that defines it;
* `DEPRECATED`: every older spelling we still read, with the current name and where it came from
  (the semconv release, or the dialect that uses it); a stored span written with the old name is
  read the same way (`read_order`);
* the dialect maps (`TOKEN_ALIASES`, `STRING_ALIASES`, provider/operation/server keys) that
  `genai_mapping.normalize_attributes` applies;
* the product's own names, under `genaitrace.*`, never under a standard namespace, and the one
  product contract in `gen_ai.*` that predates this rule (`gen_ai.usage.cost_usd`);
* the optional standard cost attributes of the open proposal (PR #443);
* metric names, current and the previous release's (`genai_metrics`).

`tests/test_semconv.py` compares every `gen_ai.*` name we emit with the installed package.
"""

from __future__ import annotations

# The opentelemetry-semantic-conventions release the names below are checked against: pinned through
# opentelemetry-sdk 1.45.1 / opentelemetry-instrumentation 0.66b1 (both require it exactly). It is the
# newest that resolves with the stack: 0.66b2 (sdk 1.45.2, 2026-12) has no matching release of
# opentelemetry-instrumentation-threading, which the app extra needs (uv pip compile, 2026-12-06).
SEMCONV_PACKAGE = "opentelemetry-semantic-conventions==0.66b1"
GENAI_REPO = "https://github.com/open-telemetry/semantic-conventions-genai"

# --- current GenAI semantic conventions ---------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"

# Evaluations, sessions and users. The attribute names are the pinned package's
# (gen_ai_attributes.GEN_AI_EVALUATION_*, GEN_AI_RESPONSE_ID, user_attributes.USER_ID,
# enduser_attributes.ENDUSER_ID); the event name is the GenAI repository's
# (model/gen-ai/events.yaml: event `gen_ai.evaluation.result`), which the package has no constant for.
GEN_AI_EVALUATION_RESULT_EVENT = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"  # double
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"  # e.g. "relevant", "pass"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
USER_ID = "user.id"
# `enduser.id`: what semconv v1.26 deprecated in favour of user.id (later reinstated with a
# narrower meaning); apps and SDKs still send it for the end user, so it is read after user.id.
ENDUSER_ID = "enduser.id"
USER_ID_READ_ORDER = (USER_ID, ENDUSER_ID)
# `session.id`: the session name of OpenInference, Langfuse and genaitrace's baggage (which also
# writes gen_ai.conversation.id); a conversation is read under either, the GenAI name first.
SESSION_ID = "session.id"
# gen_ai.conversation.id is conditionally required ("when available") on inference and agent spans
# (GENAI_REPO model/gen-ai/spans.yaml). Other dialects' spellings of it, which genai_normalizer
# copies to gen_ai.conversation.id, in order of trust:
#   session.id                                   OpenInference (SpanAttributes.SESSION_ID), Langfuse
#   traceloop.association.properties.session_id  traceloop-sdk (AssociationProperty.SESSION_ID)
#   langfuse.session.id                          Langfuse's own OTel attribute
CONVERSATION_ID_ALIASES = (SESSION_ID, "traceloop.association.properties.session_id", "langfuse.session.id")
CONVERSATION_ID_READ_ORDER = (GEN_AI_CONVERSATION_ID,) + CONVERSATION_ID_ALIASES
# Older SDKs put an event's name in this log attribute instead of the LogRecord's EventName.
EVENT_NAME_ATTRIBUTE = "event.name"

# Failures. `error.type` is conditionally required on every GenAI span that ended in an error
# (GENAI_REPO model/gen-ai/spans.yaml, attributes.gen_ai.error): the provider's error code or the
# exception's class; `_OTHER` when nothing better is known (semconv's error.type fallback value).
ERROR_TYPE_OTHER = "_OTHER"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
# A provider error is reported as this log record (event), parented to the failed span through its
# TraceId/SpanId, severity WARN (13), attributes exception.type / .message / .stacktrace
# (GENAI_REPO model/gen-ai/events.yaml, event `gen_ai.client.operation.exception`).
GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT = "gen_ai.client.operation.exception"
GEN_AI_CLIENT_OPERATION_EXCEPTION_SEVERITY = 13  # SeverityNumber WARN
# ... rather than the span event the trace API's record_exception writes (deprecated in favour of
# log-based events); the collector still reads it, with the same attributes.
EXCEPTION_SPAN_EVENT = "exception"

# Operation names (`gen_ai.operation.name` values). `plan` is in the GenAI repository
# (model/gen-ai/registry.yaml), newer than the package's enum (NEWER_OPERATIONS).
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_GENERATE_CONTENT = "generate_content"
OP_EMBEDDINGS = "embeddings"
OP_INVOKE_AGENT = "invoke_agent"
OP_CREATE_AGENT = "create_agent"
OP_EXECUTE_TOOL = "execute_tool"
OP_INVOKE_WORKFLOW = "invoke_workflow"
OP_PLAN = "plan"
OP_TASK = "task"  # not semconv: CrewAI-style task spans (genaitrace's instrumentation)
INFERENCE_OPERATIONS = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT, OP_EMBEDDINGS})
# `plan` (GENAI_REPO model/gen-ai/spans.yaml, span gen_ai.plan.internal): an agent's planning or
# task-decomposition phase; the LLM call that makes the plan SHOULD be its child. A plan span that
# carries token usage itself (an instrumentation that reports the planner's usage on it, with no
# child call) is a call of its own, priced like an inference; one without usage is a container only.
# Calls are counted per operation, so planning is never counted as chat.
USAGE_OPERATIONS = INFERENCE_OPERATIONS | {OP_PLAN}
CONTAINER_OPERATIONS = (OP_INVOKE_AGENT, OP_TASK, OP_INVOKE_WORKFLOW, OP_PLAN)
# Other spellings of the operations, as gen_ai.operation.name values or span kinds of a dialect.
# OpenInference (span kinds LLM..DECISION) and traceloop (workflow/task/agent/tool) have no planning
# kind; OpenInference's DECISION is a routing decision, not a plan, and is left alone, as the
# convention asks (no `plan` when planning cannot be told from other reasoning).
OPERATION_SPELLINGS: dict[str, str] = {"planning": OP_PLAN, "planner": OP_PLAN}
# Planners a dialect reports as an ordinary agent. CrewAI's crew planning (`Crew(planning=True)`)
# runs an agent with this fixed role (crewai.utilities.planning_handler.CrewPlanner); under
# traceloop it is an `invoke_agent` span `Task Execution Planner.agent` carrying the planner's usage.
PLANNER_AGENT_NAMES = frozenset({"Task Execution Planner"})
# Operation values the normaliser writes that the pinned package's enum lacks: newer in the GenAI
# repository, or no convention's at all (a dialect's span kind with no GenAI operation, kept as a
# value of its own so it is never counted as chat; the product's task spans).
NEWER_OPERATIONS: dict[str, str] = {
    OP_PLAN: f"{GENAI_REPO}: model/gen-ai/registry.yaml (gen_ai.operation.name `plan`), spans.yaml gen_ai.plan.internal",
}
NON_STANDARD_OPERATIONS: dict[str, str] = {
    OP_TASK: "genaitrace's CrewAI task spans; traceloop.span.kind `task`",
    "rerank": "OpenInference span kind RERANKER",
    "guardrail": "OpenInference span kind GUARDRAIL",
    "evaluate": "OpenInference span kind EVALUATOR",
}

# Event names of the GenAI repository (the package has no constants for events) -> their source.
EVENTS: dict[str, str] = {
    GEN_AI_EVALUATION_RESULT_EVENT: f"{GENAI_REPO}: model/gen-ai/events.yaml",
    GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT: f"{GENAI_REPO}: model/gen-ai/events.yaml",
}

# Current names the pinned package does not define yet -> the public source that does.
NEWER_THAN_PACKAGE: dict[str, str] = {
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: (
        f"{GENAI_REPO}: model/gen-ai (the usage metric gen_ai.client.inference.usage.detailed.cache_write.input_tokens"
        " in usage-metrics.yaml and its attribute); replaces gen_ai.usage.cache_creation.input_tokens"),
}

# --- the product's own names (genaitrace.*) -----------------------------------------------------
# Who or what produced an evaluation result (no semconv attribute for it yet):
# human | llm-judge | heuristic | user-feedback, or any other name the producer gives.
EVALUATION_SOURCE = "genaitrace.evaluation.source"
EVALUATION_SOURCES = ("human", "llm-judge", "heuristic", "user-feedback")
# How the provider was found: attribute | server.address | model_name | unknown.
PROVIDER_DETECTION = "genaitrace.provider.detection"
# Of the cache-write tokens, how many were written with Anthropic's 1-hour TTL (a subset).
CACHE_WRITE_1H_INPUT_TOKENS = "genaitrace.usage.cache_write.ephemeral_1h.input_tokens"
# The service tier the request asked for / the response was served at, whatever the provider.
REQUEST_SERVICE_TIER = "genaitrace.request.service_tier"
RESPONSE_SERVICE_TIER = "genaitrace.response.service_tier"
# Set by the instrumentation when LiteLLM estimated the token counts (the provider reported none),
# and by the cost processor on a call that generates output but reported input tokens only (the
# Anthropic SDK's own span of a stream the app left before `message_delta`): its cost covers the
# input alone, a lower bound, counted with the estimates rather than as the call's real cost.
USAGE_ESTIMATED = "genaitrace.usage.estimated"
# Operations whose calls generate output tokens (an embeddings call has input tokens only).
OUTPUT_OPERATIONS = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT})
# Set (true) on a streamed call the application stopped reading before its end: the provider's
# usage never arrived, so its counts are estimates (the prompt, and the output the app received).
STREAM_ABANDONED = "genaitrace.stream.abandoned"

# The product's cost contract: the total, on inference spans only. In `gen_ai.*` because users'
# queries and dashboards depend on it (issue 14: keep it); it is not a semconv name.
COST_USD = "gen_ai.usage.cost_usd"
PRODUCT_CONTRACT: dict[str, str] = {COST_USD: "genaitrace's cost total since the first release (kept by issue 14)"}

# The cost detail, in the product's namespace (until issue 14 it was gen_ai.usage.cost.*, the
# namespace the standard cost proposal uses).
COST_INPUT_USD = "genaitrace.cost.input_usd"
COST_CACHE_READ_USD = "genaitrace.cost.cache_read_usd"
COST_CACHE_WRITE_USD = "genaitrace.cost.cache_write_usd"
COST_OUTPUT_USD = "genaitrace.cost.output_usd"
COST_REASONING_USD = "genaitrace.cost.reasoning_usd"
COST_STATUS = "genaitrace.cost.status"  # priced | unpriced | delegated
COST_UNPRICED_REASON = "genaitrace.cost.unpriced_reason"
COST_UNPRICED_DETAIL = "genaitrace.cost.unpriced_detail"
COST_PRICED_SPAN_ID = "genaitrace.cost.priced_span_id"  # on a `delegated` wrapper span
COST_PRICE_SOURCE = "genaitrace.cost.price_source"
COST_PRICE_ENTRY = "genaitrace.cost.price_entry"
COST_PRICE_EFFECTIVE_DATE = "genaitrace.cost.price_effective_date"
COST_PRICED_MODEL = "genaitrace.cost.model"
COST_SERVICE_TIER = "genaitrace.cost.service_tier"
COST_CONTEXT_TIER = "genaitrace.cost.context_tier"
COST_DETAIL = (
    COST_INPUT_USD, COST_CACHE_READ_USD, COST_CACHE_WRITE_USD, COST_OUTPUT_USD, COST_REASONING_USD, COST_STATUS,
    COST_UNPRICED_REASON, COST_UNPRICED_DETAIL, COST_PRICED_SPAN_ID, COST_PRICE_SOURCE, COST_PRICE_ENTRY,
    COST_PRICE_EFFECTIVE_DATE, COST_PRICED_MODEL, COST_SERVICE_TIER, COST_CONTEXT_TIER,
)

# The open proposal for standard cost attributes: semantic-conventions-genai PR #443
# (https://github.com/open-telemetry/semantic-conventions-genai/pull/443), inference spans only.
# Emitted only with `genai_cost: {standard_cost_attributes: true}`.
STANDARD_COST_AMOUNT = "gen_ai.usage.cost.amount"  # double
STANDARD_COST_CURRENCY = "gen_ai.usage.cost.currency"  # ISO 4217
STANDARD_COST_SOURCE = "gen_ai.usage.cost.source"  # provider | local
STANDARD_COST = (STANDARD_COST_AMOUNT, STANDARD_COST_CURRENCY, STANDARD_COST_SOURCE)
PROPOSED: dict[str, str] = {name: "semantic-conventions-genai PR #443 (open)" for name in STANDARD_COST}

# --- deprecated and earlier spellings: old -> (current, where the old one comes from) -------------
_OLD_COST = "genaitrace <= 0.x (gen_ai.usage.cost.* detail keys, moved by issue 14)"
DEPRECATED: dict[str, tuple[str, str]] = {
    "gen_ai.usage.cache_creation.input_tokens": (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                                                 f"{SEMCONV_PACKAGE} (renamed in {GENAI_REPO})"),
    "gen_ai.usage.prompt_tokens": (GEN_AI_USAGE_INPUT_TOKENS, "semconv v1.26 and earlier (renamed in v1.27.0)"),
    "gen_ai.usage.completion_tokens": (GEN_AI_USAGE_OUTPUT_TOKENS, "semconv v1.26 and earlier (renamed in v1.27.0)"),
    "gen_ai.system": (GEN_AI_PROVIDER_NAME, "semconv v1.36 and earlier (renamed in v1.37.0)"),
    "gen_ai.openai.request.service_tier": (OPENAI_REQUEST_SERVICE_TIER, "semconv v1.36 and earlier (renamed in v1.37.0)"),
    "gen_ai.openai.response.service_tier": (OPENAI_RESPONSE_SERVICE_TIER, "semconv v1.36 and earlier (renamed in v1.37.0)"),
    "gen_ai.provider.detection": (PROVIDER_DETECTION, "genaitrace <= 0.x"),
    "gen_ai.usage.cache_creation.ephemeral_1h.input_tokens": (CACHE_WRITE_1H_INPUT_TOKENS, "genaitrace <= 0.x"),
    "gen_ai.request.service_tier": (REQUEST_SERVICE_TIER, "genaitrace <= 0.x"),
    "gen_ai.response.service_tier": (RESPONSE_SERVICE_TIER, "genaitrace <= 0.x"),
    "gen_ai.usage.cost.input_usd": (COST_INPUT_USD, _OLD_COST),
    "gen_ai.usage.cost.cache_read_usd": (COST_CACHE_READ_USD, _OLD_COST),
    "gen_ai.usage.cost.cache_creation_usd": (COST_CACHE_WRITE_USD, _OLD_COST),
    "gen_ai.usage.cost.output_usd": (COST_OUTPUT_USD, _OLD_COST),
    "gen_ai.usage.cost.reasoning_usd": (COST_REASONING_USD, _OLD_COST),
    "gen_ai.usage.cost.status": (COST_STATUS, _OLD_COST),
    "gen_ai.usage.cost.unpriced_reason": (COST_UNPRICED_REASON, _OLD_COST),
    "gen_ai.usage.cost.unpriced_detail": (COST_UNPRICED_DETAIL, _OLD_COST),
    "gen_ai.usage.cost.priced_span_id": (COST_PRICED_SPAN_ID, _OLD_COST),
    "gen_ai.usage.cost.price_source": (COST_PRICE_SOURCE, _OLD_COST),
    "gen_ai.usage.cost.price_entry": (COST_PRICE_ENTRY, _OLD_COST),
    "gen_ai.usage.cost.price_effective_date": (COST_PRICE_EFFECTIVE_DATE, _OLD_COST),
    "gen_ai.usage.cost.model": (COST_PRICED_MODEL, _OLD_COST),
    "gen_ai.usage.cost.service_tier": (COST_SERVICE_TIER, _OLD_COST),
    "gen_ai.usage.cost.context_tier": (COST_CONTEXT_TIER, _OLD_COST),
}
# Everything genai_cost owns on a span, current and old: what it replaces and reprice rewrites.
COST_ATTRIBUTES = (COST_USD,) + COST_DETAIL + tuple(old for old, (new, _) in DEPRECATED.items() if new in COST_DETAIL)


def read_order(name: str) -> tuple[str, ...]:
    """`name` first, then every older spelling of it: how a stored span is read (first present wins)."""
    return (name,) + tuple(old for old, (new, _) in DEPRECATED.items() if new == name)


# --- dialect maps: current name -> keys to read, first present wins (the current name first) -----
# A dialect's own total: used to derive a missing input or output count, never emitted.
DIALECT_TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")

TOKEN_ALIASES: dict[str, tuple[str, ...]] = {
    GEN_AI_USAGE_INPUT_TOKENS: read_order(GEN_AI_USAGE_INPUT_TOKENS) + (
        "llm.token_count.prompt",  # OpenInference
        "llm.usage.prompt_tokens",  # OpenLLMetry
    ),
    GEN_AI_USAGE_OUTPUT_TOKENS: read_order(GEN_AI_USAGE_OUTPUT_TOKENS) + (
        "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: read_order(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) + (
        "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry
        "llm.token_count.prompt_details.cache_read",  # OpenInference
        "gen_ai.usage.prompt_tokens_details.cache_read",  # OpenLIT
        "gen_ai.usage.input_tokens.cached",
        "gen_ai.usage.input_tokens.cache_read",
        "gen_ai.usage.cached_tokens",
        "llm.usage.cache_read_input_tokens",
    ),
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: read_order(GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) + (
        "gen_ai.usage.cache_write_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",  # OpenLLMetry
        "llm.token_count.prompt_details.cache_write",  # OpenInference
        "gen_ai.usage.prompt_tokens_details.cache_write",  # OpenLIT
        "gen_ai.usage.input_tokens.cache_write",
        "gen_ai.usage.input_tokens.cache_creation",
        "llm.usage.cache_creation_input_tokens",
    ),
    CACHE_WRITE_1H_INPUT_TOKENS: read_order(CACHE_WRITE_1H_INPUT_TOKENS) + (
        "gen_ai.usage.cache_creation.ephemeral_1h_input_tokens",
        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens",
        "llm.token_count.prompt_details.cache_write_1h",
    ),
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: read_order(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) + (
        "gen_ai.usage.reasoning_tokens",  # OpenLIT
        "llm.token_count.completion_details.reasoning",  # OpenInference
        "gen_ai.usage.completion_tokens_details.reasoning",
        "gen_ai.usage.output_tokens.reasoning",
        "gen_ai.usage.output_reasoning_tokens",
        "llm.usage.reasoning_tokens",
    ),
}

STRING_ALIASES: dict[str, tuple[str, ...]] = {
    GEN_AI_REQUEST_MODEL: (GEN_AI_REQUEST_MODEL, "llm.request.model", "llm.model_name", "embedding.model_name", "gen_ai.model"),
    GEN_AI_RESPONSE_MODEL: (GEN_AI_RESPONSE_MODEL, "llm.response.model"),
    REQUEST_SERVICE_TIER: read_order(REQUEST_SERVICE_TIER) + (
        OPENAI_REQUEST_SERVICE_TIER, "gen_ai.openai.request.service_tier", "llm.request.service_tier"),
    RESPONSE_SERVICE_TIER: read_order(RESPONSE_SERVICE_TIER) + (
        OPENAI_RESPONSE_SERVICE_TIER, "gen_ai.openai.response.service_tier"),
}

# Provider attributes of other dialects, in order of trust; operation hints; where the server is.
PROVIDER_KEYS = ("gen_ai.system", "llm.provider", "llm.system")
OPERATION_KEYS = ("openinference.span.kind", "traceloop.span.kind", "llm.request.type", "gen_ai.type")
SERVER_KEYS = (SERVER_ADDRESS, "gen_ai.endpoint", "llm.api_base", "url.full", "http.url")

# --- metrics (genai_metrics) --------------------------------------------------------------------
# Semconv client metrics the collector derives from spans (Prometheus names: dots -> underscores,
# unit suffix added by the client library).
METRIC_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"  # semconv package 0.66b1; see NEWER metrics below
METRIC_INFERENCE_INPUT_TOKENS = "gen_ai.client.inference.usage.input_tokens"
METRIC_INFERENCE_OUTPUT_TOKENS = "gen_ai.client.inference.usage.output_tokens"
METRIC_INVOKE_AGENT_DURATION = "gen_ai.invoke_agent.duration"
METRIC_EXECUTE_TOOL_DURATION = "gen_ai.execute_tool.duration"
METRIC_WORKFLOW_DURATION = "gen_ai.workflow.duration"
NEWER_METRICS: dict[str, str] = {
    METRIC_INFERENCE_INPUT_TOKENS: f"{GENAI_REPO}: model/gen-ai/usage-metrics.yaml",
    METRIC_INFERENCE_OUTPUT_TOKENS: f"{GENAI_REPO}: model/gen-ai/usage-metrics.yaml",
    METRIC_INVOKE_AGENT_DURATION: f"{GENAI_REPO}: model/gen-ai/metrics.yaml",
    METRIC_EXECUTE_TOOL_DURATION: f"{GENAI_REPO}: model/gen-ai/metrics.yaml",
    METRIC_WORKFLOW_DURATION: f"{GENAI_REPO}: model/gen-ai/metrics.yaml",
}
