"""Start-up cost of ``opentelemetry-instrument`` with the genaitrace distro, as a user runs it.

    .venv/bin/python -m bench.startup [--runs 7] [--program empty|crewai|litellm ...]

For each program, fresh interpreters alternate (the machine is shared: read the ratios within one
run): bare ``python prog.py``; ``opentelemetry-instrument python prog.py`` with the README's
variables (distro and configurator ``genaitrace``, OTLP to a closed loopback port: nothing is
exported, since nothing ends a span); and the floor, ``opentelemetry-instrument`` with every
instrumentation disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=*``), what the auto-instrumentation
machinery itself costs before any distro decision. Median wall seconds.

Targets (issue 20): an empty program <= +0.3 s over bare Python; a program importing crewai
<= +10 % over its bare start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
PROGRAMS = {"empty": "pass\n", "crewai": "import crewai\n", "litellm": "import litellm\n"}


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_DISABLE_TRACKING="true", LITELLM_LOCAL_MODEL_COST_MAP="True",
               TRACELOOP_TELEMETRY="false", DO_NOT_TRACK="1")
    env.update(extra)
    return env


def _instrumented_env(**extra: str) -> dict:
    return _env(OTEL_SERVICE_NAME="startup-bench", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                OTEL_PYTHON_DISTRO="genaitrace", OTEL_PYTHON_CONFIGURATOR="genaitrace", **extra)


def _wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return time.perf_counter() - t0


def measure(program: str, runs: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROGRAMS[program])
    try:
        variants = {
            "bare": ([sys.executable, f.name], _env()),
            "instrumented": ([INSTRUMENT, sys.executable, f.name], _instrumented_env()),
            "floor": ([INSTRUMENT, sys.executable, f.name], _instrumented_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")),
        }
        _wall(*variants["bare"])  # warm the page cache
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(runs):
            for name, (cmd, env) in variants.items():
                times[name].append(_wall(cmd, env))
    finally:
        os.unlink(f.name)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {"program": program, "runs": runs, **med,
            "added_s": round(med["instrumented"] - med["bare"], 3),
            "added_pct": round(100 * (med["instrumented"] - med["bare"]) / med["bare"], 1),
            "added_over_floor_s": round(med["instrumented"] - med["floor"], 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--program", action="append", choices=sorted(PROGRAMS))
    args = parser.parse_args(argv)
    for program in args.program or ["empty", "crewai"]:
        print(json.dumps(measure(program, args.runs)), flush=True)


if __name__ == "__main__":
    main()
