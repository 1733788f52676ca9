"""Server-side W3C trace context for HTTP services (no extra instrumentation package needed).

Clients: ``requests`` and ``httpx`` are instrumented by ``instrumentation.init()``
(they inject ``traceparent``/``tracestate``/``baggage``). Servers: wrap the app.

    app = TraceContextASGIMiddleware(app)          # Starlette / FastAPI / any ASGI app
    app = TraceContextWSGIMiddleware(app)          # Flask / Django / any WSGI app
    with server_span("POST /research", handler.headers): ...   # http.server & co.

Each request becomes a SERVER span continuing the caller's trace, with the caller's
baggage (tenant, session, ...) attached for everything the handler does. Exactly one: when
another instrumentation (opentelemetry-instrumentation-asgi/fastapi/flask...) already made
the request's SERVER span, the middlewares add none (whichever order they were installed in).
Either way of installing them works: ``app = TraceContextASGIMiddleware(app)`` or
``app.add_middleware(TraceContextASGIMiddleware)``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api

from instrumentation.baggage import extract

_TRACER = "instrumentation.http"


@contextlib.contextmanager
def server_span(name: str, headers: Mapping[str, Any] | Any, attributes: Mapping[str, Any] | None = None
                ) -> Iterator[trace_api.Span]:
    """A SERVER span that continues the trace carried by ``headers`` (any mapping or Message)."""
    try:
        carrier = {str(k).lower(): v for k, v in (headers.items() if hasattr(headers, "items") else headers)}
    except Exception:
        carrier = {}
    token = context_api.attach(extract(carrier))
    try:
        tracer = trace_api.get_tracer(_TRACER)
        with tracer.start_as_current_span(name, kind=trace_api.SpanKind.SERVER,
                                          attributes=dict(attributes or {})) as span:
            yield span
    finally:
        context_api.detach(token)


def _in_server_span() -> bool:
    """A SERVER span of this process is current: another instrumentation got to the request first."""
    span = trace_api.get_current_span()
    return span.get_span_context().is_valid and getattr(span, "kind", None) == trace_api.SpanKind.SERVER


class TraceContextASGIMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or _in_server_span():
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        with server_span(f"{method} {path}", headers,
                         {"http.request.method": method, "url.path": path}) as span:
            async def _send(message):
                if message.get("type") == "http.response.start":
                    status = int(message.get("status", 0))
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(trace_api.Status(trace_api.StatusCode.ERROR))
                await send(message)

            return await self.app(scope, receive, _send)


class TraceContextWSGIMiddleware:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if _in_server_span():
            return self.app(environ, start_response)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        with server_span(f"{method} {path}", headers, {"http.request.method": method, "url.path": path}) as span:
            def _start(status, response_headers, exc_info=None):
                try:
                    code = int(str(status).split(" ", 1)[0])
                    span.set_attribute("http.response.status_code", code)
                except ValueError:
                    pass
                return start_response(status, response_headers, exc_info)

            return list(self.app(environ, _start))
