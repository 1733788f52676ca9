"""One inference span per call when two instrumentations see it (instrumentation/nested.py): real
OpenTelemetry SDK tracers, the GenAI span processor in front of an exporting processor."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

TRACELOOP_CHAT = {"llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini"}
SEMCONV_CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}


@pytest.fixture
def traced(genai_provider):
    provider, exporter = genai_provider
    return provider.get_tracer("some.sdk"), provider.get_tracer("some.instrumentor"), exporter


def _by_name(exporter):
    return {span.name: span for span in exporter.get_finished_spans()}


def test_an_inference_span_directly_inside_another_is_the_same_call(traced):
    library, instrumentor, exporter = traced
    with instrumentor.start_as_current_span("openai.chat", kind=SpanKind.CLIENT, attributes=TRACELOOP_CHAT) as outer:
        with library.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=SEMCONV_CHAT) as inner:
            with library.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={"http.request.method": "POST"}):
                pass
            inner.set_attribute("gen_ai.usage.input_tokens", 12)
            inner.set_attribute("gen_ai.usage.output_tokens", 3)
            inner.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
    spans = exporter.get_finished_spans()
    llm = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(llm) == 1, [(s.name, dict(s.attributes)) for s in spans]
    kept, http = llm[0], next(s for s in spans if s.name == "POST")
    assert kept.context.span_id == outer.get_span_context().span_id
    assert http.parent.span_id == kept.context.span_id  # the HTTP span: a child of the span kept
    assert kept.attributes["gen_ai.usage.input_tokens"] == 12 and kept.attributes["gen_ai.usage.output_tokens"] == 3
    assert kept.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert inner.get_span_context().span_id not in {s.context.span_id for s in spans}


def test_the_outer_span_keeps_its_own_usage(traced):
    library, instrumentor, exporter = traced
    with library.start_as_current_span("chat gpt-4o-mini", attributes=SEMCONV_CHAT) as outer:
        with instrumentor.start_as_current_span("openai.chat", attributes=TRACELOOP_CHAT) as inner:
            inner.set_attribute("gen_ai.usage.input_tokens", 99)
        outer.set_attribute("gen_ai.usage.input_tokens", 12)
    (kept,) = [s for s in exporter.get_finished_spans() if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert kept.attributes["gen_ai.usage.input_tokens"] == 12


@pytest.mark.parametrize("middle", ["invoke_agent", "execute_tool", "step"])
def test_calls_under_an_agent_or_tool_span_are_calls_of_their_own(traced, middle):
    """Look-alikes: two calls under an agent, and a call made by a tool an LLM call asked for."""
    library, instrumentor, exporter = traced
    attrs = {"gen_ai.operation.name": middle} if middle != "step" else {}
    with library.start_as_current_span("chat gpt-4o-mini", attributes=SEMCONV_CHAT):
        with library.start_as_current_span(f"{middle} x", attributes=attrs):
            with instrumentor.start_as_current_span("openai.chat", attributes=TRACELOOP_CHAT):
                pass
            with instrumentor.start_as_current_span("openai.chat", attributes=TRACELOOP_CHAT):
                pass
    llm = [s for s in exporter.get_finished_spans() if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(llm) == 3


def test_sibling_calls_and_an_embedding_after_a_chat_are_all_kept(traced):
    library, instrumentor, exporter = traced
    with library.start_as_current_span("invoke_agent Writer", attributes={"gen_ai.operation.name": "invoke_agent"}):
        for _ in range(2):
            with instrumentor.start_as_current_span("openai.chat", attributes=TRACELOOP_CHAT):
                pass
        with library.start_as_current_span("embeddings text-embedding-3-small",
                                           attributes={"gen_ai.operation.name": "embeddings"}):
            pass
    ops = sorted(s.attributes.get("gen_ai.operation.name") for s in exporter.get_finished_spans())
    assert ops == ["chat", "chat", "embeddings", "invoke_agent"]
