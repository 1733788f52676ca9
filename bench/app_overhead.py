"""App-side cost of the instrumentation: per LLM call, against the bare OpenTelemetry SDK's span.

    .venv/bin/python -m bench.app_overhead [--calls 300] [--rounds 7] [--startup-runs 5]

Three measurements, each traced and untraced *alternately in the same run* (the machine is shared:
ratios within one run are the figures to read). All exporters are a no-op SpanExporter behind a
BatchSpanProcessor, so the figures are the in-process cost, not the network.

1. In one process, CPU time (`time.process_time`, all threads), `--rounds` alternating rounds of
   `--calls` calls each, median per call:
     bare_span      the bare SDK: one span with the 20 attributes an LLM span carries, started and
                    ended (what a hand-instrumented call costs)
     own            the instrumentation alone: `litellm.completion` traced, with LiteLLM itself
                    replaced by a stub returning a canned response (so the figure is our wrapper,
                    the SDK span, the GenAI processor and the batch queue, nothing else)
     mock           the real `litellm.completion(mock_response=...)` traced vs the untraced
                    function (taken before `init()`), and through openinference's wrapper
   Overhead per call = traced - untraced; ratio = that / bare_span, and (issue 20's target,
   <= 10 %) that / the CPU of the uninstrumented litellm.completion against the fake LLM (2.).
2. End to end, fresh processes alternating plain / `instrumentation.init()`: `litellm.completion`
   against the project's fake LLM (`instrumentation.fakellm`, a separate process on loopback): wall
   time per call (median, p90) and CPU time per call. Includes everything init() instruments
   (threading, httpx, the OpenAI SDK, ...), but a 2-3 ms CPU / ~50 ms wall call makes a 0.1-0.2 ms
   difference noise-bound: read it as a cross-check, 1. is the measurement.
3. Start-up: `import litellm` vs `instrumentation.init(); import litellm`, alternating fresh
   interpreters, medians of wall time and of the child's CPU time (target: no more than 1 s slower).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable

MESSAGES = [{"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Where is my order 1234? [reply:It ships tomorrow.]"}]


def _noop_exporter():
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Noop(SpanExporter):
        def __init__(self):
            self.spans = 0

        def export(self, spans):
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    return Noop()


def _bare_span_fn():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    exporter = _noop_exporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    attrs = {f"gen_ai.attr.{i}": f"value {i}" for i in range(16)}
    attrs.update({"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
                  "gen_ai.request.temperature": 0.2, "gen_ai.request.model": "gpt-4o-mini"})

    def bare():
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(attrs)

    return bare, provider, exporter


def _cpu_per_call(fn, n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def child_inproc(calls: int, rounds: int) -> dict:
    """Measurement 1: bare span, the instrumentation alone (stub LiteLLM) and mock calls, one process."""
    import litellm

    kw = dict(model="openai/gpt-4o-mini", messages=MESSAGES, mock_response="It ships tomorrow.")
    canned = litellm.completion(**kw)
    untraced_real = litellm.completion

    def stub(*args, **kwargs):
        return canned

    # the stub stands in for LiteLLM: init() instruments it like the real function
    litellm.completion = stub
    import instrumentation

    exporter = _noop_exporter()
    instrumentation.init("bench-app", exporter=exporter)
    traced_stub = litellm.completion
    # the real function, instrumented the same way
    from openinference.instrumentation.litellm import LiteLLMInstrumentor

    funcs = LiteLLMInstrumentor.original_litellm_funcs
    wrapped_stub = funcs["completion"]  # what openinference's wrapper calls (looked up per call)
    funcs["completion"] = untraced_real
    litellm.completion = LiteLLMInstrumentor()._completion_wrapper
    from instrumentation._patches import patch_openinference_litellm

    patch_openinference_litellm()
    traced_real = litellm.completion
    wrapped_real = funcs["completion"]

    bare, bare_provider, _ = _bare_span_fn()
    # (function, calls, what openinference's wrapper calls inside)
    cases = {
        "bare_span": (bare, calls * 5, None),
        "own_untraced": (lambda: stub(**kw), calls * 5, None),
        "own_traced": (lambda: traced_stub(**kw), calls, wrapped_stub),
        "mock_untraced": (lambda: untraced_real(**kw), calls, None),
        "mock_traced": (lambda: traced_real(**kw), calls, wrapped_real),
    }
    from instrumentation.bootstrap import force_flush

    force_flush()
    spans_before = exporter.spans
    for fn, _, inner in cases.values():  # warm-up: imports, caches, lazy instrumentation
        if inner is not None:
            funcs["completion"] = inner
        for _ in range(20):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, (fn, n, inner) in cases.items():
            if inner is not None:
                funcs["completion"] = inner
            samples[name].append(_cpu_per_call(fn, n))
    instrumentation.shutdown()
    bare_provider.shutdown()
    med = {k: statistics.median(v) for k, v in samples.items()}
    traced_calls = rounds * calls * 2 + 2 * 20  # own_ and mock_ traced, + their warm-up
    return {"median_cpu_us": med, "samples_cpu_us": samples,
            "spans_per_traced_call": (exporter.spans - spans_before) / traced_calls}


def child_call(calls: int, base_url: str, instrumented: bool) -> dict:
    """Measurement 2: litellm.completion against the fake LLM, wall and CPU per call."""
    exporter = None
    if instrumented:
        import instrumentation

        exporter = _noop_exporter()
        instrumentation.init("bench-app", exporter=exporter)
    import litellm

    for _ in range(20):  # warm-up: imports, connection pools, lazy instrumentation
        litellm.completion(model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-fake", messages=MESSAGES)
    times = []
    deadline = time.monotonic() + 120
    c0 = time.process_time()
    for _ in range(calls):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        litellm.completion(model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-fake", messages=MESSAGES)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / len(times) * 1e6
    out = {"median_us": statistics.median(times) * 1e6, "p90_us": _p(times, 0.9) * 1e6, "cpu_us": cpu,
           "calls": len(times)}
    if instrumented:
        instrumentation.shutdown()
        out["spans"] = exporter.spans
    return out


def _p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))]


def _env() -> dict:
    return {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _child(args: list[str]) -> dict:
    done = subprocess.run([PYTHON, "-m", "bench.app_overhead", "--child", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _timed_run(code: str) -> tuple[float, float]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], cwd=REPO, env=_env(), check=True, capture_output=True, timeout=300)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


STARTUP_PLAIN = "import litellm"
STARTUP_INIT = ("import instrumentation; instrumentation.init('bench-app'); import litellm; "
                "instrumentation.shutdown()")


def startup(runs: int) -> dict:
    res = {"plain": {"wall": [], "cpu": []}, "init": {"wall": [], "cpu": []}}
    for _ in range(runs):  # alternating
        for name, code in (("plain", STARTUP_PLAIN), ("init", STARTUP_INIT)):
            wall, cpu = _timed_run(code)
            res[name]["wall"].append(wall)
            res[name]["cpu"].append(cpu)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in res.items()}
    return {"median": med, "samples": res}


def run(calls: int = 300, startup_runs: int = 5, rounds: int = 7, e2e_rounds: int = 2) -> dict:
    from bench.run import free_port, wait_port

    inproc = _child(["inproc", str(calls), str(rounds)])
    m = inproc["median_cpu_us"]
    bare_us = m["bare_span"]
    own = m["own_traced"] - m["own_untraced"]
    mock = m["mock_traced"] - m["mock_untraced"]

    port = free_port()
    fake = subprocess.Popen([PYTHON, "-m", "instrumentation.fakellm", "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    plain_runs, instr_runs = [], []
    try:
        wait_port(port, 30, fake)
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(e2e_rounds):  # alternating fresh processes
            plain_runs.append(_child(["plain", str(calls), base]))
            instr_runs.append(_child(["instrumented", str(calls), base]))
    finally:
        fake.terminate()
        fake.wait(10)

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    e2e = {
        "plain_wall_us": round(med(plain_runs, "median_us"), 1),
        "instrumented_wall_us": round(med(instr_runs, "median_us"), 1),
        "plain_p90_wall_us": round(med(plain_runs, "p90_us"), 1),
        "instrumented_p90_wall_us": round(med(instr_runs, "p90_us"), 1),
        "plain_cpu_us": round(med(plain_runs, "cpu_us"), 1),
        "instrumented_cpu_us": round(med(instr_runs, "cpu_us"), 1),
    }
    e2e["overhead_wall_us"] = round(e2e["instrumented_wall_us"] - e2e["plain_wall_us"], 1)
    e2e["overhead_cpu_us"] = round(e2e["instrumented_cpu_us"] - e2e["plain_cpu_us"], 1)
    e2e["spans_per_call"] = round(sum(r.get("spans", 0) for r in instr_runs)
                                  / sum(r["calls"] + 20 for r in instr_runs), 2)

    st = startup(startup_runs)
    sm = st["median"]
    out = {
        # headline (bench.run's table). The overhead is the instrumentation's own CPU per call
        # (LiteLLM stubbed out): the precise figure. plain/instrumented are the real
        # litellm.completion(mock_response) CPU per call, untraced vs traced in the same process;
        # their difference (mock_overhead_us) is noise-bound (+-100 us on a ~2.7 ms call here).
        "bare_span_us": round(bare_us, 1),
        "plain_call_us": round(m["mock_untraced"], 1),
        "instrumented_call_us": round(m["mock_traced"], 1),
        "overhead_per_call_us": round(own, 1),
        "overhead_vs_bare_span": round(own / bare_us, 2),
        "own_cpu_per_call_us": round(own, 1),
        "own_cpu_vs_bare_span": round(own / bare_us, 2),
        # issue 20's target: the instrumentation's CPU per call <= +10 % of the uninstrumented
        # litellm.completion's own CPU (against the fake LLM on loopback, measurement 2)
        "uninstrumented_call_cpu_us": e2e["plain_cpu_us"],
        "own_cpu_vs_uninstrumented_call_pct": round(100 * own / e2e["plain_cpu_us"], 1),
        "e2e_overhead_cpu_pct": round(100 * e2e["overhead_cpu_us"] / e2e["plain_cpu_us"], 1),
        "mock_overhead_us": round(mock, 1),
        "mock_overhead_vs_bare_span": round(mock / bare_us, 2),
        "spans_per_traced_call": round(inproc["spans_per_traced_call"], 2),
        "e2e_fake_llm": e2e,
        "startup_plain_s": round(sm["plain"]["wall"], 2),
        "startup_instrumented_s": round(sm["init"]["wall"], 2),
        "startup_delta_s": round(sm["init"]["wall"] - sm["plain"]["wall"], 2),
        "startup_plain_cpu_s": round(sm["plain"]["cpu"], 2),
        "startup_instrumented_cpu_s": round(sm["init"]["cpu"], 2),
        "startup_delta_cpu_s": round(sm["init"]["cpu"] - sm["plain"]["cpu"], 2),
        "raw": {"inproc": inproc, "e2e_plain": plain_runs, "e2e_instrumented": instr_runs, "startup": st},
    }
    print(json.dumps({k: v for k, v in out.items() if k != "raw"}, indent=2))
    print(summary(out))
    return out


def summary(out: dict) -> str:
    e = out["e2e_fake_llm"]
    return "\n".join([
        f"bare SDK span (20 attributes): {out['bare_span_us']} us CPU",
        f"instrumentation alone per litellm.completion: {out['own_cpu_per_call_us']} us CPU = "
        f"{out['own_cpu_vs_bare_span']}x the bare span (target < 1.2x)",
        f"= {out['own_cpu_vs_uninstrumented_call_pct']}% of the uninstrumented litellm.completion's own CPU against "
        f"the fake LLM ({out['uninstrumented_call_cpu_us']} us; target <= 10%); end to end: "
        f"+{out['e2e_overhead_cpu_pct']}% (noise-bound)",
        f"litellm.completion(mock_response), CPU: {out['plain_call_us']} us untraced, {out['instrumented_call_us']} us "
        f"traced: {out['mock_overhead_us']:+} us = {out['mock_overhead_vs_bare_span']}x "
        f"(differences of ~3 ms calls, noise-bound); {out['spans_per_traced_call']} spans per call",
        f"against the fake LLM, fresh processes: wall {e['plain_wall_us']} / {e['instrumented_wall_us']} us "
        f"(diff {e['overhead_wall_us']}, p90 {e['plain_p90_wall_us']} / {e['instrumented_p90_wall_us']}), "
        f"CPU {e['plain_cpu_us']} / {e['instrumented_cpu_us']} us (diff {e['overhead_cpu_us']}); "
        f"{e['spans_per_call']} spans per call",
        f"start-up: {out['startup_plain_s']} s plain, {out['startup_instrumented_s']} s with init() "
        f"(delta {out['startup_delta_s']} s wall, {out['startup_delta_cpu_s']} s CPU; target <= 1 s)",
    ])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, calls = sys.argv[2], int(sys.argv[3])
        if mode == "inproc":
            result = child_inproc(calls, int(sys.argv[4]))
        else:
            result = child_call(calls, sys.argv[4], instrumented=(mode == "instrumented"))
        print(json.dumps(result))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds of the in-process measurement")
    ap.add_argument("--e2e-rounds", type=int, default=2, help="alternating plain/instrumented process pairs")
    ap.add_argument("--startup-runs", type=int, default=5)
    args = ap.parse_args()
    out = run(args.calls, args.startup_runs, args.rounds, args.e2e_rounds)
    from bench.run import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "app_overhead.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
