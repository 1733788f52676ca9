"""Cost enrichment. Every expected cost is worked out by hand from processors/data/model_prices.json.

The per-token prices quoted in the comments are the JSON values of the bundled litellm snapshot
(litellm 1.106.2); if a refresh changes one, the test names the case whose arithmetic to redo.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone

import pytest

import semconv
from pydantic import ValidationError

from collector.component import ComponentId
from collector import pdata
from collector.pdata import Traces, attributes_to_dict, set_any_value
from semconv import genai_mapping as gm
from processors import genai_cost, genai_normalizer
from processors.genai_cost import GenAICostConfig, GenAICostProcessor, price_attributes
from processors.pricing import DEFAULT_PRICE_FILE, PriceBook, PriceMapError, load_price_map
from support.sinks import Sink

BOOK = PriceBook.load()
NOV_2026 = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()) * 10**9
JAN_2027 = int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()) * 10**9


def chat(provider, model, inp, out, **extra):
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
             "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    if provider:
        attrs["gen_ai.provider.name"] = provider
    attrs.update(extra)
    return attrs


def price(attrs, book=BOOK, at=None):
    return price_attributes(book, gm.normalize_attributes(attrs), at)


# (case, attributes, expected total USD, expected breakdown {part: USD}, expected price entry)
CASES = [
    (
        "openai gpt-4o with cached input",
        # input 2.5e-6, cache_read 1.25e-6, output 1e-5. 10,000 input of which 4,000 cached.
        chat("openai", "gpt-4o", 10_000, 500, **{"gen_ai.usage.cache_read.input_tokens": 4_000}),
        6_000 * 2.5e-6 + 4_000 * 1.25e-6 + 500 * 1e-5,  # 0.015 + 0.005 + 0.005 = 0.025
        {"input_usd": 0.015, "cache_read_usd": 0.005, "output_usd": 0.005},
        "gpt-4o",
    ),
    (
        "anthropic claude-sonnet-4-5: cache read + 5-minute cache creation",
        # input 3e-6, cache_read 3e-7, cache_creation 3.75e-6, output 1.5e-5.
        # 20,000 input = 2,000 uncached + 15,000 read + 3,000 written.
        chat("anthropic", "claude-sonnet-4-5", 20_000, 1_000, **{
            "gen_ai.usage.cache_read.input_tokens": 15_000, "gen_ai.usage.cache_creation.input_tokens": 3_000}),
        2_000 * 3e-6 + 15_000 * 3e-7 + 3_000 * 3.75e-6 + 1_000 * 1.5e-5,  # 0.006 + 0.0045 + 0.01125 + 0.015 = 0.03675
        {"input_usd": 0.006, "cache_read_usd": 0.0045, "cache_creation_usd": 0.01125, "output_usd": 0.015},
        "claude-sonnet-4-5",
    ),
    (
        "anthropic claude-sonnet-4-5: 1-hour cache creation",
        # cache_creation_input_token_cost_above_1hr 6e-6: of 3,000 written, 1,000 with the 1-hour TTL.
        chat("anthropic", "claude-sonnet-4-5", 20_000, 1_000, **{
            "gen_ai.usage.cache_read.input_tokens": 15_000, "gen_ai.usage.cache_creation.input_tokens": 3_000,
            "gen_ai.usage.cache_creation.ephemeral_1h.input_tokens": 1_000}),
        2_000 * 3e-6 + 15_000 * 3e-7 + 2_000 * 3.75e-6 + 1_000 * 6e-6 + 1_000 * 1.5e-5,  # 0.006+0.0045+0.0075+0.006+0.015 = 0.039
        {"cache_creation_usd": 0.0135},
        "claude-sonnet-4-5",
    ),
    (
        "reasoning model without its own reasoning rate (o3): reasoning billed as output, once",
        # o3: input 2e-6, output 8e-6. 5,000 output of which 4,000 reasoning.
        chat("openai", "o3", 1_000, 5_000, **{"gen_ai.usage.reasoning.output_tokens": 4_000}),
        1_000 * 2e-6 + 1_000 * 8e-6 + 4_000 * 8e-6,  # 0.002 + 0.008 + 0.032 = 0.042
        {"output_usd": 0.008, "reasoning_usd": 0.032},
        "o3",
    ),
    (
        "reasoning model with a reasoning rate (dashscope qwen-turbo)",
        # dashscope/qwen-turbo: input 5e-8, output 2e-7, output_cost_per_reasoning_token 5e-7.
        chat("dashscope", "qwen-turbo", 1_000, 3_000, **{"gen_ai.usage.reasoning.output_tokens": 2_000}),
        1_000 * 5e-8 + 1_000 * 2e-7 + 2_000 * 5e-7,  # 0.00005 + 0.0002 + 0.001 = 0.00125
        {"reasoning_usd": 0.001},
        "dashscope/qwen-turbo",
    ),
    (
        "gemini-2.5-pro above 200k input tokens",
        # gemini/gemini-2.5-pro above 200k: input 2.5e-6, cache_read 2.5e-7, output 1.5e-5.
        chat("gcp.gemini", "gemini-2.5-pro", 250_000, 2_000, **{"gen_ai.usage.cache_read.input_tokens": 50_000}),
        200_000 * 2.5e-6 + 50_000 * 2.5e-7 + 2_000 * 1.5e-5,  # 0.5 + 0.0125 + 0.03 = 0.5425
        {"input_usd": 0.5, "cache_read_usd": 0.0125, "output_usd": 0.03},
        "gemini/gemini-2.5-pro",
    ),
    (
        "gemini-2.5-pro below 200k input tokens",
        # base: input 1.25e-6, output 1e-5.
        chat("gcp.gemini", "gemini-2.5-pro", 100_000, 2_000),
        100_000 * 1.25e-6 + 2_000 * 1e-5,  # 0.125 + 0.02 = 0.145
        {},
        "gemini/gemini-2.5-pro",
    ),
    (
        "embedding model",
        # text-embedding-3-small: input 2e-8.
        {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 8_000},
        8_000 * 2e-8,  # 0.00016
        {"input_usd": 0.00016},
        "text-embedding-3-small",
    ),
    (
        "batch tier",
        # gpt-4o-mini batches: input 7.5e-8, output 3e-7.
        chat("openai", "gpt-4o-mini", 1_000_000, 100_000, **{"openai.request.service_tier": "batch"}),
        1_000_000 * 7.5e-8 + 100_000 * 3e-7,  # 0.075 + 0.03 = 0.105
        {},
        "gpt-4o-mini",
    ),
    (
        "flex tier, with cache reads",
        # o3 flex: input 1e-6, cache_read 2.5e-7, output 4e-6.
        chat("openai", "o3", 10_000, 1_000, **{"openai.response.service_tier": "flex", "gen_ai.usage.cache_read.input_tokens": 8_000}),
        2_000 * 1e-6 + 8_000 * 2.5e-7 + 1_000 * 4e-6,  # 0.002 + 0.002 + 0.004 = 0.008
        {},
        "o3",
    ),
    (
        "priority tier",
        # gpt-4o priority: input 4.25e-6, output 1.7e-5.
        chat("openai", "gpt-4o", 1_000, 1_000, **{"openai.request.service_tier": "priority"}),
        1_000 * 4.25e-6 + 1_000 * 1.7e-5,  # 0.02125
        {},
        "gpt-4o",
    ),
    (
        "DeepInfra-hosted Llama with a bare meta-llama/ name, seen through the OpenAI SDK",
        # deepinfra/meta-llama/Llama-3.3-70B-Instruct: input 2.3e-7, output 4e-7.
        {"llm.request.type": "chat", "gen_ai.system": "openai", "server.address": "api.deepinfra.com",
         "gen_ai.request.model": "meta-llama/Llama-3.3-70B-Instruct",
         "gen_ai.usage.prompt_tokens": 1_000, "gen_ai.usage.completion_tokens": 200},
        1_000 * 2.3e-7 + 200 * 4e-7,  # 0.00023 + 0.00008 = 0.00031
        {},
        "deepinfra/meta-llama/Llama-3.3-70B-Instruct",
    ),
    (
        "provider-prefixed model name, no provider attribute",
        # claude-haiku-4-5: input 1e-6, output 5e-6.
        chat(None, "anthropic/claude-haiku-4-5", 1_000, 100),
        1_000 * 1e-6 + 100 * 5e-6,  # 0.0015
        {},
        "claude-haiku-4-5",
    ),
    (
        "date-suffixed snapshot that has its own entry",
        # claude-sonnet-4-5-20250929: input 3e-6, output 1.5e-5.
        chat("anthropic", "claude-sonnet-4-5-20250929", 1_000, 1_000),
        1_000 * 3e-6 + 1_000 * 1.5e-5,  # 0.018
        {},
        "claude-sonnet-4-5-20250929",
    ),
    (
        "date-suffixed snapshot newer than the price map: priced as its base model",
        # claude-haiku-4-5: input 1e-6, output 5e-6.
        chat("anthropic", "claude-haiku-4-5-20270101", 2_000, 400),
        2_000 * 1e-6 + 400 * 5e-6,  # 0.004
        {},
        "claude-haiku-4-5",
    ),
    (
        "the model that answered is priced, not the one asked for",
        # gpt-4o-mini: input 1.5e-7, output 6e-7 (request said gpt-4o).
        chat("openai", "gpt-4o", 10_000, 1_000, **{"gen_ai.response.model": "gpt-4o-mini"}),
        10_000 * 1.5e-7 + 1_000 * 6e-7,  # 0.0015 + 0.0006 = 0.0021
        {},
        "gpt-4o-mini",
    ),
    (
        "Bedrock cross-region inference profile id",
        # us.anthropic.claude-sonnet-4-5-20250929-v1:0: input 3.3e-6, output 1.65e-5.
        chat("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 1_000, 100),
        1_000 * 3.3e-6 + 100 * 1.65e-5,  # 0.0033 + 0.00165 = 0.00495
        {},
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
]


@pytest.mark.parametrize("case,attrs,total,parts,entry", CASES, ids=[c[0] for c in CASES])
def test_cost_table(case, attrs, total, parts, entry):
    out = price(attrs)
    assert out[gm.GEN_AI_USAGE_COST_STATUS] == "priced", out
    assert isinstance(out[gm.GEN_AI_USAGE_COST_USD], float)
    assert out[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(total, rel=1e-9, abs=1e-15)
    for part, usd in parts.items():
        key = "genaitrace.cost." + part.replace("cache_creation", "cache_write")  # issue 14: out of gen_ai.usage.cost.*
        assert out[key] == pytest.approx(usd, rel=1e-9, abs=1e-15), part
    breakdown = sum(out[k] for k in (gm.GEN_AI_USAGE_COST_INPUT_USD, gm.GEN_AI_USAGE_COST_CACHE_READ_USD,
                                     gm.GEN_AI_USAGE_COST_CACHE_CREATION_USD, gm.GEN_AI_USAGE_COST_OUTPUT_USD,
                                     gm.GEN_AI_USAGE_COST_REASONING_USD))
    assert breakdown == pytest.approx(out[gm.GEN_AI_USAGE_COST_USD], rel=1e-12)
    assert out[gm.GEN_AI_USAGE_COST_PRICE_ENTRY] == entry
    assert out[gm.GEN_AI_USAGE_COST_PRICE_SOURCE] == "litellm"
    assert out[gm.GEN_AI_USAGE_COST_PRICE_EFFECTIVE_DATE]  # the snapshot date of the bundled map


OLD_WRITE, NEW_WRITE = "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens"
WRITE_CASES = [c for c in CASES if OLD_WRITE in c[1]]


@pytest.mark.parametrize("case,attrs,total,parts,entry", WRITE_CASES, ids=[c[0] for c in WRITE_CASES])
def test_cache_writes_in_the_current_spelling_cost_the_same_and_are_never_summed(case, attrs, total, parts, entry):
    """Issue 14: a current SDK sends gen_ai.usage.cache_write.input_tokens; an SDK in transition may
    send both spellings of the same count, which must not be counted twice."""
    current = {(NEW_WRITE if k == OLD_WRITE else k): v for k, v in attrs.items()}
    both = {**attrs, NEW_WRITE: attrs[OLD_WRITE]}
    for variant in (current, both):
        out = price(variant)
        assert out[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(total, rel=1e-9, abs=1e-15)
        assert out["genaitrace.cost.cache_write_usd"] == pytest.approx(price(attrs)["genaitrace.cost.cache_write_usd"])


def test_standard_cost_attributes_of_pr_443():
    """`standard_cost_attributes: true`: gen_ai.usage.cost.{amount,currency,source} on a priced span,
    equal to gen_ai.usage.cost_usd; nothing on an unpriced one; a received amount (a gateway's) is
    passed through, not overwritten."""
    from processors.span_cost import standard_cost

    attrs = gm.normalize_attributes(CASES[0][1])
    out = price(CASES[0][1])
    assert standard_cost(out, attrs) == {semconv.STANDARD_COST_AMOUNT: out[gm.GEN_AI_USAGE_COST_USD],
                                         semconv.STANDARD_COST_CURRENCY: "USD", semconv.STANDARD_COST_SOURCE: "local"}
    assert semconv.STANDARD_COST_AMOUNT == "gen_ai.usage.cost.amount"
    unpriced_out = price(chat("openai", "no-such-model-xyz", 10, 10))
    assert unpriced_out[gm.GEN_AI_USAGE_COST_STATUS] == "unpriced" and standard_cost(unpriced_out, attrs) == {}
    from_gateway = {**attrs, semconv.STANDARD_COST_AMOUNT: 0.5, semconv.STANDARD_COST_SOURCE: "provider"}
    assert standard_cost(out, from_gateway) == {}


def test_tier_and_service_are_recorded():
    out = price(chat("gcp.gemini", "gemini-2.5-pro", 250_000, 10))
    assert out[gm.GEN_AI_USAGE_COST_TIER] == "above_200k_tokens"
    out = price(chat("openai", "gpt-4o-mini", 10, 10, **{"openai.request.service_tier": "batch"}))
    assert out[gm.GEN_AI_USAGE_COST_SERVICE_TIER] == "batches"
    # "auto"/"default" is standard pricing
    out = price(chat("openai", "gpt-4o", 1_000, 0, **{"openai.request.service_tier": "auto"}))
    assert out[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 2.5e-6)


OVERRIDES = GenAICostConfig(
    azure_deployments={"my-gpt4o-deploy": "gpt-4o"},
    provider_discounts={"anthropic": 0.9},
    prices=[
        {"model": "my-llama", "provider": "self_hosted", "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7},
        {"model": "gpt-4o", "effective_from": "2026-12-01", "input_cost_per_token": 2.0e-6, "output_cost_per_token": 8.0e-6},
    ],
)
OVERRIDE_BOOK = OVERRIDES.price_book()


def test_override_with_effective_date_before_and_after():
    attrs = chat("openai", "gpt-4o", 1_000, 1_000)
    before = price(attrs, OVERRIDE_BOOK, NOV_2026)
    assert before[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 2.5e-6 + 1_000 * 1e-5)  # bundled: 0.0125
    assert before[gm.GEN_AI_USAGE_COST_PRICE_SOURCE] == "litellm"
    after = price(attrs, OVERRIDE_BOOK, JAN_2027)
    assert after[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 2.0e-6 + 1_000 * 8.0e-6)  # override: 0.01
    assert after[gm.GEN_AI_USAGE_COST_PRICE_SOURCE] == "override"
    assert after[gm.GEN_AI_USAGE_COST_PRICE_EFFECTIVE_DATE] == "2026-12-01"
    # Fields the override does not give are inherited: cache reads still 1.25e-6.
    cached = price(chat("openai", "gpt-4o", 1_000, 0, **{"gen_ai.usage.cache_read.input_tokens": 1_000}), OVERRIDE_BOOK, JAN_2027)
    assert cached[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 1.25e-6)


def test_self_hosted_model_azure_deployment_and_discount():
    own = price(chat("self_hosted", "my-llama", 10_000, 5_000), OVERRIDE_BOOK)
    assert own[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(10_000 * 1e-7 + 5_000 * 2e-7)  # 0.002
    # azure/gpt-4o: input 2.5e-6, output 1e-5
    azure = price(chat("azure.ai.openai", "my-gpt4o-deploy", 1_000, 100), OVERRIDE_BOOK, NOV_2026)
    assert azure[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 2.5e-6 + 100 * 1e-5)  # 0.0035
    assert azure[gm.GEN_AI_USAGE_COST_PRICE_ENTRY] == "azure/gpt-4o"
    # anthropic at 90%: claude-haiku-4-5 input 1e-6, output 5e-6
    discounted = price(chat("anthropic", "claude-haiku-4-5", 1_000, 100), OVERRIDE_BOOK)
    assert discounted[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(0.9 * (1_000 * 1e-6 + 100 * 5e-6))  # 0.00135


@pytest.mark.parametrize(
    "attrs,reason",
    [
        (chat("openai", "gpt-99-ultra", 1_000, 100), "unknown_model"),
        (chat(None, "meta-llama/Llama-3.3-70B-Instruct", 1_000, 100), "unknown_provider"),
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}, "missing_token_counts"),
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
          "genaitrace.stream.abandoned": True}, "stream_abandoned"),
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 5}, "missing_model"),
    ],
)
def test_unpriced_is_never_zero(attrs, reason):
    out = price(attrs)
    assert out[gm.GEN_AI_USAGE_COST_STATUS] == "unpriced"
    assert out[gm.GEN_AI_USAGE_COST_UNPRICED_REASON] == reason
    assert gm.GEN_AI_USAGE_COST_USD not in out


def test_a_call_with_input_tokens_only_is_priced_as_an_estimate():
    """The Anthropic SDK's own span of a stream the app left before `message_delta` has the input
    tokens (from `message_start`) and no output tokens. The input's cost is real money but not the
    call's cost: priced, and marked estimated so it counts with the estimates, never as reported.
    An embeddings call has no output tokens by nature: priced as reported."""
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
             "gen_ai.request.model": "claude-haiku-4-5", "gen_ai.usage.input_tokens": 1_000}
    out = price(attrs)
    assert out[gm.GEN_AI_USAGE_COST_STATUS] == "priced" and out["genaitrace.usage.estimated"] is True
    assert out[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(out[gm.GEN_AI_USAGE_COST_INPUT_USD])
    assert out[gm.GEN_AI_USAGE_COST_USD] > 0
    assert "genaitrace.usage.estimated" not in price({**attrs, "gen_ai.usage.output_tokens": 20})
    embedding = price({"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
                       "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 100})
    assert embedding[gm.GEN_AI_USAGE_COST_STATUS] == "priced" and "genaitrace.usage.estimated" not in embedding


# --- configuration errors ---------------------------------------------------------------------


def test_malformed_override_names_the_key():
    with pytest.raises(ValidationError, match="inptu_cost_per_token"):
        GenAICostConfig(prices=[{"model": "x", "inptu_cost_per_token": 1e-6}])
    with pytest.raises(ValidationError, match="output_cost_per_token must be a number"):
        GenAICostConfig(prices=[{"model": "x", "output_cost_per_token": "cheap"}])
    with pytest.raises(ValidationError, match="must be >= 0"):
        GenAICostConfig(prices=[{"model": "x", "input_cost_per_token": -1}])
    with pytest.raises(ValidationError, match="effective_from"):
        GenAICostConfig(prices=[{"model": "x", "input_cost_per_token": 1e-6, "effective_from": "last tuesday"}])
    with pytest.raises(ValidationError, match="price_fiel"):
        GenAICostConfig(price_fiel="x.json")


def test_override_of_unknown_model_without_prices_is_an_error():
    with pytest.raises(PriceMapError, match=r"prices\[0\] \(mystery\).*input_cost_per_token"):
        GenAICostConfig(prices=[{"model": "mystery", "cache_read_input_token_cost": 1e-7}]).price_book()


def test_malformed_override_through_the_config_loader_gives_file_and_line(tmp_path, monkeypatch):
    from collector import config as config_module, registry
    from collector.component import Kind

    monkeypatch.setitem(registry._MODULES[Kind.PROCESSOR], "genai_cost", "processors.genai_cost")
    path = tmp_path / "otel-collector.yaml"
    path.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:4318}}}}\n"
        "processors:\n"
        "  genai_cost:\n"
        "    prices:\n"
        "      - model: my-llama\n"
        "        input_cost_per_tokn: 1e-7\n"
        "exporters: {debug: {}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], processors: [genai_cost], exporters: [debug]}}}\n"
    )
    with pytest.raises(config_module.ConfigError) as info:
        config_module.load_config(path)
    text = str(info.value)
    assert str(path) in text and "input_cost_per_tokn" in text and "processors.genai_cost.prices" in text
    assert info.value.line is not None


def test_issue_example_yaml_loads(tmp_path, monkeypatch):
    """The docstring's example (with YAML-1.1 `1e-7`, which YAML reads as a string) is valid config."""
    import yaml

    doc = genai_cost.__doc__.split("\n\n")[1]
    settings = yaml.safe_load(doc)["processors"]["genai_cost"]
    assert isinstance(settings["prices"][0]["input_cost_per_token"], str)
    cfg = GenAICostConfig.model_validate(settings)
    book = cfg.price_book()
    out = price(chat("self_hosted", "my-llama", 10_000, 0), book)
    assert out[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(10_000 * 1e-7)


def test_malformed_price_file_names_file_key_and_problem(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"good-model": {"input_cost_per_token": 1e-6, "litellm_provider": "openai"},
                               "bad-model": {"input_cost_per_token": "0.000001", "litellm_provider": "openai"}}))
    with pytest.raises(PriceMapError) as info:
        load_price_map(bad)
    assert str(bad) in str(info.value) and "'bad-model'" in str(info.value) and "input_cost_per_token must be a number" in str(info.value)


