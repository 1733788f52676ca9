"""Pipeline data: OTLP trace requests kept as protobuf messages, as the Go collector's pdata does.

Spans stay in the upb-backed protobuf message from receiver to exporter. Nothing builds a Python
dict per span on the hot path: processors look at attributes of the spans they care about, and the
ClickHouse exporter turns the message straight into columns. Where the native module
(collector/native) is built, the receiver's scan of the payload names the spans validation and the
GenAI normaliser must visit, and the exporter's columns come from the serialized batch in Rust.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
from typing import Any, Iterable, Iterator

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector.component import PermanentError

__all__ = [
    "Traces",
    "AnyValue",
    "KeyValue",
    "Resource",
    "ResourceSpans",
    "ScopeSpans",
    "Span",
    "ExportTraceServiceRequest",
    "ExportTraceServiceResponse",
]


class Traces:
    """One batch of spans: an `ExportTraceServiceRequest`, its cached span count, and which of its
    spans may carry GenAI attributes when the receiver's native scan found out (`genai_spans`)."""

    __slots__ = ("_request", "_serialized", "_span_count", "genai_spans")

    def __init__(self, request: ExportTraceServiceRequest | None = None):
        self._request = request if request is not None else ExportTraceServiceRequest()
        # A merged batch stays serialized until someone looks inside (the exporters' queues take
        # bytes), so merging costs a concatenation instead of a deep copy of every span.
        self._serialized: bytes | None = None
        self._span_count: int | None = None
        # Indices (in `spans()` order) of every span with a GenAI-looking attribute key, or None
        # when unknown. Set by the receiver; whoever adds or removes spans or keys calls `invalidate`.
        self.genai_spans: list[int] | None = None

    @classmethod
    def from_protobuf(cls, data: bytes) -> "Traces":
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(data)
        except Exception as exc:  # upb raises DecodeError; anything else is equally a bad payload
            raise PermanentError(f"malformed OTLP protobuf payload: {exc}") from exc
        return cls(request)

    @classmethod
    def from_json(cls, data: bytes) -> "Traces":
        return cls(decode_otlp_json(data))

    def to_protobuf(self) -> bytes:
        if self._serialized is not None:
            return self._serialized
        return self._request.SerializeToString()

    def serialized_size(self) -> int:
        """`len(self.to_protobuf())`, without serializing (or parsing) to find out."""
        if self._serialized is not None:
            return len(self._serialized)
        return self._request.ByteSize()

    @property
    def request(self) -> ExportTraceServiceRequest:
        if self._request is None:  # parsed on first look; the caller may then change it
            self._request = ExportTraceServiceRequest.FromString(self._serialized)
            self._serialized = None
        return self._request

    @property
    def resource_spans(self):
        return self.request.resource_spans

    def span_count(self) -> int:
        if self._span_count is None:
            self._span_count = sum(len(ss.spans) for rs in self.request.resource_spans for ss in rs.scope_spans)
        return self._span_count

    def invalidate(self) -> None:
        """Call after adding or removing spans (or attribute keys): cached facts are recomputed."""
        self._span_count = None
        self.genai_spans = None

    def spans(self) -> Iterator[tuple[ResourceSpans, ScopeSpans, Span]]:
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span

    def spans_at(self, indices: list[int]) -> Iterator[tuple[ScopeSpans, int]]:
        """(scope spans, index in it) of the spans at these ascending `spans()` indices, without
        visiting the others."""
        wanted, position, first = iter(indices), 0, 0
        index = next(wanted, None)
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                first, position = position, position + len(ss.spans)
                while index is not None and index < position:
                    yield ss, index - first
                    index = next(wanted, None)
                if index is None:
                    return

    @classmethod
    def merge(cls, batches: Iterable["Traces"]) -> "Traces":
        """One batch of all their spans, in order. The message has one field, repeated
        `resource_spans`, so concatenated serializations are the serialization of the merge."""
        payloads, hints, count = [], [], 0
        for batch in batches:
            payloads.append(batch.to_protobuf())
            if hints is not None and batch.genai_spans is not None:
                hints.extend(index + count for index in batch.genai_spans)
            else:
                hints = None
            count += batch.span_count()
        traces = cls()
        traces._request, traces._serialized = None, b"".join(payloads)
        traces._span_count, traces.genai_spans = count, hints
        return traces


# --- attributes -------------------------------------------------------------------------------


def any_value_to_python(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def any_value_to_str(value: AnyValue) -> str:
    """The string the contrib ClickHouse exporter stores for a value (pcommon's `AsString`)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind is None:
        return ""
    return json.dumps(any_value_to_python(value), separators=(",", ":"), ensure_ascii=False)


def format_double(number: float) -> str:
    """Go's strconv.FormatFloat(f, 'f', -1, 64), as pcommon renders doubles: the shortest digits that
    round-trip, in positional notation (1.25e-07 -> "0.000000125", never "0")."""
    if number != number or number in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(number)]
    text = repr(number)
    if "e" in text:
        text = format(decimal.Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def set_any_value(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            set_any_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for k, v in value.items():
            kv = target.kvlist_value.values.add(key=str(k))
            set_any_value(kv.value, v)
    elif value is None:
        target.Clear()
    else:
        target.string_value = str(value)


def attributes_to_dict(attributes) -> dict[str, Any]:
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


def get_attribute(attributes, key: str, default: Any = None) -> Any:
    for kv in attributes:
        if kv.key == key:
            return any_value_to_python(kv.value)
    return default


def set_attribute(attributes, key: str, value: Any) -> None:
    """Set or replace `key` in a repeated KeyValue field."""
    for kv in attributes:
        if kv.key == key:
            kv.value.Clear()
            set_any_value(kv.value, value)
            return
    set_any_value(attributes.add(key=key).value, value)


def service_name(resource: Resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


# --- OTLP/JSON --------------------------------------------------------------------------------

# OTLP/JSON encodes trace and span ids as hex, but protobuf's JSON mapping reads `bytes` fields as
# base64: parsed naively, a 32-hex-char trace id silently becomes 24 garbage bytes. These are the
# id fields, by message, converted to base64 before handing the document to json_format.
_ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8, "trace_id": 16, "span_id": 8, "parent_span_id": 8}


def _hex_ids_to_base64(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = _hex_to_b64(value, _ID_FIELDS[key], f"{path}.{key}")
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _hex_ids_to_base64(item, f"{path}[{i}]")


def _hex_to_b64(text: str, size: int, where: str) -> str:
    if text == "":
        return ""
    if len(text) != size * 2:
        raise PermanentError(f"{where}: expected {size * 2} hex characters, got {len(text)} ({text[:40]!r})")
    try:
        raw = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise PermanentError(f"{where}: not a hex id ({text[:40]!r})") from None
    return base64.b64encode(raw).decode()


def decode_otlp_json(data: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PermanentError(f"malformed OTLP/JSON payload: {exc}") from exc
    if not isinstance(document, dict):
        raise PermanentError("malformed OTLP/JSON payload: the top level must be an object with resourceSpans")
    _hex_ids_to_base64(document, "$")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise PermanentError(f"invalid OTLP/JSON payload: {exc}") from exc
    return request


def encode_otlp_json(message) -> bytes:
    """OTLP/JSON for a response or request, ids as hex."""
    document = json_format.MessageToDict(message)
    _b64_ids_to_hex(document)
    return json.dumps(document).encode()


def _b64_ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            elif isinstance(value, (dict, list)):
                _b64_ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _b64_ids_to_hex(item)
