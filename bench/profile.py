"""Profile our collector under load with py-spy (installed into bench/.peers/tools).

    .venv/bin/python -m bench.profile --duration 15 --protocol grpc [--processors "batch"] [--ingest-workers 2] [--gil]

Writes bench/results/profile-<protocol>.txt (collapsed stacks) and prints the top functions by
own time and by inclusive time, per thread role.
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
    args = ap.parse_args()
    pyspy = ensure_peer_tools()
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
        out = RESULTS / f"profile-{args.protocol}.txt"
        cmd = [str(pyspy), "record", "-p", str(target.pids[0]), "-d", str(int(args.duration)), "-r", "100",
               "-f", "raw", "-o", str(out), "--threads", "--nonblocking"]
        if args.native:
            cmd.append("--native")
        if args.gil:
            cmd.append("--gil")
        if args.ingest_workers > 1:
            cmd.append("--subprocesses")
        subprocess.run(cmd, check=True, capture_output=True)
        load = json.loads(gen.communicate(timeout=120)[0].strip().splitlines()[-1])
        print(f"acked {load['spans_acked']} spans in {load['elapsed_s']:.1f}s")
        print(summarize(out))
    finally:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