def test_bundled_price_map_is_valid_and_large():
    entries, snapshot = load_price_map(DEFAULT_PRICE_FILE)
    assert len(entries) > 3_000 and snapshot


def test_collector_does_not_import_litellm():
    import subprocess

    code = "import sys, processors.genai_cost as c; c.GenAICostConfig().price_book(); print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False", out.stderr


# --- the processors on protobuf spans ---------------------------------------------------------


def _traces(spans):
    traces = Traces()
    scope = traces.request.resource_spans.add().scope_spans.add()
    for sid, parent, name, attrs in spans:
        span = scope.spans.add(trace_id=b"\x01" * 16, span_id=sid.to_bytes(8, "big"), name=name,
                               start_time_unix_nano=NOV_2026)
        if parent:
            span.parent_span_id = parent.to_bytes(8, "big")
        for key, value in attrs.items():
            set_any_value(span.attributes.add(key=key).value, value)
    return traces


def _pipeline(traces, config=GenAICostConfig()):
    cost = GenAICostProcessor(ComponentId("genai_cost"), config, Sink(), book=BOOK if config == GenAICostConfig() else None)
    norm = genai_normalizer.GenAINormalizerProcessor(ComponentId("genai_normalizer"), genai_normalizer.GenAINormalizerConfig(), cost)
    norm.consume(traces)
    return {span.span_id: (span.name, attributes_to_dict(span.attributes)) for _, _, span in cost.next.batches[0].spans()}


