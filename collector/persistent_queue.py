"""The exporters' sending queue: bounded in bytes, on disk (SQLite) or in memory.

On disk, an item is committed (fsync'd) before `put` returns, so the receiver acknowledges only
what survives `kill -9`. A consumer takes several items as one batch and *records the batch's
composition* before pushing it: after a crash the same batch is replayed with the same id, hence
the same insert deduplication token, so a batch the store already has is not stored twice.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from collector.component import ResourceExhaustedError


class QueueFull(ResourceExhaustedError):
    pass


@dataclass
class QueuedBatch:
    id: int
    item_ids: list[int]
    payloads: list[bytes]
    spans: int
    item_spans: list[int] = field(default_factory=list)
    # Recorded as being delivered by a process that stopped before the store confirmed it.
    replayed: bool = False


def _fits(counts: list[int], size: int, item: tuple[int, bytes, int], max_spans: int, max_bytes: int) -> bool:
    """Whether one more queued item still fits a batch (a single oversize item is a batch alone)."""
    return sum(counts) + item[2] <= max_spans and size + len(item[1]) <= max_bytes


def _refuse_if_full(used: int, size: int, max_bytes: int, occupied: bool, where: str = "") -> None:
    """The byte bound, for `put` and `check_room` alike. An empty queue still takes an item larger
    than the whole bound: refusing it would refuse it forever."""
    if used + size > max_bytes and occupied:
        raise QueueFull(f"sending queue is full ({used} of {max_bytes} bytes{where})")


class MemoryQueue:
    """Bounded in bytes; lost on crash (like the contrib collector's default in-memory queue)."""

    durable = False

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # Batch ids restart at 1 with every process: the instance id keeps dedup tokens unique.
        self.instance = uuid.uuid4().hex
        self._items: collections.deque[tuple[int, bytes, int]] = collections.deque()
        self._bytes = 0
        self._next_id = 1
        self._cond = threading.Condition()

    def put(self, payload: bytes, spans: int) -> None:
        with self._cond:
            _refuse_if_full(self._bytes, len(payload), self.max_bytes, bool(self._items))
            self._items.append((self._next_id, payload, spans))
            self._next_id += 1
            self._bytes += len(payload)
            self._cond.notify()

    def check_room(self, size: int) -> None:
        with self._cond:
            _refuse_if_full(self._bytes, size, self.max_bytes, bool(self._items))

    def next_batch(self, max_spans: int, max_bytes: int, wait_s: float) -> QueuedBatch | None:
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: self._items, timeout=wait_s):
                return None
            ids, payloads, counts, size = [], [], [], 0
            while self._items and (not ids or _fits(counts, size, self._items[0], max_spans, max_bytes)):
                item_id, payload, count = self._items.popleft()
                size += len(payload)
                ids.append(item_id)
                payloads.append(payload)
                counts.append(count)
            return QueuedBatch(ids[0], ids, payloads, sum(counts), counts)

    def ack(self, batch: QueuedBatch) -> None:
        with self._cond:
            self._bytes -= sum(len(p) for p in batch.payloads)

    def requeue(self, batch: QueuedBatch) -> None:
        with self._cond:
            counts = batch.item_spans or [0] * len(batch.item_ids)
            for item_id, payload, count in reversed(list(zip(batch.item_ids, batch.payloads, counts))):
                self._items.appendleft((item_id, payload, count))

    def stats(self) -> tuple[int, int]:
        with self._cond:
            return len(self._items), self._bytes

    def close(self) -> None:
        pass


