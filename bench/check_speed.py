"""How fast `genaitrace check` is: one file warm (a pre-commit run), and whole installed packages.

    .venv/bin/python -m bench.check_speed [--repeat 7]

Targets (issue 12): a warm single-file run <= 0.3 s; the installed `litellm` and `crewai` packages
(thousands of files) <= 15 s on 2 cores. Wall time of the real command (`genaitrace check`, a new
process each run: what a hook costs), best and median of `--repeat`; user+system CPU beside it, so
a busy machine can be told from a slow check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENAITRACE = Path(sys.executable).parent / "genaitrace"


def _timed(command: list[str], cwd: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if "Traceback" in result.stderr:
        raise RuntimeError(result.stderr[-2000:])
    return wall, cpu, result.stdout.count(": GT1")


def measure(name: str, command: list[str], repeat: int, cwd: Path = REPO) -> dict:
    runs = [_timed(command, cwd) for _ in range(repeat)]
    walls = [w for w, _, _ in runs]
    return {"case": name, "best_s": round(min(walls), 3), "median_s": round(statistics.median(walls), 3),
            "cpu_s": round(statistics.median(c for _, c, _ in runs), 3), "findings": runs[0][2]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    packages = [str(Path(importlib.util.find_spec(p).origin).parent) for p in ("litellm", "crewai")]
    files = sum(1 for p in packages for _ in Path(p).rglob("*.py"))
    one_file = ["check", "instrumentation/demo/app.py"]
    rows = [
        measure("single file, warm (genaitrace check)", [str(GENAITRACE), *one_file], args.repeat),
        measure(f"litellm + crewai ({files} files, -j {os.cpu_count()})",
                [str(GENAITRACE), "check", *packages, "--exit-zero"], max(1, args.repeat // 3)),
    ]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
