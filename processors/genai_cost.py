"""`genai_cost` processor: `gen_ai.usage.cost_usd` on inference spans, priced right.

    processors:
      genai_cost:
        price_file: ""                          # default: the bundled copy of litellm's price map
        azure_deployments: {my-gpt4o-deploy: gpt-4o}
        model_aliases: {our-router-model: gpt-4o-mini}
        provider_discounts: {openai: 0.9}       # multiply that provider's prices
        prices:
          - model: my-llama                     # a custom / self-hosted model
            provider: self_hosted
            input_cost_per_token: 1e-7
            output_cost_per_token: 2e-7
          - model: gpt-4o                       # a price change: spans that started on or after
            effective_from: "2026-12-01"        # this date use it, earlier ones the previous price
            input_cost_per_token: 2.0e-6
            output_cost_per_token: 8.0e-6
        standard_cost_attributes: false         # true: also gen_ai.usage.cost.{amount,currency,source}

Override keys are litellm's price fields (`input_cost_per_token`, `output_cost_per_token`,
`cache_read_input_token_cost`, `cache_creation_input_token_cost[_above_1hr]`,
`output_cost_per_reasoning_token`, with `_above_200k_tokens` and `_batches|_flex|_priority`
variants); fields not given are inherited from the bundled entry of the same model unless
`replace: true`. A misspelt or negative field is a config error naming the key.

Only inference spans (`chat`, `text_completion`, `generate_content`, `embeddings`) are priced,
and `plan` spans that report token usage themselves (priced like an inference; a plan span without
usage gets no cost attributes at all, so it is never "unpriced"), so summing `gen_ai.usage.cost_usd`
over any set of spans never double counts: agent, workflow, task and tool spans never carry it (any
they arrive with is removed), and an inference or plan span that wraps another call (a framework
span around the provider SDK's span, a plan span around the LLM call that made the plan) is marked
`delegated` and left to the inner one. Token semantics are semconv's: input includes cache read and cache write
(`gen_ai.usage.cache_write.input_tokens`, read also under its earlier name
`gen_ai.usage.cache_creation.input_tokens`, never both), output includes reasoning; each part is
priced at its own rate. Attributes written (names from the `semconv` package):

    gen_ai.usage.cost_usd                       double, the total (the product's contract)
    genaitrace.cost.{input,cache_read,cache_write,output,reasoning}_usd
    genaitrace.cost.status                      priced | unpriced | delegated
    genaitrace.cost.unpriced_reason             unknown_model | unknown_provider | missing_model | missing_token_counts | stream_abandoned | no_token_price | failed_call_no_usage | invalid_attributes
    genaitrace.cost.unpriced_detail             the same in words, naming the model and provider
    genaitrace.cost.priced_span_id              on a `delegated` span: the inner span that carries the cost
    genaitrace.cost.price_source / price_entry / price_effective_date / model / service_tier / context_tier

Until issue 14 the detail keys were `gen_ai.usage.cost.*`: the namespace of the open proposal for a
standard cost attribute (semantic-conventions-genai PR #443). Spans arriving with the old keys get
them replaced; stored spans are read under both names (views) and rewritten by `genaitrace reprice`.

`standard_cost_attributes: true` also writes the proposal's attributes on priced inference spans:
`gen_ai.usage.cost.amount` (= cost_usd), `gen_ai.usage.cost.currency` (`USD`) and
`gen_ai.usage.cost.source` (`local`: computed here). A span that already carries an amount (a
provider or gateway priced it) keeps it, as the proposal asks. Off by default while the proposal
is open; the names may still change.

An unpriced span never gets a cost of 0.

It reads the batch's GenAI rows (`Traces.genai_rows`), already normalised when `genai_normalizer`
runs first (otherwise normalised here, for reading only), and writes through `Traces.patch`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import GenAISpan, Traces
from semconv import genai_mapping as gm
from processors.pricing import PRICE_KEY, PriceBook
# How one span is priced; shared with `genaitrace reprice`, which must not import this component.
from processors.span_cost import COST_KEYS as _COST_KEYS
from processors.span_cost import STATUS_ERROR as _STATUS_ERROR
from processors.span_cost import is_call, price_attributes, standard_cost  # noqa: F401 - price_attributes, standard_cost: public here too
from processors.span_cost import no_usage as _no_usage
from processors.span_cost import unpriced as _unpriced


class PriceOverride(StrictConfig):
    """One `prices:` item: `model`, optional `provider`/`effective_from`/`mode`, then price fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    provider: Optional[str] = None
    effective_from: Optional[date | datetime] = None
    mode: Optional[str] = None
    replace: bool = False

    @model_validator(mode="before")
    @classmethod
    def _price_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {"model", "provider", "effective_from", "mode", "replace"}
        data = dict(data)
        for key, value in list(data.items()):
            if key in known:
                continue
            if isinstance(value, str):  # YAML 1.1 reads `1e-7` (no dot) as a string
                try:
                    value = data[key] = float(value)
                except ValueError:
                    pass
            if not PRICE_KEY.match(str(key)):
                raise ValueError(
                    f"unknown key {key!r}; valid: model, provider, effective_from, mode, replace, or a per-token "
                    "price field such as input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, "
                    "cache_creation_input_token_cost, output_cost_per_reasoning_token"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number (USD per token), got {value!r}")
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value!r}")
        return data

    def as_dict(self) -> dict[str, Any]:
        out = {"model": self.model, "provider": self.provider, "effective_from": self.effective_from,
               "mode": self.mode, "replace": self.replace}
        out.update(self.model_extra or {})
        return out


