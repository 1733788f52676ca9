"""Model prices: litellm's bundled price map read as data, config overrides, model-name resolution.

The map is `processors/data/model_prices.json`, a copy of litellm's
`model_prices_and_context_window_backup.json` (refresh with `python processors/data/update_prices.py`).
The collector never imports litellm: the import alone costs seconds and litellm is not installed
with the collector.

`PriceBook.resolve(provider, model)` maps a span's provider (semconv `gen_ai.provider.name`) and
model name to a price entry: provider prefixes (`openai/`, `azure/`, `bedrock/`, `vertex_ai/`,
`gemini/`, `deepinfra/`...), date-suffixed snapshots, Bedrock ids (`us.anthropic.claude-...-v1:0`),
Azure deployment names (config). `PriceBook.cost(...)` prices token counts with cache read,
cache creation (5-minute and 1-hour), reasoning, context-size tiers (`*_above_200k_tokens`) and
service tiers (batch, flex, priority).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from semconv.genai_mapping import normalize_provider

DEFAULT_PRICE_FILE = Path(__file__).parent / "data" / "model_prices.json"
META_FILE_SUFFIX = ".meta.json"


class PriceMapError(ValueError):
    """A malformed price entry: names the file, the entry key and what is wrong."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: price entry {key!r}: {message}")


# A price field is a per-token (or per-unit) rate; we use only per-token ones.
PRICE_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|output_cost_per_reasoning_token|"
    r"cache_read_input_token_cost|cache_creation_input_token_cost|input_cost_per_token_cache_hit)"
    r"(_above_1hr)?(_above_\d+k_tokens)?(_batches|_flex|_priority)?$"
)
_TIER = re.compile(r"_above_(\d+)k_tokens")

# semconv gen_ai.provider.name -> prefixes of litellm keys for that provider (tried in order)
_PROVIDER_KEY_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("", "openai/"),
    "anthropic": ("", "anthropic/"),
    "azure.ai.openai": ("azure/", ""),
    "azure.ai.inference": ("azure_ai/",),
    "aws.bedrock": ("", "bedrock/", "bedrock/converse/"),
    "gcp.gemini": ("gemini/", ""),
    "gcp.vertex_ai": ("", "vertex_ai/", "gemini/"),
    "deepinfra": ("deepinfra/",),
    "together_ai": ("together_ai/",),
    "fireworks_ai": ("fireworks_ai/", "fireworks_ai/accounts/fireworks/models/"),
    "groq": ("groq/",),
    "mistral_ai": ("mistral/", ""),
    "x_ai": ("xai/",),
    "deepseek": ("deepseek/",),
    "openrouter": ("openrouter/",),
    "cohere": ("", "cohere/"),
    "perplexity": ("perplexity/",),
    "cerebras": ("cerebras/",),
    "sambanova": ("sambanova/",),
    "nebius": ("nebius/",),
    "ollama": ("ollama/",),
}
# litellm_provider -> semconv provider family
_LITELLM_FAMILY: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "chatgpt": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "fireworks_ai-embedding-models": "fireworks_ai",
    "cohere_chat": "cohere",
}
# Providers whose prices match another family's for the same model name (resold models).
_FALLBACK_FAMILIES: dict[str, frozenset[str]] = {
    "azure.ai.openai": frozenset({"openai"}),
    "gcp.gemini": frozenset({"gcp.vertex_ai"}),
    "gcp.vertex_ai": frozenset({"gcp.gemini", "anthropic"}),
    "aws.bedrock": frozenset({"anthropic"}),
}
# Prefixes a model name may carry (litellm routing style) -> provider
_MODEL_PREFIXES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "deepinfra": "deepinfra",
    "together_ai": "together_ai",
    "groq": "groq",
    "mistral": "mistral_ai",
    "fireworks_ai": "fireworks_ai",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
}
_DATE_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8}|-\d{4})$")
_BEDROCK_REGION = re.compile(r"^(us|eu|apac|global|us-gov|jp|au|ca)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(:\d+)?$")

SERVICE_TIERS = {"batch": "_batches", "batches": "_batches", "flex": "_flex", "priority": "_priority"}


def family(litellm_provider: str) -> str:
    if litellm_provider.startswith("vertex_ai"):
        return "gcp.vertex_ai"
    return _LITELLM_FAMILY.get(litellm_provider, litellm_provider)


