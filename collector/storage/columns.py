"""OTLP protobuf -> the `otel_traces` table as Arrow, the form the ClickHouse exporter inserts.

The conversion itself is native (`collector.native.arrow_columns`, Rust): it fills the Arrow
buffers of every column named in `COLUMN_NAMES`, in that order, and `_Reader` wraps them zero-copy
into arrays by each column's type in `ARROW_SCHEMA`. The columns and their order are not written
here: `ARROW_SCHEMA` is built from `sql/traces_table.sql` (`ddl.table_columns`), the DDL the table is
created with, so the insert, the native converter and the table cannot disagree.
Values are rendered as the contrib exporter renders them: hex ids, `Server`/`Client` kinds,
`Ok`/`Error` statuses, attribute values as strings (`pcommon.Value.AsString`; nested values and
bytes through `collector.pdata.any_value_to_str`, the one JSON rendering). Arrow inserts into
ClickHouse are several times faster than row formats. `tests/test_columns.py` checks the output
against a plain per-span reference conversion.

`pa.array` imports pandas on its first call when pandas is installed (chdb depends on it): 2-4 s
the first time. `warm_up()` pays that at exporter start instead of on the first batch.
"""

from __future__ import annotations

import pyarrow as pa

from collector import native
from collector.pdata import AnyValue, Traces, any_value_to_str, canonical_protobuf
from collector.storage import ddl

_STRING = pa.string()
# ClickHouse type -> the Arrow type inserted into it (clickhouse-connect and chdb map them back).
_ARROW_TYPES = {
    "String": _STRING,
    "LowCardinality(String)": _STRING,
    "DateTime64(9)": pa.timestamp("ns"),
    "UInt64": pa.uint64(),
    "UInt8": pa.uint8(),
    "Map(LowCardinality(String), String)": pa.map_(_STRING, _STRING),
}


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type of a column of the DDL (`Array(T)` as a list of T's)."""
    if clickhouse_type.startswith("Array(") and clickhouse_type.endswith(")"):
        return pa.list_(arrow_type(clickhouse_type[len("Array("):-1]))
    try:
        return _ARROW_TYPES[clickhouse_type]
    except KeyError:
        raise ValueError(f"no Arrow type for the ClickHouse type {clickhouse_type!r} (add it to _ARROW_TYPES)") from None


def arrow_schema(table_columns: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, arrow_type(clickhouse_type)) for name, clickhouse_type in table_columns.items()])


# The otel_traces columns in table order, from sql/traces_table.sql (the one definition): the
# native converter fills them in this order, and the insert sends them so.
ARROW_SCHEMA = arrow_schema(ddl.table_columns(ddl.TRACES_TABLE))
COLUMN_NAMES = ARROW_SCHEMA.names


def traces_to_arrow(traces: Traces) -> pa.Table:
    """One batch, in any form, as the table (from its bytes)."""
    return payloads_to_arrow([traces.to_protobuf()])


def payloads_to_arrow(payloads: list[bytes]) -> pa.Table:
    """Serialized ExportTraceServiceRequests -> the table. The message has one field, repeated
    `resource_spans`: the concatenated payloads are the serialization of their merge.

    What prost refuses and upb reads (a known field with another wire type) is converted from its
    canonical form (`collector.pdata.canonical_protobuf`); what upb refuses too is a PermanentError.
    """
    data = payloads[0] if len(payloads) == 1 and type(payloads[0]) is bytes else b"".join(payloads)
    try:
        rows, buffers = native.arrow_columns(data, _render, COLUMN_NAMES)
    except ValueError:
        rows, buffers = native.arrow_columns(canonical_protobuf(data), _render, COLUMN_NAMES)
    reader = _Reader(buffers)
    return pa.Table.from_arrays([reader.array(field.type, rows) for field in ARROW_SCHEMA], schema=ARROW_SCHEMA)


def _render(raw: bytes) -> str:
    """A bytes / array / kvlist value, from its serialization: one JSON rendering, Python's."""
    return any_value_to_str(AnyValue.FromString(raw))


class _Reader:
    """The native buffer list, column after column, as Arrow arrays (zero-copy), by Arrow type:
    a fixed-width column is one buffer; a string column its offsets and data; a list column its
    offsets, then its values; a map column its offsets, then its keys and its values."""

    def __init__(self, buffers: list[bytes]):
        self._buffers = iter(buffers)

    def _next(self) -> pa.Buffer:
        return pa.py_buffer(next(self._buffers))

    def _offsets(self, count: int) -> tuple[pa.Array, int]:
        """An i32 offsets array for `count` rows, and its last offset (the child length)."""
        offsets = pa.Array.from_buffers(pa.int32(), count + 1, [None, self._next()])
        return offsets, offsets[count].as_py()

    def array(self, arrow_type: pa.DataType, count: int) -> pa.Array:
        if pa.types.is_string(arrow_type):
            offsets = self._next()
            return pa.Array.from_buffers(arrow_type, count, [None, offsets, self._next()])
        if pa.types.is_map(arrow_type):
            offsets, entries = self._offsets(count)
            keys, items = self.array(arrow_type.key_type, entries), self.array(arrow_type.item_type, entries)
            return pa.MapArray.from_arrays(offsets, keys, items, type=arrow_type)
        if pa.types.is_list(arrow_type):
            offsets, items = self._offsets(count)
            return pa.ListArray.from_arrays(offsets, self.array(arrow_type.value_type, items))
        return pa.Array.from_buffers(arrow_type, count, [None, self._next()])


def payloads_to_arrow_ipc(payloads: list[bytes]) -> bytes:
    """`payloads_to_arrow`, as Arrow IPC stream bytes (a conversion worker's answer)."""
    table = payloads_to_arrow(payloads)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ARROW_SCHEMA) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def arrow_from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def warm_up() -> None:
    """Convert one empty batch: pyarrow's first `pa.array` imports pandas (seconds), do it now."""
    traces_to_arrow(Traces())
    pa.array(["x"], pa.string())
