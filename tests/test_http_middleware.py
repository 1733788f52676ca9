"""The server middlewares on real frameworks (Flask/werkzeug, FastAPI/Starlette), in process.

One SERVER span per request, named by the framework's route template (never the path, which
holds ids and user text), the caller's trace continued, streamed bodies passed on chunk by chunk
inside the request's span, failures typed.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace as trace_api

from instrumentation.http import TraceContextASGIMiddleware, TraceContextWSGIMiddleware

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _server(exporter):
    return [s for s in exporter.get_finished_spans() if s.kind == trace_api.SpanKind.SERVER]


def test_flask_stream_is_passed_on_chunk_by_chunk_inside_the_request_span(genai_provider):
    flask = pytest.importorskip("flask")
    provider, exporter = genai_provider
    tracer = provider.get_tracer("app")
    steps: list[str] = []
    app = flask.Flask("streaming")

    @app.get("/chat/<int:conversation>")
    def chat(conversation):
        def tokens():
            for word in ("one", "two", "three"):
                with tracer.start_as_current_span("chat gpt-4o-mini"):  # an LLM call per chunk
                    steps.append(word)
                yield word + "\n"
        return flask.Response(flask.stream_with_context(tokens()), mimetype="text/plain")

    app.wsgi_app = TraceContextWSGIMiddleware(app.wsgi_app, tracer_provider=provider)
    response = app.test_client().get("/chat/42", headers={"traceparent": CALLER}, buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"one\n" and steps == ["one"]  # not collected before the first chunk
    assert not _server(exporter)  # the request is not over while its body streams
    assert b"".join(chunks) == b"two\nthree\n"
    response.close()
    (server,) = _server(exporter)
    assert server.name == "GET /chat/<int:conversation>"
    assert server.attributes["http.route"] == "/chat/<int:conversation>"
    assert server.attributes["url.path"] == "/chat/42"
    assert server.attributes["http.response.status_code"] == 200
    assert format(server.context.trace_id, "032x") == CALLER.split("-")[1]
    llm = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    assert len(llm) == 3 and all(s.parent.span_id == server.context.span_id for s in llm)


def test_flask_failure_and_unmatched_path(genai_provider):
    flask = pytest.importorskip("flask")
    provider, exporter = genai_provider
    app = flask.Flask("failing")

    @app.get("/boom")
    def boom():
        raise RuntimeError("no")

    app.wsgi_app = TraceContextWSGIMiddleware(app.wsgi_app, tracer_provider=provider)
    client = app.test_client()
    for path, status in (("/boom", 500), ("/users/ada/secret question", 404)):
        response = client.get(path)
        assert response.status_code == status
        response.close()  # as a WSGI server does: the request's span ends with its body
    boom_span, missing = _server(exporter)
    assert boom_span.name == "GET /boom" and boom_span.attributes["error.type"] == "500"
    assert boom_span.status.status_code == trace_api.StatusCode.ERROR
    assert missing.name == "GET"  # no route matched: the method alone, never the path


def test_wsgi_app_that_raises_ends_its_span_with_the_error(genai_provider):
    provider, exporter = genai_provider

    def app(environ, start_response):
        raise ValueError("broken app")

    wrapped = TraceContextWSGIMiddleware(app, tracer_provider=provider)
    with pytest.raises(ValueError):
        wrapped({"REQUEST_METHOD": "POST", "PATH_INFO": "/x"}, lambda *a: None)
    (server,) = _server(exporter)
    assert server.name == "POST" and server.attributes["error.type"] == "ValueError"


def test_fastapi_route_template_stream_and_server_error(genai_provider):
    fastapi = pytest.importorskip("fastapi")
    from fastapi.responses import StreamingResponse
    from fastapi.testclient import TestClient

    provider, exporter = genai_provider
    tracer = provider.get_tracer("app")
    app = fastapi.FastAPI()
    app.add_middleware(TraceContextASGIMiddleware, tracer_provider=provider)

    @app.get("/users/{user_id}/chat")
    async def chat(user_id: str):
        async def tokens():
            for word in ("a", "b"):
                with tracer.start_as_current_span("chat gpt-4o-mini"):
                    yield word
        return StreamingResponse(tokens(), media_type="text/plain")

    @app.get("/fail")
    async def fail():
        return fastapi.responses.JSONResponse({"error": "provider"}, status_code=502)

    with TestClient(app) as client:
        assert client.get("/users/ada/chat", headers={"traceparent": CALLER}).text == "ab"
        assert client.get("/fail").status_code == 502
    chat_span, fail_span = _server(exporter)
    assert chat_span.name == "GET /users/{user_id}/chat" and chat_span.attributes["url.path"] == "/users/ada/chat"
    assert format(chat_span.context.trace_id, "032x") == CALLER.split("-")[1]
    llm = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    assert len(llm) == 2 and all(s.parent.span_id == chat_span.context.span_id for s in llm)
    assert fail_span.name == "GET /fail" and fail_span.attributes["error.type"] == "502"

