"""The app matrix, WSGI: a Flask app with the README's middleware, under gunicorn (pre-fork, sync
workers) and under Flask's own threaded server, run with opentelemetry-instrument and env vars only."""

from __future__ import annotations

import pytest

from apps.harness import run_app

SERVER_KINDS = ("Server", "SPAN_KIND_SERVER")


def _under(span, by_id) -> list[dict]:
    """The span and its ancestors, nearest first."""
    chain = [span]
    while chain[-1]["ParentSpanId"] in by_id:
        chain.append(by_id[chain[-1]["ParentSpanId"]])
    return chain


@pytest.mark.parametrize("server", ["gunicorn", "gunicorn-preload-gthread", "flask"])
def test_flask_service(app_environment, server):
    """One trace per request with one SERVER span; the LLM call's span under it; the tenant of the
    request's `baggage` header on the server span and every span below it; the failed provider call
    typed; no content. Under gunicorn the spans are the workers' (forked from the instrumented
    master), the last of them still in a worker's batch queue when the graceful stop began: they
    are exported as the worker exits. Under Flask's server, on the SIGTERM that ends it."""
    run = run_app(app_environment, "flask_service.py", server, timeout=600, settle_s=3)
    run.check(requests=4, llm_calls=4)
    expected_exit = "server exit: 0" if server.startswith("gunicorn") else "server exit: -15"
    assert expected_exit in run.instrumented.stdout, run.instrumented.stdout
    by_id = {s["SpanId"]: s for s in run.spans}
    servers = [s for s in run.spans if s["SpanKind"] in SERVER_KINDS]
    assert len(servers) == 4 and len({s["TraceId"] for s in servers}) == 4, run.describe()
    tenants = {s["SpanId"]: s["SpanAttributes"].get("tenant.id") for s in servers}
    assert sorted(tenants.values()) == [f"tenant-{i}" for i in range(4)], tenants
    below_server = 0
    for s in run.spans:
        chain = _under(s, by_id)
        server_span = next((c for c in chain if c["SpanKind"] in SERVER_KINDS), None)
        if server_span is None:
            continue  # the client's own span, above the server
        below_server += 1
        assert s["SpanAttributes"].get("tenant.id") == tenants[server_span["SpanId"]], (s["SpanName"], run.describe())
    assert below_server >= 8, run.describe()  # at least the server span and the LLM span of each request
    for llm in run.llm_spans():
        assert any(c["SpanKind"] in SERVER_KINDS for c in _under(llm, by_id)), run.describe()
    failed = [s for s in run.llm_spans() if s["StatusCode"] in ("Error", "STATUS_CODE_ERROR")]
    assert len(failed) == 1 and failed[0]["SpanAttributes"]["error.type"], run.describe()


def test_streaming_services(app_environment):
    """Streamed answers (FastAPI's server-sent events, Flask's streamed body under gunicorn), a
    stream the client leaves early, a sync endpoint and a background task: one trace per request
    under one SERVER span named by its route template (the paths hold ids and user text), every
    LLM call under its request, the streams' spans ended with the response, no content."""
    run = run_app(app_environment, "streaming_services.py", timeout=600, settle_s=3)
    run.check(requests=5, llm_calls=5)
    servers = sorted(s["SpanName"] for s in run.spans if s["SpanKind"] in SERVER_KINDS)
    assert servers == ["GET /items/{item}/summary", "GET /stream/<int:doc>", "POST /chat/{conversation}/stream",
                       "POST /chat/{conversation}/stream", "POST /notes/{note}"], run.describe()
    by_id = {s["SpanId"]: s for s in run.spans}
    for llm in run.llm_spans():
        assert any(s["SpanKind"] in SERVER_KINDS for s in _under(llm, by_id)), run.describe()


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_asgi_worker_processes(app_environment, server):
    """FastAPI under `uvicorn --workers 2` (spawned workers) and gunicorn's UvicornWorker (pre-fork):
    every request one trace with one SERVER span and its LLM call, exported by the worker that
    served it, also the last ones, when SIGTERM stops the server."""
    run = run_app(app_environment, "uvicorn_workers.py", server, timeout=600, settle_s=3)
    run.check(requests=4, llm_calls=4)
    servers = [s for s in run.spans if s["SpanKind"] in SERVER_KINDS]
    assert len(servers) == 4 and {s["SpanName"] for s in servers} == {"GET /ask/{topic}"}, run.describe()
