"""One inference span per call when two instrumentations see the same call.

A library that emits GenAI spans of its own (the Anthropic SDK 2.x does, and others are adopting
the GenAI semconv) and an instrumentor that wraps the same method make two inference spans for one
call, one directly inside the other: the call would be counted and priced twice. The rule here,
applied by the GenAI span processor to every span:

* an inference span (chat, text completion, generate content, embeddings) that starts *directly*
  under a live inference span is the same call seen twice: it is not exported;
* the spans started under it (the HTTP client span) are exported as children of the outer span;
* what the inner span learnt that the outer one lacks (usage, response model, finish reasons) is
  copied onto the outer span before that one ends, so the one span exported is the complete one.

An inference span under any other span (an agent, a tool, a task) is a call of its own, even when
that span is inside an inference span: only a direct parent-child pair of inference spans is one
call. Only what starts in this process is seen (a remote parent is never a duplicate).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import trace as trace_api

from semconv import genai_mapping as gm

# Keys of a duplicate that the outer span takes when it has none of its own (semconv names, after
# the processor's rewrite of the duplicate's dialect).
_COMPLETING_PREFIXES = ("gen_ai.usage.", "gen_ai.response.")


def is_inference(attributes, name: str) -> bool:
    return gm.operation_name(attributes or {}, name) in gm.INFERENCE_OPERATIONS


class NestedInferenceSpans:
    """The live inference spans of this process and the duplicates started under them (bounded:
    a span that never ends is forgotten after `limit` newer ones)."""

    def __init__(self, limit: int = 4096):
        self._limit = limit
        self._lock = threading.Lock()
        self._live: OrderedDict[int, Any] = OrderedDict()  # span id -> the live SDK span
        self._duplicates: OrderedDict[int, Any] = OrderedDict()  # duplicate's span id -> the outer (kept) SDK span

    def on_start(self, span) -> None:
        inference = is_inference(span.attributes, span.name)  # once per span: this is the app's hot path
        parent = span.parent
        if parent is None or parent.is_remote:
            if inference:
                self._remember(self._live, span, span)
            return
        with self._lock:
            duplicated = self._duplicates.get(parent.span_id)  # the parent is a duplicate: its outer span
            outer = duplicated or self._live.get(parent.span_id)
        if not inference:
            if duplicated is not None:
                span._parent = duplicated.get_span_context()  # the duplicate's child: the outer's
            return
        if outer is None:
            self._remember(self._live, span, span)
        else:
            self._remember(self._duplicates, span, outer)

    def take_duplicate(self, span) -> Any:
        """At `span`'s end: the outer span it duplicates (and forget it), or None."""
        span_id = span.context.span_id
        with self._lock:
            self._live.pop(span_id, None)
            return self._duplicates.pop(span_id, None)

    @staticmethod
    def complete_outer(outer, attributes) -> None:
        """Copy onto the (still live) outer span what the duplicate knew and it does not."""
        if not outer.is_recording():
            return
        known = outer.attributes or {}
        for key, value in (attributes or {}).items():
            if key.startswith(_COMPLETING_PREFIXES) and key not in known:
                outer.set_attribute(key, value)

    @staticmethod
    def unexported(span) -> None:
        """Drop the ended duplicate from export: the SDK's exporting processors skip unsampled spans."""
        ctx = span.context
        span._context = trace_api.SpanContext(ctx.trace_id, ctx.span_id, ctx.is_remote,
                                              trace_api.TraceFlags(0), ctx.trace_state)

    def _remember(self, table: OrderedDict, span, value) -> None:
        with self._lock:
            table[span.get_span_context().span_id] = value
            while len(table) > self._limit:
                table.popitem(last=False)