def _to_ns(day: date | datetime) -> int:
    if isinstance(day, datetime):
        moment = day if day.tzinfo else day.replace(tzinfo=timezone.utc)
    else:
        moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1_000_000_000


@dataclass(frozen=True)
class PriceEntry:
    key: str  # the price-map key (or override model name)
    provider: str  # semconv family
    mode: str
    rates: Mapping[str, float]
    source: str  # "litellm" | "override"
    effective_date: str  # ISO date the price took effect ("" if unknown)
    tiers: tuple[int, ...] = ()  # context-size thresholds (tokens) with their own rates, descending

    def rate(self, field: str, tier: str, service: str) -> float | None:
        rates = self.rates
        for candidate in (field + tier + service, field + tier, field + service, field) if tier else (field + service, field):
            value = rates.get(candidate)
            if value is not None:
                return value
        return None


def _tiers(rates: Mapping[str, float]) -> tuple[int, ...]:
    found = {int(m.group(1)) * 1000 for key in rates for m in [_TIER.search(key)] if m}
    return tuple(sorted(found, reverse=True))


def validate_entry(source: str, key: str, entry: Any) -> dict[str, float]:
    """The per-token rates of one price-map entry; a clear PriceMapError if it is malformed."""
    if not isinstance(entry, dict):
        raise PriceMapError(source, key, f"must be an object, got {type(entry).__name__}")
    rates: dict[str, float] = {}
    for field, value in entry.items():
        if not PRICE_KEY.match(field):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PriceMapError(source, key, f"{field} must be a number, got {value!r}")
        if value < 0 or value != value:
            raise PriceMapError(source, key, f"{field} must be >= 0, got {value!r}")
        rates[field] = float(value)
    provider = entry.get("litellm_provider")
    if provider is not None and not isinstance(provider, str):
        raise PriceMapError(source, key, f"litellm_provider must be a string, got {provider!r}")
    return rates


