"""What the collector holds, how to make it hand back memory it no longer uses, and the admission
gate receivers ask before decoding a request.

The collector's memory is that of its whole process tree (ingest workers, conversion workers),
each page counted once: the sum of every process's PSS (proportional set size, from
/proc/PID/smaps_rollup: a page shared by N processes counts 1/N in each). Summing RSS instead
counts the interpreter, libraries and copy-on-write pages once per process: 613 MiB against a
PSS of 383 MiB for a collector with two ingest workers, enough to make a limit that fits the
collector refuse everything at idle.

Python's allocator (glibc malloc) and the embedded ClickHouse engine (its own jemalloc) both keep
freed pages for reuse, so resident memory stays high for seconds after a burst. Under memory
pressure the `memory_limiter` calls `release_free_memory()` before deciding the process is full,
like otelcol's limiter forcing a GC. Components that own such an allocator register a releaser.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import sys
import threading
from typing import Callable, Iterator

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE")
_releasers: list[Callable[[], None]] = []
_releasers_lock = threading.Lock()


_tree_root: int | None = None
_admitting_processes = 1


def measure_process_tree(root_pid: int, admitting_processes: int = 1) -> None:
    """From now on `collector_bytes` is the whole collector's: `root_pid` and its descendants.
    Ingest workers call this, so `memory_limiter` limits the collector, not each worker alone;
    `admitting_processes` (the number of ingest workers) share the headroom for requests in flight."""
    global _tree_root, _admitting_processes
    _tree_root, _admitting_processes = root_pid, max(1, admitting_processes)


def admitting_processes() -> int:
    return _admitting_processes


def collector_bytes() -> int:
    """The collector's memory: the PSS of every process of its tree, summed."""
    return sum(proportional_bytes(pid) for pid in process_tree(_tree_root or os.getpid()))


def resident_sum_bytes() -> int:
    """The RSS of every process of the tree, summed: shared pages counted once per process (for comparison)."""
    return sum(resident_bytes(pid) for pid in process_tree(_tree_root or os.getpid()))


def proportional_bytes(pid: int) -> int:
    """`pid`'s PSS; its RSS where the kernel has no smaps_rollup (before Linux 4.14)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return resident_bytes(pid)
    except (OSError, IndexError, ValueError):
        return 0  # ended meanwhile
    return resident_bytes(pid)


def resident_bytes(pid: int | None = None) -> int:
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as handle:
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


# --- admission: receivers ask before decoding a request ----------------------------------------

Gate = Callable[[int], Callable[[], None]]
_gate: Gate | None = None


def set_admission_gate(gate: Gate | None) -> None:
    """The memory_limiter installs its gate at start and removes it at shutdown (one per process)."""
    global _gate
    _gate = gate


@contextlib.contextmanager
def admission(request_bytes: int) -> Iterator[None]:
    """Hold `request_bytes` (a received, not yet decoded request) against the memory limit while
    the request is decoded and processed. Raises ResourceExhaustedError (retryable: gRPC
    RESOURCE_EXHAUSTED / HTTP 429) when the memory_limiter refuses it, so a burst of large
    requests is refused before decoding multiplies it, not buffered. Without a memory_limiter in
    the pipeline every request is admitted.

        with memory.admission(len(payload)):
            traces = Traces.from_protobuf(payload)
            ...
    """
    gate = _gate
    release = gate(request_bytes) if gate is not None else None
    try:
        yield
    finally:
        if release is not None:
            release()


# --- where the memory is: parts reported by the components that hold them -----------------------

_parts: dict[str, Callable[[], int]] = {}


def register_part(name: str, measure: Callable[[], int]) -> None:
    """A component that holds memory the process-wide figures cannot attribute (the embedded
    engine's own accounting, a buffer) reports it under `name`; `breakdown()` calls `measure`,
    which must be cheap and must not block."""
    with _releasers_lock:
        _parts[name] = measure


def unregister_part(name: str) -> None:
    with _releasers_lock:
        _parts.pop(name, None)


def _malloc_figures() -> dict[str, int]:
    """glibc malloc: bytes in use (small blocks plus mmapped large ones), and free bytes it keeps."""
    if _mallinfo2 is None:
        return {}
    info = _mallinfo2()
    return {"malloc_in_use": info.uordblks + info.hblkhd, "malloc_free": info.fordblks}


def _resident_split() -> dict[str, int]:
    """This process's resident memory by kind: anonymous (heaps, arenas, stacks) and file-backed
    (the code of the interpreter and of native libraries: the embedded engine's alone is ~200 MB,
    shared with the page cache and given back under pressure without swapping)."""
    wanted = {b"RssAnon:": "resident_anonymous", b"RssFile:": "resident_file", b"RssShmem:": "resident_shmem"}
    split = {}
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                key = line.split(b"\t", 1)[0].split(b" ", 1)[0]
                if key in wanted:
                    split[wanted[key]] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return split


def breakdown() -> dict[str, int]:
    """This process's memory, part by part, in bytes: resident anonymous / file-backed, glibc
    malloc in use and kept free, pyarrow's pool, and the parts components registered (e.g. the
    embedded engine's allocator). The parts overlap by design (malloc and the engine are both
    in `resident_anonymous`); the residue of anonymous memory no part explains is mostly Python's
    own object arenas."""
    figures = {**_resident_split(), **_malloc_figures()}
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        figures["arrow_pool"] = int(arrow.total_allocated_bytes())
    with _releasers_lock:
        parts = list(_parts.items())
    for name, measure in parts:
        try:
            figures[name] = int(measure())
        except Exception as exc:  # noqa: BLE001 - a figure missing from a scrape is not worth failing it
            log.debug("memory part %s failed: %s", name, exc)
    return figures


def register_releaser(release: Callable[[], None]) -> None:
    with _releasers_lock:
        _releasers.append(release)


def unregister_releaser(release: Callable[[], None]) -> None:
    with _releasers_lock:
        if release in _releasers:
            _releasers.remove(release)


@functools.lru_cache(maxsize=1)
def _libc():
    # find_library runs `ldconfig -p` in a subprocess: once per process is enough
    library = ctypes.util.find_library("c")
    return ctypes.CDLL(library) if library else None


def _glibc_function(name: str) -> Callable | None:
    """A glibc-only function (malloc_trim, mallopt), or None on another libc (musl)."""
    return getattr(_libc(), name, None)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_malloc_trim = _glibc_function("malloc_trim")
_mallinfo2 = _glibc_function("mallinfo2")  # glibc >= 2.33
if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2

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


# Container allocations between young-generation collections (CPython's default: 700). A batch
# makes thousands of short-lived dicts and lists (the GenAI rows, the patches) that reference
# counting frees anyway: the cyclic collector's young passes over them find nothing to collect.
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Once started: the objects made so far (modules, config, components) move out of the cyclic
    collector's reach (`gc.freeze`), so full collections no longer walk them, and young collections
    run every GC_YOUNG_THRESHOLD allocations. At 40k spans/s, perf counted 3.8 % of the process's
    CPU in the collector (`gc_collect_main` and its visits) before (bench/README.md)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


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
