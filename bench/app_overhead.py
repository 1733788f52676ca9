"""App-side cost of the instrumentation: per LLM call, against the bare OpenTelemetry SDK's span.

    .venv/bin/python -m bench.app_overhead [--calls 300]

Each measurement runs in its own fresh process (instrumentation patches globally), against the
project's fake LLM (`instrumentation.fakellm`, a separate process on loopback):

  bare_span     the bare SDK: TracerProvider + BatchSpanProcessor, one span with the 20 attributes an
                LLM span carries, started and ended (what a hand-instrumented call costs)
  plain         `litellm.completion` against the fake LLM, no tracing at all
  instrumented  the same call after `instrumentation.init()` (openinference litellm + our GenAI processor)

All exporters are a no-op SpanExporter, so the figures are the in-process cost, not the network.
Overhead per call = median(instrumented) - median(plain); the ratio is that over bare_span (target
< 1.2). Start-up: wall time of `import litellm` alone vs `instrumentation.init(); import litellm`,
medians of several fresh interpreters (target: no more than 1 s slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable


def _noop_exporter():
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Noop(SpanExporter):
        def __init__(self):
            self.spans = 0

        def export(self, spans):
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    return Noop()


def child_bare(calls: int) -> dict:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    exporter = _noop_exporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    attrs = {f"gen_ai.attr.{i}": f"value {i}" for i in range(16)}
    attrs.update({"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
                  "gen_ai.request.temperature": 0.2, "gen_ai.request.model": "gpt-4o-mini"})
    times = []
    for _ in range(calls * 10):
        t0 = time.perf_counter()
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(attrs)
        times.append(time.perf_counter() - t0)
    provider.shutdown()
    return {"median_us": statistics.median(times) * 1e6, "p90_us": _p(times, 0.9) * 1e6, "spans": exporter.spans}


def child_call(calls: int, base_url: str, instrumented: bool) -> dict:
    exporter = None
    if instrumented:
        import instrumentation

        exporter = _noop_exporter()
        instrumentation.init("bench-app", exporter=exporter)
    import litellm

    messages = [{"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": "Where is my order 1234? [reply:It ships tomorrow.]"}]
    for _ in range(20):  # warm-up: imports, connection pools, lazy instrumentation
        litellm.completion(model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-fake", messages=messages)
    times = []
    deadline = time.monotonic() + 120
    for _ in range(calls):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        litellm.completion(model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-fake", messages=messages)
        times.append(time.perf_counter() - t0)
    out = {"median_us": statistics.median(times) * 1e6, "p90_us": _p(times, 0.9) * 1e6, "calls": len(times)}
    if instrumented:
        instrumentation.shutdown()
        out["spans"] = exporter.spans
    return out


def _p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))]


def _child(args: list[str]) -> dict:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([PYTHON, "-m", "bench.app_overhead", "--child", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _startup(code: str, runs: int) -> float:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(calls: int = 300, startup_runs: int = 5) -> dict:
    from bench.run import free_port, wait_port

    port = free_port()
    fake = subprocess.Popen([PYTHON, "-m", "instrumentation.fakellm", "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30, fake)
        base = f"http://127.0.0.1:{port}/v1"
        bare = _child(["bare", str(calls)])
        plain = _child(["plain", str(calls), base])
        instr = _child(["instrumented", str(calls), base])
    finally:
        fake.terminate()
        fake.wait(10)
    overhead = instr["median_us"] - plain["median_us"]
    start_plain = _startup("import litellm", startup_runs)
    start_instr = _startup("import instrumentation; instrumentation.init('bench-app'); import litellm; "
                           "instrumentation.shutdown()", startup_runs)
    out = {
        "bare_span_us": round(bare["median_us"], 1),
        "plain_call_us": round(plain["median_us"], 1),
        "instrumented_call_us": round(instr["median_us"], 1),
        "overhead_per_call_us": round(overhead, 1),
        "overhead_vs_bare_span": round(overhead / bare["median_us"], 2),
        "spans_per_instrumented_call": round(instr.get("spans", 0) / (instr["calls"] + 20), 2),
        "startup_plain_s": round(start_plain, 2),
        "startup_instrumented_s": round(start_instr, 2),
        "startup_delta_s": round(start_instr - start_plain, 2),
        "raw": {"bare": bare, "plain": plain, "instrumented": instr},
    }
    print(json.dumps(out, indent=2))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, calls = sys.argv[2], int(sys.argv[3])
        if mode == "bare":
            result = child_bare(calls)
        else:
            result = child_call(calls, sys.argv[4], instrumented=(mode == "instrumented"))
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--startup-runs", type=int, default=5)
    args = ap.parse_args()
    out = run(args.calls, args.startup_runs)
    from bench.run import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "app_overhead.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
