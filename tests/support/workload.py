"""Realistic multi-agent OTLP trace batches, generated once and sent pre-encoded.

A trace looks like what a CrewAI / LangGraph style app instrumented with OpenInference (litellm) and
OpenLLMetry (traceloop) emits: a workflow root, agent and task spans, tool calls, HTTP and DB client
spans, and LLM spans. About one span in five is an LLM span; those carry 15-30 attributes in one of
two dialects (OpenInference `llm.*`, traceloop / old semconv `gen_ai.*`), the others 2-8 attributes.
Some spans have events (exceptions, stream chunks) and links. Deterministic for a seed.
"""

from __future__ import annotations

import random
import struct

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.pdata import set_any_value

SERVICES = ["support-agent", "research-crew", "billing-bot", "rag-api"]
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-3-5-sonnet-20241022"),
          ("openai", "o3-mini"), ("anthropic", "claude-3-5-haiku-20241022")]
TOOLS = ["search_web", "lookup_order", "refund", "kb_retrieve", "send_email", "calculator"]
_WORDS = ("the customer asked about an order that never arrived and wants a refund before friday "
          "please summarise the ticket history and propose the next action for the support agent").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _set(span: Span, key: str, value) -> None:
    set_any_value(span.attributes.add(key=key).value, value)


def _llm_openinference(rng, span, provider, model):
    prompt, completion = rng.randint(200, 4000), rng.randint(20, 800)
    cached = rng.choice([0, 0, 128, 1024])
    _set(span, "openinference.span.kind", "LLM")
    _set(span, "llm.system", provider)
    _set(span, "llm.provider", provider)
    _set(span, "llm.model_name", model)
    _set(span, "llm.invocation_parameters", '{"temperature": 0.2, "max_tokens": 1024}')
    _set(span, "llm.token_count.prompt", prompt)
    _set(span, "llm.token_count.completion", completion)
    _set(span, "llm.token_count.total", prompt + completion)
    _set(span, "llm.token_count.prompt_details.cache_read", cached)
    _set(span, "input.value", _text(rng, rng.randint(20, 120)))
    _set(span, "input.mime_type", "application/json")
    _set(span, "output.value", _text(rng, rng.randint(10, 60)))
    _set(span, "output.mime_type", "text/plain")
    _set(span, "llm.input_messages.0.message.role", "system")
    _set(span, "llm.input_messages.0.message.content", _text(rng, 30))
    _set(span, "llm.input_messages.1.message.role", "user")
    _set(span, "llm.input_messages.1.message.content", _text(rng, rng.randint(5, 40)))
    _set(span, "llm.output_messages.0.message.role", "assistant")
    _set(span, "llm.output_messages.0.message.content", _text(rng, rng.randint(5, 40)))
    for i in range(rng.randint(0, 10)):
        _set(span, f"metadata.tag_{i}", _text(rng, 2))
    if rng.random() < 0.3:
        _set(span, "llm.tools", ["search_web", "lookup_order"])


def _llm_traceloop(rng, span, provider, model):
    prompt, completion = rng.randint(200, 4000), rng.randint(20, 800)
    _set(span, "traceloop.span.kind", "llm" if rng.random() < 0.5 else "task")
    _set(span, "llm.request.type", "chat")
    _set(span, "gen_ai.system", provider)
    _set(span, "gen_ai.request.model", model)
    _set(span, "gen_ai.response.model", model + ("-2024-08-06" if provider == "openai" else ""))
    _set(span, "gen_ai.request.temperature", 0.2)
    _set(span, "gen_ai.request.max_tokens", 1024)
    _set(span, "gen_ai.usage.prompt_tokens", prompt)
    _set(span, "gen_ai.usage.completion_tokens", completion)
    _set(span, "llm.usage.total_tokens", prompt + completion)
    _set(span, "gen_ai.response.id", "chatcmpl-%016x" % rng.getrandbits(64))
    _set(span, "gen_ai.response.finish_reasons", ["stop"])
    _set(span, "llm.is_streaming", rng.random() < 0.3)
    _set(span, "gen_ai.prompt.0.role", "system")
    _set(span, "gen_ai.prompt.0.content", _text(rng, 30))
    _set(span, "gen_ai.prompt.1.role", "user")
    _set(span, "gen_ai.prompt.1.content", _text(rng, rng.randint(5, 40)))
    _set(span, "gen_ai.completion.0.role", "assistant")
    _set(span, "gen_ai.completion.0.content", _text(rng, rng.randint(5, 40)))
    _set(span, "server.address", "api.openai.com" if provider == "openai" else "api.anthropic.com")
    for i in range(rng.randint(0, 10)):
        _set(span, f"traceloop.association.properties.k{i}", _text(rng, 1))


