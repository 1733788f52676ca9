"""`file_storage` extension: a directory where exporters keep their disk-backed sending queues.

    extensions:
      file_storage:
        directory: ${env:GENAITRACE_DATA:-./data}/queue
    exporters:
      clickhouse:
        sending_queue: {storage: file_storage}
"""

from __future__ import annotations

from pathlib import Path

from collector.component import Component, ComponentId, Factory, Kind, StrictConfig


class FileStorageConfig(StrictConfig):
    directory: str = "./data/queue"


class FileStorage(Component):
    ingest_side = True  # ingest worker processes need it too (service.ingest_workers)

    def __init__(self, component_id: ComponentId, config: FileStorageConfig):
        self.id, self.directory = component_id, Path(config.directory).resolve()

    def start(self, host) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, name: str) -> Path:
        return self.directory / name.replace("/", "_")


factory = Factory("file_storage", Kind.EXTENSION, FileStorageConfig, lambda cid, cfg, _next: FileStorage(cid, cfg))
