"""The fake OpenAI/Anthropic-compatible provider (stdlib client only: fast, no vendor SDKs)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from instrumentation.fakellm import FakeLLMServer


@pytest.fixture(scope="module")
def srv():
    with FakeLLMServer() as server:
        yield server


def post(srv, path, body, headers=None, raw=False):
    req = urllib.request.Request(srv.url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        data = r.read().decode()
        return (r.status, dict(r.headers), data) if raw else json.loads(data)


def sse_events(text):
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_chat_completion_usage_and_prompt_cache(srv):
    msgs = [{"role": "system", "content": "You are a careful assistant. " * 20}, {"role": "user", "content": "hi"}]
    first = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs})
    second = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs})
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["finish_reason"] == "stop"
    assert "Final Answer:" in first["choices"][0]["message"]["content"]
    u1, u2 = first["usage"], second["usage"]
    assert u1["total_tokens"] == u1["prompt_tokens"] + u1["completion_tokens"]
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    assert 0 < u2["prompt_tokens_details"]["cached_tokens"] <= u2["prompt_tokens"]
    assert u1["completion_tokens_details"]["reasoning_tokens"] == 0


def test_reasoning_model_reports_reasoning_tokens(srv):
    r = post(srv, "/v1/chat/completions", {"model": "o3-mini", "messages": [{"role": "user", "content": "think"}]})
    details = r["usage"]["completion_tokens_details"]
    assert details["reasoning_tokens"] > 0
    assert r["usage"]["completion_tokens"] >= details["reasoning_tokens"]


def test_tool_call_then_final_answer(srv):
    tools = [{"type": "function", "function": {"name": "lookup_weather", "parameters": {"type": "object"}}}]
    msgs = [{"role": "user", "content": 'weather? [call:lookup_weather {"city": "Paris"}]'}]
    r = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs, "tools": tools})
    choice = r["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    msgs += [{"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    r2 = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs, "tools": tools})
    assert r2["choices"][0]["finish_reason"] == "stop"


def test_streaming_with_and_without_usage(srv):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "stream please"}], "stream": True}
    _, headers, text = post(srv, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}, raw=True)
    assert headers["content-type"].startswith("text/event-stream")
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert any(c["choices"] and c["choices"][0]["finish_reason"] == "stop" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "Final Answer:" in content
    _, _, text = post(srv, "/v1/chat/completions", body, raw=True)
    assert all("usage" not in json.loads(e) for e in sse_events(text)[:-1])


def test_streamed_tool_call(srv):
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    body = {"model": "gpt-4o-mini", "stream": True, "tools": tools,
            "messages": [{"role": "user", "content": '[call:search {"q": "x"}]'}]}
    _, _, text = post(srv, "/v1/chat/completions", body, raw=True)
    chunks = [json.loads(e) for e in sse_events(text)[:-1]]
    args = "".join(tc["function"].get("arguments", "") for c in chunks if c["choices"]
                   for tc in c["choices"][0]["delta"].get("tool_calls") or [])
    assert json.loads(args) == {"q": "x"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_truncated_stream_has_no_end(srv):
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "[truncate] " + "word " * 40}]}
    _, _, text = post(srv, "/v1/chat/completions", body, raw=True)
    events = sse_events(text)
    assert events and "[DONE]" not in events
    assert not any(json.loads(e).get("usage") for e in events)


@pytest.mark.parametrize("status", [429, 500])
def test_errors_by_directive_and_header(srv, status):
    with pytest.raises(urllib.error.HTTPError) as err:
        post(srv, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": f"[fail:{status}]"}]})
    assert err.value.code == status
    assert "error" in json.loads(err.value.read())
    with pytest.raises(urllib.error.HTTPError) as err:
        post(srv, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
             headers={"x-fake-status": str(status)})
    assert err.value.code == status


def test_latency(srv):
    t0 = time.perf_counter()
    post(srv, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "[latency:300]"}]})
    assert time.perf_counter() - t0 >= 0.3


def test_anthropic_messages_cache_tokens(srv):
    body = {"model": "claude-3-5-haiku-latest", "max_tokens": 50, "system": "Be brief. " * 30,
            "messages": [{"role": "user", "content": "hello"}]}
    first = post(srv, "/v1/messages", body)
    second = post(srv, "/v1/messages", body)
    assert first["type"] == "message" and first["content"][0]["type"] == "text"
    assert first["usage"]["cache_creation_input_tokens"] > 0 and first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] > 0 and second["usage"]["cache_creation_input_tokens"] == 0
    assert second["stop_reason"] == "end_turn"


def test_anthropic_streaming_and_tool_use(srv):
    body = {"model": "claude-3-5-haiku-latest", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "stream"}]}
    _, _, text = post(srv, "/v1/messages", body, raw=True)
    types = [json.loads(e)["type"] for e in sse_events(text)]
    assert types[0] == "message_start" and types[-1] == "message_stop" and "message_delta" in types
    tools = [{"name": "get_time", "input_schema": {"type": "object"}}]
    r = post(srv, "/v1/messages", {"model": "claude-3-5-haiku-latest", "max_tokens": 50, "tools": tools,
                                   "messages": [{"role": "user", "content": '[call:get_time {"tz": "UTC"}]'}]})
    assert r["stop_reason"] == "tool_use" and r["content"][0]["input"] == {"tz": "UTC"}


def test_requests_are_recorded(srv):
    srv.reset()
    post(srv, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]},
         headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    (entry,) = srv.requests
    assert entry["path"] == "/v1/chat/completions" and entry["headers"]["traceparent"].startswith("00-111")


def test_structured_output_is_an_instance_of_the_schema(srv):
    """A json_schema response_format (as the OpenAI SDK's parse() and CrewAI's planner send it)
    is answered with JSON that the schema's own model validates."""
    from typing import Literal

    from pydantic import BaseModel

    class Step(BaseModel):
        task: str
        plan: str

    class Plan(BaseModel):
        steps: list[Step]
        kind: Literal["short", "long"]
        score: float | None
        done: bool

    schema = {"type": "json_schema", "json_schema": {"name": "Plan", "schema": Plan.model_json_schema(), "strict": True}}
    r = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "response_format": schema,
                                           "messages": [{"role": "user", "content": "plan it"}]})
    parsed = Plan.model_validate_json(r["choices"][0]["message"]["content"])
    assert parsed.steps and parsed.kind == "short" and parsed.done is True
    r = post(srv, "/v1/chat/completions", {"model": "gpt-4o-mini", "response_format": {"type": "json_object"},
                                           "messages": [{"role": "user", "content": "as json"}]})
    assert isinstance(json.loads(r["choices"][0]["message"]["content"]), dict)


