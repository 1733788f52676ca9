"""The `clickhouse` exporter's logs side: log records into the contrib exporter's `otel_logs`.

    service:
      pipelines:
        logs:
          receivers: [otlp]
          processors: [memory_limiter, batch]
          exporters: [clickhouse]      # the same exporter (and settings) as the traces pipeline

The same settings as the traces side (collector/exporters/clickhouse.py: endpoint, database,
`logs_table_name`, ttl, create_schema, timeout, retry_on_failure, sending_queue), with a queue of
its own: a disk queue (`sending_queue.storage`) in the same storage directory, named after the
exporter and `[logs]` (a name no component id can have), so logs and traces are acknowledged,
replayed and deduplicated independently. Each queued batch is inserted with an insert
deduplication token, so a replay after kill -9 does not store it twice.
Telemetry counts log records under the exporter label `clickhouse[logs]` (or `clickhouse[logs]/name`).
"""

from __future__ import annotations

from collector.component import ComponentId, Host, signal_id
from collector.exporterhelper import ExportRequest, QueuedRetryExporter
from collector.storage import schema, session_views
from collector.storage.client import ClickHouseStore, parse_endpoint, release_store


class ClickHouseLogsExporter:
    def __init__(self, component_id: ComponentId, config):
        self.id, self.config = signal_id(component_id, "logs"), config
        # Resolved now, at build: the traces side's embedded engine may change the working
        # directory before this one opens a relative chdb:// path.
        self._endpoint = parse_endpoint(config.endpoint)
        self.store: ClickHouseStore | None = None
        self.helper = QueuedRetryExporter(self.id, config, self.push, start=self._start, shutdown=self._shutdown)

    def _start(self, _host: Host) -> None:
        self.store = self.config.open_store(self._endpoint)
        if self.config.create_schema:
            options = schema.create(self.store, self.config.schema_options())  # otel_traces and otel_logs
            session_views.create(self.store, options)

    def push(self, request: ExportRequest) -> None:
        from collector.storage import log_columns  # pyarrow: imported once a batch comes (see clickhouse.py)

        table = log_columns.payloads_to_arrow(list(request.payloads))
        if not table.num_rows:
            return
        settings = {"insert_deduplication_token": request.dedup_token} if request.dedup_token else {}
        self.store.insert_arrow(self.config.logs_table_name, table, settings=settings)

    def _shutdown(self) -> None:
        if self.store is not None:
            release_store(self.store)
            self.store = None


def create_logs(component_id: ComponentId, config, _next) -> QueuedRetryExporter:
    return ClickHouseLogsExporter(component_id, config).helper
