"""The `gen_ai.evaluation.result` event's shape: one definition for the app side
(`instrumentation.evaluation.record`) and the collector (`collector.scores`, POST /v1/scores).
Standard library and semconv only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import semconv

SCOPE = "genaitrace.evaluation"  # the instrumentation scope of the events


@dataclass(frozen=True)
class Result:
    """One evaluation result. `score`: a number, a bool, or None for a purely categorical result."""

    name: str
    score: float | bool | None = None
    label: str | None = None
    explanation: str | None = None


def result_attributes(result: Result, source: str, response_id: str | None = None) -> dict[str, Any]:
    """The event's attributes for `result` (the one definition of the event's shape)."""
    if not result.name:
        raise ValueError("an evaluation result needs a name")
    attrs: dict[str, Any] = {semconv.GEN_AI_EVALUATION_NAME: result.name}
    label = result.label
    if isinstance(result.score, bool):
        attrs[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = 1.0 if result.score else 0.0
        label = label or ("true" if result.score else "false")
    elif result.score is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = float(result.score)
    if label:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if result.explanation:
        attrs[semconv.GEN_AI_EVALUATION_EXPLANATION] = result.explanation
    if source:
        attrs[semconv.EVALUATION_SOURCE] = source
    if response_id:
        attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
    return attrs
