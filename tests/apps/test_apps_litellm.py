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



def test_litellm_stream_shapes(app_environment):
    """Streams left early (break, next() then dropped, async break then aclose), a call cancelled by
    asyncio.wait_for, a streamed tool call, n=2 and text_completion: the app's output is unchanged and
    every call is one span in a trace of its own. A stream left early still cost its prompt and what
    was generated: its span carries those counts, estimated, and is priced as an estimate (it was
    unpriced, "missing_token_counts"); the cancelled call is an error with its error.type."""
    run = run_app(app_environment, "litellm_stream_shapes.py")
    run.check(requests=7, llm_calls=7)
    spans = run.llm_spans()
    left = [s for s in spans if s["SpanAttributes"].get(semconv.STREAM_ABANDONED) == "true"]
    assert len(left) == 3, run.describe()
    for s in left:
        a = s["SpanAttributes"]
        assert a[semconv.USAGE_ESTIMATED] == "true" and int(a["gen_ai.usage.input_tokens"]) > 0, a
        assert float(a[semconv.COST_USD]) > 0, a
    # what the app received is counted: the loop that broke after four chunks read some text
    assert max(int(s["SpanAttributes"]["gen_ai.usage.output_tokens"]) for s in left) > 0, run.describe()
    finished = [s for s in spans if s not in left and s["StatusCode"] != "Error"]
    assert len(finished) == 3 and all(float(s["SpanAttributes"][semconv.COST_USD]) > 0 for s in finished), run.describe()
    assert all(s["SpanAttributes"].get(semconv.USAGE_ESTIMATED) != "true" for s in finished), run.describe()
    cancelled = [s for s in spans if s["StatusCode"] == "Error"]
    assert len(cancelled) == 1, run.describe()
    assert cancelled[0]["SpanAttributes"]["error.type"].endswith("CancelledError"), cancelled[0]["SpanAttributes"]


def test_litellm_concurrency_inside_request_spans(app_environment):
    """batch_completion (LiteLLM's thread pool), Router fallbacks (a failed deployment, then the
    backup), asyncio.to_thread: each request is one trace under the app's span, with one LLM span per
    provider call; the failed deployment's call is an error with its error.type, and is not priced."""
    run = run_app(app_environment, "litellm_concurrency.py")
    run.check(requests=4)
    roots = sorted(next(s for s in spans if not s["ParentSpanId"])["SpanName"] for spans in run.traces().values())
    assert roots == ["request async fallback", "request batch", "request fallback", "request to_thread"], roots
    failed = [s for s in run.llm_spans() if s["StatusCode"] == "Error"]
    assert len(failed) == 2 and all(s["SpanAttributes"].get("error.type") for s in failed), run.describe()


def test_litellm_stream_kept_open_until_exit(app_environment):
    """A stream still open when the script ends: its span is ended before the exporters flush
    (instrumentation.unfinished.end_open at exit), estimated and marked as left, and nothing is
    printed about it (no second end of the span)."""
    run = run_app(app_environment, "litellm_stream_kept_open.py")
    run.check(requests=1, llm_calls=1)
    (span,) = run.llm_spans()
    a = span["SpanAttributes"]
    assert a[semconv.STREAM_ABANDONED] == "true" and a[semconv.USAGE_ESTIMATED] == "true", a
    assert float(a[semconv.COST_USD]) > 0, a
    assert "ended span" not in run.instrumented.stderr, run.instrumented.stderr[-2000:]


def test_litellm_more_call_shapes(app_environment):
    """A streamed tool call to an Anthropic-shaped provider and its follow-up, a structured output,
    aembedding, atext_completion, a stream whose app asks for usage (it gets the chunk) and one
    that does not (it gets no extra chunk, yet the call is priced from the provider's usage)."""
    run = run_app(app_environment, "litellm_more.py")
    run.check(requests=7, llm_calls=7)
    estimated = [s for s in run.llm_spans() if s["SpanAttributes"].get("genaitrace.usage.estimated") == "true"]
    assert not estimated, run.describe()
