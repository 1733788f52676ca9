"""OTLP protobuf -> `otel_traces` columns, without building a dict (or a tuple) per span.

One pass over the message appends each span's fields to flat per-column lists: attribute maps
become one flat key list, one flat value list and an offsets list (Arrow's own layout for
`Map`/`List`), so nothing is nested per span. Arrow arrays are then built straight from buffers
or from flat lists, and the resource attributes of a request are converted once and repeated
with Arrow's `take`. Arrow inserts into ClickHouse are several times faster than row formats.

`pa.array` imports pandas on its first call when pandas is installed (chdb depends on it): 2-4 s
the first time. `warm_up()` pays that at exporter start instead of on the first batch.

Values are rendered as the contrib exporter renders them: hex ids, `Server`/`Client` kinds,
`Ok`/`Error` statuses, attribute values as strings (`pcommon.Value.AsString`, here
`collector.pdata.any_value_to_str`). The hot-path trick for values: a non-empty `string_value`
can only come from a string AnyValue (it is a oneof), so most values are read without
`WhichOneof`; everything else (and the empty string) goes through `any_value_to_str`.
`tests/test_columns.py` checks the output against a plain per-span reference conversion.
"""

from __future__ import annotations

from array import array

import pyarrow as pa

from collector.pdata import Traces, any_value_to_str

_KIND_NAMES = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_STATUS_NAMES = ["Unset", "Ok", "Error"]

_MAP = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ns")

ARROW_SCHEMA = pa.schema(
    [
        ("Timestamp", _TS),
        ("TraceId", pa.string()),
        ("SpanId", pa.string()),
        ("ParentSpanId", pa.string()),
        ("TraceState", pa.string()),
        ("SpanName", pa.string()),
        ("SpanKind", pa.string()),
        ("ServiceName", pa.string()),
        ("ResourceAttributes", _MAP),
        ("ScopeName", pa.string()),
        ("ScopeVersion", pa.string()),
        ("SpanAttributes", _MAP),
        ("Duration", pa.uint64()),
        ("StatusCode", pa.string()),
        ("StatusMessage", pa.string()),
        ("Events.Timestamp", pa.list_(_TS)),
        ("Events.Name", pa.list_(pa.string())),
        ("Events.Attributes", pa.list_(_MAP)),
        ("Links.TraceId", pa.list_(pa.string())),
        ("Links.SpanId", pa.list_(pa.string())),
        ("Links.TraceState", pa.list_(pa.string())),
        ("Links.Attributes", pa.list_(_MAP)),
    ]
)
COLUMN_NAMES = ARROW_SCHEMA.names


class _Attrs:
    """A column of string maps, flat: keys, values, and one end offset per map."""

    __slots__ = ("keys", "values", "offsets")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets = array("i", [0])

    def add(self, attributes) -> None:
        keys, values = self.keys, self.values
        for kv in attributes:
            keys.append(kv.key)
            value = kv.value
            text = value.string_value
            values.append(text if text else any_value_to_str(value))
        self.offsets.append(len(keys))

    def to_arrow(self) -> pa.Array:
        return pa.MapArray.from_arrays(_offsets(self.offsets), _strings(self.keys), _strings(self.values), type=_MAP)


