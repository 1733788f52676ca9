"""ClickHouse result values as JSON-safe values (for the query endpoint and the CLI's --json)."""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid


def to_json_value(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def result_to_json(result) -> dict:
    return {
        "columns": list(result.column_names),
        "types": [t.name for t in result.column_types],
        "rows": [[to_json_value(v) for v in row] for row in result.result_rows],
    }
