import asyncio
from concurrent.futures import ThreadPoolExecutor

import instrumentation
from app import crews
from app import llm as L
from app.llm import ask, ask_attributed, worker


def serve(tenant):
    with instrumentation.attributes(tenant_id=tenant):
        ask_attributed("q")
        with ThreadPoolExecutor() as pool:
            pool.submit(ask_attributed, "in a thread that keeps the context")


def handle(carrier):
    with instrumentation.attach_carrier(carrier):
        ask_attributed("from a queue")


async def amain():
    await L.ask_async("q")


def main():
    ask("q")
    L.ask_fast("q")
    serve("acme")
    crews.run_unattributed()
    crews.run_task_async(None, "")
    crews.not_an_agent_run()
    with ThreadPoolExecutor() as pool:
        pool.submit(worker, "a thread with no tenant")
    asyncio.run(amain())


if __name__ == "__main__":
    instrumentation.init()
    main()