class _Columns:
    """The flat lists one pass fills; `to_arrow` turns them into a table."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.dur = array("Q")
        self.trace, self.span, self.parent, self.state, self.name = [], [], [], [], []
        self.kind, self.service, self.scope, self.scope_ver, self.status, self.status_msg = [], [], [], [], [], []
        # resource attributes: each distinct resource once, and per span the index of its resource
        self.resources = _Attrs()
        self.res_index = array("i")
        self.attrs = _Attrs()
        # events and links: per span an end offset into the per-event / per-link lists
        self.ev_offsets = array("i", [0])
        self.ev_ts = array("q")
        self.ev_name: list[str] = []
        self.ev_attrs = _Attrs()
        self.ln_offsets = array("i", [0])
        self.ln_trace, self.ln_span, self.ln_state = [], [], []
        self.ln_attrs = _Attrs()


def _fill(traces: Traces) -> _Columns:
    c = _Columns()
    kind_names, status_names = _KIND_NAMES, _STATUS_NAMES
    ts_append, dur_append = c.ts.append, c.dur.append
    trace_append, span_append, parent_append = c.trace.append, c.span.append, c.parent.append
    state_append, name_append, kind_append = c.state.append, c.name.append, c.kind.append
    service_append, scope_append, scope_ver_append = c.service.append, c.scope.append, c.scope_ver.append
    status_append, status_msg_append = c.status.append, c.status_msg.append
    res_index_append = c.res_index.append
    add_attrs = c.attrs.add
    ev_offsets_append, ln_offsets_append = c.ev_offsets.append, c.ln_offsets.append
    resources = c.resources
    for resource_index, rs in enumerate(traces.request.resource_spans):
        first = len(resources.keys)
        resources.add(rs.resource.attributes)
        service = next((v for k, v in zip(resources.keys[first:], resources.values[first:]) if k == "service.name"), "")
        for ss in rs.scope_spans:
            scope = ss.scope
            scope_name, scope_version = scope.name, scope.version
            for span in ss.spans:
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                ts_append(start)
                dur_append(end - start if end > start else 0)
                trace_append(span.trace_id.hex())
                span_append(span.span_id.hex())
                parent_append(span.parent_span_id.hex())
                state_append(span.trace_state)
                name_append(span.name)
                kind = span.kind
                kind_append(kind_names[kind] if 0 <= kind < 6 else "Unspecified")
                service_append(service)
                res_index_append(resource_index)
                scope_append(scope_name)
                scope_ver_append(scope_version)
                add_attrs(span.attributes)
                status = span.status
                code = status.code
                status_append(status_names[code] if 0 <= code < 3 else "Unset")
                status_msg_append(status.message)
                events = span.events
                if events:
                    _add_events(c, events)
                ev_offsets_append(len(c.ev_name))
                links = span.links
                if links:
                    _add_links(c, links)
                ln_offsets_append(len(c.ln_trace))
    return c


def _add_events(c: _Columns, events) -> None:
    for event in events:
        c.ev_ts.append(event.time_unix_nano)
        c.ev_name.append(event.name)
        c.ev_attrs.add(event.attributes)


def _add_links(c: _Columns, links) -> None:
    for link in links:
        c.ln_trace.append(link.trace_id.hex())
        c.ln_span.append(link.span_id.hex())
        c.ln_state.append(link.trace_state)
        c.ln_attrs.add(link.attributes)


# --- Arrow from flat Python data, through buffers ----------------------------------------------


def _offsets(offsets: array) -> pa.Array:
    return pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)])


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _numbers(values: array, arrow_type: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def _lists(offsets: array, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(_offsets(offsets), values)


def _columns_to_arrow(c: _Columns) -> list[pa.Array]:
    strings = _strings
    return [
        _numbers(c.ts, _TS),
        strings(c.trace),
        strings(c.span),
        strings(c.parent),
        strings(c.state),
        strings(c.name),
        strings(c.kind),
        strings(c.service),
        c.resources.to_arrow().take(_numbers(c.res_index, pa.int32())),
        strings(c.scope),
        strings(c.scope_ver),
        c.attrs.to_arrow(),
        _numbers(c.dur, pa.uint64()),
        strings(c.status),
        strings(c.status_msg),
        _lists(c.ev_offsets, _numbers(c.ev_ts, _TS)),
        _lists(c.ev_offsets, strings(c.ev_name)),
        _lists(c.ev_offsets, c.ev_attrs.to_arrow()),
        _lists(c.ln_offsets, strings(c.ln_trace)),
        _lists(c.ln_offsets, strings(c.ln_span)),
        _lists(c.ln_offsets, strings(c.ln_state)),
        _lists(c.ln_offsets, c.ln_attrs.to_arrow()),
    ]


def traces_to_arrow(traces: Traces) -> pa.Table:
    return pa.Table.from_arrays(_columns_to_arrow(_fill(traces)), schema=ARROW_SCHEMA)


def payloads_to_arrow(payloads: list[bytes]) -> pa.Table:
    """Serialized ExportTraceServiceRequests -> the table: natively (collector/native) when the
    module is built, else through `traces_to_arrow`, which defines what the native path must give.

    The message has one field, repeated `resource_spans`: parsing the concatenated payloads appends
    them in order, which is exactly `Traces.merge` of the parsed payloads.
    """
    from collector import native  # imports this module's schema

    if native.available():
        return native.payloads_to_arrow(payloads)
    return traces_to_arrow(Traces.from_protobuf(b"".join(payloads)))


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
    _strings(["x"])
