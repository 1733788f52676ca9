"""The privacy gate: the one place that decides what content may leave the app.

``GenAISpanProcessor.on_end`` calls :func:`gate_span` last, on the ``ReadableSpan`` every
exporting processor then receives: attributes, span name, events, links and resource.

Content capture is off by default. One switch turns it on::

    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY   # or SPAN_AND_EVENT / true
    GENAITRACE_CAPTURE_MAX_CHARS=4096        # cap per content value (default 4096)
    GENAITRACE_CAPTURE_MAX_SPAN_CHARS=65536  # cap of all content on one span (default 65536)

**Capture off (the default).** Keys in the namespaces the GenAI instrumentors write
(``gen_ai.``, ``llm.``, ``crewai.``, ``traceloop.``, ``openinference.``, ``input.``,
``output.``, ``embedding.``, ``tool.``, ``message.``...) leave only if they are on the
allow-list below, or their value is a number or a boolean (a number cannot carry a prompt).
An allow-list rather than a deny-list: the instrumentors add content-bearing keys in
minor releases (traceloop's ``crewai.crew.tasks``, ``gen_ai.input.messages``; OpenInference's
``llm.prompt_template.variables``), and a deny-list leaks the first key nobody listed, while
an allow-list's failure is a missing harmless attribute, which tests see. Keys outside those
namespaces (``http.*``, ``tenant.id``, the app's own) are the app's and pass untouched.
Events named in those namespaces (``gen_ai.content.prompt``, ``gen_ai.choice``...) are
dropped; exception events keep ``exception.type`` and the stack frames but lose the message
(tool errors often quote their input), and so does the status description of a GenAI span.
Span names of GenAI spans are rebuilt from allowed values only.

**Capture on.** Everything passes, each string value of a content key capped.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from semconv import genai_mapping as gm

CAPTURE_MAX_CHARS_ENV = "GENAITRACE_CAPTURE_MAX_CHARS"
CAPTURE_MAX_SPAN_CHARS_ENV = "GENAITRACE_CAPTURE_MAX_SPAN_CHARS"
DEFAULT_MAX_CHARS = 4096
DEFAULT_MAX_SPAN_CHARS = 65536
TRUNCATED_SUFFIX = "…[truncated]"

# Namespaces written by GenAI instrumentors (GenAI semconv, OpenInference, traceloop, CrewAI).
GATED_PREFIXES = ("gen_ai.", "llm.", "crewai.", "traceloop.", "openinference.", "input.", "output.",
                  "embedding.", "retrieval.", "reranker.", "document.", "tool.", "tool_call.", "message.",
                  "prompt.", "image.", "audio.")
GATED_KEYS = frozenset({"metadata", "tag.tags"})

# Keys known to carry no content (identifiers, names chosen in code, parameters, token counts).
ALLOWED_KEYS = frozenset({
    # GenAI semconv
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.framework",
    "gen_ai.provider.detection", "gen_ai.conversation.id", "gen_ai.data_source.id", "gen_ai.output.type",
    "gen_ai.token.type", "gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.workflow.name", "gen_ai.task.name",
    "gen_ai.tool.name", "gen_ai.tool.type", "gen_ai.tool.call.id",
    "gen_ai.request.model", "gen_ai.request.encoding_formats", "gen_ai.request.service_tier",
    "gen_ai.request.reasoning_effort", "gen_ai.request.stop_sequences",
    "gen_ai.response.model", "gen_ai.response.id", "gen_ai.response.finish_reasons",
    "gen_ai.response.service_tier", "gen_ai.response.system_fingerprint",
    "gen_ai.openai.request.service_tier", "gen_ai.openai.response.service_tier",
    "gen_ai.openai.response.system_fingerprint", "gen_ai.openai.api_base",
    "gen_ai.evaluation.name", "gen_ai.evaluation.score.label",  # the explanation may quote content: gated
    # OpenInference
    "openinference.span.kind", "llm.model_name", "llm.provider", "llm.system", "llm.request.type",
    "embedding.model_name", "input.mime_type", "output.mime_type", "tool.name", "tool.id",
    "tool_call.id", "tool_call.function.name", "reranker.model_name", "prompt.vendor", "prompt.id",
    "prompt.url",
    # traceloop
    "traceloop.span.kind", "traceloop.entity.name", "traceloop.entity.path", "traceloop.entity.version",
    "traceloop.workflow.name", "llm.request.model", "llm.response.model", "llm.usage.total_tokens",
    # CrewAI (this project's spans and traceloop's non-content fields)
    "crewai.crew.id", "crewai.crew.name", "crewai.crew.process", "crewai.crew.verbose", "crewai.crew.memory",
    "crewai.crew.cache", "crewai.crew.planning", "crewai.crew.max_rpm", "crewai.crew.share_crew",
    "crewai.crew.agent_roles", "crewai.kickoff.method",
    "crewai.agent.id", "crewai.agent.role", "crewai.agent.allow_delegation", "crewai.agent.max_iter",
    "crewai.agent.max_rpm", "crewai.agent.verbose", "crewai.agent.cache", "crewai.agent.llm",
    "crewai.task.id", "crewai.task.name", "crewai.task.agent", "crewai.task.async_execution",
    "crewai.task.human_input", "crewai.task.index",
    "crewai.flow.name", "crewai.flow.id",
})
# Span events kept with capture off (their attributes still filtered): evaluation results.
ALLOWED_EVENTS = frozenset({"gen_ai.evaluation.result"})
# Prefixes whose every key is safe (token counts, costs and their status/reason enums).
ALLOWED_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "llm.cost.", "traceloop.association.properties.")

# Content keys (capped when capture is on): the list shared with the collector's redaction.
CONTENT_PREFIXES = tuple(gm.MESSAGE_CONTENT_KEYS)

_EXCEPTION_TYPE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")
_CHAIN_LINES = ("Traceback (most recent call last):",
                "During handling of the above exception, another exception occurred:",
                "The above exception was the direct cause of the following exception:")


def _int_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
        return value if value > 0 else default
    except ValueError:
        return default


def is_gated(key: str) -> bool:
    return key.startswith(GATED_PREFIXES) or key in GATED_KEYS


def _scalar_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


def allowed_without_content(key: str, value: Any) -> bool:
    """Whether ``key``/``value`` may leave the app with content capture off."""
    if not is_gated(key) or key in ALLOWED_KEYS or key.startswith(ALLOWED_PREFIXES):
        return True
    return _scalar_number(value)


def filter_attributes(attrs: Mapping[str, Any] | None) -> dict:
    """Attributes with content capture off: the allow-listed, the numeric and the app's own."""
    return {k: v for k, v in (attrs or {}).items() if allowed_without_content(k, v)}


