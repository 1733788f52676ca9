"""Server-side W3C trace context for HTTP services (no extra instrumentation package needed).

Clients: ``requests`` and ``httpx`` are instrumented by ``instrumentation.init()``
(they inject ``traceparent``/``tracestate``/``baggage``). Servers: wrap the app.

    app = TraceContextASGIMiddleware(app)          # Starlette / FastAPI / any ASGI app
    app = TraceContextWSGIMiddleware(app)          # Flask / Django / any WSGI app
    with server_span("POST /research", handler.headers): ...   # http.server & co.

Each request becomes a SERVER span continuing the caller's trace, with the caller's
baggage (tenant, session, ...) attached for everything the handler does. It is named
``{method} {route}`` by the framework's matched route template (Starlette/FastAPI, Flask), else
``{method}``; never by the path, which can hold ids and user text. Exactly one: when
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
def server_span(name: str, headers: Mapping[str, Any] | Any, attributes: Mapping[str, Any] | None = None,
                tracer_provider: trace_api.TracerProvider | None = None) -> Iterator[trace_api.Span]:
    """A SERVER span that continues the trace carried by ``headers`` (any mapping or Message)."""
    token = context_api.attach(extract(_carrier(headers)))
    try:
        tracer = trace_api.get_tracer(_TRACER, tracer_provider=tracer_provider)
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
    def __init__(self, app, tracer_provider: trace_api.TracerProvider | None = None):
        self.app = app
        self._provider = tracer_provider  # None: the global one, whenever it is set

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or _in_server_span():
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        with server_span(method, headers, {"http.request.method": method, "url.path": path},
                         self._provider) as span:
            async def _send(message):
                if message.get("type") == "http.response.start":
                    _set_status(span, message.get("status", 0))
                await send(message)

            try:
                return await self.app(scope, receive, _send)
            finally:
                _name_by_route(span, method, _asgi_route(scope))


class TraceContextWSGIMiddleware:
    """The span lasts until the server closes the response body: a streamed body (a generator,
    Flask's ``stream_with_context``) is iterated inside the request's span and context, and is
    passed on chunk by chunk, never collected first."""

    def __init__(self, app, tracer_provider: trace_api.TracerProvider | None = None):
        self.app = app
        self._provider = tracer_provider  # None: the global one, whenever it is set

    def __call__(self, environ, start_response):
        if _in_server_span():
            return self.app(environ, start_response)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        parent = extract(_carrier(headers))
        span = trace_api.get_tracer(_TRACER, tracer_provider=self._provider).start_span(
            method, context=parent, kind=trace_api.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path})
        request_context = trace_api.set_span_in_context(span, parent)

        route: list[str | None] = [None]

        def _start(status, response_headers, exc_info=None):
            try:  # the framework's request is still in the environ here (Flask clears it afterwards)
                route[0] = _wsgi_route(environ)
                _set_status(span, str(status).split(" ", 1)[0])
            except Exception:
                pass
            return start_response(status, response_headers, exc_info)

        def _end(exc: BaseException | None = None) -> None:
            if exc is not None:
                span.record_exception(exc)
                # the type only: an app's exception message can quote the request
                span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, type(exc).__qualname__))
                span.set_attribute("error.type", type(exc).__qualname__)
            _name_by_route(span, method, route[0] or _wsgi_route(environ))
            span.end()

        try:
            with _attached(request_context):
                body = self.app(environ, _start)
        except BaseException as exc:
            _end(exc)
            raise
        return _ResponseBody(body, request_context, _end)


class _ResponseBody:
    """A WSGI body iterated in the request's context; the request's span ends when it is closed."""

    def __init__(self, body, request_context, end):
        self._body, self._context, self._end = body, request_context, end
        self._iterator = None
        self._ended = False

    def __iter__(self):
        return self

    def __next__(self):
        with _attached(self._context):
            try:
                if self._iterator is None:
                    self._iterator = iter(self._body)
                return next(self._iterator)
            except StopIteration:
                raise
            except BaseException as exc:
                self._finish(exc)
                raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                with _attached(self._context):
                    close()
        finally:
            self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._end(exc)

    def __del__(self):  # a server that never calls close() (against PEP 3333) still ends the span
        if not self._ended:
            try:
                self._finish(None)
            except Exception:
                pass


@contextlib.contextmanager
def _attached(ctx):
    token = context_api.attach(ctx)
    try:
        yield
    finally:
        context_api.detach(token)


def _carrier(headers) -> dict:
    try:
        return {str(k).lower(): v for k, v in (headers.items() if hasattr(headers, "items") else headers)}
    except Exception:
        return {}


def _set_status(span, status) -> None:
    code = int(status)
    span.set_attribute("http.response.status_code", code)
    if code >= 500:
        span.set_status(trace_api.Status(trace_api.StatusCode.ERROR))
        span.set_attribute("error.type", str(code))


def _asgi_route(scope) -> str | None:
    """The matched route template (Starlette / FastAPI put the route in the scope), never the path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else None


def _wsgi_route(environ) -> str | None:
    """Flask's matched rule (werkzeug keeps the request object in the environ)."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    template = getattr(rule, "rule", None)
    return str(template) if template else None


def _name_by_route(span, method: str, route: str | None) -> None:
    """``{method} {route}`` as the HTTP semconv names server spans, else ``{method}``: a path can
    hold ids and user text (unbounded names, content)."""
    try:
        if route:
            span.set_attribute("http.route", route)
            span.update_name(f"{method} {route}")
    except Exception:
        pass
