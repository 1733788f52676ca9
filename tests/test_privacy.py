"""The privacy gate (instrumentation/privacy.py, last step of GenAISpanProcessor).

Spans shaped like every dialect the instrumentors write (OpenInference, traceloop, traceloop's
CrewAI, the GenAI semconv, this project's CrewAI spans) carry a canary in every kind of
content: messages, system instructions, task text, agent goal and backstory, tool input and
output, embedding input, keys no instrumentor has yet, span names, events, links, the resource
and error messages. They leave through the real OTLP/HTTP exporter; every byte it sends is
scanned. The CrewAI and LiteLLM apps under tests/apps/ make the same scan end to end.
"""

from __future__ import annotations

import pytest

from support.sinks import HttpSink

CANARY = "zqprivacy"


@pytest.fixture
def raw_receiver():
    with HttpSink() as sink:
        yield sink


def _c(kind: str) -> str:
    return f"{CANARY}-{kind}"


OPENINFERENCE_LLM = {
    "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
    "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": _c("system"),
    "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": _c("prompt"),
    "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": _c("completion"),
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": _c("tool-args"),
    "input.value": _c("input-value"), "output.value": _c("output-value"), "input.mime_type": "application/json",
    "llm.invocation_parameters": '{"user": "%s"}' % _c("params"),
    "llm.prompt_template.template": _c("template"), "llm.prompt_template.variables": _c("variables"),
    "llm.tools.0.tool.json_schema": _c("tool-schema"), "metadata": _c("metadata"), "tag.tags": [_c("tag")],
    "llm.token_count.prompt": 12, "llm.token_count.completion": 5,
}
OPENINFERENCE_EMBEDDING = {
    "openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
    "embedding.embeddings.0.embedding.text": _c("embedding-input"),
    "embedding.embeddings.0.embedding.vector": [0.1, 0.2],
}
TRACELOOP_LLM = {
    "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini", "llm.request.type": "chat",
    "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": _c("tl-prompt"),
    "gen_ai.completion.0.content": _c("tl-completion"),
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"%s"}]}]' % _c("semconv-in"),
    "gen_ai.output.messages": _c("semconv-out"), "gen_ai.system_instructions": _c("system-instructions"),
    "gen_ai.tool.definitions": _c("tool-definitions"), "llm.request.functions.0.description": _c("functions"),
    "gen_ai.request.structured_output_schema": _c("schema"), "gen_ai.future.prompt_text": _c("unknown-key"),
    "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 3,
}
TRACELOOP_CREW = {
    "gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent", "crewai.crew.name": "crew",
    "crewai.crew.tasks": '[{"description": "%s", "expected_output": "%s"}]' % (_c("crew-tasks"), _c("crew-exp")),
    "crewai.crew.agents": '[{"role": "R", "goal": "%s", "backstory": "%s"}]' % (_c("crew-goal"), _c("crew-bs")),
    "crewai.crew.result": _c("crew-result"),
}
TRACELOOP_TASK = {
    "gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent", "traceloop.span.kind": "task",
    "crewai.task.description": _c("task-description"), "crewai.task.expected_output": _c("expected-output"),
    "crewai.task.id": "t-1", "traceloop.entity.output": _c("task-output"),
}
TRACELOOP_AGENT = {
    "gen_ai.provider.name": "crewai", "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Researcher",
    "crewai.agent.goal": _c("goal"), "crewai.agent.backstory": _c("backstory"), "crewai.agent.role": "Researcher",
    "crewai.agent.future_field": _c("unknown-crewai"),
}
PROJECT_TOOL = {
    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", "gen_ai.tool.type": "function",
    "gen_ai.tool.description": _c("tool-description"),
    "gen_ai.tool.call.arguments": _c("tool-input"), "gen_ai.tool.call.result": _c("tool-output"),
}
APP_OWN = {"tenant.id": "acme", "http.request.method": "POST", "app.step": 3}