def _trace(rng: random.Random, scope_spans: dict, start_ns: int) -> int:
    """Appends one trace's spans to the scope_spans (by scope name); returns the span count."""
    trace_id = rng.getrandbits(128).to_bytes(16, "big") or b"\x01" * 16
    count = 0

    def new(scope: str, name: str, parent: bytes, kind: int, offset_us: int, dur_us: int) -> Span:
        nonlocal count
        count += 1
        span = scope_spans[scope].spans.add()
        span.trace_id = trace_id
        span.span_id = struct.pack(">Q", rng.getrandbits(64) | 1)
        span.parent_span_id = parent
        span.name = name
        span.kind = kind
        span.start_time_unix_nano = start_ns + offset_us * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + dur_us * 1000
        span.status.code = 2 if rng.random() < 0.02 else (1 if rng.random() < 0.3 else 0)
        if span.status.code == 2:
            span.status.message = "upstream timeout"
            ev = span.events.add(name="exception", time_unix_nano=span.end_time_unix_nano)
            ev.attributes.add(key="exception.type").value.string_value = "TimeoutError"
            ev.attributes.add(key="exception.message").value.string_value = "read timed out"
        return span

    root = new("crewai.telemetry", "Crew.kickoff", b"", 1, 0, 30_000_000)
    _set(root, "crewai.crew.name", "support")
    _set(root, "gen_ai.operation.name", "invoke_workflow")
    _set(root, "session.id", "sess-%08x" % rng.getrandbits(32))
    offset = 100
    for agent_index in range(rng.randint(2, 3)):
        agent = new("crewai.telemetry", f"Agent.execute_task agent_{agent_index}", root.span_id, 1, offset, 8_000_000)
        _set(agent, "gen_ai.operation.name", "invoke_agent")
        _set(agent, "gen_ai.agent.name", f"agent_{agent_index}")
        _set(agent, "crewai.agent.role", "support specialist")
        for _step in range(rng.randint(2, 3)):
            offset += rng.randint(100, 5000)
            provider, model = rng.choice(MODELS)
            if rng.random() < 0.5:
                llm = new("openinference.instrumentation.litellm", "completion", agent.span_id, 3, offset, 900_000)
                _llm_openinference(rng, llm, provider, model)
            else:
                llm = new("opentelemetry.instrumentation.openai", f"{provider}.chat", agent.span_id, 3, offset, 900_000)
                _llm_traceloop(rng, llm, provider, model)
            if rng.random() < 0.2:
                chunk = llm.events.add(name="gen_ai.content.completion", time_unix_nano=llm.end_time_unix_nano)
                chunk.attributes.add(key="gen_ai.completion").value.string_value = _text(rng, 8)
            http = new("opentelemetry.instrumentation.httpx", "POST", llm.span_id, 3, offset + 10, 880_000)
            _set(http, "http.request.method", "POST")
            _set(http, "url.full", "https://api.example.com/v1/chat/completions")
            _set(http, "server.address", "api.example.com")
            _set(http, "http.response.status_code", 200)
            tool_name = rng.choice(TOOLS)
            tool = new("crewai.telemetry", f"Tool.{tool_name}", agent.span_id, 1, offset + 900_000, 50_000)
            _set(tool, "gen_ai.operation.name", "execute_tool")
            _set(tool, "gen_ai.tool.name", tool_name)
            _set(tool, "input.value", _text(rng, 6))
            if rng.random() < 0.1:
                link = tool.links.add(trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                                      span_id=struct.pack(">Q", rng.getrandbits(64) | 1))
                link.attributes.add(key="link.reason").value.string_value = "retry"
            for _q in range(rng.randint(1, 3)):
                db = new("opentelemetry.instrumentation.sqlalchemy", "SELECT orders", tool.span_id, 3, offset + 900_010, 2_000)
                _set(db, "db.system", "postgresql")
                _set(db, "db.statement", "SELECT id, status FROM orders WHERE customer_id = $1")
                _set(db, "db.name", "shop")
                _set(db, "server.port", 5432)
    return count


def make_request(spans: int, seed: int = 0, start_ns: int = 1_767_225_600_000_000_000) -> ExportTraceServiceRequest:
    """About `spans` spans (whole traces), one ResourceSpans per service, one ScopeSpans per scope."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    services = {}
    total = 0
    while total < spans:
        service = rng.choice(SERVICES)
        if service not in services:
            rs = request.resource_spans.add()
            for key, value in (("service.name", service), ("service.version", "1.4.2"),
                               ("deployment.environment", "prod"), ("telemetry.sdk.language", "python"),
                               ("telemetry.sdk.name", "opentelemetry"), ("telemetry.sdk.version", "1.45.1"),
                               ("host.name", f"pod-{service}-7f9c"), ("process.pid", 4242)):
                set_any_value(rs.resource.attributes.add(key=key).value, value)
            services[service] = (rs, {})
        rs, scopes = services[service]

        class _Scopes(dict):
            def __missing__(self, name):
                ss = rs.scope_spans.add()
                ss.scope.name = name
                ss.scope.version = "0.1.51"
                scopes[name] = self[name] = ss
                return ss

        view = _Scopes(scopes)
        total += _trace(rng, view, start_ns + rng.randint(0, 600) * 1_000_000_000)
    return request


def payloads(count: int, spans_each: int, seed: int = 1) -> list[bytes]:
    return [make_request(spans_each, seed * 1000 + i).SerializeToString() for i in range(count)]


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


if __name__ == "__main__":
    req = make_request(10_000)
    n = span_count(req)
    llm = sum(1 for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
              if any(kv.key.startswith(("llm.", "gen_ai.system")) for kv in s.attributes))
    attrs = [len(s.attributes) for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    print(f"spans={n} llm={llm} ({llm / n:.0%}) attrs/span avg={sum(attrs) / n:.1f} max={max(attrs)} "
          f"bytes={req.ByteSize()} ({req.ByteSize() / n:.0f}/span)")
