"""OTLP logs (ExportLogsServiceRequest) -> `otel_logs` columns, as the contrib exporter writes them.

Per record (clickhouseexporter v0.165.1 exporter_logs.go): `Timestamp` is the record's time, or its
observed time when the time is 0; ids in lower-case hex (empty when absent); `TraceFlags` the low
byte of `flags`; `ServiceName` the resource's `service.name`; `Body` and every attribute value as
`pcommon.Value.AsString` renders them (`collector.pdata.any_value_to_str`); `EventName` the
record's event name. Logs are few next to spans, so this is a plain loop, not columns.py's buffers.
"""

from __future__ import annotations

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.pdata import any_value_to_str
from collector.storage import ddl
from collector.storage.columns import arrow_schema

# The otel_logs columns in table order, from sql/logs_table.sql (the one definition).
ARROW_SCHEMA = arrow_schema(ddl.table_columns(ddl.LOGS_TABLE))
COLUMN_NAMES = ARROW_SCHEMA.names


def _pairs(attributes) -> list[tuple[str, str]]:
    return [(kv.key, any_value_to_str(kv.value)) for kv in attributes]


def logs_to_rows(message: ExportLogsServiceRequest) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in COLUMN_NAMES}
    for resource_logs in message.resource_logs:
        resource = _pairs(resource_logs.resource.attributes)
        service = next((value for key, value in resource if key == "service.name"), "")
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_attrs = _pairs(scope.attributes)
            for record in scope_logs.log_records:
                columns["Timestamp"].append(record.time_unix_nano or record.observed_time_unix_nano)
                columns["TraceId"].append(record.trace_id.hex())
                columns["SpanId"].append(record.span_id.hex())
                columns["TraceFlags"].append(record.flags & 0xFF)
                columns["SeverityText"].append(record.severity_text)
                columns["SeverityNumber"].append(min(int(record.severity_number), 255))
                columns["ServiceName"].append(service)
                columns["Body"].append(any_value_to_str(record.body) if record.HasField("body") else "")
                columns["ResourceSchemaUrl"].append(resource_logs.schema_url)
                columns["ResourceAttributes"].append(resource)
                columns["ScopeSchemaUrl"].append(scope_logs.schema_url)
                columns["ScopeName"].append(scope.name)
                columns["ScopeVersion"].append(scope.version)
                columns["ScopeAttributes"].append(scope_attrs)
                columns["LogAttributes"].append(_pairs(record.attributes))
                columns["EventName"].append(record.event_name)
    return columns


def logs_to_arrow(message: ExportLogsServiceRequest) -> pa.Table:
    columns = logs_to_rows(message)
    return pa.Table.from_arrays([pa.array(columns[field.name], type=field.type) for field in ARROW_SCHEMA],
                                schema=ARROW_SCHEMA)


def payloads_to_arrow(payloads: list[bytes]) -> pa.Table:
    """Serialized ExportLogsServiceRequest messages (what the disk queue holds) -> one table."""
    tables = []
    for payload in payloads:
        message = ExportLogsServiceRequest()
        message.ParseFromString(payload)
        tables.append(logs_to_arrow(message))
    return pa.concat_tables(tables) if tables else logs_to_arrow(ExportLogsServiceRequest())


def record_count(message: ExportLogsServiceRequest) -> int:
    return sum(len(scope.log_records) for resource in message.resource_logs for scope in resource.scope_logs)
