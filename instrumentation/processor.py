"""The span processor that makes spans leave the app in current GenAI semconv.

``GenAISpanProcessor`` must run *before* the exporting processor (it rewrites the
``ReadableSpan`` handed to ``on_end``; the SDK builds a fresh one per ``end()``).

on_start
    * copies the attribution baggage (tenant, engagement, flow, feature, user,
      session -> also ``gen_ai.conversation.id``) onto every span;
    * remembers which agent the span runs under (inherited from its parent).
on_end
    * maps every dialect (OpenInference ``llm.*``, traceloop) to current GenAI
      semconv through :mod:`semconv.genai_mapping` (one module, shared
      with the collector);
    * renames: ``{operation} {model}``, ``invoke_workflow {name}``,
      ``invoke_agent {name}``, ``execute_tool {name}``, ``execute_task {name}``;
    * puts ``gen_ai.agent.name``/``gen_ai.agent.id`` of the enclosing agent on
      LLM and tool spans;
    * removes message content unless content capture is ``SPAN_ONLY``, in which
      case ``gen_ai.input.messages``/``gen_ai.output.messages`` are the spec JSON;
    * last, the privacy gate (:mod:`instrumentation.privacy`) on attributes, name,
      events, links and resource of every span, GenAI or not.

No exception ever leaves this processor.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from typing import Any, Mapping

from opentelemetry import baggage as _baggage
from opentelemetry import trace as _trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import semconv
from semconv import genai_mapping as gm
from instrumentation import events, posthoc, privacy, unfinished
from instrumentation.baggage import ATTRIBUTION_KEYS, DERIVED_ATTRIBUTES
from instrumentation.nested import NestedInferenceSpans

_log = logging.getLogger(__name__)

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
NO_CONTENT = "NO_CONTENT"
SPAN_ONLY = "SPAN_ONLY"

GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"

# Inference span kinds whose parents must not be another inference span.
INFERENCE_OPS = gm.INFERENCE_OPERATIONS

# Attribute keys (or prefixes) that carry message content: one list, shared with the collector.
_CONTENT_PREFIXES = gm.DIALECT_CONTENT_PREFIXES
_SEMCONV_CONTENT = gm.SEMCONV_CONTENT_KEYS
_SEMCONV_TOOL_CONTENT = frozenset({"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"})
# Dialect keys dropped once mapped (the semconv key carries the value).
_DIALECT_DROP_PREFIXES = (
    "llm.token_count.",
    "llm.usage.",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.cost.",
)
_ROUTING_PREFIXES = frozenset({"openai", "anthropic", "azure", "gemini", "vertex_ai", "bedrock", "groq", "mistral",
                               "cohere", "ollama", "deepseek", "together_ai", "openrouter", "xai", "fireworks_ai"})
_DIALECT_DROP_KEYS = frozenset({
    "llm.finish_reason",
    "gen_ai.system",              # deprecated: gen_ai.provider.name
    "llm.model_name", "llm.provider", "llm.system", "llm.request.model", "llm.response.model",
    "llm.invocation_parameters", "input.mime_type", "output.mime_type",
})


def capture_mode() -> str:
    raw = (os.environ.get(CAPTURE_ENV) or NO_CONTENT).strip().upper()
    if raw in ("SPAN_ONLY", "SPAN_AND_EVENT", "TRUE", "1"):
        return SPAN_ONLY
    return NO_CONTENT


# --- message content -> spec JSON ------------------------------------------------------------
_OI_MSG = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(role|content|finish_reason|"
                     r"tool_call_id|tool_calls\.(\d+)\.tool_call\.(id|function\.name|function\.arguments))$")
_TL_MSG = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(role|content|finish_reason|tool_call_id|"
                     r"tool_calls\.(\d+)\.(id|name|arguments))$")


def _messages_from_flat(attrs: Mapping[str, Any]) -> tuple[list, list]:
    """Build semconv input/output message lists from OpenInference or traceloop flat keys."""
    sides: dict[str, dict[int, dict]] = {"input": {}, "output": {}}
    for key, value in attrs.items():
        m = _OI_MSG.match(key)
        if m:
            side, idx, field, tidx, tfield = m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)
        else:
            m = _TL_MSG.match(key)
            if not m:
                continue
            side = "input" if m.group(1) == "prompt" else "output"
            idx, field, tidx, tfield = int(m.group(2)), m.group(3), m.group(4), m.group(5)
            if tfield == "name":
                tfield = "function.name"
            elif tfield == "arguments":
                tfield = "function.arguments"
        msg = sides[side].setdefault(idx, {"tool_calls": {}})
        if tidx is not None:
            msg["tool_calls"].setdefault(int(tidx), {})[tfield] = value
        else:
            msg[field] = value
    result = []
    for side in ("input", "output"):
        out = []
        for idx in sorted(sides[side]):
            raw = sides[side][idx]
            role = raw.get("role") or ("assistant" if side == "output" else "user")
            parts: list[dict] = []
            if role == "tool":
                parts.append({"type": "tool_call_response", "id": raw.get("tool_call_id"),
                              "response": raw.get("content")})
            elif raw.get("content") not in (None, ""):
                parts.append({"type": "text", "content": raw.get("content")})
            for tidx in sorted(raw["tool_calls"]):
                tc = raw["tool_calls"][tidx]
                args = tc.get("function.arguments")
                try:
                    args = json.loads(args) if isinstance(args, str) else args
                except ValueError:
                    pass
                parts.append({"type": "tool_call", "id": tc.get("id"), "name": tc.get("function.name"),
                              "arguments": args})
            msg = {"role": role, "parts": parts}
            if side == "output":
                msg["finish_reason"] = raw.get("finish_reason") or (
                    "tool_call" if raw["tool_calls"] else "stop")
            out.append(msg)
        result.append(out)
    return result[0], result[1]


class _AgentRegistry:
    """span_id -> (agent name, agent id, workflow name) for live spans; bounded."""

    def __init__(self, limit: int = 50_000):
        self._lock = threading.Lock()
        self._data: OrderedDict[int, tuple[str | None, str | None, str | None]] = OrderedDict()
        self._limit = limit

    def put(self, span_id: int, value: tuple[str | None, str | None, str | None]) -> None:
        with self._lock:
            self._data[span_id] = value
            if len(self._data) > self._limit:
                self._data.popitem(last=False)

    def get(self, span_id: int) -> tuple[str | None, str | None, str | None] | None:
        with self._lock:
            return self._data.get(span_id)

    def pop(self, span_id: int) -> tuple[str | None, str | None, str | None] | None:
        with self._lock:
            return self._data.pop(span_id, None)

    def __len__(self) -> int:
        return len(self._data)


def _own_agent(attrs: Mapping[str, Any], name: str) -> tuple[str | None, str | None] | None:
    """The agent a span *is* (an agent span carries its name), if any."""
    agent = attrs.get(gm.GEN_AI_AGENT_NAME)
    if agent is None and attrs.get("traceloop.span.kind") == "agent":
        agent = attrs.get("traceloop.entity.name")
    if agent is None:
        return None
    agent_id = attrs.get(GEN_AI_AGENT_ID)
    return str(agent), (str(agent_id) if agent_id is not None else None)


def _own_workflow(attrs: Mapping[str, Any], name: str) -> str | None:
    """The workflow (crew) a span *is*, if it is a workflow span (seen live, before on_end renames it)."""
    is_workflow = (name == "crewai.workflow" or attrs.get(gm.GEN_AI_OPERATION_NAME) == gm.OP_INVOKE_WORKFLOW
                   or attrs.get("traceloop.span.kind") == "workflow")
    if not is_workflow:
        return None
    name = attrs.get(GEN_AI_WORKFLOW_NAME) or attrs.get("crewai.crew.name") or attrs.get("traceloop.entity.name")
    return str(name) if name else None


def _strip_routing_prefix(out: dict) -> None:
    """LiteLLM's routing prefix ("openai/gpt-4o-mini") is not part of the model's name."""
    provider = out.get(gm.GEN_AI_PROVIDER_NAME)
    for key in (gm.GEN_AI_REQUEST_MODEL, gm.GEN_AI_RESPONSE_MODEL):
        value = out.get(key)
        if isinstance(value, str) and "/" in value:
            prefix, rest = value.split("/", 1)
            if rest and (prefix in _ROUTING_PREFIXES or gm.normalize_provider(prefix) == provider):
                out[key] = rest


def _completion(complete: unfinished.Completion, attrs: dict) -> dict:
    try:
        return complete(attrs)
    except Exception as exc:  # never hurt the app; a span without its estimate is still exported
        from instrumentation.safety import report

        report("genai.unfinished_call", exc)
        return {}


def _describe_failure(span, keep_description: bool) -> None:
    """A failed GenAI span's status description, as the GenAI semconv asks: the error type when the
    span has none (a provider SDK's own span may set only the ERROR code), or always (capture off)."""
    status = span.status
    if status is None or status.status_code is not StatusCode.ERROR:
        return
    if keep_description and status.description:
        return
    error_type = span._attributes.get("error.type")
    span._status = Status(StatusCode.ERROR, str(error_type) if error_type else "error")


class GenAISpanProcessor(SpanProcessor):
    def __init__(self, capture: str | None = None, drop_dialect: bool = True):
        self._capture = capture
        self._drop_dialect = drop_dialect
        self._agents = _AgentRegistry()
        self._nested = NestedInferenceSpans()
        self._resources: dict[int, tuple[Any, Any]] = {}

    @property
    def capture(self) -> str:
        return self._capture or capture_mode()

    # --- start -----------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context=None) -> None:
        try:
            posthoc.adopt(span)  # first: what follows reads the span's final ids
            self._nested.on_start(span)
            items = _baggage.get_all(parent_context)
            if items:
                for key in ATTRIBUTION_KEYS:
                    value = items.get(key)
                    if value is not None:
                        span.set_attribute(key, str(value))
                        for derived in DERIVED_ATTRIBUTES.get(key, ()):
                            span.set_attribute(derived, str(value))
            parent = _trace.get_current_span(parent_context)
            pctx = parent.get_span_context()
            if not pctx.is_valid:
                return
            # The agent and the workflow this span runs under: the parent's own, else what the
            # parent inherited. Both go on LLM and tool spans so cost sums per agent / workflow
            # without walking the tree.
            pattrs = getattr(parent, "attributes", None) or {}
            from_parent = self._agents.get(pctx.span_id) or (None, None, None)
            agent = _own_agent(pattrs, getattr(parent, "name", "")) or from_parent[:2]
            workflow = _own_workflow(pattrs, getattr(parent, "name", "")) or from_parent[2]
            if agent[0] or workflow:
                self._agents.put(span.get_span_context().span_id, (agent[0], agent[1], workflow))
        except Exception:  # pragma: no cover - never hurt the app
            _log.debug("GenAISpanProcessor.on_start failed", exc_info=True)

    # --- end -------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        duplicate = False
        try:
            outer = self._nested.take_duplicate(span)  # first: forgotten even if the rewrite fails
            inherited = self._agents.pop(span.context.span_id) if span.context else None
            attrs = dict(span.attributes or {})
            complete = unfinished.take(span.context.span_id) if span.context else None
            if complete is not None:  # a call that may have ended unfinished (a stream left early)
                attrs.update(_completion(complete, attrs))
            name = span.name
            new_name, new_attrs = self.rewrite(name, attrs, inherited,
                                               span.instrumentation_scope.name if span.instrumentation_scope else "")
            if new_attrs is not attrs or new_name != name or complete is not None:
                span._name = new_name  # the ReadableSpan is a per-end() copy: safe to rewrite
                span._attributes = new_attrs
                if new_attrs.get(gm.GEN_AI_OPERATION_NAME) in INFERENCE_OPS and span.kind == SpanKind.INTERNAL:
                    span._kind = SpanKind.CLIENT  # semconv: inference spans are CLIENT spans
            if outer is not None:  # the same call as its parent's inference span: one span is exported
                self._nested.complete_outer(outer, new_attrs)
                self._nested.unexported(span)
                duplicate = True
        except Exception:  # pragma: no cover
            _log.debug("GenAISpanProcessor.on_end failed", exc_info=True)
        if not duplicate:  # the outer span reports the call's failure once
            self._report_exception(span)
        self._gate(span)  # even unexported: a processor of the app's own may not look at the flag

    def _report_exception(self, span: ReadableSpan) -> None:
        """A failed inference call as a gen_ai.client.operation.exception log record (when a logs
        exporter is configured), which replaces the span's exception event."""
        try:
            if events.report_failed_operation(span, self.capture == SPAN_ONLY):
                span._events = tuple(e for e in span.events if e.name != semconv.EXCEPTION_SPAN_EVENT)
        except Exception as exc:
            from instrumentation.safety import report

            report("genai.exception_event", exc)

    def _gate(self, span: ReadableSpan) -> None:
        """The privacy gate, last: what every exporting processor after this one receives."""
        try:
            if self.capture == SPAN_ONLY:
                span._attributes = privacy.cap_content(span.attributes)
                if gm.is_genai_candidate(span._attributes):
                    _describe_failure(span, keep_description=True)
                return
            attrs = dict(span.attributes or {})
            genai = gm.is_genai_candidate(attrs)
            span._attributes = privacy.filter_attributes(attrs)
            if genai:
                span._name = privacy.safe_span_name(span.name, span._attributes)
                # a provider's error message can quote the prompt: the description is the error type
                _describe_failure(span, keep_description=False)
            if span.events:
                events = []
                for event in span.events:
                    kept = privacy.scrub_event(event.name, event.attributes)
                    if kept is not None:
                        events.append(Event(event.name, kept, event.timestamp))
                span._events = tuple(events)
            if span.links:
                span._links = tuple(Link(link.context, privacy.filter_attributes(link.attributes))
                                    for link in span.links)
            span._resource = self._gated_resource(span.resource)
        except Exception:  # pragma: no cover - a span that cannot be gated is not exported as is
            _log.debug("privacy gate failed", exc_info=True)
            span._attributes, span._events, span._links = {}, (), ()

    def _gated_resource(self, resource):
        if resource is None:
            return resource
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        attrs = resource.attributes
        kept = privacy.filter_attributes(attrs)
        gated = resource if len(kept) == len(attrs) else Resource(kept, resource.schema_url)
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, gated)
        return gated

    def rewrite(self, name: str, attrs: dict, inherited=None, scope: str = "") -> tuple[str, dict]:
        """(new span name, new attributes). Pure; used by on_end and by tests."""
        capture = self.capture
        self._fix_crewai_dialect(name, attrs, scope)
        if not gm.is_genai_candidate(attrs):
            return name, attrs
        out = gm.normalize_attributes(attrs, span_name=name)
        op = out.get(gm.GEN_AI_OPERATION_NAME)
        if op is None:
            return name, self._strip_content(out, capture)

        # content: build the spec JSON from dialect keys if asked to, then strip dialect keys
        if capture == SPAN_ONLY and op in INFERENCE_OPS and GEN_AI_INPUT_MESSAGES not in out:
            inp, outp = _messages_from_flat(attrs)
            if inp:
                out[GEN_AI_INPUT_MESSAGES] = json.dumps(inp, default=str)
            if outp:
                out[GEN_AI_OUTPUT_MESSAGES] = json.dumps(outp, default=str)
        if op in INFERENCE_OPS and GEN_AI_RESPONSE_FINISH_REASONS not in out:
            reasons = [v for k, v in attrs.items()
                       if isinstance(v, str) and (k.endswith(".message.finish_reason") or
                                                   re.match(r"^gen_ai\.completion\.\d+\.finish_reason$", k))]
            if reasons:
                out[GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)

        _strip_routing_prefix(out)
        if op in INFERENCE_OPS:
            model = out.get(gm.GEN_AI_REQUEST_MODEL) or out.get(gm.GEN_AI_RESPONSE_MODEL)
            name = f"{op} {model}" if model else op
            if inherited and gm.GEN_AI_AGENT_NAME not in out and inherited[0]:
                out[gm.GEN_AI_AGENT_NAME] = inherited[0]
                if inherited[1]:
                    out.setdefault(GEN_AI_AGENT_ID, inherited[1])
        elif op == gm.OP_INVOKE_AGENT:
            agent = out.get(gm.GEN_AI_AGENT_NAME) or attrs.get("traceloop.entity.name")
            if agent:
                out[gm.GEN_AI_AGENT_NAME] = agent
            name = f"invoke_agent {agent}" if agent else "invoke_agent"
        elif op == gm.OP_EXECUTE_TOOL:
            tool = out.get(gm.GEN_AI_TOOL_NAME) or attrs.get("traceloop.entity.name")
            if tool:
                out[gm.GEN_AI_TOOL_NAME] = tool
            name = f"execute_tool {tool}" if tool else "execute_tool"
            if inherited and inherited[0]:
                out.setdefault(gm.GEN_AI_AGENT_NAME, inherited[0])
                if inherited[1]:
                    out.setdefault(GEN_AI_AGENT_ID, inherited[1])
        elif op == gm.OP_INVOKE_WORKFLOW:
            wf = out.get(GEN_AI_WORKFLOW_NAME) or attrs.get("traceloop.entity.name") or attrs.get("crewai.crew.name")
            if wf:
                out[GEN_AI_WORKFLOW_NAME] = wf
            name = f"invoke_workflow {wf}" if wf else "invoke_workflow"
        elif op == gm.OP_TASK:
            task = out.get("gen_ai.task.name") or attrs.get("traceloop.entity.name")
            if task:
                out["gen_ai.task.name"] = task
            name = f"execute_task {task}" if task else "execute_task"
            if inherited and inherited[0]:
                out.setdefault(gm.GEN_AI_AGENT_NAME, inherited[0])
        workflow = inherited[2] if inherited and len(inherited) > 2 else None
        if workflow and op != gm.OP_INVOKE_WORKFLOW:
            out.setdefault(GEN_AI_WORKFLOW_NAME, workflow)
        if op in INFERENCE_OPS:
            streaming = out.pop("gen_ai.is_streaming", None)
            if streaming is not None:
                out.setdefault(GEN_AI_REQUEST_STREAM, bool(streaming))
        else:
            # Only inference spans carry usage: an agent's rolled-up tokens would be counted twice.
            for key in [k for k in out if k.startswith("gen_ai.usage.")]:
                del out[key]
        if self._drop_dialect:
            for key in list(out):
                if key in _DIALECT_DROP_KEYS or key.startswith(_DIALECT_DROP_PREFIXES):
                    del out[key]
        return name, self._strip_content(out, capture)

    @staticmethod
    def _fix_crewai_dialect(name: str, attrs: dict, scope: str) -> None:
        """traceloop's CrewAI instrumentor labels crews and tasks `invoke_agent`; fix that."""
        if scope != "opentelemetry.instrumentation.crewai" and attrs.get("gen_ai.provider.name") != "crewai":
            return
        if name == "crewai.workflow":
            attrs[gm.GEN_AI_OPERATION_NAME] = gm.OP_INVOKE_WORKFLOW
            crew = attrs.get("crewai.crew.name")
            attrs[GEN_AI_WORKFLOW_NAME] = crew if crew and crew != "crew" else attrs.get(GEN_AI_WORKFLOW_NAME, "crew")
        elif name.endswith(".task"):
            # traceloop names task spans by the interpolated description: content, unbounded
            attrs[gm.GEN_AI_OPERATION_NAME] = gm.OP_TASK
            attrs.setdefault("gen_ai.task.name", attrs.get("crewai.task.name") or "task")
        elif name.endswith(".agent"):
            attrs[gm.GEN_AI_OPERATION_NAME] = gm.OP_INVOKE_AGENT
            attrs.setdefault(gm.GEN_AI_AGENT_NAME, name[:-6])
        if attrs.get("gen_ai.provider.name") == "crewai" and attrs.get(gm.GEN_AI_OPERATION_NAME) not in INFERENCE_OPS:
            # the framework is not a model provider; keep it as gen_ai.framework
            attrs.pop("gen_ai.provider.name", None)
            attrs["gen_ai.framework"] = "crewai"

    @staticmethod
    def _strip_content(out: dict, capture: str) -> dict:
        for key in list(out):
            if capture == SPAN_ONLY and key in _SEMCONV_TOOL_CONTENT:
                continue  # current semconv (opt-in) on execute_tool spans: kept when capture is on
            if key.startswith(_CONTENT_PREFIXES):
                del out[key]
            elif capture != SPAN_ONLY and key in _SEMCONV_CONTENT:
                del out[key]
        return out

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
