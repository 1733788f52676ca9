"""Work handed to other threads and processes (GT103)."""
import _thread
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import instrumentation
import litellm


def summarise(text):
    with instrumentation.attributes(tenant_id="batch"):
        return litellm.completion(model="gpt-4o-mini", messages=[])


def summarise_with(carrier, text):
    with instrumentation.attach_carrier(carrier):
        return litellm.completion(model="gpt-4o-mini", messages=[])


def square(x):
    return x * x


def fan_out(texts):
    with ProcessPoolExecutor() as pool:
        pool.submit(summarise, texts[0])  # clean: GT103 (genaitrace carries the context to the child)
        pool.submit(square, 3)  # clean: GT103 (no LLM work)
        pool.submit(summarise_with, instrumentation.inject(), texts[0])  # clean: GT103 (carrier passed)
    with multiprocessing.Pool(2) as pool:
        pool.map(summarise, texts)  # expect: GT103
        pool.apply_async(summarise, (texts[0],))  # expect: GT103 (a Pool's workers start once: no caller context)
    process = multiprocessing.Process(target=summarise, args=(texts[0],))  # clean: GT103 (context carried)
    process.start()
    _thread.start_new_thread(summarise, (texts[0],))  # expect: GT103
    with ThreadPoolExecutor() as threads:
        threads.submit(summarise, texts[0])  # clean: GT103 (threads keep the context)
    ctx = multiprocessing.get_context("spawn")
    ctx.Process(target=square, args=(2,)).start()  # clean: GT103 (no LLM work)
