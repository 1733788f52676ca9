"""Scores sent as JSON (`POST /v1/scores` on the OTLP/HTTP receiver) and by `genaitrace score`,
turned into what every other score is: an OTLP log event `gen_ai.evaluation.result` (the shape
is `semconv.evaluation.result_attributes`, one definition for app and collector).

    POST /v1/scores     (authenticated and tenant-bound like /v1/traces)
    {"trace_id": "<32 hex>", "span_id": "<16 hex>", "name": "thumbs", "value": true,
     "label": "...", "explanation": "...", "source": "user-feedback", "response_id": "chatcmpl-..."}
    or {"scores": [ ... ]} (at most MAX_SCORES)

A score names its trace (`trace_id`, with or without `span_id`) or only the `response_id` of the
call it judges (a web app that kept the provider's response id: `genai_scores` resolves it to
the span, also when the span arrives later). `value`: a number, a boolean, or absent with a
`label` (categorical). `time_unix_nano`: when it was given (default: received).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Union

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, model_validator

import semconv
from collector.component import PermanentError
from collector.pdata import set_attribute
from collector.plogs import Logs
from semconv.evaluation import Result, result_attributes

MAX_SCORES = 1000
SCOPE = "genaitrace.scores"

HexTrace = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
HexSpan = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")]
Text = Annotated[str, Field(max_length=4096)]


class Score(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=256)]
    trace_id: HexTrace | None = None
    span_id: HexSpan | None = None
    response_id: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    # bool before numbers: JSON true must stay a boolean score, not 1
    value: Union[StrictBool, StrictInt, StrictFloat, None] = None
    label: Annotated[str, Field(max_length=256)] | None = None
    explanation: Text | None = None
    source: Annotated[str, Field(max_length=64)] = "user-feedback"
    time_unix_nano: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _target_and_value(self) -> "Score":
        if self.trace_id is None and self.response_id is None:
            raise ValueError("a score needs trace_id (and optionally span_id) or response_id")
        if self.span_id is not None and self.trace_id is None:
            raise ValueError("span_id needs trace_id")
        if self.value is None and not self.label:
            raise ValueError("a score needs a value (number or boolean) or a label")
        if self.trace_id is not None and set(self.trace_id) == {"0"}:
            raise ValueError("trace_id must not be all zeros")
        return self


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scores: Annotated[list[Score], Field(min_length=1, max_length=MAX_SCORES)]


def parse(body: bytes) -> list[Score]:
    """The scores of a JSON body; PermanentError (HTTP 400) with the reason when it is not valid."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PermanentError(f"malformed JSON: {exc}") from None
    try:
        if isinstance(document, dict) and "scores" in document:
            return _Batch.model_validate(document).scores
        return [Score.model_validate(document)]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:10])
        raise PermanentError(f"invalid score: {problems}") from None


def attributes(score: Score) -> dict:
    value = score.value if isinstance(score.value, bool) or score.value is None else float(score.value)
    return result_attributes(Result(score.name, value, score.label, score.explanation), score.source,
                             score.response_id)


def to_logs(scores: list[Score], service_name: str = "genaitrace-scores", now_ns: int | None = None) -> Logs:
    """One OTLP logs request holding one `gen_ai.evaluation.result` event per score."""
    now_ns = now_ns or time.time_ns()
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    set_attribute(resource_logs.resource.attributes, "service.name", service_name)
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE
    for score in scores:
        record = scope_logs.log_records.add()
        record.time_unix_nano = score.time_unix_nano or now_ns
        record.observed_time_unix_nano = now_ns
        if score.trace_id:
            record.trace_id = bytes.fromhex(score.trace_id)
        if score.span_id:
            record.span_id = bytes.fromhex(score.span_id)
        record.event_name = semconv.GEN_AI_EVALUATION_RESULT_EVENT
        for key, value in attributes(score).items():
            set_attribute(record.attributes, key, value)
    return Logs(request)
