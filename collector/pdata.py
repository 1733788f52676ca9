"""Pipeline data: OTLP trace requests, kept serialized where possible, as the Go collector's pdata
keeps them in its own wire-shaped structs.

Nothing builds a Python dict per span on the hot path. A batch travels as the bytes it arrived in
(`Traces`); the receiver's native scan names the spans validation must look at and the spans with
GenAI keys; the GenAI processors read only those as rows (`Traces.genai_rows`) and write their
changes back as patches (`Traces.patch`), which the native module splices into the bytes; the
batch processor concatenates bytes, and the ClickHouse exporter turns bytes into Arrow columns in
Rust. Without the native module the same happens through the upb protobuf message, which stays
the reference (`tests/test_native.py`). Any other processor may take `Traces.request`, the parsed
message, and change it as it likes.
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
from instrumentation.genai_mapping import GENAI_KEY_PREFIXES, is_genai_candidate

__all__ = [
    "GenAISpan",
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


class GenAISpan:
    """One span with a GenAI-looking attribute key, as the GenAI processors see it: read once per
    batch (`Traces.genai_rows`), changed only through `Traces.patch`, which keeps `attributes`
    equal to the span's attributes as a dict."""

    __slots__ = ("index", "name", "trace_id", "span_id", "parent_span_id", "status_code", "start_time_unix_nano",
                 "end_time_unix_nano", "attributes", "resource", "normalized")

    def __init__(self, index: int, name: str, trace_id: bytes, span_id: bytes, parent_span_id: bytes,
                 status_code: int, start_time_unix_nano: int, end_time_unix_nano: int, attributes: dict[str, Any],
                 resource: dict[str, Any]):
        self.index = index  # in `Traces.spans()` order
        self.name, self.trace_id, self.span_id, self.parent_span_id = name, trace_id, span_id, parent_span_id
        self.status_code = status_code
        self.start_time_unix_nano, self.end_time_unix_nano = start_time_unix_nano, end_time_unix_nano
        self.attributes = attributes  # `attributes_to_dict(span.attributes)`: the last duplicate key wins
        self.resource = resource  # its resource's attributes, shared by the rows of one resource: read only
        # Set by `genai_normalizer` once `attributes` are in current semconv, so `genai_cost` does
        # not normalise them a second time.
        self.normalized = False

    @classmethod
    def of(cls, index: int, span: Span, resource: dict[str, Any]) -> "GenAISpan":
        return cls(index, span.name, span.trace_id, span.span_id, span.parent_span_id, span.status.code,
                   span.start_time_unix_nano, span.end_time_unix_nano, attributes_to_dict(span.attributes), resource)


