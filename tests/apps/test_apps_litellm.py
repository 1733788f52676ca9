"""The app matrix, LiteLLM: every way users call it, under opentelemetry-instrument with env vars only."""

from __future__ import annotations

from apps.harness import run_app


def test_litellm_sync(app_environment):
    run = run_app(app_environment, "litellm_sync.py")
    run.check(requests=4, llm_calls=4)


def test_litellm_async(app_environment):
    run = run_app(app_environment, "litellm_async.py")
    run.check(requests=5, llm_calls=5)


def test_litellm_providers_and_router(app_environment):
    """OpenAI-, Anthropic- and Mistral-shaped providers, streamed and not, and a Router: streams give
    the app the same chunks as uninstrumented, and their usage is the provider's (not estimated)."""
    run = run_app(app_environment, "litellm_providers.py")
    run.check(requests=9, llm_calls=9)
    streamed = [s for s in run.llm_spans() if s["SpanAttributes"].get("gen_ai.request.stream") == "true"]
    assert len(streamed) == 4, run.describe()
    for s in streamed:
        a = s["SpanAttributes"]
        assert int(a["gen_ai.usage.output_tokens"]) > 0 and int(a["gen_ai.usage.input_tokens"]) > 0, a
        assert a.get("genaitrace.usage.estimated") == "false", a
    # the app never asked for usage: the fake providers were asked only where the provider takes it
    assert all(not (r["body"].get("stream_options") or {}).get("include_usage")
               for r in run.provider_requests if "/messages" in r["path"])
