"""What the process holds, and how to make it hand back memory it no longer uses.

Python's allocator (glibc malloc) and the embedded ClickHouse engine (its own jemalloc) both keep
freed pages for reuse, so resident memory stays high for seconds after a burst. Under memory
pressure the `memory_limiter` calls `release_free_memory()` before deciding the process is full,
like otelcol's limiter forcing a GC. Components that own such an allocator register a releaser.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading
from typing import Callable

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE")
_releasers: list[Callable[[], None]] = []
_releasers_lock = threading.Lock()


_tree_root: int | None = None


def measure_process_tree(root_pid: int) -> None:
    """From now on `resident_bytes` is the whole collector's: `root_pid` and its descendants.
    Ingest workers call this, so `memory_limiter` limits the collector, not each worker alone."""
    global _tree_root
    _tree_root = root_pid


def resident_bytes() -> int:
    if _tree_root is None:
        return _resident(os.getpid())
    return sum(_resident(pid) for pid in process_tree(_tree_root))


def _resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0  # ended meanwhile


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(child_pids(pid))
    return pids


def child_pids(pid: int) -> list[int]:
    """`pid`'s children. Linux lists each child under the thread that started it, and a thread may
    end while we read, so each thread's list is read on its own."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return children


def total_memory_bytes() -> int:
    """The cgroup's memory limit when there is one (a container), else the machine's memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return os.sysconf("SC_PHYS_PAGES") * _PAGE


def register_releaser(release: Callable[[], None]) -> None:
    with _releasers_lock:
        _releasers.append(release)


def unregister_releaser(release: Callable[[], None]) -> None:
    with _releasers_lock:
        if release in _releasers:
            _releasers.remove(release)


def _glibc_function(name: str) -> Callable | None:
    """A glibc-only function (malloc_trim, mallopt), or None on another libc (musl)."""
    library = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(library), name, None) if library else None


_malloc_trim = _glibc_function("malloc_trim")

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process; True if set. glibc gives threads that allocate at
    once arenas of their own, up to 8 per core, and the receivers' thread pool then fragments them:
    under a steady 9k spans/s, RSS rose from 717 to 1,017 MB (per-minute means) over six minutes,
    against 685 to 831 MB with two arenas at the same rate (bench/README.md, "Memory"). Call
    before the threads start. A MALLOC_ARENA_MAX in the environment (read by glibc itself) wins."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc_function("mallopt")
    return bool(mallopt and mallopt(_M_ARENA_MAX, arenas) == 1)


def release_free_memory() -> None:
    gc.collect()
    with _releasers_lock:
        releasers = list(_releasers)
    for release in releasers:
        try:
            release()
        except Exception as exc:  # noqa: BLE001 - releasing is best effort; never stop the limiter
            log.debug("memory releaser %r failed: %s", release, exc)
    if _malloc_trim is not None:
        _malloc_trim(0)
