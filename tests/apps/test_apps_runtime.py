"""The app matrix: threads, asyncio, processes, an ASGI service stopped with SIGTERM or SIGINT, the
OpenAI and Anthropic SDKs."""

from __future__ import annotations

import pytest

import semconv
from apps.harness import run_app


def _server_spans(run):
    return [s for s in run.spans if s["SpanKind"] in ("Server", "SPAN_KIND_SERVER")]


def test_threads_asyncio_and_processes(app_environment):
    """Thread, thread pool, asyncio.gather, multiprocessing fork and spawn, os.fork + os._exit and a
    ProcessPoolExecutor, each under one request span: the children's LLM spans are exported (flushed
    before os._exit) and parented in the request's trace."""
    run = run_app(app_environment, "processes.py", timeout=1800, settle_s=3)
    run.check(requests=7, llm_calls=10)
    by_id = {s["SpanId"]: s for s in run.spans}
    for s in run.llm_spans():
        root = s
        while root["ParentSpanId"]:
            root = by_id[root["ParentSpanId"]]
        assert root["SpanName"].startswith("request "), run.describe()


@pytest.mark.parametrize("stop", ["TERM", "INT"])
def test_asgi_service_one_server_span_and_flush_when_stopped(app_environment, stop):
    """Starlette under uvicorn with the README's middleware: one SERVER span per request, the client's
    trace continued, and the service's last spans exported although it was stopped with SIGTERM (an
    orchestrator) or SIGINT (Ctrl-C); it exits as it does uninstrumented."""
    run = run_app(app_environment, "asgi_service.py", stop, timeout=600, settle_s=3)
    run.check(requests=3, llm_calls=3)
    servers = _server_spans(run)
    assert len(servers) == 3, run.describe()
    assert len({s["TraceId"] for s in servers}) == 3
    if stop == "TERM":  # uvicorn re-raises SIGTERM after its graceful shutdown; SIGINT ends it with 0
        assert "server exit: -15" in run.instrumented.stdout


def test_openai_sdk_direct(app_environment):
    """The OpenAI SDK without LiteLLM: one LLM span per call with its HTTP client span as a child; a
    stream the app did not ask usage for still has exact usage, and the app sees no extra chunk."""
    run = run_app(app_environment, "openai_sdk.py")
    run.check(requests=6, llm_calls=6)
    streamed = [s for s in run.llm_spans() if s["StatusCode"] != "Error"]
    for s in streamed:
        assert int(s["SpanAttributes"].get("gen_ai.usage.output_tokens", 0)) > 0, (s["SpanName"], s["SpanAttributes"])
    llm_ids = {s["SpanId"] for s in run.llm_spans()}
    http = [s for s in run.spans if s["SpanKind"] in ("Client", "SPAN_KIND_CLIENT") and s["SpanId"] not in llm_ids]
    assert all(s["ParentSpanId"] in llm_ids for s in http), run.describe()


def test_fastapi_service_one_server_span_per_request(app_environment):
    """FastAPI with `app.add_middleware(TraceContextASGIMiddleware)`: one SERVER span per request, the
    failed provider call typed (error.type) under it, and the last spans flushed on SIGTERM."""
    run = run_app(app_environment, "fastapi_service.py", timeout=600, settle_s=3)
    run.check(requests=3, llm_calls=3)
    servers = _server_spans(run)
    assert len(servers) == 3 and len({s["TraceId"] for s in servers}) == 3, run.describe()
    failed = [s for s in run.llm_spans() if s["StatusCode"] in ("Error", "STATUS_CODE_ERROR")]
    assert len(failed) == 1 and failed[0]["SpanAttributes"]["error.type"].endswith("Error"), run.describe()