def test_each_dialect_comes_out_identical_from_the_pipeline():
    from tests.test_genai_mapping import DIALECTS, SEMCONV_KEYS

    results = {}
    for name, attrs in DIALECTS.items():
        out = _pipeline(_traces([(1, 0, "llm call", attrs)]))
        attrs_out = next(iter(out.values()))[1]
        results[name] = {k: attrs_out.get(k) for k in SEMCONV_KEYS + list(gm.COST_ATTRIBUTES)}
    first = results["semconv"]
    for name, view in results.items():
        assert view == first, name
    # gpt-4o-2024-08-06 (answered): input 2.5e-6, cache_read 1.25e-6, output 1e-5; 1,200 in (200 cached), 300 out.
    assert first[gm.GEN_AI_USAGE_COST_USD] == pytest.approx(1_000 * 2.5e-6 + 200 * 1.25e-6 + 300 * 1e-5)  # 0.00575


def test_multi_agent_trace_sums_each_call_once():
    # workflow
    #  └ agent (carries a running token total, as loop spans do)
    #     ├ LangChain-style LLM span (OpenInference)   ─┐ the same call, twice
    #     │   └ OpenAI SDK span (traceloop)            ─┘
    #     ├ tool span
    #     └ agent 2 (running totals again, plus a stale cost attribute from upstream)
    #        ├ anthropic call (semconv)
    #        └ embeddings call (OpenLIT style)
    total_tokens_loop = {"gen_ai.usage.input_tokens": 99_999, "gen_ai.usage.output_tokens": 9_999}
    spans = [
        (1, 0, "crew.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "crew"}),
        (2, 1, "invoke_agent researcher", {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o", **total_tokens_loop}),
        (3, 2, "ChatOpenAI", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
                              "llm.token_count.prompt": 2_000, "llm.token_count.completion": 100}),
        (4, 3, "openai.chat", {"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                               "gen_ai.usage.prompt_tokens": 2_000, "gen_ai.usage.completion_tokens": 100}),
        (5, 2, "execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        (6, 2, "invoke_agent writer", {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 50_000,
                                       "gen_ai.usage.cost_usd": 1.23}),
        (7, 6, "chat claude-haiku-4-5", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                         "gen_ai.request.model": "claude-haiku-4-5", "gen_ai.usage.input_tokens": 3_000,
                                         "gen_ai.usage.output_tokens": 500}),
        (8, 6, "embeddings", {"gen_ai.operation.name": "embedding", "gen_ai.system": "openai",
                              "gen_ai.request.model": "text-embedding-3-large", "gen_ai.usage.input_tokens": 10_000}),
        (9, 8, "HTTP POST", {"http.request.method": "POST", "server.address": "api.openai.com"}),
    ]
    out = _pipeline(_traces(spans))
    by_id = {int.from_bytes(k, "big"): v for k, v in out.items()}
    costs = {sid: attrs[gm.GEN_AI_USAGE_COST_USD] for sid, (_, attrs) in by_id.items() if gm.GEN_AI_USAGE_COST_USD in attrs}
    # gpt-4o: 2,000 * 2.5e-6 + 100 * 1e-5 = 0.006; claude-haiku-4-5: 3,000 * 1e-6 + 500 * 5e-6 = 0.0055;
    # text-embedding-3-large: 10,000 * 1.3e-7 = 0.0013
    assert set(costs) == {4, 7, 8}
    assert costs[4] == pytest.approx(0.006)
    assert costs[7] == pytest.approx(0.0055)
    assert costs[8] == pytest.approx(0.0013)
    assert sum(costs.values()) == pytest.approx(0.006 + 0.0055 + 0.0013)
    assert by_id[3][1][gm.GEN_AI_USAGE_COST_STATUS] == "delegated"
    assert by_id[3][1][gm.GEN_AI_USAGE_COST_PRICED_SPAN_ID] == (4).to_bytes(8, "big").hex()
    for sid in (1, 2, 5, 6, 9):
        assert not any(k.startswith("gen_ai.usage.cost") for k in by_id[sid][1]), sid


def test_wrapper_arriving_in_a_later_batch_is_still_delegated():
    proc = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), Sink(), book=BOOK)
    child = _traces([(4, 3, "openai.chat", chat("openai", "gpt-4o", 10, 10))])
    parent = _traces([(3, 2, "ChatOpenAI", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                                            "llm.token_count.prompt": 10, "llm.token_count.completion": 10})])
    proc.consume(child)
    proc.consume(parent)
    attrs = attributes_to_dict(next(parent.spans())[2].attributes)
    assert attrs[gm.GEN_AI_USAGE_COST_STATUS] == "delegated" and gm.GEN_AI_USAGE_COST_USD not in attrs


