"""Threads, asyncio and processes (fork, spawn, os.fork, ProcessPoolExecutor): LLM calls made in
children of a request span. Tracing code: only the OpenTelemetry API (a no-op when not instrumented)."""
import asyncio
import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import litellm
from opentelemetry import trace

BASE = os.environ["FAKE_LLM_URL"]
tracer = trace.get_tracer("processes-app")


def ask(tag):
    r = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                           messages=[{"role": "user", "content": f"[reply:ok {tag}] zqcanary-prompt {tag}"}])
    return r.choices[0].message.content.splitlines()[-1]


async def aask(tag):
    r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                  messages=[{"role": "user", "content": f"[reply:ok {tag}] zqcanary-prompt {tag}"}])
    return r.choices[0].message.content.splitlines()[-1]


def ask_into(queue, tag):
    queue.put(ask(tag))


def process_request(method):
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    with tracer.start_as_current_span(f"request {method} process"):
        child = ctx.Process(target=ask_into, args=(queue, method))
        child.start()
        answer = queue.get(timeout=900)  # a spawned child imports litellm afresh: slow on a busy machine
        child.join()
    print(method, "process:", answer, "exit", child.exitcode)


def main():
    with tracer.start_as_current_span("request thread"):
        out = []
        t = threading.Thread(target=lambda: out.append(ask("thread")))
        t.start()
        t.join()
    print("thread:", out[0])

    with tracer.start_as_current_span("request thread pool"):
        with ThreadPoolExecutor(2) as pool:
            print("thread pool:", list(pool.map(ask, ["pool-1", "pool-2"])))

    async def gathered():
        with tracer.start_as_current_span("request asyncio"):
            return await asyncio.gather(aask("async-1"), aask("async-2"))
    print("asyncio:", asyncio.run(gathered()))

    process_request("fork")
    process_request("spawn")

    with tracer.start_as_current_span("request os.fork"):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, ask("os-fork").encode())
            os._exit(0)
        os.close(write)
        answer = os.read(read, 4096).decode()
        _, status = os.waitpid(pid, 0)
    print("os.fork:", answer, "status", status)

    with tracer.start_as_current_span("request process pool"):
        with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
            print("process pool:", list(pool.map(ask, ["ppe-1", "ppe-2"])))


if __name__ == "__main__":
    main()
