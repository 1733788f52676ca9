"""One vocabulary for GenAI spans: every common dialect mapped onto the current GenAI semconv.

Shared by the app-side instrumentation and the collector's `genai_normalizer` / `genai_cost`
processors, so both sides agree on what a span means. Pure Python, standard library only: the
collector imports it on its hot path and the instrumentation imports it inside user apps.

Dialects understood (read, never emitted):

* OpenInference (Arize/Phoenix): `llm.model_name`, `llm.provider`, `llm.system`,
  `llm.token_count.{prompt,completion,total}`, `llm.token_count.prompt_details.{cache_read,cache_write}`,
  `llm.token_count.completion_details.reasoning`, `openinference.span.kind`, `embedding.model_name`.
* OpenLLMetry / traceloop and older GenAI semconv: `gen_ai.system`, `gen_ai.usage.prompt_tokens`,
  `gen_ai.usage.completion_tokens`, `llm.usage.total_tokens`, `llm.request.type`,
  `traceloop.span.kind`, `gen_ai.usage.cache_read_input_tokens`, `gen_ai.usage.cache_creation_input_tokens`,
  `gen_ai.openai.request.service_tier`.
* OpenLIT: `gen_ai.system`, `gen_ai.usage.reasoning_tokens`, `gen_ai.endpoint`, `gen_ai.type`,
  `gen_ai.usage.prompt_tokens_details.cache_read/cache_write`, `gen_ai.usage.completion_tokens_details.reasoning`.

Public API (stable):

* `normalize_attributes(attributes, span_name=None, drop_originals=False) -> dict`, and
  `normalize_changes(...)`, the same as (attributes to set, keys to remove)
* `detect_provider(attributes) -> str | None` and `detect_provider_with_source(attributes)`
* `operation_name(attributes, span_name=None) -> str | None`
* `is_genai_candidate(keys) -> bool` - cheap prefix test for the hot path
* `reads_only_operation(keys)`, `is_settled_operation(value)` - together: "this span normalises
  to itself", without building its attribute dict (hot path)
* attribute-name constants (`GEN_AI_*`), `INFERENCE_OPERATIONS`, `PROVIDER_DETECTION`.

Token semantics follow semconv: `gen_ai.usage.input_tokens` INCLUDES cache-read and
cache-creation tokens; `gen_ai.usage.output_tokens` INCLUDES reasoning tokens.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = [
    "normalize_attributes",
    "normalize_changes",
    "detect_provider",
    "detect_provider_with_source",
    "operation_name",
    "is_genai_candidate",
    "reads_only_operation",
    "is_settled_operation",
    "normalize_provider",
    "provider_from_server_address",
    "provider_from_model",
    "INFERENCE_OPERATIONS",
    "GENAI_KEY_PREFIXES",
]

# --- current GenAI semconv names --------------------------------------------------------------
# The names themselves live in the `semconv` package (current names, deprecated spellings with
# where they came from, the dialect maps); this module applies them.
from semconv import (  # noqa: E402  (re-exported: gm.GEN_AI_* is what callers use)
    CACHE_WRITE_1H_INPUT_TOKENS,
    CONTAINER_OPERATIONS,
    COST_ATTRIBUTES,
    COST_CACHE_READ_USD,
    COST_CACHE_WRITE_USD,
    COST_CONTEXT_TIER,
    COST_INPUT_USD,
    COST_OUTPUT_USD,
    COST_PRICE_EFFECTIVE_DATE,
    COST_PRICE_ENTRY,
    COST_PRICE_SOURCE,
    COST_PRICED_MODEL,
    COST_PRICED_SPAN_ID,
    COST_REASONING_USD,
    COST_SERVICE_TIER,
    COST_STATUS,
    COST_UNPRICED_DETAIL,
    COST_UNPRICED_REASON,
    COST_USD,
    DIALECT_TOTAL_TOKENS,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    CONVERSATION_ID_ALIASES,
    GEN_AI_CONVERSATION_ID,
    INFERENCE_OPERATIONS,
    OP_CHAT,
    OP_CREATE_AGENT,
    OP_EMBEDDINGS,
    OP_EXECUTE_TOOL,
    OP_GENERATE_CONTENT,
    OP_INVOKE_AGENT,
    OP_INVOKE_WORKFLOW,
    OP_PLAN,
    OP_TASK,
    OP_TEXT_COMPLETION,
    OPERATION_SPELLINGS,
    OPENAI_REQUEST_SERVICE_TIER,
    OPENAI_RESPONSE_SERVICE_TIER,
    PLANNER_AGENT_NAMES,
    PROVIDER_DETECTION,
    REQUEST_SERVICE_TIER,
    RESPONSE_SERVICE_TIER,
    SERVER_ADDRESS,
)
from semconv import OPERATION_KEYS as _OPERATION_KEYS  # noqa: E402
from semconv import PROVIDER_KEYS as _PROVIDER_KEYS  # noqa: E402
from semconv import SERVER_KEYS as _SERVER_KEYS  # noqa: E402
from semconv import STRING_ALIASES as _STRING_ALIASES  # noqa: E402
from semconv import TOKEN_ALIASES as _TOKEN_ALIASES  # noqa: E402

# Earlier Python names of the same attributes (their values are the current names).
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_1H_INPUT_TOKENS = CACHE_WRITE_1H_INPUT_TOKENS
GEN_AI_REQUEST_SERVICE_TIER = REQUEST_SERVICE_TIER
GEN_AI_RESPONSE_SERVICE_TIER = RESPONSE_SERVICE_TIER
GEN_AI_PROVIDER_DETECTION = PROVIDER_DETECTION
GEN_AI_USAGE_TOTAL_TOKENS = DIALECT_TOTAL_TOKENS[0]  # read (to derive input or output), never written
GEN_AI_USAGE_COST_USD = COST_USD
GEN_AI_USAGE_COST_INPUT_USD = COST_INPUT_USD
GEN_AI_USAGE_COST_CACHE_READ_USD = COST_CACHE_READ_USD
GEN_AI_USAGE_COST_CACHE_CREATION_USD = COST_CACHE_WRITE_USD
GEN_AI_USAGE_COST_OUTPUT_USD = COST_OUTPUT_USD
GEN_AI_USAGE_COST_REASONING_USD = COST_REASONING_USD
GEN_AI_USAGE_COST_STATUS = COST_STATUS
GEN_AI_USAGE_COST_UNPRICED_REASON = COST_UNPRICED_REASON
GEN_AI_USAGE_COST_UNPRICED_DETAIL = COST_UNPRICED_DETAIL
GEN_AI_USAGE_COST_PRICED_SPAN_ID = COST_PRICED_SPAN_ID
GEN_AI_USAGE_COST_PRICE_SOURCE = COST_PRICE_SOURCE
GEN_AI_USAGE_COST_PRICE_ENTRY = COST_PRICE_ENTRY
GEN_AI_USAGE_COST_PRICE_EFFECTIVE_DATE = COST_PRICE_EFFECTIVE_DATE
GEN_AI_USAGE_COST_PRICED_MODEL = COST_PRICED_MODEL
GEN_AI_USAGE_COST_SERVICE_TIER = COST_SERVICE_TIER
GEN_AI_USAGE_COST_TIER = COST_CONTEXT_TIER

# Any attribute key starting with one of these makes a span worth a closer look.
GENAI_KEY_PREFIXES = ("gen_ai.", "llm.", "openinference.", "traceloop.", "embedding.model_name")


# Keys that are purely dialect spellings of something the normaliser emits (dropped on request).
_DROPPABLE: frozenset[str] = frozenset(
    [k for keys in _TOKEN_ALIASES.values() for k in keys[1:]]
    + [k for keys in _STRING_ALIASES.values() for k in keys[1:] if k not in (OPENAI_REQUEST_SERVICE_TIER, OPENAI_RESPONSE_SERVICE_TIER)]
    + ["gen_ai.system", "llm.provider", "llm.system", "gen_ai.type", "llm.request.type"]
    + list(DIALECT_TOTAL_TOKENS)
)

# --- provider vocabulary ----------------------------------------------------------------------
# gen_ai.provider.name well-known values (semconv), plus a few common hosts that have none.
_PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "azure.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai": "azure.ai.inference",
    "gcp.gemini": "gcp.gemini",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google.genai": "gcp.gemini",
    "gcp.vertex_ai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "gcp.gen_ai": "gcp.gen_ai",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "mistral_ai": "mistral_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "x_ai": "x_ai",
    "xai": "x_ai",
    "deepinfra": "deepinfra",
    "together_ai": "together_ai",
    "together": "together_ai",
    "togetherai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "fireworks": "fireworks_ai",
    "openrouter": "openrouter",
    "ollama": "ollama",
    "cerebras": "cerebras",
    "sambanova": "sambanova",
    "nebius": "nebius",
    "huggingface": "huggingface",
    "hugging_face": "huggingface",
    "replicate": "replicate",
    "databricks": "databricks",
    "self_hosted": "self_hosted",
}
_NOT_A_PROVIDER = frozenset({"", "unknown", "none", "null", "other", "langchain", "llamaindex", "litellm"})

# (host suffix or prefix test, provider). Checked in order.
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    (".models.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.deepinfra.com", "deepinfra"),
    ("api.together.xyz", "together_ai"),
    ("api.together.ai", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("openrouter.ai", "openrouter"),
    ("api.cerebras.ai", "cerebras"),
    ("api.sambanova.ai", "sambanova"),
)
_HOST_PREFIXES: tuple[tuple[str, str], ...] = (
    ("bedrock-runtime.", "aws.bedrock"),
    ("bedrock-runtime-fips.", "aws.bedrock"),
    ("bedrock.", "aws.bedrock"),
)

# Model-name patterns, for when nothing else says who served the call.
_MODEL_PREFIX_PROVIDER: tuple[tuple[str, str], ...] = (
    ("openai/", "openai"),
    ("anthropic/", "anthropic"),
    ("azure/", "azure.ai.openai"),
    ("azure_ai/", "azure.ai.inference"),
    ("bedrock/", "aws.bedrock"),
    ("vertex_ai/", "gcp.vertex_ai"),
    ("gemini/", "gcp.gemini"),
    ("deepinfra/", "deepinfra"),
    ("together_ai/", "together_ai"),
    ("groq/", "groq"),
    ("mistral/", "mistral_ai"),
    ("fireworks_ai/", "fireworks_ai"),
    ("openrouter/", "openrouter"),
    ("xai/", "x_ai"),
    ("deepseek/", "deepseek"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("text-embedding-", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gcp.gemini"),
    ("models/gemini-", "gcp.gemini"),
    ("text-embedding-004", "gcp.gemini"),
    ("mistral-", "mistral_ai"),
    ("codestral", "mistral_ai"),
    ("command-", "cohere"),
    ("grok-", "x_ai"),
    ("deepseek-", "deepseek"),
    ("anthropic.", "aws.bedrock"),  # Bedrock model ids: anthropic.claude-..., us.anthropic.claude-...
    ("us.anthropic.", "aws.bedrock"),
    ("eu.anthropic.", "aws.bedrock"),
    ("apac.anthropic.", "aws.bedrock"),
    ("global.anthropic.", "aws.bedrock"),
    ("amazon.", "aws.bedrock"),
    ("meta.llama", "aws.bedrock"),
    ("us.meta.", "aws.bedrock"),
    ("cohere.", "aws.bedrock"),
    ("mistral.", "aws.bedrock"),
)
_OPENAI_REASONING = ("o1", "o3", "o4")

# --- value vocabularies -----------------------------------------------------------------------
_OPERATION_VALUES: dict[str, str] = {
    # semconv + older spellings
    "chat": OP_CHAT,
    "text_completion": OP_TEXT_COMPLETION,
    "completion": OP_TEXT_COMPLETION,
    "completions": OP_TEXT_COMPLETION,
    "generate_content": OP_GENERATE_CONTENT,
    "embeddings": OP_EMBEDDINGS,
    "embedding": OP_EMBEDDINGS,
    "embed": OP_EMBEDDINGS,
    "invoke_agent": OP_INVOKE_AGENT,
    "create_agent": OP_CREATE_AGENT,
    "execute_tool": OP_EXECUTE_TOOL,
    "invoke_workflow": OP_INVOKE_WORKFLOW,
    "plan": OP_PLAN,
    **OPERATION_SPELLINGS,
    # OpenInference span kinds
    "llm": OP_CHAT,
    "agent": OP_INVOKE_AGENT,
    "tool": OP_EXECUTE_TOOL,
    "chain": OP_INVOKE_WORKFLOW,
    "retriever": "retrieval",
    "retrieval": "retrieval",
    "reranker": "rerank",
    "rerank": "rerank",
    "guardrail": "guardrail",
    "evaluator": "evaluate",
    # traceloop span kinds / OpenLIT gen_ai.operation.name values
    "workflow": OP_INVOKE_WORKFLOW,
    "task": OP_TASK,
    "framework": OP_INVOKE_WORKFLOW,
}
# Every attribute key `normalize_attributes` looks up (it also iterates the keys once, for
# `is_genai_candidate`). Derived from the tables above so it follows them; keep it in step when
# the functions below read a new key (tests/test_genai_mapping.py checks it with a recording dict).
NORMALIZER_READ_KEYS: frozenset[str] = frozenset(
    [GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_PROVIDER_DETECTION, GEN_AI_RESPONSE_MODEL,
     GEN_AI_REQUEST_MODEL, "llm.response.model", "llm.request.model", "llm.model_name", "embedding.model_name",
     "llm.prompts", "llm.input_messages.0.message.role", GEN_AI_AGENT_NAME, GEN_AI_CONVERSATION_ID]
    + list(CONVERSATION_ID_ALIASES)
    + list(_OPERATION_KEYS) + list(_PROVIDER_KEYS) + list(_SERVER_KEYS) + list(_DROPPABLE)
    + [k for keys in _TOKEN_ALIASES.values() for k in keys]
    + [k for keys in _STRING_ALIASES.values() for k in keys]
)

# The alias tables with each target's keys as a set too (`normalize_attributes` skips a target
# none of whose keys a span has).
_STRING_ALIAS_SETS = tuple((target, keys, frozenset(keys)) for target, keys in _STRING_ALIASES.items())
_TOKEN_ALIAS_SETS = tuple((target, keys, frozenset(keys)) for target, keys in _TOKEN_ALIASES.items())

# Span names like "openai.chat" (traceloop) or "chat gpt-4o" (semconv).
_SPAN_NAME_OPERATIONS = {
    "chat": OP_CHAT,
    "text_completion": OP_TEXT_COMPLETION,
    "completion": OP_TEXT_COMPLETION,
    "generate_content": OP_GENERATE_CONTENT,
    "embeddings": OP_EMBEDDINGS,
    "embedding": OP_EMBEDDINGS,
    "invoke_agent": OP_INVOKE_AGENT,
    "create_agent": OP_CREATE_AGENT,
    "execute_tool": OP_EXECUTE_TOOL,
    "invoke_workflow": OP_INVOKE_WORKFLOW,
    "plan": OP_PLAN,
}


# --- helpers ----------------------------------------------------------------------------------
def is_genai_candidate(keys: Iterable[str]) -> bool:
    """True if any key looks like a GenAI attribute. Cheap: no dict, stops at the first hit."""
    prefixes = GENAI_KEY_PREFIXES
    for key in keys:
        if key.startswith(prefixes):
            return True
    return False


def reads_only_operation(keys: Iterable[str]) -> bool:
    """True if, of these keys, `normalize_attributes` would read `gen_ai.operation.name` alone.

    With `is_settled_operation(value)` it lets the collector skip spans that normalise to
    themselves (agent, tool and workflow spans in current semconv) without building a dict.
    """
    read = NORMALIZER_READ_KEYS.intersection(keys)
    return len(read) == 1 and GEN_AI_OPERATION_NAME in read


def is_settled_operation(value: Any) -> bool:
    """True if `normalize_attributes` keeps this `gen_ai.operation.name` value as it is and, it
    being no inference operation, looks at nothing else (no provider detection)."""
    return (
        type(value) is str
        and value != ""
        and value == value.strip().lower()
        and _OPERATION_VALUES.get(value, value) == value
        and value not in INFERENCE_OPERATIONS
    )


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value >= 0 and value == value else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = int(text)
        except ValueError:
            try:
                number = int(float(text))
            except ValueError:
                return None
        return number if number >= 0 else None
    return None


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


def _first(attributes: Mapping[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return key, value
    return None, None


def normalize_provider(value: Any) -> str | None:
    """A provider spelling from any dialect -> the semconv `gen_ai.provider.name` value, or None."""
    text = _as_str(value)
    if text is None:
        return None
    key = text.lower().replace(" ", "_").replace("-", "_")
    if key in _NOT_A_PROVIDER:
        return None
    if key in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[key]
    key_dot = text.lower().replace(" ", "")
    if key_dot in _PROVIDER_ALIASES:
        return _PROVIDER_ALIASES[key_dot]
    return key  # an unfamiliar but explicit provider: keep it, lower-cased


def _host(value: Any) -> str | None:
    text = _as_str(value)
    if text is None:
        return None
    text = text.lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split("@")[-1].split(":", 1)[0]
    return text or None


def provider_from_server_address(address: Any) -> str | None:
    host = _host(address)
    if not host:
        return None
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider
    for prefix, provider in _HOST_PREFIXES:
        if host.startswith(prefix):
            return provider
    return None


def provider_from_model(model: Any) -> str | None:
    text = _as_str(model)
    if text is None:
        return None
    name = text.lower()
    for prefix, provider in _MODEL_PREFIX_PROVIDER:
        if name.startswith(prefix):
            return provider
    if name.startswith(_OPENAI_REASONING) and (len(name) == 2 or name[2] == "-"):
        return "openai"
    return None


def _server_address(attributes: Mapping[str, Any]) -> Any:
    _, value = _first(attributes, _SERVER_KEYS)
    return value


def detect_provider_with_source(attributes: Mapping[str, Any]) -> tuple[str | None, str]:
    """(provider, how it was found). `how` is attribute | server.address | model_name | unknown.

    An OpenAI-compatible SDK reports `openai` whatever host it talks to; when the span's
    `server.address` names a different known provider (DeepInfra, Azure, Together...), the host wins.
    """
    provider = normalize_provider(attributes.get(GEN_AI_PROVIDER_NAME))
    if provider is None:
        _, value = _first(attributes, _PROVIDER_KEYS)
        provider = normalize_provider(value)
    host_provider = provider_from_server_address(_server_address(attributes))
    if provider is not None:
        if provider == "openai" and host_provider not in (None, "openai"):
            return host_provider, "server.address"
        return provider, "attribute"
    if host_provider is not None:
        return host_provider, "server.address"
    for key in (GEN_AI_RESPONSE_MODEL, "llm.response.model", GEN_AI_REQUEST_MODEL, "llm.request.model", "llm.model_name", "embedding.model_name"):
        provider = provider_from_model(attributes.get(key))
        if provider is not None:
            return provider, "model_name"
    return None, "unknown"


def detect_provider(attributes: Mapping[str, Any]) -> str | None:
    return detect_provider_with_source(attributes)[0]


def operation_name(attributes: Mapping[str, Any], span_name: str | None = None) -> str | None:
    """The semconv `gen_ai.operation.name` for a span of any dialect, or None if it is not GenAI.
    A known planner reported as an agent (CrewAI's crew planning) is `plan`."""
    op = _operation_name(attributes, span_name)
    if op == OP_INVOKE_AGENT and _as_str(attributes.get(GEN_AI_AGENT_NAME)) in PLANNER_AGENT_NAMES:
        return OP_PLAN
    return op


def _operation_name(attributes: Mapping[str, Any], span_name: str | None) -> str | None:
    value = _as_str(attributes.get(GEN_AI_OPERATION_NAME))
    if value is not None:
        return _OPERATION_VALUES.get(value.lower(), value.lower())
    # traceloop LLM spans: traceloop.span.kind is absent, llm.request.type says chat/completion/...
    for key in _OPERATION_KEYS:
        value = _as_str(attributes.get(key))
        if value is not None:
            op = _OPERATION_VALUES.get(value.lower())
            if op is not None:
                if op == OP_CHAT and key == "openinference.span.kind" and attributes.get("llm.prompts") is not None \
                        and attributes.get("llm.input_messages.0.message.role") is None:
                    return OP_TEXT_COMPLETION
                return op
    if span_name:
        head = span_name.strip().split(" ", 1)[0].lower()
        op = _SPAN_NAME_OPERATIONS.get(head)
        if op is None and "." in head:
            op = _SPAN_NAME_OPERATIONS.get(head.rsplit(".", 1)[1])
        if op is not None:
            return op
    # Token counts without any kind: an inference call of unknown flavour; call it chat.
    for keys in (_TOKEN_ALIASES[GEN_AI_USAGE_INPUT_TOKENS], _TOKEN_ALIASES[GEN_AI_USAGE_OUTPUT_TOKENS]):
        if _first(attributes, keys)[0] is not None:
            model_key, _ = _first(attributes, _STRING_ALIASES[GEN_AI_REQUEST_MODEL])
            if model_key == "embedding.model_name":
                return OP_EMBEDDINGS
            return OP_CHAT
    return None


def normalize_attributes(
    attributes: Mapping[str, Any], span_name: str | None = None, drop_originals: bool = False
) -> dict[str, Any]:
    """The span's full attribute dict with every GenAI dialect rewritten to current semconv.

    Idempotent: `normalize_attributes(normalize_attributes(a)) == normalize_attributes(a)`.
    Values already in semconv names win over dialect spellings. Token counts become ints.
    With `drop_originals`, dialect keys that were mapped are removed.
    """
    return _normalized(attributes, span_name, drop_originals)[0]


def normalize_changes(
    attributes: Mapping[str, Any], span_name: str | None = None, drop_originals: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """What `normalize_attributes` changes, as (attributes to set, keys to remove): only the keys
    it wrote are compared, not every attribute of the span."""
    out, touched = _normalized(attributes, span_name, drop_originals)
    to_set = {}
    for key in touched:
        if key in out:
            value = out[key]
            if key not in attributes or attributes[key] != value or type(attributes[key]) is not type(value):
                to_set[key] = value
    return to_set, [key for key in touched if key not in out and key in attributes]


def _normalized(
    attributes: Mapping[str, Any], span_name: str | None, drop_originals: bool
) -> tuple[dict[str, Any], dict[str, None]]:
    """`normalize_attributes`' dict, and the keys it set or removed (some perhaps to the same value),
    in the order it first wrote them: new keys are appended to a span in that order, as before."""
    out: dict[str, Any] = dict(attributes)
    touched: dict[str, None] = {}
    if not is_genai_candidate(out):
        return out, touched

    op = operation_name(attributes, span_name)
    if op is not None:
        out[GEN_AI_OPERATION_NAME] = op
        touched[GEN_AI_OPERATION_NAME] = None
    if _as_str(attributes.get(GEN_AI_CONVERSATION_ID)) is None:
        # Conditionally required when available: another dialect's session id is that conversation.
        _, conversation = _first(attributes, CONVERSATION_ID_ALIASES)
        conversation = _as_str(conversation)
        if conversation is not None:
            out[GEN_AI_CONVERSATION_ID] = conversation
            touched[GEN_AI_CONVERSATION_ID] = None

    # The alias tables' targets of which the span has any key at all (a few of them): the others
    # would only be looked up to find nothing.
    present = NORMALIZER_READ_KEYS.intersection(attributes)
    for target, keys, key_set in _STRING_ALIAS_SETS:
        if key_set.isdisjoint(present):
            continue
        key, value = _first(attributes, keys)
        text = _as_str(value)
        if text is not None:
            out[target] = text
            touched[target] = None

    tokens: dict[str, int] = {}
    for target, keys, key_set in _TOKEN_ALIAS_SETS:
        if key_set.isdisjoint(present):
            continue
        for key in keys:
            number = _as_int(attributes.get(key))
            if number is not None:
                tokens[target] = number
                break
    inp = tokens.get(GEN_AI_USAGE_INPUT_TOKENS)
    outp = tokens.get(GEN_AI_USAGE_OUTPUT_TOKENS)
    total = None
    if not present.isdisjoint(DIALECT_TOTAL_TOKENS):
        for key in DIALECT_TOTAL_TOKENS:  # the first that is a count
            total = _as_int(attributes.get(key))
            if total is not None:
                break
    if inp is None and total is not None and outp is not None and total >= outp:
        inp = tokens[GEN_AI_USAGE_INPUT_TOKENS] = total - outp
    elif outp is None and total is not None and inp is not None and total >= inp:
        outp = tokens[GEN_AI_USAGE_OUTPUT_TOKENS] = total - inp
    # Cache creation includes its 1-hour part. Settle that first: the input check below must see
    # the final creation count, or a second pass would add it again (not idempotent).
    creation = tokens.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
    one_hour = tokens.get(GEN_AI_USAGE_CACHE_CREATION_1H_INPUT_TOKENS)
    if one_hour is not None and (creation is None or one_hour > creation):
        tokens[GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = max(creation or 0, one_hour)
    # Semconv: input includes cache read + creation; output includes reasoning. A dialect that
    # reports them exclusively (Anthropic's raw usage, Gemini's candidates count) is provably so
    # when the parts exceed the whole; then add them, so nothing downstream double counts or drops.
    cached = tokens.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0) + tokens.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0)
    if inp is not None and cached > inp:
        tokens[GEN_AI_USAGE_INPUT_TOKENS] = inp + cached
    reasoning = tokens.get(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, 0)
    if outp is not None and reasoning > outp:
        tokens[GEN_AI_USAGE_OUTPUT_TOKENS] = outp + reasoning
    out.update(tokens)
    touched.update(dict.fromkeys(tokens))

    if op in INFERENCE_OPERATIONS or tokens or GEN_AI_REQUEST_MODEL in out:
        known = normalize_provider(out.get(GEN_AI_PROVIDER_NAME))
        if known is not None and out.get(GEN_AI_PROVIDER_DETECTION) not in (None, "unknown"):
            provider, how = known, out[GEN_AI_PROVIDER_DETECTION]  # already normalised: keep (idempotent)
        else:
            provider, how = detect_provider_with_source(out)
        if provider is not None:
            out[GEN_AI_PROVIDER_NAME] = provider
        elif normalize_provider(out.get(GEN_AI_PROVIDER_NAME)) is None:
            out.pop(GEN_AI_PROVIDER_NAME, None)  # "unknown"/"" is not a provider; say so below
        out[GEN_AI_PROVIDER_DETECTION] = how
        touched.update(dict.fromkeys((GEN_AI_PROVIDER_NAME, GEN_AI_PROVIDER_DETECTION)))

    if drop_originals:
        for key in _DROPPABLE.intersection(out):
            del out[key]
            touched[key] = None
    return out, touched


# --- message content ----------------------------------------------------------------------------
# Attribute keys (or key prefixes) that carry prompts, completions or tool payloads: in current
# semconv, and in the other dialects. The app side strips them unless content capture is on; the
# collector's redaction processor scans them. One list, so the two never disagree.
SEMCONV_CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
DIALECT_CONTENT_PREFIXES = (
    "llm.input_messages",
    "llm.output_messages",
    "llm.prompts",
    "llm.prompt_template",
    "llm.tools",
    "input.value",
    "output.value",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "crewai.crew.result",
    "crewai.crew.tasks_output",
    "crewai.agent.result",
    "crewai.task.result",
)
# Framework attributes that are content too (task text, agent goal and backstory, embedding input).
FRAMEWORK_CONTENT_PREFIXES = (
    "crewai.agent.goal",
    "crewai.agent.backstory",
    "crewai.task.description",
    "crewai.task.expected_output",
    "crewai.crew.tasks",
    "crewai.crew.agents",
    "embedding.embeddings",
)
MESSAGE_CONTENT_KEYS = (SEMCONV_CONTENT_KEYS + ("gen_ai.tool.definitions",) + DIALECT_CONTENT_PREFIXES
                        + FRAMEWORK_CONTENT_PREFIXES)
