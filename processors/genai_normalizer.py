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

Hot path: the processor works on the batch's GenAI rows (`Traces.genai_rows`: only spans with a
GenAI-looking key, read natively from the serialized batch when the module is built) and records
its changes as patches (`Traces.patch`), written into the bytes in one pass. Spans whose only key
the mapping reads is an already-canonical, non-inference `gen_ai.operation.name` (agent, tool and
workflow spans) normalise to themselves and are not mapped at all. `genai_cost` reads the same
rows, already normalised.
"""

from __future__ import annotations

import logging
from typing import Any

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import GenAISpan, Traces
from instrumentation.genai_mapping import (
    GEN_AI_OPERATION_NAME,
    is_settled_operation,
    normalize_attributes,
    reads_only_operation,
)


NORMALIZATION_ERROR = "gen_ai.normalization.error"
log = logging.getLogger(__name__)


class GenAINormalizerConfig(StrictConfig):
    drop_originals: bool = False


def _settled(attributes: dict[str, Any]) -> bool:
    """True if the span normalises to itself: its one mapped key is a settled operation name."""
    return reads_only_operation(attributes) and is_settled_operation(attributes[GEN_AI_OPERATION_NAME])


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(attributes to set, keys to remove) that turn `before` into `after`."""
    to_set = {key: value for key, value in after.items()
              if key not in before or before[key] != value or type(before[key]) is not type(value)}
    return to_set, [key for key in before if key not in after]


def normalize_traces(traces: Traces, drop_originals: bool = False) -> None:
    """Normalise every GenAI span of a batch; its rows are left normalised (`row.normalized`)."""
    for row in traces.genai_rows():
        if not _settled(row.attributes):
            try:
                to_set, remove = changes(row.attributes, normalize_attributes(row.attributes, row.name,
                                                                              drop_originals=drop_originals))
                if to_set or remove:
                    traces.patch(row, to_set, remove)
            except Exception as exc:  # noqa: BLE001 - one span's odd attributes must not fail the batch
                _mark_unnormalizable(traces, row, exc)
                continue
        row.normalized = True


def _mark_unnormalizable(traces: Traces, row: GenAISpan, exc: Exception) -> None:
    """Keep the span as sent, say why it was not normalised (e.g. an array where a name belongs)."""
    log.warning("genai_normalizer: span %s left as sent: %s", row.span_id.hex(), exc)
    traces.patch(row, {NORMALIZATION_ERROR: f"{type(exc).__name__}: {exc}"[:200]})


class GenAINormalizerProcessor(Processor):
    def __init__(self, component_id: ComponentId, config: GenAINormalizerConfig, next_consumer: Consumer):
        super().__init__(component_id, config, next_consumer)
        self._drop = config.drop_originals

    def process(self, traces: Traces) -> Traces:
        normalize_traces(traces, self._drop)
        return traces


factory = Factory(
    type="genai_normalizer",
    kind=Kind.PROCESSOR,
    config_model=GenAINormalizerConfig,
    create=lambda cid, cfg, nxt: GenAINormalizerProcessor(cid, cfg, nxt),
)
