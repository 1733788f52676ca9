"""The app matrix, LiteLLM: every way users call it, under opentelemetry-instrument with env vars only."""

from __future__ import annotations

import semconv
from apps.harness import run_app


def test_litellm_sync(app_environment):
    run = run_app(app_environment, "litellm_sync.py")
    run.check(requests=6, llm_calls=6)


def test_litellm_async(app_environment):
    run = run_app(app_environment, "litellm_async.py")
    run.check(requests=6, llm_calls=6)


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


def test_litellm_provider_without_usage_is_estimated(app_environment):
    """A provider that reports no usage, streamed or not: LiteLLM hands the app 0 tokens for a
    non-streamed call; the span carries LiteLLM's tokenizer counts instead, marked estimated, and the
    collector prices them as estimates (genai_calls.usage_estimated), never as a $0 call."""
    run = run_app(app_environment, "litellm_no_usage.py")
    run.check(requests=4, llm_calls=4)
    assert "usage: 0 0" in run.instrumented.stdout  # what LiteLLM gives the app, instrumented or not
    for s in run.llm_spans():
        a = s["SpanAttributes"]
        assert a.get("genaitrace.usage.estimated") == "true", (s["SpanName"], a)
        assert int(a["gen_ai.usage.input_tokens"]) > 0, a
        if a["gen_ai.operation.name"] == "chat":
            assert int(a["gen_ai.usage.output_tokens"]) > 0, a
        assert float(a[semconv.COST_USD]) > 0, a
    calls = app_environment.collector.query(
        f"SELECT usage_estimated, cost_usd FROM otel.genai_calls WHERE ServiceName = '{run.service}'")
    assert len(calls) == 4 and all(c["usage_estimated"] in (1, True) and c["cost_usd"] > 0 for c in calls), calls

