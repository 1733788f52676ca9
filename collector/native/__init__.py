"""Native (Rust, pyo3 + prost) fast paths, with the Python implementations as reference and fallback.

Build: `cd collector/native && cargo build --release --offline`, then copy
`target/release/lib_otlp_native.so` to `collector/native/_otlp_native.so`. Without it,
`available()` is False and callers use the Python paths.

* `payloads_to_arrow(payloads)`: what `collector.storage.columns.traces_to_arrow(
  Traces.from_protobuf(b"".join(payloads)))` returns, from buffers the extension fills; a payload
  prost rejects goes through that Python path, which raises `PermanentError` if it is malformed.
* `scan(data, max_value_bytes, max_depth, max_name_bytes, min_time_ns, max_time_ns, prefixes)`:
  `(attention, genai, resources_need_check)`, the spans validation / the GenAI processors must
  visit (see `src/lib.rs`). It raises ValueError on what prost cannot decode,
  including the rare payload upb accepts (a known field with the wrong wire type): callers then
  walk every span in Python.
* `genai_rows(data, indices, prefixes, encode_bytes)` and `apply_patches(data, patches)`
  (`src/wire.rs`): `collector.pdata.Traces.genai_rows` and its patches, on the serialized payload.
  Both raise ValueError on what they cannot read; `Traces` then does the same in Python.
"""

from __future__ import annotations

from collector.pdata import AnyValue, Traces, any_value_to_str

try:
    from collector.native._otlp_native import apply_patches, arrow_columns as _arrow_columns, genai_rows, scan
except ImportError:  # not built: the Python paths are used
    _arrow_columns = apply_patches = genai_rows = scan = None

__all__ = ["apply_patches", "available", "genai_rows", "payloads_to_arrow", "scan"]

# pyarrow (and the columns module), imported on the first `payloads_to_arrow`: the receivers only
# use `scan`, and importing pyarrow costs them ~0.2 s at start.
pa = None


def available() -> bool:
    return _arrow_columns is not None


def _render(raw: bytes) -> str:
    """A bytes / array / kvlist value, from its serialization: one JSON rendering, Python's."""
    return any_value_to_str(AnyValue.FromString(raw))


def payloads_to_arrow(payloads: list[bytes]) -> pa.Table:
    """Serialized ExportTraceServiceRequests -> the `otel_traces` table (ARROW_SCHEMA)."""
    global pa
    import pyarrow as pa

    from collector.storage.columns import ARROW_SCHEMA, traces_to_arrow

    data = payloads[0] if len(payloads) == 1 and type(payloads[0]) is bytes else b"".join(payloads)
    try:
        buffers = _arrow_columns(data, _render)
    except ValueError:
        # prost is stricter than upb: a known field with the wrong wire type is an error to it, an
        # unknown field to upb. The Python decoder has the last word (PermanentError if malformed).
        return traces_to_arrow(Traces.from_protobuf(data))
    return pa.Table.from_arrays(_Reader(buffers).columns(), schema=ARROW_SCHEMA)


class _Reader:
    """Turns the extension's buffer list, in ARROW_SCHEMA order, into arrays (zero-copy)."""

    def __init__(self, buffers: list[bytes]):
        self._buffers = iter(buffers)
        self.rows = len(buffers[0]) // 8  # the Timestamp column: one i64 per span

    def _next(self) -> pa.Buffer:
        return pa.py_buffer(next(self._buffers))

    def offsets(self, count: int) -> tuple[pa.Array, int]:
        """An i32 offsets array for `count` rows, and its last offset (the child length)."""
        array = pa.Array.from_buffers(pa.int32(), count + 1, [None, self._next()])
        return array, array[count].as_py()

    def numbers(self, arrow_type: pa.DataType, count: int) -> pa.Array:
        return pa.Array.from_buffers(arrow_type, count, [None, self._next()])

    def strings(self, count: int) -> pa.Array:
        offsets = self._next()
        return pa.Array.from_buffers(pa.string(), count, [None, offsets, self._next()])

    def maps(self, count: int) -> pa.Array:
        offsets, entries = self.offsets(count)
        keys, values = self.strings(entries), self.strings(entries)
        return pa.MapArray.from_arrays(offsets, keys, values, type=pa.map_(pa.string(), pa.string()))

    def lists(self, count: int, *children) -> list[pa.Array]:
        """List columns sharing one offsets buffer; `children` read each column's values."""
        offsets, items = self.offsets(count)
        return [pa.ListArray.from_arrays(offsets, child(items)) for child in children]

    def columns(self) -> list[pa.Array]:
        n, strings, timestamps = self.rows, self.strings, pa.timestamp("ns")
        return [
            self.numbers(timestamps, n),
            *(strings(n) for _ in range(7)),  # TraceId .. ServiceName
            self.maps(n),  # ResourceAttributes
            strings(n),
            strings(n),
            self.maps(n),  # SpanAttributes
            self.numbers(pa.uint64(), n),
            strings(n),
            strings(n),
            *self.lists(n, lambda k: self.numbers(timestamps, k), strings, self.maps),  # Events.*
            *self.lists(n, strings, strings, strings, self.maps),  # Links.*
        ]
