"""`genai_normalizer` processor: every GenAI dialect rewritten to current GenAI semconv.

    processors:
      genai_normalizer:
        drop_originals: false   # true: remove the dialect keys once mapped (llm.token_count.*, gen_ai.system...)

OpenInference (`llm.*`, `openinference.span.kind`), OpenLLMetry/traceloop and older semconv
(`gen_ai.system`, `gen_ai.usage.prompt_tokens`, `traceloop.span.kind`) and OpenLIT spans come out
with `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.usage.*`.

The attributes the GenAI conventions make conditionally required are completed here too:

* `gen_ai.conversation.id` ("when available"), from another dialect's session id (`session.id`,
  traceloop's `traceloop.association.properties.session_id`, `langfuse.session.id`);
* `gen_ai.operation.name = plan` for planning spans: `plan ...` span names, `planning`/`planner`
  spellings, and planners reported as agents (CrewAI's crew planning agent);
* `error.type` ("if the operation ended in an error") on a failed GenAI span that lacks it: the
  `exception.type` of its exception span event (the deprecated way to report the provider's
  error; the current one, the `gen_ai.client.operation.exception` log record, goes through the
  logs pipeline and is joined to the span by `genai_exceptions`), else the error class that
  leads the status description (`RateLimitError: ...`), else the HTTP status code, else `_OTHER`.
The provider is detected from the span's attributes, then `server.address`, then the model name;
`gen_ai.provider.detection` says which (or `unknown`). Idempotent. The mapping itself lives in
`semconv/genai_mapping.py`, shared with the app-side instrumentation. Put it before
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
import re
from typing import Any

from collector.component import ComponentId, Consumer, Factory, Kind, Processor, StrictConfig
from collector.pdata import GenAISpan, Traces
from semconv.genai_mapping import (
    GEN_AI_OPERATION_NAME,
    is_settled_operation,
    normalize_changes,
    reads_only_operation,
)
from semconv import ERROR_TYPE, ERROR_TYPE_OTHER


NORMALIZATION_ERROR = "gen_ai.normalization.error"
log = logging.getLogger(__name__)


class GenAINormalizerConfig(StrictConfig):
    drop_originals: bool = False


def _settled(attributes: dict[str, Any]) -> bool:
    """True if the span normalises to itself: its one mapped key is a settled operation name."""
    return reads_only_operation(attributes) and is_settled_operation(attributes[GEN_AI_OPERATION_NAME])


_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
# An error class leading a status description: `RateLimitError: ...`, `openai.APITimeoutError`,
# `litellm.exceptions.BadRequestError - ...`. Low cardinality, as error.type must be.
_ERROR_CLASS = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Timeout|Exceeded))\b")
_HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")


def normalize_traces(traces: Traces, drop_originals: bool = False) -> None:
    """Normalise every GenAI span of a batch; its rows are left normalised (`row.normalized`)."""
    rows = traces.genai_rows()
    failed = [(row, error_type(row)) for row in rows
              if row.status_code == _STATUS_ERROR and not row.attributes.get(ERROR_TYPE)]
    for row in rows:
        if not _settled(row.attributes):
            try:
                to_set, remove = normalize_changes(row.attributes, row.name, drop_originals=drop_originals)
                if to_set or remove:
                    traces.patch(row, to_set, remove)
            except Exception as exc:  # noqa: BLE001 - one span's odd attributes must not fail the batch
                _mark_unnormalizable(traces, row, exc)
                continue
        row.normalized = True
    for row, kind in failed:
        if row.attributes.get(GEN_AI_OPERATION_NAME):  # a GenAI operation, once normalised
            traces.patch(row, {ERROR_TYPE: kind})


def error_type(row: GenAISpan) -> str:
    """The error.type of a failed span: its last exception event's type, else the error class
    leading its status description, else its HTTP status code, else `_OTHER`. Read from the row
    (`genai_rows` reads the events and status of failed spans): parsing the whole batch for them
    was a twelfth of the collector's Python time."""
    for kind in row.exception_types:
        if kind.strip():
            return kind.strip()[:256]
    match = _ERROR_CLASS.match(row.status_message)
    if match:
        return match[1]
    for key in _HTTP_STATUS_KEYS:
        code = row.attributes.get(key)
        if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
            return str(code)
    return ERROR_TYPE_OTHER


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
