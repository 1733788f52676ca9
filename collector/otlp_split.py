"""Split a serialized ExportTraceServiceRequest into requests of at most N bytes, on the wire.

A receiver refuses a request above its limit (4 MiB by default in otelcol's OTLP receiver, in
Tempo and in Jaeger), so an exporter must never send a larger one. Splitting works on the
protobuf wire format without parsing the spans: the request is a list of `resource_spans`
(field 1); a ResourceSpans too large on its own is split by its `scope_spans` (field 2), each
part keeping the resource (field 1) and schema_url (field 3); a ScopeSpans too large on its own
is split by its `spans` (field 2) likewise, keeping the scope. Every part is a complete,
well-formed request. A single span that does not fit in `max_bytes` with its resource and scope
cannot be sent at all: it is returned apart, for the caller to drop and count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_LEN = 2  # wire type of length-delimited fields


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass
class SplitResult:
    parts: list[tuple[bytes, int]] = field(default_factory=list)  # (request bytes, spans)
    oversize_spans: int = 0  # spans larger than max_bytes on their own: not in any part
    largest_oversize: int = 0  # the size of the largest of them, for the error message


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(data: memoryview) -> list[tuple[int, memoryview, memoryview]]:
    """Top-level fields of a message: (field number, the whole field's bytes, its payload).
    The payload is only meaningful for length-delimited fields."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _LEN:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise WireFormatError("length-delimited field runs past the end")
            payload, pos = data[pos:pos + length], pos + length
        elif wire == 0:
            _, pos = _varint(data, pos)
            payload = data[start:start]
        elif wire == 1:
            pos += 8
            payload = data[start:start]
        elif wire == 5:
            pos += 4
            payload = data[start:start]
        else:
            raise WireFormatError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise WireFormatError("field runs past the end")
        out.append((number, data[start:pos], payload))
    return out


def _wrap(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LEN) + _encode_varint(len(payload)) + payload


def span_count(resource_spans: memoryview) -> int:
    """Spans in one serialized ResourceSpans."""
    return sum(
        sum(1 for n, _, _ in _fields(scope) if n == 2)
        for number, _, scope in _fields(resource_spans) if number == 2
    )


class _Packer:
    """Fills parts of at most `limit` bytes with whole serialized children, in order."""

    def __init__(self, limit: int, out: list[tuple[bytes, int]]):
        self.limit, self.out = limit, out
        self.chunks: list[bytes] = []
        self.size = self.spans = 0

    def add(self, chunk: bytes, spans: int) -> None:
        if self.chunks and self.size + len(chunk) > self.limit:
            self.flush()
        self.chunks.append(chunk)
        self.size += len(chunk)
        self.spans += spans

    def flush(self) -> None:
        if self.chunks:
            self.out.append((b"".join(self.chunks), self.spans))
        self.chunks, self.size, self.spans = [], 0, 0


def split_request(data: bytes, max_bytes: int) -> SplitResult:
    """Parts of `data` (an ExportTraceServiceRequest) of at most `max_bytes` each, in order."""
    result = SplitResult()
    packer = _Packer(max_bytes, result.parts)
    for number, whole, payload in _fields(memoryview(data)):
        if number != 1:
            continue  # ExportTraceServiceRequest has no other field; an unknown one carries no spans
        if len(whole) <= max_bytes:
            packer.add(bytes(whole), span_count(payload))
            continue
        for part, spans in _split_container(payload, max_bytes, result, inner_field=2, splitter=_split_scope):
            packer.add(_wrap(1, part), spans)
    packer.flush()
    return result


def _split_scope(scope_spans: memoryview, max_bytes: int, result: SplitResult) -> list[tuple[bytes, int]]:
    """A ScopeSpans too large as a whole: ScopeSpans of the same scope with fewer spans each."""
    return _split_container(scope_spans, max_bytes, result, inner_field=2, splitter=None)


def _split_container(message: memoryview, max_bytes: int, result: SplitResult, inner_field: int,
                     splitter) -> list[tuple[bytes, int]]:
    """Split a message by its repeated field `inner_field`, copying every other field into each part.
    `max_bytes` bounds each part once wrapped in its parents (a few bytes of tag and length per
    level are kept as slack). Children too large alone are split further by `splitter`, or, when
    there is none (a span), counted in `result` as oversize and left out."""
    fields = _fields(message)
    envelope = b"".join(bytes(whole) for number, whole, _ in fields if number != inner_field)
    room = max_bytes - len(envelope) - 32  # tags and lengths of this level and the ones above
    parts: list[tuple[bytes, int]] = []
    packer = _Packer(max(room, 1), parts)
    for number, whole, payload in fields:
        if number != inner_field:
            continue
        spans = 1 if splitter is None else sum(1 for n, _, _ in _fields(payload) if n == 2)
        if len(whole) <= room:
            packer.add(bytes(whole), spans)
        elif splitter is None:
            result.oversize_spans += 1
            result.largest_oversize = max(result.largest_oversize, len(whole))
        else:
            for part, part_spans in splitter(payload, room, result):
                packer.add(_wrap(inner_field, part), part_spans)
    packer.flush()
    return [(envelope + body, spans) for body, spans in parts]