def _emit(capture: str, endpoint: str) -> None:
    """One span of each shape through a provider with the GenAI processor and the OTLP/HTTP exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Link, Status, StatusCode

    from instrumentation.bootstrap import install_processor

    provider = TracerProvider(resource=Resource.create({"service.name": "privacy",
                                                        "llm.prompts": _c("resource"), "deployment.env": "t"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    install_processor(provider, capture=capture)
    oi = provider.get_tracer("openinference.instrumentation.litellm")
    tl = provider.get_tracer("opentelemetry.instrumentation.openai.v1")
    crew = provider.get_tracer("opentelemetry.instrumentation.crewai")
    ours = provider.get_tracer("instrumentation.genai")
    with crew.start_as_current_span("crewai.workflow", attributes=TRACELOOP_CREW) as root:
        root.set_attributes(APP_OWN)
        with crew.start_as_current_span(f"Research {_c('span-name')} thoroughly.task", attributes=TRACELOOP_TASK):
            with crew.start_as_current_span("Researcher.agent", attributes=TRACELOOP_AGENT) as agent:
                agent.add_event("gen_ai.content.prompt", {"gen_ai.prompt": _c("event-prompt")})
                agent.add_event("checkpoint", {"gen_ai.prompt": _c("event-attr"), "step": 1})
                with oi.start_as_current_span("completion", attributes=OPENINFERENCE_LLM):
                    pass
                with oi.start_as_current_span("embedding", attributes=OPENINFERENCE_EMBEDDING):
                    pass
                with tl.start_as_current_span("openai.chat", attributes=TRACELOOP_LLM,
                                              links=[Link(root.get_span_context(),
                                                          {"gen_ai.prompt": _c("link"), "link.kind": "x"})]):
                    pass
                with ours.start_as_current_span("execute_tool lookup", attributes=PROJECT_TOOL) as tool:
                    try:
                        raise ValueError(f"cannot handle {_c('error-message')}")
                    except ValueError as exc:
                        tool.record_exception(exc)
                        tool.set_status(Status(StatusCode.ERROR, f"ValueError: {exc}"))
                        tool.set_attribute("error.type", "ValueError")
    provider.shutdown()


def _spans(bodies: list[bytes]) -> list[dict]:
    from instrumentation.otlp_capture import spans_from_request

    return [s for body in bodies for s in spans_from_request(body, "application/x-protobuf")]


def test_capture_off_no_canary_in_any_exported_byte(raw_receiver, monkeypatch):
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    endpoint = raw_receiver.url
    _emit("NO_CONTENT", endpoint)
    bodies = raw_receiver.bodies
    assert bodies and all(CANARY.encode() not in body for body in bodies), [
        body[max(0, body.find(CANARY.encode()) - 80): body.find(CANARY.encode()) + 40] for body in bodies
        if CANARY.encode() in body]
    spans = {s["name"]: s for s in _spans(bodies)}
    # what is kept: names chosen in code, models, token counts, identifiers, the app's own attributes
    assert set(spans) >= {"invoke_workflow crew", "execute_task task", "invoke_agent Researcher",
                          "chat gpt-4o-mini", "embeddings text-embedding-3-small", "execute_tool lookup"}, set(spans)
    root = spans["invoke_workflow crew"]
    assert {k: root["attributes"][k] for k in APP_OWN} == APP_OWN
    llm = spans["chat gpt-4o-mini"]
    assert llm["attributes"]["gen_ai.usage.input_tokens"] in (12, 9)
    assert spans["invoke_agent Researcher"]["attributes"]["gen_ai.agent.name"] == "Researcher"
    tool = spans["execute_tool lookup"]
    assert tool["status"] == "ERROR" and tool["attributes"]["error.type"] == "ValueError"
    assert root["resource"]["service.name"] == "privacy" and root["resource"]["deployment.env"] == "t"


def test_capture_on_keeps_content_capped(raw_receiver, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("GENAITRACE_CAPTURE_MAX_CHARS", "40")
    endpoint = raw_receiver.url
    _emit("SPAN_ONLY", endpoint)
    exported = _spans(raw_receiver.bodies)
    spans = {s["name"]: s for s in exported}
    llm = next(s["attributes"] for s in exported if s["scope"].startswith("openinference"))
    assert llm["gen_ai.output.messages"].startswith('[{"role": "assistant"')
    assert len(llm["gen_ai.input.messages"]) == 40 + len("…[truncated]")  # capped
    tool = spans["execute_tool lookup"]["attributes"]
    assert tool["gen_ai.tool.call.arguments"] == _c("tool-input")
    agent = spans["invoke_agent Researcher"]["attributes"]
    assert agent["crewai.agent.goal"] == _c("goal")


def test_capture_caps(monkeypatch):
    from instrumentation import privacy

    monkeypatch.setenv(privacy.CAPTURE_MAX_CHARS_ENV, "10")
    monkeypatch.setenv(privacy.CAPTURE_MAX_SPAN_CHARS_ENV, "15")
    out = privacy.cap_content({"gen_ai.input.messages": "x" * 50, "gen_ai.output.messages": "y" * 50,
                               "gen_ai.system_instructions": "z" * 50, "gen_ai.request.model": "m" * 50})
    assert out["gen_ai.input.messages"] == "x" * 10 + privacy.TRUNCATED_SUFFIX
    assert out["gen_ai.output.messages"] == "y" * 5 + privacy.TRUNCATED_SUFFIX
    assert "gen_ai.system_instructions" not in out  # the span's content budget is spent
    assert out["gen_ai.request.model"] == "m" * 50  # not content: never capped


def test_allow_list_drops_unknown_keys_of_instrumentor_namespaces_only():
    from instrumentation import privacy

    attrs = {"gen_ai.request.model": "m", "gen_ai.brand_new_text": "t", "gen_ai.request.brand_new_number": 0.5,
             "crewai.agent.new_text": "t", "llm.new_text": "t", "input.value": "t", "tenant.id": "acme",
             "url.full": "http://x/y", "gen_ai.usage.cost.unpriced_reason": "unknown_model",
             "gen_ai.request.stream": True}
    assert privacy.filter_attributes(attrs) == {
        "gen_ai.request.model": "m", "gen_ai.request.brand_new_number": 0.5, "tenant.id": "acme",
        "url.full": "http://x/y", "gen_ai.usage.cost.unpriced_reason": "unknown_model", "gen_ai.request.stream": True}


def test_stacktrace_keeps_frames_and_types_not_messages():
    from instrumentation import privacy

    trace = ('Traceback (most recent call last):\n  File "app.py", line 3, in run\n    tool(q)\n'
             'ValueError: cannot handle secret-input\nmore secret lines\n\n'
             'During handling of the above exception, another exception occurred:\n\n'
             'Traceback (most recent call last):\n  File "app.py", line 5, in <module>\n'
             'crewai.errors.ToolError: bad secret-input\n'
             'pydantic_core._pydantic_core.ValidationError: 1 validation error\n'
             "  Input should be a valid integer [type=int_parsing, input_value='secret-input', input_type=str]")
    scrubbed = privacy.scrub_stacktrace(trace)
    assert "secret" not in scrubbed
    assert 'File "app.py", line 3, in run' in scrubbed and "    tool(q)" in scrubbed
    assert "\nValueError\n" in scrubbed and "crewai.errors.ToolError" in scrubbed
