"""Evaluate an LLM call and record the result as the GenAI event `gen_ai.evaluation.result`.

    from instrumentation import evaluation

    result = evaluation.evaluate(span, evaluation.regex_safety_check(), source="heuristic")
    evaluation.record(evaluation.Result("user_satisfaction", 4.5), span=span, source="user-feedback")

The event is an OpenTelemetry log record (logs API, `event_name` set) whose trace and span ids are
the evaluated span's, with the attributes of the GenAI conventions:
`gen_ai.evaluation.name`, `gen_ai.evaluation.score.value` (double), `gen_ai.evaluation.score.label`,
`gen_ai.evaluation.explanation`, `gen_ai.response.id` when known, and `genaitrace.evaluation.source`
(human | llm-judge | heuristic | user-feedback). A boolean result is the value 1.0 / 0.0 with the
label `true` / `false` (the convention's value is a double). The collector stores it in `otel_logs`;
the `genai_scores` view joins it to the span.

Content capture is respected: with capture off (the default) the evaluator sees the span's
messages only if the app passes them (`input=`, `output=`); with capture on it reads the span's
`gen_ai.input.messages` / `gen_ai.output.messages`.

Examples: `regex_safety_check()` (a heuristic, no model) and `llm_judge(base_url)`, a judge that
asks an OpenAI-compatible endpoint (the project's fake LLM server in tests and the demo) for a
1-5 score.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from opentelemetry import _logs, trace

import semconv
from semconv.evaluation import SCOPE, Result, result_attributes  # noqa: F401 - the event's one definition, shared with the collector

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"


@dataclass(frozen=True)
class Sample:
    """What an evaluator sees: the call's input and output (None when not available) and its
    non-content attributes (model, provider, tokens, ...)."""

    input: Any
    output: Any
    attributes: Mapping[str, Any] = field(default_factory=dict)


Evaluator = Callable[[Sample], Result]


def record(result: Result, *, span: Any = None, span_context: trace.SpanContext | None = None,
           source: str = "heuristic", response_id: str | None = None,
           logger_provider: _logs.LoggerProvider | None = None) -> None:
    """Emit `result` as a `gen_ai.evaluation.result` event parented to `span` (a live or finished
    span) or `span_context`; without either, to the current span."""
    if span_context is None and span is not None:
        span_context = span.get_span_context()
    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context)) if span_context is not None else None
    if response_id is None and span is not None:
        response_id = (getattr(span, "attributes", None) or {}).get(semconv.GEN_AI_RESPONSE_ID)
    logger = _logs.get_logger(SCOPE, logger_provider=logger_provider or _default_logger_provider())
    logger.emit(event_name=semconv.GEN_AI_EVALUATION_RESULT_EVENT, context=context,
                attributes=result_attributes(result, source, response_id))


def _default_logger_provider() -> _logs.LoggerProvider | None:
    """The app's logger provider if it set one (or `opentelemetry-instrument` did); otherwise one made
    on first use, exporting over OTLP to where the spans go (OTEL_EXPORTER_OTLP_* as for traces;
    OTEL_LOGS_EXPORTER=none turns it off), with the tracer provider's resource, so a result recorded
    in an app bootstrapped by `instrumentation.init()` reaches the collector. Made lazily: an app
    that never evaluates does not import the logs SDK."""
    from instrumentation import events

    provider = events.logger_provider(default_exporter="otlp")
    return None if provider is _logs.get_logger_provider() else provider


def sample_of(span: Any, input: Any = None, output: Any = None) -> Sample:
    """The evaluator's view of `span`: content from the span only when capture is on."""
    from instrumentation.processor import NO_CONTENT, capture_mode  # the SDK side: only when evaluating

    attributes = dict(getattr(span, "attributes", None) or {})
    content = {key: attributes.pop(key, None) for key in (INPUT_MESSAGES, OUTPUT_MESSAGES)}
    if capture_mode() != NO_CONTENT:
        input = input if input is not None else _messages(content[INPUT_MESSAGES])
        output = output if output is not None else _messages(content[OUTPUT_MESSAGES])
    return Sample(input=input, output=output, attributes=attributes)


def evaluate(span: Any, evaluator: Evaluator, *, source: str = "heuristic", input: Any = None,
             output: Any = None, logger_provider: _logs.LoggerProvider | None = None) -> Result:
    """Run `evaluator` over `span`'s call and record its result on that span."""
    result = evaluator(sample_of(span, input, output))
    record(result, span=span, source=source, logger_provider=logger_provider)
    return result


def _messages(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def text_of(value: Any) -> str:
    """All text in messages of any shape (GenAI parts, OpenAI messages, plain strings)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(text_of(value[key]) for key in ("content", "parts", "text", "result") if key in value)
    if isinstance(value, (list, tuple)):
        return " ".join(text_of(item) for item in value)
    return str(value)


# --- example evaluators ------------------------------------------------------------------------

DEFAULT_UNSAFE = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.]+",
    "card_number": r"\b(?:\d[ -]?){13,16}\b",
    "api_key": r"\b(?:sk|pk)-[A-Za-z0-9_-]{16,}\b",
}


def regex_safety_check(patterns: Mapping[str, str] | None = None, name: str = "safety") -> Evaluator:
    """A heuristic: the output passes when no pattern matches (score True, label `true`)."""
    compiled = {kind: re.compile(pattern) for kind, pattern in (patterns or DEFAULT_UNSAFE).items()}

    def check(sample: Sample) -> Result:
        if sample.output is None:
            return Result(name, None, "not_evaluated", "no output available (content capture is off)")
        text = text_of(sample.output)
        found = sorted(kind for kind, pattern in compiled.items() if pattern.search(text))
        if found:
            return Result(name, False, "false", "found: " + ", ".join(found))
        return Result(name, True, "true", None)

    return check


_SCORE = re.compile(r"\bSCORE:\s*([1-5](?:\.\d+)?)")


def llm_judge(base_url: str, model: str = "gpt-4o-mini", name: str = "relevance", timeout_s: float = 10.0,
              api_key: str = "unused") -> Evaluator:
    """LLM-as-judge over an OpenAI-compatible chat endpoint: asks for `SCORE: <1-5>` and a reason."""

    def judge(sample: Sample) -> Result:
        if sample.input is None or sample.output is None:
            return Result(name, None, "not_evaluated", "no input/output available (content capture is off)")
        prompt = ("Rate from 1 to 5 how well the answer addresses the question. Reply `SCORE: <n>` then a reason.\n"
                  f"Question: {text_of(sample.input)}\nAnswer: {text_of(sample.output)}")
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]}).encode()
        request = urllib.request.Request(base_url.rstrip("/") + "/chat/completions", data=body, method="POST",
                                         headers={"content-type": "application/json",
                                                  "authorization": f"Bearer {api_key}"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            reply = json.loads(response.read())["choices"][0]["message"]["content"] or ""
        match = _SCORE.search(reply)
        if not match:
            return Result(name, None, "unparsed", reply[:500])
        return Result(name, float(match[1]), None, reply[:500])

    return judge