class DiskQueue:
    """SQLite in WAL mode, synchronous=FULL: one fsync per `put`, which is why requests are batched first."""

    durable = True

    def __init__(self, path: Path, max_bytes: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # Ingest processes (`service.ingest_workers`) write the same file: wait for their locks.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL,"
            " bytes INTEGER NOT NULL, spans INTEGER NOT NULL)"
        )
        # Sizes are summed from this index, not the table (whose rows carry the payloads).
        self._db.execute("CREATE INDEX IF NOT EXISTS items_bytes ON items(bytes)")
        self._db.execute("CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " first_item INTEGER, last_item INTEGER)")
        self._record_batches_as_ranges()
        # A random id per queue file: if the file is deleted, batch ids start again at 1, and
        # without it the new batches would carry the tokens of old ones and be "deduplicated" away.
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)", (uuid.uuid4().hex,))
        self.instance = self._db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Batches that were being pushed when the process died are replayed first, as recorded.
        self._in_flight: set[int] = set()

    def put(self, payload: bytes, spans: int) -> None:
        # Other processes may write this file too: the bound is checked against what is on disk,
        # in the same write transaction as the insert, not against this process's view.
        with self._cond:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._check_room_on_disk(len(payload))
                self._db.execute("INSERT INTO items (payload, bytes, spans) VALUES (?, ?, ?)", (payload, len(payload), spans))
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            self._cond.notify()

    def check_room(self, size: int) -> None:
        with self._cond:
            self._check_room_on_disk(size)

    def _check_room_on_disk(self, size: int) -> None:
        used = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM items").fetchone()[0]
        _refuse_if_full(used, size, self.max_bytes, used > 0, " on disk")

    def next_batch(self, max_spans: int, max_bytes: int, wait_s: float) -> QueuedBatch | None:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                batch = self._recorded_batch() or self._new_batch(max_spans, max_bytes)
                if batch is not None:
                    self._in_flight.add(batch.id)
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    # A batch is recorded as the range of item ids it took. Items are taken in id order, and an item
    # committed later (by any process) has a higher id, so a batch is always a contiguous range and
    # recording it writes one small row instead of rewriting every payload it holds.

    def _record_batches_as_ranges(self) -> None:
        """Queue files written before batches were ranges marked each item with its batch id."""
        if "batch_id" not in {row[1] for row in self._db.execute("PRAGMA table_info(items)")}:
            return
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}
        self._db.execute("BEGIN IMMEDIATE")
        if "first_item" not in columns:
            self._db.execute("ALTER TABLE batches ADD COLUMN first_item INTEGER")
            self._db.execute("ALTER TABLE batches ADD COLUMN last_item INTEGER")
        self._db.execute(
            "UPDATE batches SET first_item = (SELECT MIN(id) FROM items WHERE batch_id = batches.id),"
            " last_item = (SELECT MAX(id) FROM items WHERE batch_id = batches.id) WHERE first_item IS NULL"
        )
        self._db.execute("DELETE FROM batches WHERE first_item IS NULL")
        self._db.execute("UPDATE items SET batch_id = NULL WHERE batch_id IS NOT NULL")
        self._db.execute("COMMIT")

    def _recorded_batch(self) -> QueuedBatch | None:
        for batch_id, first, last in self._db.execute("SELECT id, first_item, last_item FROM batches ORDER BY id").fetchall():
            if batch_id in self._in_flight:
                continue
            rows = self._db.execute("SELECT id, payload, spans FROM items WHERE id BETWEEN ? AND ? ORDER BY id",
                                    (first, last)).fetchall()
            if not rows:  # nothing left of it (cannot happen through ack, which deletes both at once)
                self._db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
                continue
            counts = [r[2] for r in rows]
            return QueuedBatch(batch_id, [r[0] for r in rows], [r[1] for r in rows], sum(counts), counts, replayed=True)
        return None

    def _new_batch(self, max_spans: int, max_bytes: int) -> QueuedBatch | None:
        ids, payloads, counts, size = [], [], [], 0
        after = self._db.execute("SELECT COALESCE(MAX(last_item), 0) FROM batches").fetchone()[0]
        for item_id, payload, count in self._db.execute(
            "SELECT id, payload, spans FROM items WHERE id > ? ORDER BY id LIMIT 1000", (after,)
        ):
            if ids and not _fits(counts, size, (item_id, payload, count), max_spans, max_bytes):
                break
            size += len(payload)
            ids.append(item_id)
            payloads.append(payload)
            counts.append(count)
        if not ids:
            return None
        batch_id = self._db.execute("INSERT INTO batches (first_item, last_item) VALUES (?, ?)", (ids[0], ids[-1])).lastrowid
        return QueuedBatch(batch_id, ids, payloads, sum(counts), counts)

    def ack(self, batch: QueuedBatch) -> None:
        with self._cond:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM items WHERE id BETWEEN ? AND ?", (batch.item_ids[0], batch.item_ids[-1]))
            self._db.execute("DELETE FROM batches WHERE id = ?", (batch.id,))
            self._db.execute("COMMIT")
            self._in_flight.discard(batch.id)

    def requeue(self, batch: QueuedBatch) -> None:
        """Give a batch back (shutdown mid-retry): it stays recorded and is replayed as it was."""
        with self._cond:
            self._in_flight.discard(batch.id)
            self._cond.notify()

    def stats(self) -> tuple[int, int]:
        with self._cond:
            return self._db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM items").fetchone()

    def close(self) -> None:
        with self._cond:
            self._db.close()