def load_price_map(path: str | Path = DEFAULT_PRICE_FILE) -> tuple[dict[str, PriceEntry], str]:
    """Parse and validate the price map: {key: PriceEntry}, plus the snapshot's effective date."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise PriceMapError(str(path), "", "price file not found") from None
    except ValueError as exc:
        raise PriceMapError(str(path), "", f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PriceMapError(str(path), "", "top level must be an object of model -> price entry")
    snapshot = ""
    meta = path.with_name(path.stem + META_FILE_SUFFIX)
    if meta.exists():
        snapshot = str(json.loads(meta.read_text()).get("snapshot_date", ""))
    entries: dict[str, PriceEntry] = {}
    for key, raw in document.items():
        if key == "sample_spec":
            continue
        rates = validate_entry(str(path), key, raw)
        if not rates:
            continue  # priced per image/second/...: nothing we can use for tokens
        entries[key] = PriceEntry(
            key=key,
            provider=family(str(raw.get("litellm_provider", ""))),
            mode=str(raw.get("mode", "")),
            rates=rates,
            source="litellm",
            effective_date=snapshot,
            tiers=_tiers(rates),
        )
    return entries, snapshot


@dataclass(frozen=True)
class Cost:
    total: float
    input: float
    cache_read: float
    cache_creation: float
    output: float
    reasoning: float
    entry: PriceEntry
    model: str
    service_tier: str  # the tier whose prices were applied ("" = standard)
    context_tier: int  # threshold in tokens whose prices were applied (0 = base)


@dataclass(frozen=True)
class Unpriced:
    reason: str  # unknown_model | unknown_provider | missing_token_counts | no_token_price
    detail: str


class PriceBook:
    """The bundled map plus overrides. `overrides` are dicts (validated config), see genai_cost."""

    def __init__(
        self,
        entries: dict[str, PriceEntry],
        overrides: Iterable[Mapping[str, Any]] = (),
        azure_deployments: Mapping[str, str] | None = None,
        provider_discounts: Mapping[str, float] | None = None,
        model_aliases: Mapping[str, str] | None = None,
    ):
        self.entries = entries
        self._lower = {}
        for key, entry in entries.items():
            self._lower.setdefault(key.lower(), entry)
        self.azure_deployments = {k.lower(): v for k, v in (azure_deployments or {}).items()}
        self.model_aliases = {k.lower(): v for k, v in (model_aliases or {}).items()}
        self.discounts = {}
        for provider, factor in (provider_discounts or {}).items():
            self.discounts[normalize_provider(provider) or provider] = float(factor)
        # (model lower) -> list of (effective_ns, provider|None, PriceEntry) sorted by time
        self._overrides: dict[str, list[tuple[int, str | None, PriceEntry]]] = {}
        for index, override in enumerate(overrides):
            self._add_override(index, override)
        self._cache: dict[tuple[str | None, str], PriceEntry | None] = {}

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs: Any) -> "PriceBook":
        entries, _ = load_price_map(path or DEFAULT_PRICE_FILE)
        return cls(entries, **kwargs)

    # -- overrides ---------------------------------------------------------------------------
    def _add_override(self, index: int, override: Mapping[str, Any]) -> None:
        model = str(override["model"])
        where = f"prices[{index}] ({model})"
        provider = normalize_provider(override.get("provider")) if override.get("provider") else None
        raw_rates = {k: v for k, v in override.items() if PRICE_KEY.match(k) and v is not None}
        rates = validate_entry("genai_cost config", where, raw_rates)
        effective = override.get("effective_from")
        effective_ns = _to_ns(effective) if effective is not None else -1
        effective_text = effective.isoformat() if effective is not None else ""
        base = None if override.get("replace") else self._base_for_override(provider, model)
        if base is not None:
            merged = dict(base.rates)
            merged.update(rates)
            rates = merged
        if "input_cost_per_token" not in rates and "output_cost_per_token" not in rates:
            raise PriceMapError(
                "genai_cost config", where, "needs input_cost_per_token or output_cost_per_token (no bundled entry to inherit from)"
            )
        entry = PriceEntry(
            key=model,
            provider=provider or (base.provider if base else ""),
            mode=str(override.get("mode") or (base.mode if base else "chat")),
            rates=rates,
            source="override",
            effective_date=effective_text,
            tiers=_tiers(rates),
        )
        slot = self._overrides.setdefault(model.lower(), [])
        slot.append((effective_ns, provider, entry))
        slot.sort(key=lambda item: item[0])

    def _base_for_override(self, provider: str | None, model: str) -> PriceEntry | None:
        for name in self._names(provider, model)[0]:
            entry = self._lookup_bundled(provider, name)
            if entry is not None:
                return entry
        return None

    def _override(self, provider: str | None, name: str, at_ns: int | None) -> PriceEntry | None:
        slot = self._overrides.get(name.lower())
        if not slot:
            return None
        best = None
        for effective_ns, who, entry in slot:
            if who is not None and provider is not None and who != provider:
                continue
            if at_ns is not None and effective_ns > at_ns:
                break
            if at_ns is None and effective_ns > 0:
                continue
            best = entry
        return best

    # -- resolution --------------------------------------------------------------------------
    def _names(self, provider: str | None, model: str) -> tuple[list[str], str | None]:
        """Candidate model names, most specific first, and the provider a prefix implies."""
        name = model.strip()
        lower = name.lower()
        if lower in self.model_aliases:
            name = self.model_aliases[lower]
            lower = name.lower()
        implied = None
        names = [name]
        head, sep, rest = name.partition("/")
        if sep and head.lower() in _MODEL_PREFIXES:
            implied = _MODEL_PREFIXES[head.lower()]
            names.append(rest)
        if lower.startswith("models/"):
            names.append(name[len("models/"):])
        if (provider in ("azure.ai.openai", None) or implied == "azure.ai.openai") and names[-1].lower() in self.azure_deployments:
            names.append(self.azure_deployments[names[-1].lower()])
        more = []
        for candidate in names:
            stripped = _BEDROCK_REGION.sub("", candidate)
            if stripped != candidate:
                more.append(stripped)
            unversioned = _BEDROCK_VERSION.sub("", stripped)
            if unversioned != stripped:
                more.append(unversioned)
                if unversioned.startswith(("anthropic.", "meta.", "amazon.", "cohere.", "mistral.")):
                    more.append(unversioned.split(".", 1)[1])
            undated = _DATE_SUFFIX.sub("", unversioned)
            if undated != unversioned:
                more.append(undated)
            if candidate.endswith("-latest"):
                more.append(candidate[: -len("-latest")])
        seen, ordered = set(), []
        for candidate in names + more:
            if candidate and candidate.lower() not in seen:
                seen.add(candidate.lower())
                ordered.append(candidate)
        return ordered, implied

    def _lookup_bundled(self, provider: str | None, name: str) -> PriceEntry | None:
        lower = name.lower()
        if provider is None:
            return self._lower.get(lower)
        fallback = None
        for prefix in _PROVIDER_KEY_PREFIXES.get(provider) or (provider + "/", ""):
            entry = self._lower.get(prefix + lower)
            if entry is None:
                continue
            if entry.provider == provider:
                return entry
            if fallback is None and entry.provider in _FALLBACK_FAMILIES.get(provider, ()):
                fallback = entry
        return fallback

    def resolve(self, provider: str | None, model: str, at_ns: int | None = None) -> PriceEntry | Unpriced:
        """The price entry for `model` served by `provider` at time `at_ns` (epoch ns)."""
        names, implied = self._names(provider, model)
        provider = provider or implied
        for name in names:
            entry = self._override(provider, name, at_ns)
            if entry is not None:
                return entry
        cache_key = (provider, model)
        entry = self._cache.get(cache_key, False)
        if entry is False:
            entry = None
            for name in names:
                entry = self._lookup_bundled(provider, name)
                if entry is not None:
                    break
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[cache_key] = entry
        if entry is not None:
            return entry
        if provider is None:
            return Unpriced("unknown_provider", f"model {model!r}: provider unknown and the name alone matches no price entry")
        return Unpriced("unknown_model", f"no price entry for model {model!r} from provider {provider!r}")

    # -- pricing -----------------------------------------------------------------------------
    def cost(
        self,
        entry: PriceEntry,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read: int = 0,
        cache_creation: int = 0,
        cache_creation_1h: int = 0,
        reasoning: int = 0,
        service_tier: str | None = None,
        provider: str | None = None,
    ) -> Cost | Unpriced:
        rates = entry.rates
        if "input_cost_per_token" not in rates and "output_cost_per_token" not in rates:
            return Unpriced("no_token_price", f"price entry {entry.key!r} has no per-token price")
        inp = input_tokens or 0
        out = output_tokens or 0
        cache_read = min(cache_read, inp)
        cache_creation = min(cache_creation, inp - cache_read)
        cache_creation_1h = min(cache_creation_1h, cache_creation)
        reasoning = min(reasoning, out)
        tier_threshold = 0
        for threshold in entry.tiers:
            if inp > threshold:
                tier_threshold = threshold
                break
        tier = f"_above_{tier_threshold // 1000}k_tokens" if tier_threshold else ""
        service = SERVICE_TIERS.get((service_tier or "").lower(), "")
        if service and not any(key.endswith(service) for key in rates):
            service = ""  # this model has no such tier: standard prices
        in_rate = entry.rate("input_cost_per_token", tier, service) or 0.0
        out_rate = entry.rate("output_cost_per_token", tier, service) or 0.0
        read_rate = entry.rate("cache_read_input_token_cost", tier, service)
        if read_rate is None:
            read_rate = entry.rate("input_cost_per_token_cache_hit", tier, service)
        if read_rate is None:
            read_rate = in_rate
        write_rate = entry.rate("cache_creation_input_token_cost", tier, service)
        if write_rate is None:
            write_rate = in_rate
        write_1h_rate = entry.rate("cache_creation_input_token_cost_above_1hr", tier, service)
        if write_1h_rate is None:
            write_1h_rate = write_rate
        reasoning_rate = entry.rate("output_cost_per_reasoning_token", tier, service)
        if reasoning_rate is None:
            reasoning_rate = out_rate
        factor = self.discounts.get(provider or entry.provider, 1.0)
        c_input = (inp - cache_read - cache_creation) * in_rate * factor
        c_read = cache_read * read_rate * factor
        c_write = ((cache_creation - cache_creation_1h) * write_rate + cache_creation_1h * write_1h_rate) * factor
        c_out = (out - reasoning) * out_rate * factor
        c_reason = reasoning * reasoning_rate * factor
        return Cost(
            total=c_input + c_read + c_write + c_out + c_reason,
            input=c_input,
            cache_read=c_read,
            cache_creation=c_write,
            output=c_out,
            reasoning=c_reason,
            entry=entry,
            model=model,
            service_tier=service.lstrip("_"),
            context_tier=tier_threshold,
        )
