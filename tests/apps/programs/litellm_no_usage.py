"""LiteLLM against a provider that reports no usage (some self-hosted servers and proxies):
completion, acompletion, a stream and an embedding. The app sees LiteLLM's own answer (0 tokens
for the non-streamed calls); the spans carry estimated counts, marked as estimated."""
import asyncio
import os

import litellm

BASE = os.environ["FAKE_LLM_URL"]
MSGS = [{"role": "system", "content": "You are terse. zqcanary-system"},
        {"role": "user", "content": "Say hello [no_usage] zqcanary-prompt"}]

r = litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=MSGS)
print("completion:", r.choices[0].message.content, "usage:", r.usage.prompt_tokens, r.usage.completion_tokens)

r = asyncio.run(litellm.acompletion("openai/gpt-4o-mini", MSGS, api_base=BASE, api_key="x"))  # positional
print("acompletion:", r.choices[0].message.content, "usage:", r.usage.prompt_tokens, r.usage.completion_tokens)

text = "".join(c.choices[0].delta.content or "" for c in
               litellm.completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=MSGS, stream=True)
               if c.choices)
print("stream:", text)

e = litellm.embedding(model="openai/text-embedding-3-small", api_base=BASE, api_key="x",
                      input=["zqcanary-embedding [no_usage] one", "zqcanary-embedding two"])
print("embedding:", len(e.data), "usage:", e.usage.prompt_tokens)
