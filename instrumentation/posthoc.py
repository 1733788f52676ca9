"""Call spans that an instrumentor starts only after the call returned, made parents of the call's
HTTP span all the same.

traceloop's OpenAI Responses wrapper (``openai.resources.responses``) starts its ``openai.response``
span once the SDK has answered, with the call's start time: the SDK's HTTP client span, which ran
during the call, had no LLM span to be a child of, so it became a trace of its own (one request,
two traces). Here the call is given its span id in advance: a wrapper around the instrumented
method makes a placeholder span context current for the duration of the call, so the HTTP span
(and the ``traceparent`` header it sends) names it as parent; when the instrumentor's span starts
under that placeholder, ``adopt`` (called from the GenAI span processor's ``on_start``) gives it the
placeholder's id and the placeholder's own parent. The result is the tree the instrumentor would
have made had it started its span first.

A placeholder no span adopts (the instrumentor traced nothing: suppressed, or a raw stream it does
not trace) leaves the HTTP span pointing at a span that does not exist, so wrappers only reserve
where the instrumentor does trace.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

_ids = RandomIdGenerator()


@dataclass
class _Reservation:
    placeholder: trace_api.SpanContext
    parent: trace_api.SpanContext | None  # the placeholder's own parent: None for a root
    scope: str  # the instrumentation scope whose span takes the reserved id
    adopted: bool = False


_pending: contextvars.ContextVar[_Reservation | None] = contextvars.ContextVar("genaitrace_reserved_span", default=None)


@contextlib.contextmanager
def reserved_span(scope: str) -> Iterator[None]:
    """Within this block the current span is a placeholder whose id the first span that `scope`
    starts under it will take (see the module's docstring)."""
    current = trace_api.get_current_span().get_span_context()
    parent = current if current.is_valid else None
    placeholder = trace_api.SpanContext(
        trace_id=current.trace_id if parent else _ids.generate_trace_id(),
        span_id=_ids.generate_span_id(),
        is_remote=False,
        trace_flags=current.trace_flags if parent else trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
        trace_state=current.trace_state if parent else None,
    )
    reservation = _Reservation(placeholder, parent, scope)
    context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(placeholder))
    reservation_token = _pending.set(reservation)
    context_token = context_api.attach(context)
    try:
        yield
    finally:
        context_api.detach(context_token)
        _pending.reset(reservation_token)


def adopt(span) -> None:
    """`span` (an SDK span, in on_start) takes the reserved id if it is the span the reservation
    waits for: started by the reserved scope, directly under the placeholder."""
    reservation = _pending.get()
    if reservation is None or reservation.adopted:
        return
    parent = span.parent
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    if parent is None or parent.span_id != reservation.placeholder.span_id or scope != reservation.scope:
        return
    reservation.adopted = True
    own = span.get_span_context()
    span._context = trace_api.SpanContext(reservation.placeholder.trace_id, reservation.placeholder.span_id,
                                          is_remote=False, trace_flags=own.trace_flags, trace_state=own.trace_state)
    span._parent = reservation.parent