def test_anthropic_sdk_direct(app_environment):
    """The Anthropic SDK (2.x, which traces itself): one LLM span per call, its HTTP span a child of it,
    and a stream's output tokens exactly what the provider reported in message_delta."""
    run = run_app(app_environment, "anthropic_sdk.py")
    run.check(requests=4, llm_calls=4)
    llm_ids = {s["SpanId"] for s in run.llm_spans()}
    http = [s for s in run.spans if s["SpanId"] not in llm_ids]
    assert http and all(s["ParentSpanId"] in llm_ids for s in http), run.describe()
    outputs = sorted(int(s["SpanAttributes"]["gen_ai.usage.output_tokens"]) for s in run.llm_spans())
    assert len(set(outputs)) == 1, outputs  # same answer, same count, streamed or not



def test_openai_sdk_helpers_and_responses_api(app_environment):
    """The OpenAI SDK's other call shapes (the streaming helper, raw and streaming responses,
    structured-output parsing, tools, embeddings) and the Responses API (plain, typed-event stream,
    its helper, async, a failure) work unchanged: one LLM span per call, priced, each the parent of
    its HTTP span, no content exported."""
    run = run_app(app_environment, "openai_sdk_helpers.py")
    run.check(requests=15, llm_calls=15)
    for span in run.llm_spans():
        if span["StatusCode"] != "Error":
            assert int(span["SpanAttributes"].get("gen_ai.usage.input_tokens", 0)) > 0, (span["SpanName"], span["SpanAttributes"])


def test_provider_sdk_streams_left_early(app_environment):
    """Anthropic's stream helper and raw event stream, and an OpenAI SDK stream, each left early and
    the OpenAI one closed but kept until the script ends. The OpenAI call's span was lost (traceloop
    ends it only when the stream is collected, after the exporters shut down): it is exported now,
    marked `genaitrace.stream.abandoned`, unpriced with reason `stream_abandoned`. The Anthropic
    SDK's own spans keep the input tokens the provider reported first (message_start) and no output
    tokens: priced on the input, and marked estimated (a lower bound, never the call's reported cost)."""
    run = run_app(app_environment, "sdk_streams_left_early.py")
    run.check(requests=3, llm_calls=3)
    by_provider = {}
    for s in run.llm_spans():
        by_provider.setdefault(s["SpanAttributes"]["gen_ai.provider.name"], []).append(s["SpanAttributes"])
    (openai_call,) = by_provider["openai"]
    assert openai_call[semconv.STREAM_ABANDONED] == "true", openai_call
    assert openai_call[semconv.COST_UNPRICED_REASON] == "stream_abandoned", openai_call
    assert len(by_provider["anthropic"]) == 2
    assert all(int(a["gen_ai.usage.input_tokens"]) > 0 for a in by_provider["anthropic"]), by_provider
    for call in by_provider["anthropic"]:
        assert "gen_ai.usage.output_tokens" not in call, call
        assert call[semconv.COST_STATUS] == "priced" and call[semconv.USAGE_ESTIMATED] == "true", call
        assert float(call["gen_ai.usage.cost_usd"]) > 0


def test_multiprocessing_pools(app_environment):
    """multiprocessing.Pool (fork and spawn, left with `with`, which SIGTERMs its workers; spawn,
    closed and joined; fork, made before the requests) and ThreadPool: each worker's LLM span is
    in its request's trace."""
    run = run_app(app_environment, "process_pools.py", timeout=600)
    run.check(requests=6, llm_calls=10)


def test_anthropic_sdk_other_calls(app_environment):
    """The Anthropic SDK's async streaming helper, a tool-use loop in the app's request span, a raw
    response, an async raw stream, a 429 and token counting: one LLM span per generation (token
    counting is a request to the provider, not a generation), each HTTP span under its LLM span,
    the failure typed, no content."""
    run = run_app(app_environment, "anthropic_sdk_more.py")
    counts = [r for r in run.provider_requests if r.get("path", "").endswith("/count_tokens")]
    assert len(counts) == 1
    run.check(requests=6, llm_calls=len(run.provider_requests) - 1)
    failed = [s for s in run.llm_spans() if s["StatusCode"] in ("Error", "STATUS_CODE_ERROR")]
    assert len(failed) == 1 and failed[0]["SpanAttributes"]["error.type"], run.describe()
