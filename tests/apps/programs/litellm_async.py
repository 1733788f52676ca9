"""LiteLLM, asyncio: acompletion, acompletion(stream=True) with `async for`, asyncio.gather,
`aresponses` (the Responses API)."""
import asyncio
import os

import litellm

BASE = os.environ["FAKE_LLM_URL"]


def msgs(i):
    return [{"role": "user", "content": f"Question {i} zqcanary-prompt"}]


async def main():
    r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=msgs(0))
    print("acompletion:", r.choices[0].message.content)
    stream = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=msgs(1),
                                       stream=True)
    text, n = "", 0
    async for chunk in stream:
        n += 1
        text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    print("astream:", n, "chunks:", text)
    answers = await asyncio.gather(*[
        litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", messages=msgs(i))
        for i in range(2, 5)])
    for a in answers:
        print("gather:", a.choices[0].message.content)
    r = await litellm.aresponses(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", input="Hi zqcanary-prompt async")
    print("aresponses:", r.output[0].content[0].text)


asyncio.run(main())