class Traces:
    """One batch of spans: an `ExportTraceServiceRequest`, serialized, parsed or both.

    Bytes are the hot form: the receiver keeps the payload it parsed, the GenAI processors read
    their rows from it (`genai_rows`) and record changes (`patch`) that are written into the bytes
    in one native pass, merging is a concatenation and the exporters' queues take bytes. Whoever
    asks for `request` gets the parsed message to change as it likes; the bytes are then dropped.
    """

    __slots__ = ("_request", "_serialized", "_span_count", "genai_spans", "_rows", "_patches")

    def __init__(self, request: ExportTraceServiceRequest | None = None):
        self._request = request if request is not None else ExportTraceServiceRequest()
        # The serialization, when known to equal `_request` (or `_request` is None).
        self._serialized: bytes | None = None
        self._span_count: int | None = None
        # Indices (in `spans()` order) of every span with a GenAI-looking attribute key, or None
        # when unknown. Set by the receiver; whoever adds or removes spans or keys calls `invalidate`.
        self.genai_spans: list[int] | None = None
        self._rows: list[GenAISpan] | None = None
        # span index -> (attributes to set, keys to remove first): changes not yet written.
        self._patches: dict[int, tuple[dict[str, Any], set[str]]] = {}

    @classmethod
    def from_protobuf(cls, data: bytes) -> "Traces":
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(data)
        except Exception as exc:  # upb raises DecodeError; anything else is equally a bad payload
            raise PermanentError(f"malformed OTLP protobuf payload: {exc}") from exc
        traces = cls(request)
        traces._serialized = data if type(data) is bytes else bytes(data)  # the native module reads bytes
        return traces

    @classmethod
    def from_json(cls, data: bytes, max_depth: int | None = None) -> "Traces":
        """Serialized at once, on the receiver's thread: a JSON request then leaves the receiver in
        the same form as a protobuf one (the native scan reads it, merges concatenate it), instead
        of being serialized later inside a batch other requests wait for."""
        request = decode_otlp_json(data, max_depth or DEFAULT_MAX_JSON_DEPTH)
        traces = cls(request)
        traces._serialized = request.SerializeToString()
        return traces

    def to_protobuf(self) -> bytes:
        self._apply_patches()
        if self._serialized is not None:
            return self._serialized
        return self._request.SerializeToString()

    def serialized_size(self) -> int:
        """`len(self.to_protobuf())`, without serializing (or parsing) to find out."""
        self._apply_patches()
        if self._serialized is not None:
            return len(self._serialized)
        return self._request.ByteSize()

    @property
    def request(self) -> ExportTraceServiceRequest:
        """The parsed message, for the caller to read or change; cached bytes and rows are dropped."""
        message = self._message()
        self._serialized, self._rows = None, None
        return message

    def _message(self) -> ExportTraceServiceRequest:
        """The parsed message with every patch applied, to read only."""
        self._apply_patches()
        if self._request is None:
            self._request = ExportTraceServiceRequest.FromString(self._serialized)
        return self._request

    @property
    def resource_spans(self):
        return self.request.resource_spans

    def span_count(self) -> int:
        if self._span_count is None:
            self._span_count = sum(len(ss.spans) for rs in self._message().resource_spans for ss in rs.scope_spans)
        return self._span_count

    def invalidate(self) -> None:
        """Call after adding or removing spans (or attribute keys): cached facts are recomputed."""
        self._span_count = None
        self.genai_spans = None
        self._rows = None

    def spans(self) -> Iterator[tuple[ResourceSpans, ScopeSpans, Span]]:
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span

    def spans_at(self, indices: list[int]) -> Iterator[tuple[ScopeSpans, int]]:
        """(scope spans, index in it) of the spans at these ascending `spans()` indices, without
        visiting the others."""
        return _spans_at(self.request, indices) if indices else iter(())

    # --- the GenAI processors' view ---

    def genai_rows(self) -> list[GenAISpan]:
        """Every span with an attribute key starting with one of `GENAI_KEY_PREFIXES`, in order;
        read once per batch (natively from the bytes when the module is built) and shared by the
        processors, whose `patch`es keep the rows up to date."""
        if self._rows is None:
            self._apply_patches()
            self._rows = self._native_rows() if _native().available() else None
            if self._rows is None:
                self._rows = self._python_rows()
        return self._rows

    def _native_rows(self) -> list[GenAISpan] | None:
        if self._serialized is None:  # e.g. validation repaired a span: the message is current
            self._serialized = self._request.SerializeToString()
        try:
            rows = _native().genai_rows(self._serialized, self.genai_spans, GENAI_KEY_PREFIXES, _base64)
        except ValueError:  # what the native reader cannot take as upb took it: read it in Python
            return None
        return [GenAISpan(*row) for row in rows]

    def _python_rows(self) -> list[GenAISpan]:
        hint = set(self.genai_spans) if self.genai_spans is not None else None
        rows, index = [], 0
        for rs in self._message().resource_spans:
            resource = None
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if hint is not None:
                        picked = index in hint
                    else:
                        picked = is_genai_candidate(kv.key for kv in span.attributes)
                    if picked:
                        if resource is None:
                            resource = attributes_to_dict(rs.resource.attributes)
                        rows.append(GenAISpan.of(index, span, resource))
                    index += 1
        return rows

    def patch(self, row: GenAISpan, set_: dict[str, Any], remove: Iterable[str] = ()) -> None:
        """Change one row's span: remove every attribute with a key in `remove`, then set each of
        `set_`, replacing the key's last attribute in place or appending it. Raises ValueError,
        changing nothing, for a value OTLP cannot carry (an int outside int64). Values are kept as
        they will read back (see `_as_read`), so the row stays what a fresh read would give."""
        set_ = {key: _as_read(value) for key, value in set_.items()}
        entry = self._patches.get(row.index)
        if entry is None:
            entry = self._patches[row.index] = ({}, set())
        to_set, to_remove = entry
        attributes = row.attributes
        for key in remove:
            to_set.pop(key, None)
            to_remove.add(key)
            attributes.pop(key, None)
        to_set.update(set_)
        attributes.update(set_)

    def _apply_patches(self) -> None:
        """Writes the pending patches: into the bytes natively, else into the parsed message."""
        if not self._patches:
            return
        patches, self._patches = sorted(self._patches.items()), {}
        if self._serialized is not None and _native().available():
            try:
                self._serialized = _native().apply_patches(
                    self._serialized, [(index, list(remove), to_set) for index, (to_set, remove) in patches])
                self._request = None
                return
            except ValueError:  # what the native writer cannot take as upb took it: patch the message
                pass
        if self._request is None:
            self._request = ExportTraceServiceRequest.FromString(self._serialized)
        self._serialized = None
        indices = [index for index, _ in patches]
        for (ss, at), (_, (to_set, remove)) in zip(_spans_at(self._request, indices), patches):
            _patch_span(ss.spans[at], to_set, remove)

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