class GenAICostConfig(StrictConfig):
    price_file: str = ""
    prices: list[PriceOverride] = []
    azure_deployments: dict[str, str] = {}
    model_aliases: dict[str, str] = {}
    provider_discounts: dict[str, float] = {}
    # semantic-conventions-genai PR #443's gen_ai.usage.cost.{amount,currency,source}, as well
    standard_cost_attributes: bool = False

    @field_validator("provider_discounts")
    @classmethod
    def _discounts(cls, value: dict[str, float]) -> dict[str, float]:
        for provider, factor in value.items():
            if not 0 < factor <= 10:
                raise ValueError(f"{provider}: a price multiplier must be > 0 and <= 10 (0.9 = 10% off), got {factor}")
        return value

    def price_book(self) -> PriceBook:
        return PriceBook.load(
            self.price_file or None,
            overrides=[p.as_dict() for p in self.prices],
            azure_deployments=self.azure_deployments,
            provider_discounts=self.provider_discounts,
            model_aliases=self.model_aliases,
        )


class GenAICostProcessor(Processor):
    # How many (trace, span) ids of inference spans' parents to remember across batches, to spot a
    # framework span arriving after the provider span it wraps.
    REMEMBER = 100_000

    def __init__(self, component_id: ComponentId, config: GenAICostConfig, next_consumer: Consumer | None = None,
                 book: PriceBook | None = None):
        super().__init__(component_id, config, next_consumer)
        self.book = book or config.price_book()
        self._parents: dict[tuple[bytes, bytes], bytes] = {}

    def _remember(self, key: tuple[bytes, bytes], child: bytes) -> None:
        parents = self._parents
        if len(parents) >= self.REMEMBER:
            for old in list(parents)[: self.REMEMBER // 2]:
                del parents[old]
        parents[key] = child

    def process(self, traces: Traces) -> Traces:
        """Prices the batch's GenAI rows, as `genai_normalizer` left them (normalised), or else
        normalised here for reading only."""
        inference = []
        for row in traces.genai_rows():
            attrs = row.attributes if row.normalized else _normalized(row)
            if attrs is None:
                continue
            if is_call(attrs):
                inference.append((row, attrs))
            elif not _COST_KEYS.isdisjoint(attrs):
                traces.patch(row, {}, _COST_KEYS.intersection(attrs))  # never cost on agent/workflow/task/tool spans
        if inference:
            self._price(traces, inference)
        return traces

    def _price(self, traces: Traces, inference: list[tuple[GenAISpan, dict[str, Any]]]) -> None:
        """Cost attributes for the inference spans of a batch, given with their normalised attributes."""
        ids = {(row.trace_id, row.span_id) for row, _ in inference}
        wraps: dict[tuple[bytes, bytes], bytes] = {}
        for row, _ in inference:
            if row.parent_span_id:
                key = (row.trace_id, row.parent_span_id)
                if key in ids:
                    wraps[key] = row.span_id
                self._remember(key, row.span_id)
        book = self.book
        for row, attrs in inference:
            stale = _COST_KEYS.intersection(attrs)  # cost attributes the span arrived with: replaced
            key = (row.trace_id, row.span_id)
            inner = wraps.get(key) or self._parents.get(key)
            if inner is not None:
                values = {gm.GEN_AI_USAGE_COST_STATUS: "delegated", gm.GEN_AI_USAGE_COST_PRICED_SPAN_ID: inner.hex()}
            elif row.status_code == _STATUS_ERROR and _no_usage(attrs):
                # A refused or failed request (429, 500, timeout) reports no usage and is usually
                # not billed: unpriced, but with its own reason so "unpriced" alerts can leave it out.
                values = _unpriced("failed_call_no_usage", "the call failed and reported no token usage")
            else:
                try:
                    values = price_attributes(book, attrs, row.start_time_unix_nano or None)
                except Exception as exc:  # noqa: BLE001 - odd attribute types on one span must not fail the batch
                    values = _unpriced("invalid_attributes", f"{type(exc).__name__}: {exc}"[:200])
                if self.config.standard_cost_attributes:
                    values.update(standard_cost(values, attrs))
            traces.patch(row, values, stale)


def _normalized(row: GenAISpan) -> dict[str, Any] | None:
    """A row's attributes in current semconv, when `genai_normalizer` did not run before; None if
    they cannot be read (the normaliser would mark such a span; here it is left unpriced)."""
    try:
        return gm.normalize_attributes(row.attributes, row.name)
    except Exception:  # noqa: BLE001 - one span's odd attributes must not fail the batch
        return None


factory = Factory(
    type="genai_cost",
    kind=Kind.PROCESSOR,
    config_model=GenAICostConfig,
    create=lambda cid, cfg, nxt: GenAICostProcessor(cid, cfg, nxt),
)
