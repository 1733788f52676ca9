"""The shared dialect mapping: every dialect of the same call reads the same in current semconv."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from semconv import genai_mapping as gm

# One call - gpt-4o, 1,200 input tokens of which 200 cache reads, 300 output tokens of which 100
# reasoning - as each instrumentation library writes it.
SEMCONV = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 200,
    "gen_ai.usage.reasoning.output_tokens": 100,
    "server.address": "api.openai.com",
}
OPENINFERENCE = {
    "openinference.span.kind": "LLM",
    "llm.provider": "openai",
    "llm.system": "openai",
    "llm.model_name": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "llm.token_count.prompt": 1200,
    "llm.token_count.completion": 300,
    "llm.token_count.total": 1500,
    "llm.token_count.prompt_details.cache_read": 200,
    "llm.token_count.completion_details.reasoning": 100,
    "server.address": "api.openai.com",
}
TRACELOOP = {
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.prompt_tokens": 1200,
    "gen_ai.usage.completion_tokens": 300,
    "llm.usage.total_tokens": 1500,
    "gen_ai.usage.cache_read_input_tokens": 200,
    "gen_ai.usage.reasoning_tokens": 100,
    "server.address": "api.openai.com",
}
OPENLIT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": "1200",  # values may arrive as strings (e.g. read back from ClickHouse)
    "gen_ai.usage.output_tokens": "300",
    "gen_ai.usage.total_tokens": 1500,
    "gen_ai.usage.prompt_tokens_details.cache_read": 200,
    "gen_ai.usage.completion_tokens_details.reasoning": 100,
    "gen_ai.endpoint": "https://api.openai.com/v1",
    "server.address": "api.openai.com",
}
DIALECTS = {"semconv": SEMCONV, "openinference": OPENINFERENCE, "traceloop": TRACELOOP, "openlit": OPENLIT}
SEMCONV_KEYS = [
    gm.GEN_AI_OPERATION_NAME, gm.GEN_AI_PROVIDER_NAME, gm.GEN_AI_REQUEST_MODEL, gm.GEN_AI_RESPONSE_MODEL,
    gm.GEN_AI_USAGE_INPUT_TOKENS, gm.GEN_AI_USAGE_OUTPUT_TOKENS, gm.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    gm.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, gm.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, gm.GEN_AI_PROVIDER_DETECTION,
]


def _semconv_view(attrs):
    return {k: attrs.get(k) for k in SEMCONV_KEYS}


@pytest.mark.parametrize("name", list(DIALECTS))
def test_every_dialect_normalises_to_the_same_semconv(name):
    out = gm.normalize_attributes(DIALECTS[name], "chat gpt-4o" if name == "semconv" else "openai.chat")
    assert _semconv_view(out) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.cache_write.input_tokens": None,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "genaitrace.provider.detection": "attribute",
    }


@pytest.mark.parametrize("name", list(DIALECTS))
@pytest.mark.parametrize("drop", [False, True])
def test_idempotent(name, drop):
    once = gm.normalize_attributes(DIALECTS[name], "x", drop_originals=drop)
    assert gm.normalize_attributes(once, "x", drop_originals=drop) == once


def test_originals_kept_or_dropped():
    kept = gm.normalize_attributes(OPENINFERENCE)
    assert kept["llm.token_count.prompt"] == 1200 and kept["openinference.span.kind"] == "LLM"
    dropped = gm.normalize_attributes(OPENINFERENCE, drop_originals=True)
    assert "llm.token_count.prompt" not in dropped and "llm.provider" not in dropped
    assert dropped["gen_ai.usage.input_tokens"] == 1200
    assert "openinference.span.kind" in dropped  # not a spelling of something emitted: kept


def test_input_is_not_mutated():
    original = dict(TRACELOOP)
    gm.normalize_attributes(TRACELOOP, drop_originals=True)
    assert TRACELOOP == original


def test_exclusive_cache_counts_are_made_inclusive_only_when_provable():
    # Anthropic's raw usage: input_tokens excludes cache reads/creation. 50 < 1000 + 200: provably exclusive.
    raw = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 10,
           "gen_ai.usage.cache_read_input_tokens": 1000, "gen_ai.usage.cache_creation_input_tokens": 200}
    assert gm.normalize_attributes(raw)["gen_ai.usage.input_tokens"] == 50 + 1000 + 200
    # Already inclusive (semconv): untouched.
    ok = dict(raw, **{"gen_ai.usage.input_tokens": 1250})
    assert gm.normalize_attributes(ok)["gen_ai.usage.input_tokens"] == 1250


@pytest.mark.parametrize(
    "attrs,expected,how",
    [
        ({"gen_ai.provider.name": "anthropic"}, "anthropic", "attribute"),
        ({"gen_ai.system": "Anthropic"}, "anthropic", "attribute"),
        ({"llm.provider": "azure"}, "azure.ai.openai", "attribute"),
        ({"gen_ai.system": "vertex_ai"}, "gcp.vertex_ai", "attribute"),
        ({"gen_ai.provider.name": "unknown", "server.address": "api.anthropic.com"}, "anthropic", "server.address"),
        ({"server.address": "api.openai.com"}, "openai", "server.address"),
        ({"server.address": "myco-east.openai.azure.com"}, "azure.ai.openai", "server.address"),
        ({"server.address": "bedrock-runtime.us-east-1.amazonaws.com"}, "aws.bedrock", "server.address"),
        ({"server.address": "generativelanguage.googleapis.com"}, "gcp.gemini", "server.address"),
        ({"server.address": "api.deepinfra.com"}, "deepinfra", "server.address"),
        ({"gen_ai.endpoint": "https://api.deepinfra.com/v1/openai"}, "deepinfra", "server.address"),
        # An OpenAI SDK pointed at DeepInfra still says "openai": the host wins.
        ({"gen_ai.system": "openai", "server.address": "api.deepinfra.com"}, "deepinfra", "server.address"),
        ({"gen_ai.request.model": "gpt-4o-mini"}, "openai", "model_name"),
        ({"gen_ai.request.model": "o3"}, "openai", "model_name"),
        ({"gen_ai.request.model": "o1-preview"}, "openai", "model_name"),
        ({"gen_ai.request.model": "claude-sonnet-4-5-20250929"}, "anthropic", "model_name"),
        ({"gen_ai.request.model": "gemini-2.5-pro"}, "gcp.gemini", "model_name"),
        ({"llm.model_name": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}, "aws.bedrock", "model_name"),
        ({"gen_ai.request.model": "deepinfra/meta-llama/Llama-3.3-70B-Instruct"}, "deepinfra", "model_name"),
        # A bare open-weights name is served by somebody - only the endpoint can say who.
        ({"gen_ai.request.model": "meta-llama/Llama-3.3-70B-Instruct"}, None, "unknown"),
        ({"gen_ai.request.model": "mistralai/Mixtral-8x7B-Instruct-v0.1"}, None, "unknown"),
        ({"gen_ai.request.model": "meta-llama/Llama-3.3-70B-Instruct", "server.address": "api.together.xyz"}, "together_ai", "server.address"),
    ],
)
def test_provider_detection_order(attrs, expected, how):
    assert gm.detect_provider_with_source(attrs) == (expected, how)
    assert gm.detect_provider(attrs) == expected


def test_unknown_provider_is_said_not_guessed():
    out = gm.normalize_attributes({"gen_ai.provider.name": "unknown", "gen_ai.request.model": "meta-llama/Llama-3-8b",
                                   "gen_ai.usage.input_tokens": 5, "gen_ai.operation.name": "chat"})
    assert "gen_ai.provider.name" not in out
    assert out["genaitrace.provider.detection"] == "unknown"


@pytest.mark.parametrize(
    "attrs,span_name,op",
    [
        ({"openinference.span.kind": "LLM"}, None, "chat"),
        ({"openinference.span.kind": "EMBEDDING"}, None, "embeddings"),
        ({"openinference.span.kind": "AGENT"}, None, "invoke_agent"),
        ({"openinference.span.kind": "TOOL"}, None, "execute_tool"),
        ({"openinference.span.kind": "CHAIN"}, None, "invoke_workflow"),
        ({"traceloop.span.kind": "workflow"}, None, "invoke_workflow"),
        ({"traceloop.span.kind": "task"}, None, "task"),
        ({"traceloop.span.kind": "agent"}, None, "invoke_agent"),
        ({"traceloop.span.kind": "tool"}, None, "execute_tool"),
        ({"llm.request.type": "completion"}, None, "text_completion"),
        ({"llm.request.type": "embedding"}, None, "embeddings"),
        ({"gen_ai.operation.name": "embedding"}, None, "embeddings"),
        ({"gen_ai.operation.name": "generate_content"}, None, "generate_content"),
        ({}, "chat gpt-4o", "chat"),
        ({}, "openai.embeddings", "embeddings"),
        ({}, "invoke_agent researcher", "invoke_agent"),
        ({}, "HTTP GET", None),
    ],
)
def test_operation_name(attrs, span_name, op):
    assert gm.operation_name(attrs, span_name) == op


def test_is_genai_candidate():
    assert gm.is_genai_candidate(["http.method", "gen_ai.request.model"])
    assert gm.is_genai_candidate(["llm.token_count.prompt"])
    assert gm.is_genai_candidate(["openinference.span.kind"])
    assert gm.is_genai_candidate(["traceloop.span.kind"])
    assert not gm.is_genai_candidate(["http.method", "db.system", "server.address"])
    assert not gm.is_genai_candidate([])


def test_non_genai_attributes_are_returned_unchanged():
    attrs = {"http.method": "GET", "server.address": "api.openai.com"}
    assert gm.normalize_attributes(attrs) == attrs


def test_module_has_no_third_party_imports():
    import semconv

    for module, allowed in ((gm, {"__future__", "typing", "semconv"}), (semconv, {"__future__"})):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= allowed, module.__name__  # semconv is a leaf: standard library only


def test_idempotent_when_only_the_one_hour_cache_count_exceeds_input():
    # Anthropic-style exclusive usage: 100 uncached input, 150 tokens written to the 1-hour cache.
    raw = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
           "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
           "gen_ai.usage.cache_creation.ephemeral_1h.input_tokens": 150}
    once = gm.normalize_attributes(raw)
    assert once["gen_ai.usage.cache_write.input_tokens"] == 150
    assert once["gen_ai.usage.input_tokens"] == 250  # input includes cache creation, counted once
    assert gm.normalize_attributes(once) == once
