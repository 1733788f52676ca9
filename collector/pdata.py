"""Pipeline data: OTLP trace requests in three explicit forms, as the Go collector's pdata keeps a
batch in its own wire-shaped structs.

A batch (`Traces`) is in one or more of these forms; the methods named below are the only
conversions between them:

* **bytes**, the serialized ExportTraceServiceRequest as received (`Traces.from_protobuf`,
  `Traces.to_protobuf`). The hot form: merging batches is a concatenation
  (`Traces.merge`), the exporters' queues take bytes, and the native module
  (`collector.native`) reads them: the receiver's pre-scan, the GenAI rows and the Arrow columns.
* **message**, the parsed upb message: `read()` to look at it (the bytes stay valid), `edit()` to
  change it, `edit_if(change)` to change it perhaps. These are the only conversions that give the
  bytes up, by their names (`edit_if` only when `change` says it changed something): after
  them, `to_protobuf()` serializes the message again, once.
* **rows + patches**, what the GenAI processors see: `genai_rows()` reads the spans with GenAI
  keys natively from the bytes, `patch()` records changes, and the next conversion writes them
  into the bytes natively (`apply_patches`), keeping every other byte as it came.

The native module is the one implementation of the wire-level stages. What it cannot read where
upb could (a known field number sent with another wire type, which upb keeps as an unknown field
and prost refuses) goes through `canonical_protobuf` once: parsed by upb, unknown fields dropped,
serialized again, so every stage then reads the same canonical bytes.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector import native
from collector.errors import PermanentError
from semconv import EXCEPTION_SPAN_EVENT, EXCEPTION_TYPE
from semconv.genai_mapping import GENAI_KEY_PREFIXES

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
    "canonical_protobuf",
]

_T = TypeVar("_T")


class GenAISpan:
    """One span with a GenAI-looking attribute key, as the GenAI processors see it: read once per
    batch (`Traces.genai_rows`), changed only through `Traces.patch`, which keeps `attributes`
    equal to the span's attributes as a dict."""

    __slots__ = ("index", "name", "trace_id", "span_id", "parent_span_id", "status_code", "start_time_unix_nano",
                 "end_time_unix_nano", "attributes", "resource", "status_message", "exception_types", "normalized")

    def __init__(self, index: int, name: str, trace_id: bytes, span_id: bytes, parent_span_id: bytes,
                 status_code: int, start_time_unix_nano: int, end_time_unix_nano: int, attributes: dict[str, Any],
                 resource: dict[str, Any], status_message: str = "", exception_types: Sequence[str] | None = None):
        self.index = index  # in `Traces.spans()` order
        self.name, self.trace_id, self.span_id, self.parent_span_id = name, trace_id, span_id, parent_span_id
        self.status_code = status_code
        self.start_time_unix_nano, self.end_time_unix_nano = start_time_unix_nano, end_time_unix_nano
        self.attributes = attributes  # `attributes_to_dict(span.attributes)`: the last duplicate key wins
        self.resource = resource  # its resource's attributes, shared by the rows of one resource: read only
        # A failed span's status description and the `exception.type` values of its exception
        # events, last event first ("" and () for a span that did not fail): its error type.
        self.status_message = status_message
        self.exception_types = exception_types or ()
        # Set by `genai_normalizer` once `attributes` are in current semconv, so `genai_cost` does
        # not normalise them a second time.
        self.normalized = False


def canonical_protobuf(data: bytes) -> bytes:
    """`data` as upb reads it, serialized again without unknown fields: what the native module
    reads when it refused `data` (a known field with another wire type). PermanentError if upb
    refuses it too."""
    message = _parse(data)
    message.DiscardUnknownFields()
    return message.SerializeToString()


