"""Attribution through W3C baggage, and context propagation through any dict carrier.

    from instrumentation import attributes, inject, extract, attach_carrier

    with attributes(tenant_id="acme", engagement_id="e-42", flow="triage",
                    feature="summarise", user_id="u-7", session_id="s-1"):
        ...   # every span started here (and in every process it reaches over
              # HTTP or a carrier) carries tenant.id, engagement.id, ...

    payload = {"job": ...}
    inject(payload.setdefault("otel", {}))        # producer (queue, job payload)
    with attach_carrier(payload.get("otel")):     # consumer: continues the trace
        ...

Only the OpenTelemetry API is imported here (no SDK, no vendor libraries).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, MutableMapping

from opentelemetry import baggage as _baggage
from opentelemetry import context as _context
from opentelemetry import propagate as _propagate

# Baggage key -> span attribute(s). The span attribute has the same name as the
# baggage key; session.id is additionally mapped to gen_ai.conversation.id.
TENANT_ID = "tenant.id"
ENGAGEMENT_ID = "engagement.id"
FLOW_NAME = "flow.name"
FEATURE_NAME = "feature.name"
USER_ID = "user.id"
SESSION_ID = "session.id"
CONVERSATION_ID = "gen_ai.conversation.id"

ATTRIBUTION_KEYS: tuple[str, ...] = (TENANT_ID, ENGAGEMENT_ID, FLOW_NAME, FEATURE_NAME, USER_ID, SESSION_ID)
# Extra span attributes derived from a baggage key.
DERIVED_ATTRIBUTES: dict[str, tuple[str, ...]] = {SESSION_ID: (CONVERSATION_ID,)}

_KWARG_TO_KEY = {
    "tenant_id": TENANT_ID,
    "tenant": TENANT_ID,
    "engagement_id": ENGAGEMENT_ID,
    "engagement": ENGAGEMENT_ID,
    "flow": FLOW_NAME,
    "flow_name": FLOW_NAME,
    "feature": FEATURE_NAME,
    "feature_name": FEATURE_NAME,
    "user_id": USER_ID,
    "user": USER_ID,
    "session_id": SESSION_ID,
    "session": SESSION_ID,
    "conversation_id": SESSION_ID,
}

__all__ = [
    "attributes",
    "context",
    "set_attribution",
    "current_attribution",
    "inject",
    "extract",
    "attach_carrier",
    "ATTRIBUTION_KEYS",
]


def _entries(kwargs: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        key = _KWARG_TO_KEY.get(name, name)
        out[key] = str(value)
    return out


def set_attribution(context: _context.Context | None = None, **kwargs: Any) -> _context.Context:
    """A context with the attribution entries set as baggage (not attached)."""
    ctx = context if context is not None else _context.get_current()
    for key, value in _entries(kwargs).items():
        ctx = _baggage.set_baggage(key, value, context=ctx)
    return ctx


@contextlib.contextmanager
def attributes(**kwargs: Any) -> Iterator[_context.Context]:
    """Set tenant/engagement/flow/feature/user/session for everything run inside.

    Keyword names: ``tenant_id``, ``engagement_id``, ``flow``, ``feature``,
    ``user_id``, ``session_id`` (any other keyword is set as a baggage key of
    that name and copied onto spans only if listed in ``ATTRIBUTION_KEYS``).
    """
    token = _context.attach(set_attribution(**kwargs))
    try:
        yield _context.get_current()
    finally:
        _context.detach(token)


def context(conversation_id: Any = None, user_id: Any = None, **kwargs: Any):
    """``attributes`` under the names of sessions and users: every span started inside carries
    ``gen_ai.conversation.id`` (and ``session.id``) and ``user.id``; any other keyword as in
    ``attributes``. ``with instrumentation.context(conversation_id="c-1", user_id="u-7"): ...``"""
    return attributes(conversation_id=conversation_id, user_id=user_id, **kwargs)


def current_attribution(context: _context.Context | None = None) -> dict[str, str]:
    """The attribution entries of the current (or given) context's baggage."""
    items = _baggage.get_all(context)
    return {k: str(v) for k, v in items.items() if k in ATTRIBUTION_KEYS}


def inject(carrier: MutableMapping[str, Any] | None = None,
           context: _context.Context | None = None) -> MutableMapping[str, Any]:
    """Write ``traceparent``/``tracestate``/``baggage`` for the current context into a dict."""
    if carrier is None:
        carrier = {}
    _propagate.inject(carrier, context=context)
    return carrier


def extract(carrier: Mapping[str, Any] | None, context: _context.Context | None = None) -> _context.Context:
    """A context continuing the trace (and baggage) recorded in ``carrier``."""
    if not carrier:
        return context if context is not None else _context.get_current()
    # Header-style carriers may use any case; the W3C propagators look up lower case.
    normalised = {str(k).lower(): v for k, v in carrier.items()}
    return _propagate.extract(normalised, context=context)


@contextlib.contextmanager
def attach_carrier(carrier: Mapping[str, Any] | None) -> Iterator[_context.Context]:
    """Run the block inside the context carried by ``carrier`` (a no-op if it is empty)."""
    token = _context.attach(extract(carrier))
    try:
        yield _context.get_current()
    finally:
        _context.detach(token)
