"""The LiteLLM fast path (instrumentation._litellm_fast) exports the same span as openinference's
wrapper + our processor: same name, kind, status, events, parent and attributes, for a range of
usage shapes, providers, errors, context attributes and an enclosing agent. No timings here
(performance lives in bench/app_overhead.py)."""

from __future__ import annotations

from instrumentation_fixtures import child_env, last_json, run_python  # noqa: F401

_CHILD = r"""
import asyncio, json
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import instrumentation
exp = InMemorySpanExporter()
instrumentation.init("t", exporter=exp, batch=False)
import litellm
from litellm.types.utils import ModelResponse, Usage, Choices, Message
from opentelemetry import trace, baggage, context
from openinference.instrumentation import using_attributes

fast = litellm.completion
slow = fast.__wrapped__          # openinference's wrapper (what the fast path falls back to)
afast = litellm.acompletion
aslow = afast.__wrapped__
assert getattr(fast, "_genai_fast", False) and getattr(afast, "_genai_fast", False)

def resp(usage, model="gpt-4o-mini-2024-07-18", reason="stop"):
    return ModelResponse(id="r-1", model=model, usage=usage,
                         choices=[Choices(index=0, finish_reason=reason,
                                          message=Message(role="assistant", content="secret answer"))])

USAGES = {
    "openai_details": Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120,
                            prompt_tokens_details={"cached_tokens": 64},
                            completion_tokens_details={"reasoning_tokens": 8}),
    "anthropic_cache": Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15,
                             cache_read_input_tokens=300, cache_creation_input_tokens=0),
    "anthropic_write": Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15,
                             cache_read_input_tokens=0, cache_creation_input_tokens=200),
    "plain": Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10),
    "zero": Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
    "none": None,
}
MODELS = ["openai/gpt-4o-mini", "gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022", "ollama/llama3",
          "azure/my-deployment", "deepseek/deepseek-chat", "totally-unknown-model"]
msgs = [{"role": "system", "content": "secret system"}, {"role": "user", "content": "secret prompt"}]

def one(fn, **kw):
    exp.clear()
    try:
        fn(messages=msgs, **kw)
    except Exception as e:
        pass
    return dump()

async def aone(fn, **kw):
    exp.clear()
    await fn(messages=msgs, **kw)
    return dump()

def dump():
    out = []
    for s in exp.get_finished_spans():
        out.append({"name": s.name, "kind": s.kind.name, "scope": s.instrumentation_scope.name,
                    "status": [s.status.status_code.name, s.status.description],
                    "events": [e.name for e in s.events],
                    "parent": s.parent is not None,
                    "attributes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.attributes.items()}})
    return out

cases = []
for model in MODELS:
    for uname, usage in USAGES.items():
        cases.append((f"{model}/{uname}", dict(model=model, mock_response=resp(usage))))
cases.append(("routed_response_model", dict(model="openai/gpt-4o-mini", mock_response=resp(USAGES["plain"], model="openai/gpt-4o-mini"))))
cases.append(("length", dict(model="openai/gpt-4o-mini", mock_response=resp(USAGES["plain"], reason="length"))))
cases.append(("string_mock", dict(model="openai/gpt-4o-mini", mock_response="hello")))
cases.append(("error", dict(model="openai/gpt-4o-mini", mock_response=ValueError("boom"))))
cases.append(("params", dict(model="openai/gpt-4o-mini", temperature=0.2, max_tokens=10, user="u-1",
                             tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                             mock_response=resp(USAGES["plain"]))))

results = {}
for label, kw in cases:
    a, b = one(fast, **kw), one(slow, **kw)
    # string mocks get a fresh id per call
    for spans in (a, b):
        for s in spans:
            if label == "string_mock":
                s["attributes"].pop("gen_ai.response.id", None)
            s["status"][1] = (s["status"][1] or "").split(" - ")[0] if label == "error" else s["status"][1]
    results[label] = [a, b]

# context: baggage attribution, openinference using_attributes, an enclosing agent span
tracer = trace.get_tracer("test")
def in_context(fn):
    ctx = baggage.set_baggage("tenant.id", "acme")
    ctx = baggage.set_baggage("session.id", "s-1", ctx)
    token = context.attach(ctx)
    try:
        with using_attributes(session_id="oi-s", user_id="oi-u", metadata={"k": "v"}, tags=["t1"],
                              prompt_template="secret {x}", prompt_template_variables={"x": "1"}):
            with tracer.start_as_current_span("Researcher.agent", attributes={
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Researcher",
                    "gen_ai.agent.id": "a-1"}):
                return one(fn, model="openai/gpt-4o-mini", mock_response=resp(USAGES["plain"]))
    finally:
        context.detach(token)
results["context"] = [in_context(fast), in_context(slow)]

async def both():
    return [await aone(afast, model="openai/gpt-4o-mini", mock_response=resp(USAGES["openai_details"])),
            await aone(aslow, model="openai/gpt-4o-mini", mock_response=resp(USAGES["openai_details"]))]
results["async"] = asyncio.run(both())
print(json.dumps(results, default=str))
"""


def test_fast_path_exports_the_same_span_as_openinference():
    r = run_python(_CHILD, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    results = last_json(r.stdout)
    assert len(results) > 40
    for label, (fast, slow) in results.items():
        assert fast == slow, label
        if label != "context":
            llm = [s for s in fast if s["scope"] == "openinference.instrumentation.litellm"]
            assert len(llm) == 1, (label, fast)
    # and the spans are what the rest of the project expects
    (span,) = [s for s in results["openai/gpt-4o-mini/openai_details"][0]]
    assert span["name"] == "chat gpt-4o-mini" and span["kind"] == "CLIENT" and span["status"][0] == "OK"
    a = span["attributes"]
    assert a["gen_ai.usage.input_tokens"] == 100 and a["gen_ai.usage.cache_read.input_tokens"] == 64
    assert a["gen_ai.usage.reasoning.output_tokens"] == 8 and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18" and a["gen_ai.request.stream"] is False
    assert "secret" not in str(results)
    ctx = [s for s in results["context"][0] if s["scope"] == "openinference.instrumentation.litellm"][0]
    assert ctx["attributes"]["gen_ai.agent.name"] == "Researcher" and ctx["attributes"]["tenant.id"] == "acme"
    err = results["error"][0][0]
    assert err["status"][0] == "ERROR" and "exception" in err["events"]


def test_fast_path_is_off_when_content_is_captured():
    r = run_python("""
        import json
        import instrumentation
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        instrumentation.init("t", exporter=InMemorySpanExporter(), batch=False)
        import litellm
        print(json.dumps([getattr(litellm.completion, "_genai_fast", False),
                          getattr(litellm.acompletion, "_genai_fast", False)]))
    """, env=child_env(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert last_json(r.stdout) == [False, False]
