"""More LiteLLM call shapes (7 calls, each its own request): a streamed tool call to an
Anthropic-shaped provider and the follow-up with the tool's result, a structured output
(``response_format`` a pydantic model), ``aembedding``, ``atext_completion``, and a stream whose
app asks for usage itself (it must get the usage chunk, exactly as uninstrumented) and an async
stream that does not ask."""
import asyncio
import json
import os

import litellm
from pydantic import BaseModel

BASE = os.environ["FAKE_LLM_URL"]
ROOT = os.environ["FAKE_LLM_ROOT"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather zqcanary-tool",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CLAUDE = dict(model="anthropic/claude-haiku-4-5", api_base=ROOT, api_key="sk-ant-fake", max_tokens=200)
GPT = dict(model="openai/gpt-4o-mini", api_base=BASE, api_key="x")


class City(BaseModel):
    name: str
    population: int


messages = [{"role": "user", "content": 'Weather? [call:get_weather {"city": "Oslo"}] zqcanary-prompt'}]
calls = {}
for chunk in litellm.completion(**CLAUDE, messages=messages, tools=TOOLS, stream=True):
    for call in chunk.choices[0].delta.tool_calls or []:
        entry = calls.setdefault(call.index, {"id": call.id, "name": None, "arguments": ""})
        entry["id"] = entry["id"] or call.id
        entry["name"] = entry["name"] or call.function.name
        entry["arguments"] += call.function.arguments or ""
(call,) = calls.values()
print("streamed tool call:", call["name"], json.loads(call["arguments"]))
messages += [{"role": "assistant", "content": None, "tool_calls": [
                 {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
             {"role": "tool", "tool_call_id": call["id"], "content": "Sunny zqcanary-tool-output"}]
print("after the tool:", litellm.completion(**CLAUDE, messages=messages, tools=TOOLS).choices[0].finish_reason)

r = litellm.completion(**GPT, messages=[{"role": "user", "content": "A city zqcanary-prompt"}], response_format=City)
print("structured:", City.model_validate_json(r.choices[0].message.content))

chunks = list(litellm.completion(**GPT, messages=[{"role": "user", "content": "Hi zqcanary-prompt"}], stream=True,
                                 stream_options={"include_usage": True}))
print("app asked for usage:", len(chunks), getattr(chunks[-1], "usage", None) is not None)


async def main():
    e = await litellm.aembedding(model="openai/text-embedding-3-small", api_base=BASE, api_key="x",
                                 input=["zqcanary-embed a", "zqcanary-embed b"])
    print("aembedding:", len(e.data))
    t = await litellm.atext_completion(**GPT, prompt="Say hi zqcanary-prompt")
    print("atext_completion:", bool(t.choices[0].text))
    stream = await litellm.acompletion(**GPT, messages=[{"role": "user", "content": "Hi zqcanary-prompt"}], stream=True)
    n = 0
    async for chunk in stream:
        n += 1
        assert not getattr(chunk, "usage", None) or chunk.choices, "a usage chunk the app did not ask for"
    print("async stream chunks:", n)

asyncio.run(main())
