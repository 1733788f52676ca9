"""What the receivers do to spans that are not well-formed, before anything else sees them.

    receivers:
      otlp:
        validation:
          max_attribute_value_bytes: 262144   # longer values are cut, with a marker; 0 = no limit
          max_attribute_depth: 8              # nested arrays/maps deeper than this become a (cut) JSON string
          max_span_name_bytes: 4096
          max_future_skew: 24h                # timestamps later than now + this are absurd

Rejected with an error (the whole request; HTTP 400 / gRPC INVALID_ARGUMENT), by the decoder:
  - a payload that is not an OTLP ExportTraceServiceRequest (bad protobuf, bad JSON, wrong JSON
    types, hex ids of the wrong length), and invalid UTF-8 in any string (protobuf and JSON alike:
    the OTLP spec requires UTF-8, and a store that silently mangles text is worse than a 400).
Dropped (counted in `partial_success.rejected_spans`, with the reason in `error_message`):
  - a trace id that is not 16 bytes or is all zeros, a span id that is not 8 bytes or all zeros.
Repaired (the span is kept, `otel.collector.repaired` lists what was changed):
  - `end_before_start`: an end time before the start time: the end is set to the start (duration 0).
  - `invalid_parent_span_id`: a parent span id that is neither empty nor 8 bytes: cleared (a root).
  - `absurd_start_time` / `absurd_end_time`: a time of 0, before 2000-01-01 or later than now +
    `max_future_skew`: the start takes the end's value (or the receive time if the end is absurd
    too), an absurd end takes the start's (duration 0).
  - `truncated_attribute`: an attribute value (span, event, link, resource or scope attribute)
    whose encoded size exceeds `max_attribute_value_bytes` is cut at a UTF-8 character boundary and
    ends with `...[truncated N bytes]`; arrays and maps are first turned into their JSON text, bytes
    are cut without a marker. A value nested deeper than `max_attribute_depth` is replaced by its
    JSON text ending `...[truncated depth]`. (Resource and scope attributes are cut the same way,
    without the per-span `otel.collector.repaired` note.)
  - `truncated_name`: a span name longer than `max_span_name_bytes`, cut the same way.
"""

from __future__ import annotations

import bisect
import json
import time

from pydantic import Field

from collector.component import StrictConfig
from collector.confighelpers import Duration
from collector import native
from collector.pdata import Traces, any_value_to_python
from semconv.genai_mapping import GENAI_KEY_PREFIXES

_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)
REPAIRED_ATTRIBUTE = "otel.collector.repaired"
TRUNCATION_MARKER = "...[truncated {n} bytes]"
DEPTH_MARKER = "...[truncated depth]"
MIN_TIME_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z


class ValidationConfig(StrictConfig):
    max_attribute_value_bytes: int = Field(256 * 1024, ge=0)
    max_attribute_depth: int = Field(8, ge=1)
    max_span_name_bytes: int = Field(4096, ge=0)
    max_future_skew: Duration = 24 * 3600.0


DEFAULT = ValidationConfig()


def _invalid_reason(span) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return "invalid trace_id"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return "invalid span_id"
    return None


