"""multiprocessing's pools as apps use them (6 requests, 10 LLM calls): a fork pool and a spawn
pool made inside a request and left with ``with`` (which terminates the workers with SIGTERM), a
spawn pool made inside a request, closed and joined, a fork pool made before any request and used
by two requests (``apply_async``), and a thread pool (``multiprocessing.pool.ThreadPool``) made
before the request that maps over it. Tracing code: only the OpenTelemetry API (a no-op when not
instrumented)."""
import multiprocessing as mp
import os
from multiprocessing.pool import ThreadPool

import litellm
from opentelemetry import trace

BASE = os.environ["FAKE_LLM_URL"]
tracer = trace.get_tracer("pools-app")


def ask(tag):
    r = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                           messages=[{"role": "user", "content": f"[reply:ok {tag}] zqcanary-prompt {tag}"}])
    return r.choices[0].message.content.splitlines()[-1]


def main():
    with tracer.start_as_current_span("request fork pool"):
        with mp.get_context("fork").Pool(2) as pool:
            print("fork pool:", pool.map(ask, ["fork-1", "fork-2"]))
    # A spawn pool left with `with`: terminate() signals workers that may already be exiting on
    # their own (their exit handlers exporting the last spans); and one closed and joined.
    with tracer.start_as_current_span("request spawn pool"):
        with mp.get_context("spawn").Pool(2) as pool:
            print("spawn pool:", pool.map(ask, ["spawn-1", "spawn-2"]))
    with tracer.start_as_current_span("request spawn pool joined"):
        pool = mp.get_context("spawn").Pool(2)
        print("spawn pool joined:", pool.map(ask, ["spawn-3", "spawn-4"]))
        pool.close()
        pool.join()

    shared = mp.get_context("fork").Pool(2)
    for i in (1, 2):
        with tracer.start_as_current_span(f"request shared pool {i}"):
            print("shared pool:", shared.apply_async(ask, (f"shared-{i}",)).get(timeout=600))
    shared.close()
    shared.join()

    threads = ThreadPool(2)
    with tracer.start_as_current_span("request thread pool"):
        print("thread pool:", threads.map(ask, ["threads-1", "threads-2"]))
    threads.close()
    threads.join()


if __name__ == "__main__":
    main()
