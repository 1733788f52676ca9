"""LiteLLM streams as applications really consume them: a loop that breaks after a few chunks,
a stream read with next() and then dropped, an async stream left early and closed, a call cancelled
by asyncio.wait_for, a streamed tool call, n=2 choices, and text_completion."""
import asyncio
import gc
import os

import litellm

BASE = os.environ["FAKE_LLM_URL"]
MSGS = [{"role": "user", "content": "Tell me a long story zqcanary-prompt [chunk_delay:5]"}]
KW = dict(model="openai/gpt-4o-mini", api_base=BASE, api_key="x")

for n, chunk in enumerate(litellm.completion(messages=MSGS, stream=True, **KW), 1):
    if n == 4:
        print("break after the fourth chunk")
        break

stream = litellm.completion(messages=MSGS, stream=True, **KW)
first = next(stream)
print("next() then drop:", bool(first.choices))
del stream, first
gc.collect()

tools = [{"type": "function", "function": {"name": "lookup", "description": "look up",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
parts = []
for chunk in litellm.completion(messages=[{"role": "user", "content": 'Find it zqcanary-prompt [call:lookup {"q": "x"}]'}],
                                tools=tools, stream=True, **KW):
    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        parts.append(call.function.arguments or "")
print("tool call stream:", "".join(parts))

r = litellm.completion(messages=[{"role": "user", "content": "Two ways zqcanary-prompt"}], n=2, **KW)
print("n=2:", len(r.choices))

t = litellm.text_completion(prompt="Complete this zqcanary-prompt", **KW)
print("text_completion:", bool(t.choices[0].text))


async def main() -> None:
    response = await litellm.acompletion(messages=MSGS, stream=True, **KW)
    async for chunk in response:
        print("async break after first:", bool(chunk.choices))
        break
    await response.aclose() if hasattr(response, "aclose") else None

    try:
        await asyncio.wait_for(litellm.acompletion(
            messages=[{"role": "user", "content": "Slow one zqcanary-prompt [latency:3000]"}], timeout=30, **KW), 0.5)
    except asyncio.TimeoutError:
        print("cancelled by wait_for")

asyncio.run(main())
print("done")
