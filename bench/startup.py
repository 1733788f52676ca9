"""Start-up cost of ``opentelemetry-instrument`` with the genaitrace distro, as a user runs it.

    .venv/bin/python -m bench.startup [--runs 7] [--program empty|crewai|litellm ...]

For each program, fresh interpreters alternate (the machine is shared: read the ratios within one
run): bare ``python prog.py``; ``opentelemetry-instrument python prog.py`` with the README's
variables (distro and configurator ``genaitrace``, OTLP to a closed loopback port: nothing is
exported, since nothing ends a span); ``python -c "import instrumentation; instrumentation.init()"``
followed by the program (the one-call bootstrap); and the floor, ``opentelemetry-instrument`` with
every instrumentation disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=*``; the distro and the
configurator still run). Median wall seconds and median CPU seconds (user + system of the process
tree: steadier than wall time on a loaded machine).

Bytecode: every variant reads the same private, pre-warmed ``__pycache__`` tree
(``PYTHONPYCACHEPREFIX``), as an installed application would (pip writes ``.pyc`` files; a venv
made by ``uv`` without ``--compile-bytecode`` under ``PYTHONDONTWRITEBYTECODE=1`` compiles every
module on every start, which then dominates both sides). ``--cold`` measures that case instead.

Targets (issue 20): an empty program <= +0.3 s over bare Python; a program importing crewai
<= +10 % over its bare start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
PROGRAMS = {"empty": "pass\n", "crewai": "import crewai\n", "litellm": "import litellm\n"}
INIT_FIRST = "import instrumentation\ninstrumentation.init()\n"
_BYTECODE: dict[str, str] = {}  # PYTHONPYCACHEPREFIX / PYTHONDONTWRITEBYTECODE for every variant


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}
    env.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_DISABLE_TRACKING="true", LITELLM_LOCAL_MODEL_COST_MAP="True",
               TRACELOOP_TELEMETRY="false", DO_NOT_TRACK="1")
    env.update(_BYTECODE)
    env.update(extra)
    return env


def _instrumented_env(**extra: str) -> dict:
    return _env(OTEL_SERVICE_NAME="startup-bench", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                OTEL_PYTHON_DISTRO="genaitrace", OTEL_PYTHON_CONFIGURATOR="genaitrace", **extra)


def _run(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every child it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(program: str, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prog, init_prog = Path(tmp, "prog.py"), Path(tmp, "init_prog.py")
        prog.write_text(PROGRAMS[program])
        init_prog.write_text(INIT_FIRST + PROGRAMS[program])
        variants = {
            "bare": ([sys.executable, str(prog)], _env()),
            "instrumented": ([INSTRUMENT, sys.executable, str(prog)], _instrumented_env()),
            "init": ([sys.executable, str(init_prog)], _instrumented_env()),
            "floor": ([INSTRUMENT, sys.executable, str(prog)], _instrumented_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")),
        }
        for cmd, env in variants.values():  # warm the page cache (and the bytecode cache)
            _run(cmd, env)
        wall: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(runs):
            for name, (cmd, env) in variants.items():
                w, c = _run(cmd, env)
                wall[name].append(w)
                cpu[name].append(c)
    med = {k: round(statistics.median(v), 3) for k, v in wall.items()}
    med_cpu = {k: round(statistics.median(v), 3) for k, v in cpu.items()}
    return {"program": program, "runs": runs, "bytecode": "cold" if "PYTHONDONTWRITEBYTECODE" in _BYTECODE else "cached",
            "wall": med, "cpu": med_cpu,
            "added_s": round(med["instrumented"] - med["bare"], 3),
            "added_pct": round(100 * (med["instrumented"] - med["bare"]) / med["bare"], 1),
            "added_cpu_s": round(med_cpu["instrumented"] - med_cpu["bare"], 3),
            "added_cpu_pct": round(100 * (med_cpu["instrumented"] - med_cpu["bare"]) / max(med_cpu["bare"], 1e-3), 1),
            "init_added_s": round(med["init"] - med["bare"], 3),
            "init_added_cpu_s": round(med_cpu["init"] - med_cpu["bare"], 3),
            "added_over_floor_s": round(med["instrumented"] - med["floor"], 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--program", action="append", choices=sorted(PROGRAMS))
    parser.add_argument("--cold", action="store_true", help="no bytecode cache: every module compiled on every start")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="startup-pycache-") as pycache:
        _BYTECODE.update({"PYTHONDONTWRITEBYTECODE": "1"} if args.cold else {"PYTHONPYCACHEPREFIX": pycache})
        for program in args.program or ["empty", "crewai"]:
            print(json.dumps(measure(program, args.runs)), flush=True)


if __name__ == "__main__":
    main()
