"""Profile our collector under load with py-spy (installed into bench/.peers/tools), or with perf.

    .venv/bin/python -m bench.profile --duration 15 --protocol grpc [--processors "batch"] [--ingest-workers 2] [--gil]
    .venv/bin/python -m bench.profile --duration 15 --protocol grpc --perf

Writes bench/results/profile-<protocol>.txt (collapsed stacks) and prints the top functions by
own time and by inclusive time, per thread role.

`--perf`: CPU time by library instead (Debian's perf, `cpu-clock` samples of every thread of the
process, GIL or not): the embedded engine, the native crate, the interpreter, gRPC, SQLite, the
kernel, and the top symbols. py-spy's shares count a thread waiting for the GIL as busy; these
count only the CPU spent.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.run import PYTHON, REPO, RESULTS, Ours, ensure_peer_tools, write_workload


def summarize(collapsed: Path, top: int = 25) -> str:
    own, incl, total = collections.Counter(), collections.Counter(), 0
    threads = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            incl[frame] += n
    out = [f"samples: {total}", "by thread:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in threads.most_common(12)]
    out.append("own time:")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    out.append("inclusive:")
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in incl.most_common(top)]
    return "\n".join(out)


def pyspy_profile(pyspy: Path, pid: int, args: argparse.Namespace, out: Path) -> str:
    """py-spy's samples of `pid` for `args.duration` seconds, summarized (`summarize`)."""
    cmd = [str(pyspy), "record", "-p", str(pid), "-d", str(int(args.duration)), "-r", "100",
           "-f", "raw", "-o", str(out), "--threads", "--nonblocking"]
    if args.native:
        cmd.append("--native")
    if args.gil:
        cmd.append("--gil")
    if args.ingest_workers > 1:
        cmd.append("--subprocesses")
    subprocess.run(cmd, check=True, capture_output=True)
    return summarize(out)


def perf_profile(pid: int, duration: float, data: Path) -> str:
    """CPU samples of every thread of `pid` for `duration` seconds: shares by library, then by symbol."""
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf not found: install Debian's linux-perf (apt-get install linux-perf)")
    subprocess.run([perf, "record", "-e", "cpu-clock", "-F", "499", "-p", str(pid), "-o", str(data), "--",
                    "sleep", str(duration)], check=True, capture_output=True)
    out = []
    for sort, top in (("dso", 12), ("dso,sym", 30)):
        report = subprocess.run([perf, "report", "-i", str(data), "--sort", sort, "--stdio"], check=True,
                                capture_output=True, text=True).stdout
        lines = [line for line in report.splitlines() if line.strip() and not line.startswith("#")]
        out += [f"CPU by {sort}:"] + [f"  {line.strip()[:150]}" for line in lines[:top]]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--protocol", default="grpc")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--processors", default=None)
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--gil", action="store_true",
                    help="only the samples of the thread holding the GIL: what serializes the Python side")
    ap.add_argument("--ingest-workers", type=int, default=1, help="profile the workers too (py-spy --subprocesses)")
    ap.add_argument("--perf", action="store_true", help="CPU time by library and symbol (perf), not py-spy")
    args = ap.parse_args()
    pyspy = None if args.perf else ensure_peer_tools()
    payload_file = write_workload(512, 16)[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    target = type("Profiled", (Ours,), {"ingest_workers": args.ingest_workers})(workdir, args.processors)
    target.start()
    try:
        endpoint = target.grpc if args.protocol == "grpc" else target.http
        gen = subprocess.Popen([PYTHON, "-m", "bench.loadgen", "--protocol", args.protocol, "--target", endpoint,
                                "--payloads", str(payload_file), "--duration", str(args.duration + 4),
                                "--concurrency", str(args.concurrency)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        pid = target.pids[0]
        report = (perf_profile(pid, args.duration, RESULTS / f"perf-{args.protocol}.data") if args.perf
                  else pyspy_profile(pyspy, pid, args, RESULTS / f"profile-{args.protocol}.txt"))
        load = json.loads(gen.communicate(timeout=120)[0].strip().splitlines()[-1])
        print(f"acked {load['spans_acked']} spans in {load['elapsed_s']:.1f}s")
        print(report)
    finally:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