def test_anthropic_count_tokens(srv):
    body = {"model": "claude-haiku-4-5", "system": "Be brief.", "messages": [{"role": "user", "content": "hi " * 50}]}
    counted = post(srv, "/v1/messages/count_tokens", body)["input_tokens"]
    answered = post(srv, "/v1/messages", {**body, "max_tokens": 50})["usage"]
    assert counted > 0
    assert counted == answered["input_tokens"] + answered["cache_read_input_tokens"] + answered[
        "cache_creation_input_tokens"]


def test_a_forced_tool_is_called_with_arguments_of_its_schema(srv):
    """tool_choice naming a tool (instructor's structured outputs) gets a call to it, in both shapes."""
    params = {"type": "object", "properties": {"city": {"type": "string"}, "facts": {"type": "array",
                                                                                    "items": {"type": "string"}}}}
    r = post(srv, "/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "facts"}],
        "tools": [{"type": "function", "function": {"name": "Facts", "parameters": params}}],
        "tool_choice": {"type": "function", "function": {"name": "Facts"}}})
    call = r["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "Facts" and json.loads(call["arguments"]) == {"city": "text", "facts": ["text"]}
    r = post(srv, "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 50,
                                   "messages": [{"role": "user", "content": "facts"}],
                                   "tools": [{"name": "Facts", "input_schema": params}],
                                   "tool_choice": {"type": "tool", "name": "Facts"}})
    (block,) = [b for b in r["content"] if b["type"] == "tool_use"]
    assert block["name"] == "Facts" and block["input"] == {"city": "text", "facts": ["text"]}
