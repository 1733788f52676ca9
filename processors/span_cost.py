"""How one GenAI span is priced: its cost attributes from its normalised attributes and the price
book. Shared by the `genai_cost` processor and `genaitrace reprice` (a command, which must not
import a component), so stored spans are repriced with exactly the processor's rules."""

from __future__ import annotations

from typing import Any

import semconv
from processors.pricing import Cost, PriceBook, PriceEntry, Unpriced
from semconv import genai_mapping as gm

COST_KEYS = frozenset(gm.COST_ATTRIBUTES)


def price_attributes(book: PriceBook, attrs: dict[str, Any], start_ns: int | None) -> dict[str, Any]:
    """Cost attributes for one span's *normalised* attributes (an inference span)."""
    provider = attrs.get(gm.GEN_AI_PROVIDER_NAME)
    models = [m for m in (attrs.get(gm.GEN_AI_RESPONSE_MODEL), attrs.get(gm.GEN_AI_REQUEST_MODEL)) if m]
    if not models:
        return unpriced("missing_model", "no gen_ai.request.model or gen_ai.response.model")
    resolved: PriceEntry | Unpriced = Unpriced("unknown_model", "")
    model = models[0]
    for candidate in dict.fromkeys(models):  # price the model that answered; else the one asked for
        resolved = book.resolve(provider, str(candidate), start_ns)
        if isinstance(resolved, PriceEntry):
            model = str(candidate)
            break
    if isinstance(resolved, Unpriced):
        return unpriced(resolved.reason, resolved.detail)
    inp = attrs.get(gm.GEN_AI_USAGE_INPUT_TOKENS)
    out = attrs.get(gm.GEN_AI_USAGE_OUTPUT_TOKENS)
    if inp is None and out is None:
        if str(attrs.get(semconv.STREAM_ABANDONED)).lower() == "true":
            return unpriced("stream_abandoned", "the app stopped reading the stream before the provider reported usage")
        return unpriced("missing_token_counts", "no gen_ai.usage.input_tokens / output_tokens")
    tier = attrs.get(gm.GEN_AI_RESPONSE_SERVICE_TIER) or attrs.get(gm.GEN_AI_REQUEST_SERVICE_TIER)
    one_hour = attrs.get(gm.GEN_AI_USAGE_CACHE_CREATION_1H_INPUT_TOKENS) or 0
    if not one_hour and str(attrs.get("gen_ai.anthropic.cache_ttl") or attrs.get("anthropic.cache_control.ttl") or "") == "1h":
        one_hour = attrs.get(gm.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) or 0
    cost = book.cost(
        resolved,
        model,
        inp,
        out,
        cache_read=attrs.get(gm.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) or 0,
        cache_creation=attrs.get(gm.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) or 0,
        cache_creation_1h=one_hour,
        reasoning=attrs.get(gm.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) or 0,
        service_tier=str(tier) if tier else None,
        provider=provider,
    )
    if isinstance(cost, Unpriced):
        return unpriced(cost.reason, cost.detail)
    if out is None and attrs.get(gm.GEN_AI_OPERATION_NAME) in semconv.OUTPUT_OPERATIONS:
        # Input known, output not (a stream left before the provider's final usage): the input's
        # cost is real money, but not the call's cost, so it is counted with the estimates.
        return {**priced(cost), semconv.USAGE_ESTIMATED: True}
    return priced(cost)


STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def is_call(attrs: dict[str, Any]) -> bool:
    """True for a span priced as a call: an inference span, or a `plan` span that reports token
    usage itself (a plan span without usage is only the parent of the call that made the plan)."""
    operation = attrs.get(gm.GEN_AI_OPERATION_NAME)
    if not isinstance(operation, str) or operation not in semconv.USAGE_OPERATIONS:
        return False
    return operation in gm.INFERENCE_OPERATIONS or not no_usage(attrs)


def no_usage(attrs: dict[str, Any]) -> bool:
    return attrs.get(gm.GEN_AI_USAGE_INPUT_TOKENS) is None and attrs.get(gm.GEN_AI_USAGE_OUTPUT_TOKENS) is None


def priced(cost: Cost) -> dict[str, Any]:
    out = {
        gm.GEN_AI_USAGE_COST_USD: float(cost.total),
        gm.GEN_AI_USAGE_COST_INPUT_USD: float(cost.input),
        gm.GEN_AI_USAGE_COST_CACHE_READ_USD: float(cost.cache_read),
        gm.GEN_AI_USAGE_COST_CACHE_CREATION_USD: float(cost.cache_creation),
        gm.GEN_AI_USAGE_COST_OUTPUT_USD: float(cost.output),
        gm.GEN_AI_USAGE_COST_REASONING_USD: float(cost.reasoning),
        gm.GEN_AI_USAGE_COST_STATUS: "priced",
        gm.GEN_AI_USAGE_COST_PRICE_SOURCE: cost.entry.source,
        gm.GEN_AI_USAGE_COST_PRICE_ENTRY: cost.entry.key,
        gm.GEN_AI_USAGE_COST_PRICED_MODEL: cost.model,
    }
    if cost.entry.effective_date:
        out[gm.GEN_AI_USAGE_COST_PRICE_EFFECTIVE_DATE] = cost.entry.effective_date
    if cost.service_tier:
        out[gm.GEN_AI_USAGE_COST_SERVICE_TIER] = cost.service_tier
    if cost.context_tier:
        out[gm.GEN_AI_USAGE_COST_TIER] = f"above_{cost.context_tier // 1000}k_tokens"
    return out


def standard_cost(values: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """PR #443's attributes for a priced span, unless the span carries an amount it received (a
    provider's or gateway's: source other than `local`), which the proposal passes through."""
    if values.get(gm.GEN_AI_USAGE_COST_STATUS) != "priced":
        return {}
    if attrs.get(semconv.STANDARD_COST_AMOUNT) is not None and attrs.get(semconv.STANDARD_COST_SOURCE) != "local":
        return {}
    return {semconv.STANDARD_COST_AMOUNT: values[gm.GEN_AI_USAGE_COST_USD], semconv.STANDARD_COST_CURRENCY: "USD",
            semconv.STANDARD_COST_SOURCE: "local"}


def unpriced(reason: str, detail: str) -> dict[str, Any]:
    out = {gm.GEN_AI_USAGE_COST_STATUS: "unpriced", gm.GEN_AI_USAGE_COST_UNPRICED_REASON: reason}
    if detail:
        out[gm.GEN_AI_USAGE_COST_UNPRICED_DETAIL] = detail
    return out
