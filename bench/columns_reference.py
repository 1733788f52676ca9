"""The previous protobuf -> Arrow conversion (per-span nested lists), kept for bench.micro to compare.

Formerly collector/storage/columns.py; the correctness reference lives in tests/test_columns.py.

One pass over the message appends each span's fields to per-column lists, which become an Arrow
table (Arrow inserts into ClickHouse are several times faster than row formats). Values are
rendered as the contrib exporter renders them: hex ids, `Server`/`Client` kinds, `Ok`/`Error`
statuses, attribute values as strings (`pcommon.Value.AsString`).
"""

from __future__ import annotations

import pyarrow as pa

from collector.pdata import Traces, any_value_to_str

# The schema is the module under comparison's; only the conversion below is the reference.
from collector.storage.columns import ARROW_SCHEMA, COLUMN_NAMES  # noqa: E402,F401

_KIND_NAMES = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
_STATUS_NAMES = ["Unset", "Ok", "Error"]
_TS = pa.timestamp("ns")


def _pairs(attributes) -> list[tuple[str, str]]:
    return [(kv.key, any_value_to_str(kv.value)) for kv in attributes]


def traces_to_columns(traces: Traces) -> list[list]:
    """Column-oriented lists in `COLUMN_NAMES` order (the table's, from its DDL)."""
    by_name: dict[str, list] = {name: [] for name in COLUMN_NAMES}
    # each column's list by its name: the order is the DDL's, not this function's
    (
        c_ts, c_trace, c_span, c_parent, c_state, c_name, c_kind, c_service, c_res, c_scope, c_scope_ver,
        c_attrs, c_dur, c_status, c_status_msg, c_ev_ts, c_ev_name, c_ev_attrs, c_ln_trace, c_ln_span,
        c_ln_state, c_ln_attrs,
    ) = (by_name[name] for name in (
        "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
        "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode",
        "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId",
        "Links.TraceState", "Links.Attributes"))
    kind_names, status_names = _KIND_NAMES, _STATUS_NAMES
    for rs in traces.request.resource_spans:
        resource_attrs = _pairs(rs.resource.attributes)
        service = next((v for k, v in resource_attrs if k == "service.name"), "")
        for ss in rs.scope_spans:
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for span in ss.spans:
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                c_ts.append(start)
                c_trace.append(span.trace_id.hex())
                c_span.append(span.span_id.hex())
                c_parent.append(span.parent_span_id.hex())
                c_state.append(span.trace_state)
                c_name.append(span.name)
                c_kind.append(kind_names[span.kind] if 0 <= span.kind < 6 else "Unspecified")
                c_service.append(service)
                c_res.append(resource_attrs)
                c_scope.append(scope_name)
                c_scope_ver.append(scope_version)
                c_attrs.append(_pairs(span.attributes))
                c_dur.append(end - start if end > start else 0)
                code = span.status.code
                c_status.append(status_names[code] if 0 <= code < 3 else "Unset")
                c_status_msg.append(span.status.message)
                events = span.events
                if events:
                    c_ev_ts.append([e.time_unix_nano for e in events])
                    c_ev_name.append([e.name for e in events])
                    c_ev_attrs.append([_pairs(e.attributes) for e in events])
                else:
                    c_ev_ts.append([])
                    c_ev_name.append([])
                    c_ev_attrs.append([])
                links = span.links
                if links:
                    c_ln_trace.append([ln.trace_id.hex() for ln in links])
                    c_ln_span.append([ln.span_id.hex() for ln in links])
                    c_ln_state.append([ln.trace_state for ln in links])
                    c_ln_attrs.append([_pairs(ln.attributes) for ln in links])
                else:
                    c_ln_trace.append([])
                    c_ln_span.append([])
                    c_ln_state.append([])
                    c_ln_attrs.append([])
    return [by_name[name] for name in COLUMN_NAMES]


def _to_arrow(values: list, arrow_type: pa.DataType) -> pa.Array:
    # pyarrow converts Python ints to timestamps through a slow per-value path; int64 then a
    # zero-copy view is ~100x faster (and avoids importing pyarrow.compute).
    if arrow_type == _TS:
        return pa.array(values, type=pa.int64()).view(_TS)
    if arrow_type == pa.list_(_TS):
        flat = pa.array(values, type=pa.list_(pa.int64()))
        return pa.ListArray.from_arrays(flat.offsets, flat.values.view(_TS))
    return pa.array(values, type=arrow_type)


def traces_to_arrow(traces: Traces) -> pa.Table:
    columns = traces_to_columns(traces)
    arrays = [_to_arrow(col, field.type) for col, field in zip(columns, ARROW_SCHEMA)]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