def test_reprocessing_is_idempotent():
    traces = _traces([(1, 0, "openai.chat", chat("openai", "gpt-4o", 1_000, 100))])
    proc = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), Sink(), book=BOOK)
    proc.process(traces)
    first = attributes_to_dict(next(traces.spans())[2].attributes)
    proc.process(traces)
    span = next(traces.spans())[2]
    assert attributes_to_dict(span.attributes) == first
    assert len(span.attributes) == len(first)  # no duplicated keys


def test_non_llm_spans_are_skipped_without_building_anything(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("normalize_attributes called for a non-GenAI span")

    monkeypatch.setattr(genai_cost.gm, "normalize_attributes", boom)
    monkeypatch.setattr(pdata, "attributes_to_dict", boom)  # no row read in Python either
    traces = _traces([(i, 0, "GET /", {"http.method": "GET", "server.address": "api.openai.com"}) for i in range(1, 50)])
    before = traces.to_protobuf()
    GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), Sink(), book=BOOK).process(traces)
    assert traces.to_protobuf() == before


def _mixed_batch(n, llm_every=10):
    spans = []
    for i in range(1, n + 1):
        if i % llm_every == 0:
            spans.append((i, 0, "openai.chat", {"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
                                                "gen_ai.usage.prompt_tokens": 1_000 + i, "gen_ai.usage.completion_tokens": 100,
                                                "server.address": "api.openai.com"}))
        else:
            spans.append((i, 0, "GET /items", {"http.request.method": "GET", "url.path": "/items", "http.response.status_code": 200,
                                               "server.address": "db", "server.port": 5432, "db.system": "postgresql"}))
    return _traces(spans)


def test_throughput_mixed_batch():
    """10k spans, 10% LLM: the cost processor must not be the bottleneck (measured, loosely asserted)."""
    traces = _mixed_batch(10_000)
    proc = GenAICostProcessor(ComponentId("genai_cost"), GenAICostConfig(), Sink(), book=BOOK)
    started = time.perf_counter()
    proc.process(traces)
    elapsed = time.perf_counter() - started
    rate = 10_000 / elapsed
    print(f"genai_cost: {rate:,.0f} spans/s on 10k spans with 10% LLM")
    priced = sum(1 for _, _, s in traces.spans() for kv in s.attributes if kv.key == gm.GEN_AI_USAGE_COST_USD)
    assert priced == 1_000
    assert rate > 20_000