def _parse(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except Exception as exc:  # upb raises DecodeError; anything else is equally a bad payload
        raise PermanentError(f"malformed OTLP protobuf payload: {exc}") from exc
    return request


class Traces:
    """One batch of spans: bytes, message, or rows + patches (see the module docstring).

    `genai_spans`, the indices (in `spans()` order) of the spans with a GenAI-looking attribute
    key, travels with the bytes when known: the receiver's native scan names them, so the GenAI
    processors read only those rows. Whoever adds or removes spans or attribute keys calls
    `invalidate()`.
    """

    __slots__ = ("_request", "_serialized", "_span_count", "genai_spans", "_rows", "_patches")

    def __init__(self, request: ExportTraceServiceRequest | None = None, *, serialized: bytes | None = None):
        """A batch in message form (`request`; an empty one without either), or in bytes form
        (`serialized`, parsed on first use)."""
        if request is None and serialized is None:
            request = ExportTraceServiceRequest()
        self._request = request
        # The serialization, when known to equal `_request` (or `_request` is None).
        self._serialized = serialized
        self._span_count: int | None = None
        self.genai_spans: list[int] | None = None
        self._rows: list[GenAISpan] | None = None
        # span index -> (attributes to set, keys to remove first): changes not yet written.
        self._patches: dict[int, tuple[dict[str, Any], set[str]]] = {}

    # --- bytes ---

    @classmethod
    def from_protobuf(cls, data: bytes) -> "Traces":
        """Received bytes, not parsed: the native readers take them as they are, and the message is
        parsed on the first `read()`/`edit()` (a malformed payload is a PermanentError there, or where
        a native reader and then upb refuse it: the receiver's validation scan)."""
        return cls(serialized=data if type(data) is bytes else bytes(data))  # the native module reads bytes

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
        """The bytes: as received, with pending patches written, or the edited message serialized."""
        self._apply_patches()
        return self._bytes()

    def _bytes(self) -> bytes:
        if self._serialized is None:
            self._serialized = self._request.SerializeToString()
        return self._serialized

    def serialized_size(self) -> int:
        """`len(self.to_protobuf())`. An edited message is serialized here, once: every exporter
        then takes those bytes (from any thread) instead of serializing its own copy."""
        return len(self.to_protobuf())

    def read_natively(self, read: Callable[[bytes], _T]) -> _T:
        """`read(bytes)` for a native reader of this batch's bytes; if the native module refuses
        them (ValueError) where upb read them, the bytes become `canonical_protobuf` of them, once,
        and `read` runs again on those (a second refusal is a PermanentError)."""
        self._apply_patches()
        try:
            return read(self._bytes())
        except ValueError:
            self._canonicalize()
        try:
            return read(self._serialized)
        except ValueError as exc:
            raise PermanentError(f"malformed OTLP protobuf payload: {exc}") from exc

    def _canonicalize(self) -> None:
        message = self._message()
        message.DiscardUnknownFields()
        self._serialized, self._rows = message.SerializeToString(), None

    # --- message ---

    def read(self) -> ExportTraceServiceRequest:
        """The parsed message, pending patches written, to read only: the bytes stay valid."""
        return self._message()

    def edit(self) -> ExportTraceServiceRequest:
        """The parsed message, to change as the caller likes. The bytes and rows are given up
        here (`to_protobuf` serializes the message again); span count and `genai_spans` stay
        unless the caller adds or removes spans or keys and calls `invalidate()`."""
        message = self._message()
        self._serialized, self._rows = None, None
        return message

    def edit_if(self, change: Callable[[ExportTraceServiceRequest], bool]) -> bool:
        """`change(message)` on the parsed message, which returns whether it changed anything:
        only then are the bytes given up, as by `edit()`. For a processor that usually changes
        nothing (redaction): the batch then keeps its bytes. Returns what `change` returned."""
        changed = change(self._message())
        if changed:
            self._serialized, self._rows = None, None
        return changed

    @property
    def request(self) -> ExportTraceServiceRequest:
        """`edit()`, by its older name."""
        return self.edit()

    def _message(self) -> ExportTraceServiceRequest:
        self._apply_patches()
        if self._request is None:
            self._request = _parse(self._serialized)
        return self._request

    @property
    def resource_spans(self):
        """The message's resource spans, to read."""
        return self.read().resource_spans

    def span_count(self) -> int:
        if self._span_count is None:
            self._span_count = sum(len(ss.spans) for rs in self._message().resource_spans for ss in rs.scope_spans)
        return self._span_count

    def record_scan(self, span_count: int, genai_spans: list[int]) -> None:
        """What the receiver's native scan found in these bytes: how many spans, and which have
        GenAI keys; no parse is needed to learn either."""
        self._span_count, self.genai_spans = span_count, genai_spans

    def invalidate(self) -> None:
        """Call after adding or removing spans (or attribute keys): cached facts are recomputed."""
        self._span_count = None
        self.genai_spans = None
        self._rows = None

    def spans(self) -> Iterator[tuple[ResourceSpans, ScopeSpans, Span]]:
        """Every span of the message, to read."""
        for rs in self.read().resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span

    def spans_at(self, indices: list[int]) -> Iterator[tuple[ScopeSpans, int]]:
        """(scope spans, index in it) of the spans at these ascending `spans()` indices, without
        visiting the others, to change: the message is in edit form (see `edit`) once any is named."""
        return _spans_at(self.edit(), indices) if indices else iter(())

    # --- rows + patches ---

    def genai_rows(self) -> list[GenAISpan]:
        """Every span with an attribute key starting with one of `GENAI_KEY_PREFIXES` (or those
        named by `genai_spans`), in order; read natively from the bytes once per batch and shared
        by the processors, whose `patch`es keep the rows up to date."""
        if self._rows is None:
            rows = self.read_natively(lambda data: native.genai_rows(data, self.genai_spans, GENAI_KEY_PREFIXES, _base64,
                                                                     _EXCEPTION_KEYS))
            self._rows = [GenAISpan(*row) for row in rows]
        return self._rows

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
        """Writes the pending patches into the bytes (serializing an edited message first)."""
        if not self._patches:
            return
        patches, self._patches = sorted(self._patches.items()), {}
        entries = [(index, list(remove), to_set) for index, (to_set, remove) in patches]
        self._serialized = self.read_natively(lambda data: native.apply_patches(data, entries))
        self._request = None

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
        traces = cls(serialized=b"".join(payloads))
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


# What `genai_rows` reads a failed span's error type from: its exception events' types.
_EXCEPTION_KEYS = (EXCEPTION_SPAN_EVENT, EXCEPTION_TYPE)


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


_INT64 = range(-(2**63), 2**63)


def _as_read(value: Any) -> Any:
    """`value` as it reads back once written (a tuple is a list, anything unknown its `str`);
    ValueError for an int OTLP cannot carry."""
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
