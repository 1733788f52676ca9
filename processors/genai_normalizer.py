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
"""

from __future__ import annotations

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import Traces, any_value_to_python, set_any_value
from instrumentation.genai_mapping import GENAI_KEY_PREFIXES, normalize_attributes


class GenAINormalizerConfig(StrictConfig):
    drop_originals: bool = False


def normalize_span(span, drop_originals: bool = False) -> bool:
    """Normalise one protobuf span's attributes in place. True if anything changed."""
    by_key = {kv.key: kv for kv in span.attributes}
    before = {key: any_value_to_python(kv.value) for key, kv in by_key.items()}
    after = normalize_attributes(before, span.name, drop_originals=drop_originals)
    changed = False
    for key, value in after.items():
        if key in before and before[key] == value and type(before[key]) is type(value):
            continue
        changed = True
        kv = by_key.get(key)
        if kv is None:
            set_any_value(span.attributes.add(key=key).value, value)
        else:
            kv.value.Clear()
            set_any_value(kv.value, value)
    removed = [key for key in before if key not in after]
    if removed:
        changed = True
        kept = [type(kv)(key=kv.key, value=kv.value) for kv in span.attributes if kv.key in after]
        del span.attributes[:]
        span.attributes.extend(kept)
    return changed


class GenAINormalizerProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: GenAINormalizerConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self._drop = config.drop_originals

    def process(self, traces: Traces) -> Traces:
        prefixes = GENAI_KEY_PREFIXES
        drop = self._drop
        for rs in traces.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    for kv in span.attributes:
                        if kv.key.startswith(prefixes):
                            normalize_span(span, drop)
                            break
        return traces


factory = Factory(
    type="genai_normalizer",
    kind=Kind.PROCESSOR,
    config_model=GenAINormalizerConfig,
    create=lambda cid, cfg, nxt: GenAINormalizerProcessor(cid, cfg, nxt),
)
