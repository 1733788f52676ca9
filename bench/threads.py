"""Where the collector's CPU goes, per process and per thread, under the benchmark load.

    .venv/bin/python -m bench.threads [--protocol grpc] [--ingest-workers 2] [--concurrency 32] [--duration 12]

Reads utime + stime of every thread of the collector's process tree from /proc before and after a
load run (`bench.loadgen`, same workload as `bench.run`). Python threads show as `python`; chdb
renames the threads it runs queries on (`Unknown`, `RuntimeData`, ...) and has its own (`MergeMutate`, ...).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import bench.run as bench_run
from collector.memory import process_tree

CLK = os.sysconf("SC_CLK_TCK")


def thread_cpu(root: int) -> dict[tuple[int, int, str], float]:
    """CPU seconds by (pid, tid, thread name) over the process tree under `root`."""
    out = {}
    for pid in process_tree(root):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[(pid, int(tid), name)] = (int(fields[11]) + int(fields[12])) / CLK
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
    ap.add_argument("--ingest-workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=12)
    args = ap.parse_args()
    bench_run.INGEST_WORKERS = args.ingest_workers
    payload_file = bench_run.write_workload(512, 16)[0]
    target = bench_run.Ours(Path(tempfile.mkdtemp(prefix="bench-threads-")))
    target.start()
    try:
        root = target.pids[0]
        time.sleep(3)  # start-up work (imports, warm-up) out of the window
        before, began = thread_cpu(root), time.monotonic()
        endpoint = target.grpc if args.protocol == "grpc" else target.http
        load = subprocess.run([bench_run.PYTHON, "-m", "bench.loadgen", "--protocol", args.protocol, "--target", endpoint,
                               "--payloads", str(payload_file), "--duration", str(args.duration),
                               "--concurrency", str(args.concurrency)], capture_output=True, text=True, cwd=bench_run.REPO)
        after, elapsed = thread_cpu(root), time.monotonic() - began
        result = json.loads(load.stdout.strip().splitlines()[-1])
        by_process, by_thread = collections.Counter(), collections.Counter()
        for key, seconds in after.items():
            used = seconds - before.get(key, 0.0)
            by_process[key[0]] += used
            by_thread[(key[0], key[2])] += used
        print(f"acked {result['spans_acked'] / elapsed:,.0f} spans/s; load generator {result['cpu_s'] / elapsed:.2f} cores")
        for pid, used in by_process.most_common():
            role = "main" if pid == root else "child"
            print(f"  pid {pid} ({role}): {used / elapsed:.2f} cores")
            for (tpid, name), tused in by_thread.most_common():
                if tpid == pid and tused / elapsed >= 0.01:
                    print(f"      {name:20s} {tused / elapsed:.2f}")
    finally:
        target.stop()


if __name__ == "__main__":
    main()
