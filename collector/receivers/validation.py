"""What the receivers do to spans that are not well-formed, before anything else sees them.

Dropped (counted in `partial_success.rejected_spans`, with the reason in `error_message`):
  - a trace id that is not 16 bytes or is all zeros, a span id that is not 8 bytes or all zeros.
Repaired (the span is kept, `otel.collector.repaired` says what was changed):
  - an end time before the start time: the end is set to the start (duration 0).
  - a parent span id that is neither empty nor 8 bytes: cleared (the span becomes a root).
"""

from __future__ import annotations

from collector.pdata import Traces

_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
REPAIRED_ATTRIBUTE = "otel.collector.repaired"


def _invalid_reason(span) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return "invalid trace_id"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return "invalid span_id"
    return None


def _repair(span) -> None:
    repairs = []
    if span.end_time_unix_nano < span.start_time_unix_nano:
        span.end_time_unix_nano = span.start_time_unix_nano
        repairs.append("end_before_start")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        span.parent_span_id = b""
        repairs.append("invalid_parent_span_id")
    if repairs:
        span.attributes.add(key=REPAIRED_ATTRIBUTE).value.string_value = ",".join(repairs)


def sanitize(traces: Traces) -> tuple[int, str]:
    """Drop invalid spans and repair fixable ones in place; returns (rejected, message)."""
    rejected, reasons = 0, set()
    for rs in traces.request.resource_spans:
        for ss in rs.scope_spans:
            bad = []
            for index, span in enumerate(ss.spans):
                reason = _invalid_reason(span)
                if reason:
                    bad.append(index)
                    reasons.add(reason)
                elif span.end_time_unix_nano < span.start_time_unix_nano or (span.parent_span_id and len(span.parent_span_id) != 8):
                    _repair(span)
            for index in reversed(bad):
                del ss.spans[index]
            rejected += len(bad)
    if rejected:
        traces.invalidate()
    return rejected, "; ".join(sorted(reasons))