def cut_utf8(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to at most `limit` UTF-8 bytes at a character boundary, and the bytes removed."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, 0
    kept = raw[:limit].decode("utf-8", "ignore")  # drops a partial trailing character
    return kept, len(raw) - len(kept.encode("utf-8"))


def _too_deep(value, limit: int) -> bool:
    """True if the AnyValue nests arrays/maps more than `limit` levels deep."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        children = value.array_value.values
    elif kind == "kvlist_value":
        children = [kv.value for kv in value.kvlist_value.values]
    else:
        return False
    if limit <= 0:
        return True
    return any(_too_deep(child, limit - 1) for child in children)


def _as_text(value) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return json.dumps(any_value_to_python(value), separators=(",", ":"), ensure_ascii=False, default=str)


_NESTED = frozenset({"array_value", "kvlist_value"})


def _has_nested(attributes) -> bool:
    for kv in attributes:
        if kv.value.WhichOneof("value") in _NESTED:
            return True
    return False


def _limit_attributes(attributes, cfg: ValidationConfig, check_sizes: bool = True) -> bool:
    """Truncate oversized or too-deep values in a repeated KeyValue; True if anything changed.

    `check_sizes=False` when the caller knows no value can be over the limit (the message that
    holds them is not), which saves a `ByteSize` call per value."""
    if not check_sizes and not _has_nested(attributes):
        return False  # the common case: nothing to check, one tight loop
    changed = False
    limit = cfg.max_attribute_value_bytes
    size_limit = limit if check_sizes else 0
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind in _NESTED and _too_deep(value, cfg.max_attribute_depth):
            text = _as_text(value)
            if limit:
                text, _ = cut_utf8(text, max(0, limit - len(DEPTH_MARKER)))
            value.Clear()
            value.string_value = text + DEPTH_MARKER
            changed = True
            continue
        if not size_limit or value.ByteSize() <= size_limit:
            continue
        if kind == "bytes_value":
            removed = len(value.bytes_value) - limit
            if removed > 0:  # bytes carry no text marker: `otel.collector.repaired` says it
                value.bytes_value = value.bytes_value[:limit]
                changed = True
            continue
        text = _as_text(value)
        kept, removed = cut_utf8(text, limit)
        if removed == 0:  # the encoding overhead, not the text, was over: nothing to cut
            continue
        value.Clear()
        value.string_value = kept + TRUNCATION_MARKER.format(n=removed)
        changed = True
    return changed


def _repair(span, cfg: ValidationConfig, now_ns: int, max_ns: int, check_sizes: bool) -> None:
    start, parent = span.start_time_unix_nano, span.parent_span_id
    name_limit = cfg.max_span_name_bytes
    fields_ok = (MIN_TIME_NS <= start <= span.end_time_unix_nano <= max_ns and (not parent or len(parent) == 8)
                 and not (name_limit and len(span.name) * 4 > name_limit))
    repairs = [] if fields_ok else _repair_fields(span, cfg, now_ns, max_ns)
    truncated = _limit_attributes(span.attributes, cfg, check_sizes)
    if span.events:
        for event in span.events:
            truncated = _limit_attributes(event.attributes, cfg, check_sizes) or truncated
    if span.links:
        for link in span.links:
            truncated = _limit_attributes(link.attributes, cfg, check_sizes) or truncated
    if truncated:
        repairs.append("truncated_attribute")
    if repairs:
        _mark_repaired(span, ",".join(repairs))


def _repair_fields(span, cfg: ValidationConfig, now_ns: int, max_ns: int) -> list[str]:
    """Repair times, parent id and name (the rare case); returns what was repaired."""
    repairs = []
    start_bad = not (MIN_TIME_NS <= span.start_time_unix_nano <= max_ns)
    end_bad = not (MIN_TIME_NS <= span.end_time_unix_nano <= max_ns)
    if start_bad:
        span.start_time_unix_nano = span.end_time_unix_nano if not end_bad else now_ns
        repairs.append("absurd_start_time")
    if end_bad:
        span.end_time_unix_nano = span.start_time_unix_nano
        repairs.append("absurd_end_time")
    if span.end_time_unix_nano < span.start_time_unix_nano:
        span.end_time_unix_nano = span.start_time_unix_nano
        repairs.append("end_before_start")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        span.parent_span_id = b""
        repairs.append("invalid_parent_span_id")
    if cfg.max_span_name_bytes and len(span.name) * 4 > cfg.max_span_name_bytes:
        kept, removed = cut_utf8(span.name, cfg.max_span_name_bytes)
        if removed:
            span.name = kept + TRUNCATION_MARKER.format(n=removed)
            repairs.append("truncated_name")
    return repairs


def _mark_repaired(span, note: str) -> None:
    for kv in span.attributes:
        if kv.key == REPAIRED_ATTRIBUTE:  # a client cannot pre-claim or hide repairs
            kv.value.Clear()
            kv.value.string_value = note
            break
    else:
        span.attributes.add(key=REPAIRED_ATTRIBUTE).value.string_value = note


def _over(message, limit: int) -> bool:
    """Could a value inside `message` be over `limit` bytes? No value is bigger than the message
    holding it, so one C-level size spares a `ByteSize` call per value."""
    return bool(limit) and message.ByteSize() > limit


def sanitize(traces: Traces, cfg: ValidationConfig = DEFAULT, raw: bytes | None = None) -> tuple[int, str]:
    """Drop invalid spans and repair fixable ones in place; returns (rejected, message).

    The native scan (collector/native) names the few spans that need a look, and only those are
    visited here. It is conservative: it flags every span `_repair` or `_invalid_reason` could act
    on, and maybe more; what to repair and how is decided here. It also names the spans with GenAI
    keys (`traces.genai_spans`) for the GenAI processors, and counts the spans, from the same pass:
    a batch nothing needs to look at is never parsed in Python.

    `raw`: the protobuf bytes `traces` was parsed from, scanned instead of the batch's own bytes.
    The one change made to `traces` since, the authenticator's tenant stamp, sets short values
    of a non-GenAI key (`tenant.id`), which neither validation nor the GenAI set depends on."""
    now_ns = time.time_ns()
    max_ns = now_ns + int(cfg.max_future_skew * 1e9)
    limit = cfg.max_attribute_value_bytes

    def scan(data: bytes) -> tuple[list[int], list[int], bool, int]:
        return native.scan(data, limit, cfg.max_attribute_depth, cfg.max_span_name_bytes, MIN_TIME_NS, max_ns,
                           GENAI_KEY_PREFIXES)

    try:
        attention, genai, resources, span_count = scan(raw) if raw is not None else traces.read_natively(scan)
    except ValueError:  # prost refused `raw` (see `Traces.read_natively`): the batch's canonical bytes
        attention, genai, resources, span_count = traces.read_natively(scan)
    if resources:
        for rs in traces.edit().resource_spans:
            _limit_resource_and_scopes(rs, cfg, True)
    bad, reasons = [], set()
    for (ss, index), position in zip(traces.spans_at(attention), attention):
        span = ss.spans[index]
        reason = _drop_or_repair(span, cfg, now_ns, max_ns, _over(span, limit))
        if reason:
            bad.append((ss, index, position))
            reasons.add(reason)
    for ss, index, _ in reversed(bad):
        del ss.spans[index]
    if bad:
        traces.invalidate()
        dropped = [position for _, _, position in bad]
        gone = set(dropped)
        genai = [i - bisect.bisect_left(dropped, i) for i in genai if i not in gone]
        span_count -= len(bad)
    traces.record_scan(span_count, genai)
    return len(bad), "; ".join(sorted(reasons))


def _drop_or_repair(span, cfg: ValidationConfig, now_ns: int, max_ns: int, check_sizes: bool) -> str | None:
    """Why the span must be dropped; otherwise None, the span repaired in place where needed."""
    reason = _invalid_reason(span)
    if reason is None:
        _repair(span, cfg, now_ns, max_ns, check_sizes)
    return reason


def _limit_resource_and_scopes(rs, cfg: ValidationConfig, check_sizes: bool) -> None:
    _limit_attributes(rs.resource.attributes, cfg, check_sizes)
    for ss in rs.scope_spans:
        _limit_attributes(ss.scope.attributes, cfg, check_sizes)
