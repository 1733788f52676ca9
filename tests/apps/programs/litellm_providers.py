"""LiteLLM to OpenAI-, Anthropic- and Mistral-shaped providers, streamed and not, and a Router."""
import asyncio
import os

import litellm

BASE, ROOT = os.environ["FAKE_LLM_URL"], os.environ["FAKE_LLM_ROOT"]
PROVIDERS = [("openai/gpt-4o-mini", BASE), ("anthropic/claude-3-5-haiku-latest", ROOT),
             ("mistral/mistral-small-latest", BASE)]


def msgs(tag):
    return [{"role": "system", "content": f"Be brief. zqcanary-system-{tag}"},
            {"role": "user", "content": f"Name a colour zqcanary-prompt-{tag}"}]


for model, base in PROVIDERS:
    r = litellm.completion(model=model, api_base=base, api_key="x", messages=msgs(model))
    print(model, "->", r.choices[0].message.content)
    chunks = list(litellm.completion(model=model, api_base=base, api_key="x", messages=msgs(model), stream=True))
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    print(model, "stream", len(chunks), "chunks, usage on a chunk:", any(getattr(c, "usage", None) for c in chunks))
    print(model, "stream ->", text)

router = litellm.Router(model_list=[
    {"model_name": "fast", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": BASE, "api_key": "x"}},
    {"model_name": "smart", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest", "api_base": ROOT,
                                               "api_key": "x"}},
])
print("router fast ->", router.completion(model="fast", messages=msgs("router")).choices[0].message.content)


async def routed():
    r = await router.acompletion(model="smart", messages=msgs("arouter"))
    print("router smart ->", r.choices[0].message.content)
    stream = await router.acompletion(model="fast", messages=msgs("arouter-stream"), stream=True)
    n = 0
    async for _ in stream:
        n += 1
    print("router stream chunks:", n)

asyncio.run(routed())
