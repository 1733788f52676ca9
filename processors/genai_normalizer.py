"""`genai_normalizer` processor: every GenAI dialect rewritten to current GenAI semconv.

    processors:
      genai_normalizer:
        drop_originals: false   # true: remove the dialect keys once mapped (llm.token_count.*, gen_ai.system...)

OpenInference (`llm.*`, `openinference.span.kind`), OpenLLMetry/traceloop and older semconv
(`gen_ai.system`, `gen_ai.usage.prompt_tokens`, `traceloop.span.kind`) and OpenLIT spans come out
with `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.usage.*`.
The provider is detected from the span's attributes, then `server.address`, then the model name;
`gen_ai.provider.detection` says which (or `unknown`). Idempotent. The mapping itself lives in
`instrumentation/genai_mapping.py`, shared with the app-side instrumentation. Put it before
`genai_cost`. Spans with no GenAI-looking key are skipped without building anything.

Hot path: when the receiver's native scan named the spans with GenAI keys (`Traces.genai_spans`),
only those are visited; otherwise each span's keys are read once. Spans with no GenAI key, and spans whose only key the
mapping reads is an already-canonical, non-inference `gen_ai.operation.name` (agent, tool and
workflow spans), are left without building a dict. When `genai_cost` comes right after this
processor, it gets the attribute dicts built here (`GenAICostProcessor.consume_normalized`)
instead of reading every GenAI span's attributes a second time.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, NamedTuple

from collector import native
from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import Traces, any_value_to_python, set_any_value, set_attribute
from processors.genai_cost import GenAICostProcessor
from instrumentation.genai_mapping import (
    GEN_AI_OPERATION_NAME,
    GENAI_KEY_PREFIXES,
    is_settled_operation,
    normalize_attributes,
    reads_only_operation,
)


NORMALIZATION_ERROR = "gen_ai.normalization.error"
log = logging.getLogger(__name__)


class GenAINormalizerConfig(StrictConfig):
    drop_originals: bool = False


class NormalizedSpan(NamedTuple):
    """A GenAI span after normalisation, as handed to `genai_cost`."""

    span: Any
    # Its attribute keys as they arrived.
    keys: list[str]
    # Its normalised attributes (== `attributes_to_dict(span.attributes)` now); None when the span
    # normalises to itself (a settled, non-inference operation) and its dict was never built.
    attributes: dict[str, Any] | None


def _read(span) -> tuple[list[str], dict[str, Any]]:
    """(its attribute keys in order, value by key), the last of duplicate keys winning as in a dict
    built in order. Natively from the span's serialization when the module is built (one C-level
    serialize instead of a protobuf object per attribute), else attribute by attribute."""
    if native.available():
        try:
            return native.span_attributes(span.SerializeToString(), _base64)
        except ValueError:  # prost refuses a wire type upb kept as an unknown field: read it here
            pass
    attributes = span.attributes
    keys = [kv.key for kv in attributes]
    values: dict[str, Any] = {}
    for key, kv in zip(keys, attributes):
        value = kv.value
        text = value.string_value  # a non-empty string_value can only be a string (oneof)
        values[key] = text if text else any_value_to_python(value)
    return keys, values


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _normalize(span, keys: list[str], before: dict[str, Any], drop_originals: bool) -> tuple[dict[str, Any], bool]:
    """Normalise one span in place: (its normalised attribute dict, whether anything changed)."""
    after = normalize_attributes(before, span.name, drop_originals=drop_originals)
    changed, position = False, None
    for key, value in after.items():
        if key in before:
            old = before[key]
            if old == value and type(old) is type(value):
                continue
            if position is None:  # the KeyValue a dict built in order keeps: the last duplicate
                position = {k: i for i, k in enumerate(keys)}
            kv = span.attributes[position[key]]
            kv.value.Clear()
            set_any_value(kv.value, value)
        else:
            set_any_value(span.attributes.add(key=key).value, value)
        changed = True
    removed = [key for key in before if key not in after]
    if removed:
        changed = True
        kept = [type(kv)(key=kv.key, value=kv.value) for kv in span.attributes if kv.key in after]
        del span.attributes[:]
        span.attributes.extend(kept)
    return after, changed


def normalize_span(span, drop_originals: bool = False) -> bool:
    """Normalise one protobuf span's attributes in place. True if anything changed."""
    keys, before = _read(span)
    return _normalize(span, keys, before, drop_originals)[1]


def _settled(keys: list[str], values: dict[str, Any]) -> bool:
    """True if the span normalises to itself: its one mapped key is a settled operation name."""
    return reads_only_operation(keys) and is_settled_operation(values[GEN_AI_OPERATION_NAME])


def normalize_traces(traces: Traces, drop_originals: bool = False) -> list[NormalizedSpan]:
    """Normalise every GenAI span of a batch in place; returns them in batch order."""
    out: list[NormalizedSpan] = []
    if traces.genai_spans is not None:  # the receiver's native scan already named them
        for ss, index in traces.spans_at(traces.genai_spans):
            _normalize_candidate(ss.spans[index], drop_originals, out)
        return out
    prefixes = GENAI_KEY_PREFIXES
    for rs in traces.request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:  # `is_genai_candidate`, stopping at the first GenAI key
                    if kv.key.startswith(prefixes):
                        break
                else:
                    continue  # most spans: nothing to do, and no key list built
                _normalize_candidate(span, drop_originals, out)
    return out


def _normalize_candidate(span, drop_originals: bool, out: list[NormalizedSpan]) -> None:
    try:
        keys, before = _read(span)
        if _settled(keys, before):
            out.append(NormalizedSpan(span, keys, None))
        else:
            out.append(NormalizedSpan(span, keys, _normalize(span, keys, before, drop_originals)[0]))
    except Exception as exc:  # noqa: BLE001 - one span's odd attributes must not fail the batch
        _mark_unnormalizable(span, exc)


def _mark_unnormalizable(span, exc: Exception) -> None:
    """Keep the span as sent, say why it was not normalised (e.g. an array where a name belongs)."""
    log.warning("genai_normalizer: span %s left as sent: %s", span.span_id.hex(), exc)
    set_attribute(span.attributes, NORMALIZATION_ERROR, f"{type(exc).__name__}: {exc}"[:200])


class GenAINormalizerProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: GenAINormalizerConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self._drop = config.drop_originals

    def process(self, traces: Traces) -> Traces:
        normalize_traces(traces, self._drop)
        return traces

    def consume(self, traces: Traces) -> None:
        normalized = normalize_traces(traces, self._drop)
        if isinstance(self.next, GenAICostProcessor):  # the documented pipeline: hand over the dicts
            self.next.consume_normalized(traces, normalized)
        else:
            self.next.consume(traces)


factory = Factory(
    type="genai_normalizer",
    kind=Kind.PROCESSOR,
    config_model=GenAINormalizerConfig,
    create=lambda cid, cfg, nxt: GenAINormalizerProcessor(cid, cfg, nxt),
)