def cap_content(attrs: Mapping[str, Any] | None) -> dict:
    """Attributes with content capture on: each content value, and all content on the span, capped."""
    per_value = _int_env(CAPTURE_MAX_CHARS_ENV, DEFAULT_MAX_CHARS)
    budget = _int_env(CAPTURE_MAX_SPAN_CHARS_ENV, DEFAULT_MAX_SPAN_CHARS)
    out = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, str) and key.startswith(CONTENT_PREFIXES):
            limit = min(per_value, budget)
            if limit <= 0:
                continue
            if len(value) > limit:
                value = value[:limit] + TRUNCATED_SUFFIX
            budget -= min(len(value), limit)
        out[key] = value
    return out


def scrub_stacktrace(text: str) -> str:
    """A Python traceback without the exception messages: frames, code lines and exception types."""
    out = []
    for line in str(text).splitlines():
        if line.startswith((" ", "\t")) or line in _CHAIN_LINES:
            if "input_value=" in line:  # pydantic quotes the offending input on an indented line
                continue
            out.append(line)
            continue
        m = _EXCEPTION_TYPE.match(line)
        if m:
            out.append(m.group(1))
    return "\n".join(out)


def scrub_event(name: str, attrs: Mapping[str, Any] | None) -> dict | None:
    """An event's attributes with capture off, or None to drop the event."""
    if is_gated(name) and name not in ALLOWED_EVENTS:
        return None
    out = filter_attributes(attrs)
    if name == "exception":
        out.pop("exception.message", None)
        if "exception.stacktrace" in out:
            out["exception.stacktrace"] = scrub_stacktrace(out["exception.stacktrace"])
    return out


def safe_span_name(name: str, attrs: Mapping[str, Any]) -> str:
    """The name of a GenAI span built from allowed values only: ``{operation} {name}``."""
    op = attrs.get(gm.GEN_AI_OPERATION_NAME)
    if not op:
        return name
    if op in gm.INFERENCE_OPERATIONS:
        label = attrs.get(gm.GEN_AI_REQUEST_MODEL) or attrs.get(gm.GEN_AI_RESPONSE_MODEL)
    else:
        label = {gm.OP_INVOKE_AGENT: attrs.get(gm.GEN_AI_AGENT_NAME),
                 gm.OP_EXECUTE_TOOL: attrs.get(gm.GEN_AI_TOOL_NAME),
                 gm.OP_INVOKE_WORKFLOW: attrs.get("gen_ai.workflow.name"),
                 gm.OP_TASK: attrs.get("gen_ai.task.name")}.get(op)
    verb = "execute_task" if op == gm.OP_TASK else str(op)
    return f"{verb} {label}" if label else verb
