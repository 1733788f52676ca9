"""LiteLLM's Responses API (`litellm.responses`, `litellm.aresponses`), plain and streamed."""
import asyncio
import os

import litellm

BASE = os.environ["FAKE_LLM_URL"]
KW = {"model": "openai/gpt-4o-mini", "api_base": BASE, "api_key": "sk-fake"}

r = litellm.responses(input="Hi zqcanary-prompt", instructions="Be brief. zqcanary-system", **KW)
print("responses:", r.output[0].content[0].text)

events = [e.type for e in litellm.responses(input="Hi zqcanary-prompt", stream=True, **KW)]
print("stream:", events[0], events[-1])


async def main():
    r = await litellm.aresponses(input="Hi zqcanary-prompt async", **KW)
    print("aresponses:", r.output[0].content[0].text)

asyncio.run(main())
