"""GenAI events as OpenTelemetry log records: the logger provider they go through, and the
provider-error event ``gen_ai.client.operation.exception``.

A failed inference call (LiteLLM, the OpenAI or Anthropic SDK, any instrumentor whose span ends in
ERROR) is reported, as the GenAI conventions say, as a log record named
``gen_ai.client.operation.exception`` with severity WARN (13), the failed span's trace and span
ids, and ``exception.type``, ``exception.stacktrace``, ``error.type`` plus the span's non-content
attributes (operation, provider, model, tenant...). ``exception.message`` only with content capture
on: provider errors often quote the request. With capture off the stack trace loses its messages
too (:func:`instrumentation.privacy.scrub_stacktrace`). The span keeps its status and
``error.type``; its ``exception`` span event (the older way, which the log record replaces) is
removed, so the collector does not count the exception twice.

Where the records go: the app's own SDK logger provider if it set one; else, when
``OTEL_LOGS_EXPORTER=otlp``, one made here on first use, exporting over OTLP to where the spans go
(``OTEL_EXPORTER_OTLP_*``; ``OTEL_EXPORTER_OTLP_LOGS_*`` for logs only), with the tracer provider's
resource. With neither (the default), nothing is emitted and the span keeps its exception event.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from opentelemetry import _logs, trace

import semconv
from semconv import genai_mapping as gm

SCOPE = "instrumentation.genai"
_EXPORTER_ENV = "OTEL_LOGS_EXPORTER"

# Span attributes copied onto the record (no content: names, ids and the request's attribution).
_SPAN_ATTRIBUTES = (gm.GEN_AI_OPERATION_NAME, gm.GEN_AI_PROVIDER_NAME, gm.GEN_AI_REQUEST_MODEL, "error.type",
                    "tenant.id", "engagement.id", "flow.name", "feature.name", "user.id", "session.id",
                    "gen_ai.conversation.id", "gen_ai.agent.name", "gen_ai.agent.id")

_lock = threading.Lock()
_own_provider: list = []  # the logger provider made here, once


def logger_provider(default_exporter: str = "none") -> Any:
    """The logger provider GenAI events go through, or None when none is configured.

    The global one if it is the SDK's (the app's own, or opentelemetry-instrument's); else one made
    here on first use when ``OTEL_LOGS_EXPORTER`` (``default_exporter`` when unset) is not ``none``.
    Made lazily: an app that never emits an event does not import the logs SDK."""
    from opentelemetry.sdk._logs import LoggerProvider as SDKLoggerProvider

    current = _logs.get_logger_provider()
    if isinstance(current, SDKLoggerProvider):
        return current
    setting = os.environ.get(_EXPORTER_ENV, default_exporter).strip().lower()
    if setting in ("none", ""):
        return None
    with _lock:
        if not _own_provider:
            _own_provider.append(_make_provider())
    return _own_provider[0]


def _make_provider():
    from opentelemetry.sdk._logs import LoggerProvider as SDKLoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    provider = SDKLoggerProvider(resource=resource) if resource is not None else SDKLoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    return provider


def flush(timeout_millis: int = 5000) -> None:
    """Flush the provider made here (a forked child leaving through os._exit, a SIGTERM)."""
    if _own_provider:
        _own_provider[0].force_flush(timeout_millis)


# --------------------------------------------------------------------------- provider errors
def report_failed_operation(span, capture_on: bool) -> bool:
    """Emit ``gen_ai.client.operation.exception`` for a finished inference span that ended in
    ERROR (a ReadableSpan, in the span processor's on_end, before the privacy gate). Returns
    whether a record was emitted; the caller then drops the span's ``exception`` events."""
    attrs = span.attributes or {}
    if span.status is None or span.status.status_code != trace.StatusCode.ERROR:
        return False
    if attrs.get(gm.GEN_AI_OPERATION_NAME) not in gm.INFERENCE_OPERATIONS:
        return False
    provider = logger_provider()
    if provider is None:
        return False
    exception = next((e for e in reversed(span.events or ()) if e.name == semconv.EXCEPTION_SPAN_EVENT), None)
    record = exception_attributes(attrs, exception.attributes if exception is not None else {},
                                  span.status.description, capture_on)
    timestamp = exception.timestamp if exception is not None else span.end_time
    context = trace.set_span_in_context(trace.NonRecordingSpan(span.context))
    _logs.get_logger(SCOPE, logger_provider=provider).emit(
        timestamp=timestamp, context=context, event_name=semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_EVENT,
        severity_number=_logs.SeverityNumber(semconv.GEN_AI_CLIENT_OPERATION_EXCEPTION_SEVERITY),
        severity_text="WARN", attributes=record)
    return True


def exception_attributes(span_attrs: Mapping[str, Any], event_attrs: Mapping[str, Any], status_description,
                         capture_on: bool) -> dict:
    """The record's attributes: the exception (type always; message and full stack trace only with
    capture on) and the span's non-content attributes."""
    from instrumentation.privacy import scrub_stacktrace

    out = {key: span_attrs[key] for key in _SPAN_ATTRIBUTES if span_attrs.get(key) is not None}
    exc_type = event_attrs.get(semconv.EXCEPTION_TYPE) or span_attrs.get("error.type") or semconv.ERROR_TYPE_OTHER
    out[semconv.EXCEPTION_TYPE] = str(exc_type)
    out.setdefault("error.type", str(exc_type))
    stacktrace = event_attrs.get(semconv.EXCEPTION_STACKTRACE)
    if stacktrace:
        out[semconv.EXCEPTION_STACKTRACE] = str(stacktrace) if capture_on else scrub_stacktrace(str(stacktrace))
    if capture_on:
        message = event_attrs.get(semconv.EXCEPTION_MESSAGE) or status_description
        if message:
            out[semconv.EXCEPTION_MESSAGE] = str(message)
    return out