def _spans_at(message: ExportTraceServiceRequest, indices: list[int]) -> Iterator[tuple[ScopeSpans, int]]:
    wanted, position, first = iter(indices), 0, 0
    index = next(wanted, None)
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            first, position = position, position + len(ss.spans)
            while index is not None and index < position:
                yield ss, index - first
                index = next(wanted, None)
            if index is None:
                return


def _native():
    from collector import native  # imported here: collector.native imports this module

    return native


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


_INT64 = range(-(2**63), 2**63)


def _as_read(value: Any) -> Any:
    """`value` as it reads back once `set_any_value` wrote it (a tuple is a list, anything unknown
    its `str`); ValueError for an int OTLP cannot carry."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        if value not in _INT64:
            raise ValueError(f"Value out of range: {value}")
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return _as_read(int(value) if isinstance(value, int) else float(value))
    if isinstance(value, (list, tuple)):
        return [_as_read(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _as_read(item) for key, item in value.items()}
    return str(value)


def _patch_span(span: Span, to_set: dict[str, Any], remove: set[str]) -> None:
    """`Traces.patch` through the protobuf API (what `apply_patches` does to the bytes)."""
    attributes = span.attributes
    if remove and any(kv.key in remove for kv in attributes):
        kept = [KeyValue(key=kv.key, value=kv.value) for kv in attributes if kv.key not in remove]
        del attributes[:]
        attributes.extend(kept)
    position = {kv.key: i for i, kv in enumerate(attributes)}  # the last of duplicate keys
    for key, value in to_set.items():
        at = position.get(key)
        if at is None:
            set_any_value(attributes.add(key=key).value, value)
        else:
            target = attributes[at].value
            target.Clear()
            set_any_value(target, value)


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


# Deeper documents are refused before protobuf's (recursive, Python-level) JSON mapping sees them.
# A span's attribute value sits at depth 10, and each level of a nested AnyValue adds up to 4: 64
# leaves room for 13 nested levels (validation cuts values deeper than max_attribute_depth, 8).
DEFAULT_MAX_JSON_DEPTH = 64


def _hex_ids_to_base64(node: Any, path: str, depth_left: int) -> None:
    """Ids from hex to base64, and the depth check: one walk over the decoded document."""
    if depth_left <= 0:
        raise _TooDeep()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = _hex_to_b64(value, _ID_FIELDS[key], f"{path}.{key}")
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value, f"{path}.{key}", depth_left - 1)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                _hex_ids_to_base64(item, f"{path}[{i}]", depth_left - 1)


class _TooDeep(Exception):
    pass


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


def decode_otlp_json(data: bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> ExportTraceServiceRequest:
    return decode_otlp_json_into(data, ExportTraceServiceRequest(), "resourceSpans", max_depth)


def decode_otlp_json_into(data: bytes, request, top_key: str, max_depth: int = DEFAULT_MAX_JSON_DEPTH):
    """OTLP/JSON of any signal (ids in hex, as the spec writes them) into `request`, depth-limited."""
    too_deep = f"malformed OTLP/JSON payload: nested deeper than {max_depth} levels"
    try:
        # json's C decoder stops at the interpreter's recursion limit (RecursionError, not a crash);
        # anything shallower than that is measured by the walk below.
        document = json.loads(data)
    except RecursionError:
        raise PermanentError(too_deep) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise PermanentError(f"malformed OTLP/JSON payload: {exc}") from exc
    if not isinstance(document, dict):
        raise PermanentError(f"malformed OTLP/JSON payload: the top level must be an object with {top_key}")
    try:
        _hex_ids_to_base64(document, "$", max_depth)
    except _TooDeep:
        raise PermanentError(too_deep) from None
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
