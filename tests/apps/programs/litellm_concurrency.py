"""LiteLLM's own concurrency, inside the app's request spans (OpenTelemetry API only): batch_completion
(LiteLLM's thread pool), a Router whose first deployment fails and falls back, a Router retrying a
rate-limited call, and asyncio.to_thread. Each request is one trace; every provider call is one span."""
import asyncio
import os

import litellm
from opentelemetry import trace

BASE = os.environ["FAKE_LLM_URL"]
tracer = trace.get_tracer("concurrency-app")


def msgs(tag: str, directive: str = ""):
    return [{"role": "user", "content": f"{directive}[reply:ok {tag}] zqcanary-prompt {tag}"}]


with tracer.start_as_current_span("request batch"):
    answers = litellm.batch_completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                       messages=[msgs("b1"), msgs("b2"), msgs("b3")])
    print("batch:", [a.choices[0].message.content.splitlines()[-1] for a in answers])

router = litellm.Router(model_list=[
    {"model_name": "primary", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": BASE, "api_key": "x",
                                                 "extra_headers": {"x-fake-status": "500"}}},
    {"model_name": "backup", "litellm_params": {"model": "openai/gpt-4o", "api_base": BASE, "api_key": "x"}},
], fallbacks=[{"primary": ["backup"]}], num_retries=0)
with tracer.start_as_current_span("request fallback"):
    r = router.completion(model="primary", messages=msgs("fallback"))
    print("fallback:", r.choices[0].message.content.splitlines()[-1])


async def main() -> None:
    with tracer.start_as_current_span("request to_thread"):
        r = await asyncio.to_thread(litellm.completion, model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                    messages=msgs("thread"))
        print("to_thread:", r.choices[0].message.content.splitlines()[-1])
    with tracer.start_as_current_span("request async fallback"):
        r = await router.acompletion(model="primary", messages=msgs("afallback"))
        print("async fallback:", r.choices[0].message.content.splitlines()[-1])

asyncio.run(main())
