"""One batch of log records: an `ExportLogsServiceRequest`, serialized, parsed or both.

The logs counterpart of `collector.pdata.Traces`, with the interface the pipeline's generic parts
use (`to_protobuf`, `serialized_size`, `span_count`: the number of items, `merge`), so the batch
and memory_limiter processors and exporterhelper's queues carry logs unchanged. The message has
one field, repeated `resource_logs` (field 1, as `resource_spans`), so concatenated serializations
are the serialization of the merge, and `otlp_split` splits it the same way (resource 1, scope 2,
records 2: the same field numbers as traces).
"""

from __future__ import annotations

from typing import Callable, Iterable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.errors import PermanentError
from collector.pdata import DEFAULT_MAX_JSON_DEPTH, decode_otlp_json_into


class Logs:
    __slots__ = ("_request", "_serialized", "_count")

    def __init__(self, request: ExportLogsServiceRequest | None = None):
        self._request = request if request is not None else ExportLogsServiceRequest()
        self._serialized: bytes | None = None
        self._count: int | None = None

    @classmethod
    def from_protobuf(cls, data: bytes) -> "Logs":
        request = ExportLogsServiceRequest()
        try:
            request.ParseFromString(data)
        except Exception as exc:  # upb raises DecodeError; anything else is equally a bad payload
            raise PermanentError(f"malformed OTLP protobuf payload: {exc}") from exc
        logs = cls(request)
        logs._serialized = bytes(data)
        return logs

    @classmethod
    def from_json(cls, data: bytes, max_depth: int | None = None) -> "Logs":
        logs = cls(decode_logs_json(data, max_depth or DEFAULT_MAX_JSON_DEPTH))
        logs._serialized = logs._request.SerializeToString()
        return logs

    def read(self) -> ExportLogsServiceRequest:
        """The parsed message, to read only: the received bytes stay valid."""
        return self._request

    def edit(self) -> ExportLogsServiceRequest:
        """The parsed message, to change: the bytes and record count are given up here
        (`to_protobuf` serializes the changed message once), as `Traces.edit()`."""
        self._serialized, self._count = None, None
        return self._request

    def edit_if(self, change: Callable[[ExportLogsServiceRequest], bool]) -> bool:
        """`change(message)`, which says whether it changed anything: only then are the bytes given
        up. A processor that usually changes nothing (redaction) keeps the batch's bytes."""
        changed = change(self._request)
        if changed:
            self._serialized, self._count = None, None
        return changed

    def to_protobuf(self) -> bytes:
        if self._serialized is None:
            self._serialized = self._request.SerializeToString()
        return self._serialized

    def serialized_size(self) -> int:
        return len(self._serialized) if self._serialized is not None else self._request.ByteSize()

    def record_count(self) -> int:
        if self._count is None:
            self._count = sum(len(scope.log_records) for resource in self._request.resource_logs
                              for scope in resource.scope_logs)
        return self._count

    span_count = record_count  # the name the generic parts (batch, queues) count items by

    @classmethod
    def merge(cls, batches: Iterable["Logs"]) -> "Logs":
        return cls.from_protobuf(b"".join(batch.to_protobuf() for batch in batches))


_ID_SIZES = (("trace_id", 16), ("span_id", 8))


def _bad_id(record) -> set[str]:
    """The names of the record's ids that are set but not of their size, or all zeros."""
    return {name for name, size in _ID_SIZES
            if getattr(record, name) and (len(getattr(record, name)) != size or not any(getattr(record, name)))}


def sanitize(logs: Logs) -> tuple[int, str]:
    """Drop the records whose trace or span id is neither empty nor of its size (16 / 8 bytes) or is
    all zeros: they could not be joined to a span, and the contrib table stores ids as hex of
    their size. Returns (dropped, reason) for the response's partial_success."""
    bad_ids: set[str] = set()
    dropped = 0
    if not any(_bad_id(record) for resource_logs in logs.read().resource_logs
               for scope_logs in resource_logs.scope_logs for record in scope_logs.log_records):
        return 0, ""  # the usual case: the received bytes stay
    for resource_logs in logs.edit().resource_logs:
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            for index in reversed(range(len(records))):
                bad = _bad_id(records[index])
                if bad:
                    bad_ids |= bad
                    dropped += 1
                    del records[index]
    return dropped, f"{dropped} log records dropped: invalid {' and '.join(sorted(bad_ids))}"


def decode_logs_json(data: bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> ExportLogsServiceRequest:
    """OTLP/JSON logs (ids in hex, as the spec writes them), depth-limited like traces."""
    return decode_otlp_json_into(data, ExportLogsServiceRequest(), "resourceLogs", max_depth)
