"""A small, deterministic, OpenAI- and Anthropic-compatible fake LLM provider.

Used by the tests and the demo so that nothing ever talks to a real provider.
Standard library only; binds to 127.0.0.1.

    python -m instrumentation.fakellm --port 8900

Endpoints
---------
``POST /v1/chat/completions``  OpenAI chat completions, with and without
    streaming (``stream_options.include_usage`` honoured), tool calls, realistic
    ``usage`` (``prompt_tokens_details.cached_tokens``,
    ``completion_tokens_details.reasoning_tokens``).
``POST /v1/responses``         OpenAI Responses (``input`` string or items, ``instructions``), with
    and without streaming (typed events; ``response.completed`` carries ``usage``).
``POST /v1/embeddings``        OpenAI embeddings (deterministic vectors, ``usage.prompt_tokens``).
Mistral models (``mistral-*``, ``codestral-*``...) answer in Mistral's shape: plain token counts,
    and a stream's last chunk carries ``usage`` whether or not it was asked for.
``POST /v1/messages``          Anthropic messages (``cache_read_input_tokens`` /
    ``cache_creation_input_tokens``), with and without streaming, ``tool_use``.
``POST /v1/messages/count_tokens``  Anthropic token counting (``input_tokens``).
``GET /v1/models``, ``GET /health``
``GET /_requests``             the recorded requests (JSON list), for tests;
``POST /_reset``               clears them and the prompt cache.

Behaviour directives
--------------------
Put these anywhere in a user/system message (or use the headers):

``[fail:429]`` / ``[fail:500]``  (header ``x-fake-status``)  answer with that HTTP error
``[latency:250]``                (header ``x-fake-latency-ms``) sleep before answering
``[chunk_delay:20]``             sleep between stream chunks
``[truncate]``                   (header ``x-fake-truncate: 1``) cut the stream half way,
                                 no final chunk, no ``[DONE]``
``[call:tool_name {"a": 1}]``    the k-th directive is answered with a tool call once
                                 the conversation holds k-1 tool results (names matched
                                 loosely against the request's ``tools``)
``[reply:some text]``            the final answer text
``[reasoning:64]``               reasoning tokens to report (default: 0, or 32 for
                                 o1/o3/o4/*reason* models)
``[no_usage]``                   (header ``x-fake-no-usage: 1``) an OpenAI-compatible answer
                                 without ``usage``, streamed or not (as some self-hosted
                                 servers and proxies answer)

Structured outputs: a chat request with ``response_format`` ``json_schema`` is answered with a
small JSON instance of the schema (``$defs`` references, ``anyOf``, enums, one item per array),
``json_object`` with ``{"answer": ...}``, as a provider honouring the format would; a
``tool_choice`` that names a tool (OpenAI and Anthropic shapes) is answered with a call to it whose
arguments are an instance of its parameter schema.

Prompt caching is simulated: the second time the same first message (system
prompt) is seen, its tokens are reported as cached.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLMServer", "main", "count_tokens"]

_DIRECTIVE = re.compile(r"\[(fail|latency|chunk_delay|truncate|reply|reasoning|call|no_usage)(?::([^\]]*))?\]")


def count_tokens(text: str) -> int:
    """A crude but deterministic token count (about 4 characters a token)."""
    if not text:
        return 0
    return max(1, (len(text) + 3) // 4)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if "text" in block and isinstance(block["text"], str):
                    parts.append(block["text"])
                elif block.get("type") == "tool_result":
                    parts.append(_content_text(block.get("content")))
                elif block.get("type") == "tool_use":
                    parts.append(json.dumps(block.get("input", {})))
            elif isinstance(block, str):
                parts.append(block)
        return "\n".join(parts)
    return str(content)


def _schema_instance(schema: Any, defs: dict | None = None, depth: int = 0) -> Any:
    """A small value valid against a JSON schema (the subset providers accept for structured outputs)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return _schema_instance(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1]), defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [o for o in schema[key] if isinstance(o, dict) and o.get("type") != "null"] or schema[key]
            return _schema_instance(options[0], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: _schema_instance(sub, defs, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_schema_instance(schema.get("items") or {"type": "string"}, defs, depth + 1)]
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "text")


def _anthropic_input_tokens(body: dict) -> int:
    """The input tokens of an Anthropic ``messages`` request (what ``count_tokens`` answers too)."""
    messages = body.get("messages") or []
    system = body.get("system")
    text = (_content_text(system) if system is not None else "") + "\n".join(
        _content_text(m.get("content")) for m in messages)
    return count_tokens(text) + 3 * len(messages)


def _structured_text(response_format: Any) -> str | None:
    """The answer's JSON text when the request asks for structured output, else None."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        return json.dumps(_schema_instance((response_format.get("json_schema") or {}).get("schema") or {}))
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": "Done."})
    return None


def _forced_tool(choice: Any, tools: Any, anthropic: bool) -> tuple[str, Any] | None:
    """(name, arguments) when the request forces a tool (``tool_choice`` naming one, as structured-output
    libraries such as instructor send it): arguments are an instance of the tool's parameter schema."""
    if not isinstance(choice, dict) or not isinstance(tools, list):
        return None
    name = choice.get("name") if anthropic else (choice.get("function") or {}).get("name")
    for tool in tools:
        spec = tool if anthropic else (tool.get("function") if isinstance(tool, dict) else None)
        if isinstance(spec, dict) and name and spec.get("name") == name:
            return name, _schema_instance(spec.get("input_schema" if anthropic else "parameters") or {})
    return None


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class _Directives:
    def __init__(self, texts: list[str], headers: Any):
        self.fail: int | None = None
        self.latency_ms = 0.0
        self.chunk_delay_ms = 0.0
        self.truncate = False
        self.no_usage = False
        self.reply: str | None = None
        self.reasoning: int | None = None
        self.calls: list[tuple[str, dict]] = []
        for text in texts:
            for m in _DIRECTIVE.finditer(text or ""):
                kind, arg = m.group(1), (m.group(2) or "").strip()
                try:
                    if kind == "fail":
                        self.fail = int(arg or 500)
                    elif kind == "latency":
                        self.latency_ms = float(arg or 0)
                    elif kind == "chunk_delay":
                        self.chunk_delay_ms = float(arg or 0)
                    elif kind == "truncate":
                        self.truncate = True
                    elif kind == "no_usage":
                        self.no_usage = True
                    elif kind == "reply":
                        self.reply = arg
                    elif kind == "reasoning":
                        self.reasoning = int(arg or 0)
                    elif kind == "call":
                        name, _, raw = arg.partition(" ")
                        args = json.loads(raw) if raw.strip() else {}
                        self.calls.append((name, args if isinstance(args, dict) else {}))
                except (ValueError, json.JSONDecodeError):
                    continue
        if headers is not None:
            if headers.get("x-fake-status"):
                self.fail = int(headers.get("x-fake-status"))
            if headers.get("x-fake-latency-ms"):
                self.latency_ms = float(headers.get("x-fake-latency-ms"))
            if headers.get("x-fake-truncate", "").lower() in ("1", "true", "yes"):
                self.truncate = True
            if headers.get("x-fake-no-usage", "").lower() in ("1", "true", "yes"):
                self.no_usage = True


class _State:
    def __init__(self, record_limit: int = 1000):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.record_limit = record_limit
        self.seen_prefixes: OrderedDict[str, None] = OrderedDict()

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            if len(self.requests) > self.record_limit:
                del self.requests[: len(self.requests) - self.record_limit]

    def cached(self, prefix: str) -> bool:
        key = hashlib.sha1(prefix.encode("utf-8", "replace")).hexdigest()
        with self.lock:
            hit = key in self.seen_prefixes
            self.seen_prefixes[key] = None
            self.seen_prefixes.move_to_end(key)
            while len(self.seen_prefixes) > 10000:
                self.seen_prefixes.popitem(last=False)
            return hit

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.seen_prefixes.clear()


def _pick_tool(name: str, tools: list[str]) -> str | None:
    want = _norm_name(name)
    for t in tools:
        if _norm_name(t) == want:
            return t
    for t in tools:
        if want and (want in _norm_name(t) or _norm_name(t) in want):
            return t
    return None


def _is_reasoning_model(model: str) -> bool:
    m = model.lower().split("/")[-1]
    return m.startswith(("o1", "o3", "o4")) or "reason" in m


def _is_mistral_model(model: str) -> bool:
    m = model.lower().split("/")[-1]
    return m.startswith(("mistral", "open-mistral", "codestral", "ministral", "pixtral", "magistral"))


class _Handler(BaseHTTPRequestHandler):
    server_version = "fakellm/1.0"
    protocol_version = "HTTP/1.1"

    # --- plumbing -----------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def _read_json(self) -> dict:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        return json.loads(raw)

    def _send_json(self, status: int, body: dict, extra_headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: str, event: str | None = None) -> None:
        payload = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        self.wfile.write(payload.encode())
        self.wfile.flush()

    # --- routes -------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") in ("/health", "/healthz"):
            self._send_json(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "fakellm"}
                for m in ("gpt-4o-mini", "gpt-4o", "o3-mini", "claude-3-5-haiku-latest")]})
        elif self.path.rstrip("/") == "/_requests":
            with self.state.lock:
                self._send_json(200, {"requests": list(self.state.requests)})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled call): a real provider just stops, so do we

    def _post(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        try:
            body = self._read_json()
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        if path == "/_reset":
            self.state.reset()
            self._send_json(200, {"ok": True})
            return
        self.state.record({
            "path": path,
            "body": body,
            "headers": {k.lower(): v for k, v in self.headers.items()
                        if k.lower() not in ("authorization", "x-api-key")},
            "time": time.time(),
        })
        if path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(body)
        elif path in ("/v1/embeddings", "/embeddings"):
            self._embeddings(body)
        elif path in ("/v1/messages", "/messages"):
            self._messages(body)
        elif path in ("/v1/messages/count_tokens", "/messages/count_tokens"):
            self._count_tokens(body)
        elif path in ("/v1/responses", "/responses"):
            self._responses(body)
        else:
            self._send_json(404, {"error": {"message": f"unknown path {path}", "type": "invalid_request_error"}})

    # --- shared behaviour ---------------------------------------------------
    def _maybe_fail(self, d: _Directives, anthropic: bool) -> bool:
        if d.latency_ms:
            time.sleep(d.latency_ms / 1000.0)
        if not d.fail:
            return False
        status = d.fail
        if anthropic:
            etype = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(status, "api_error")
            self._send_json(status, {"type": "error", "error": {"type": etype, "message": f"fake error {status}"}},
                            {"retry-after": "0"} if status == 429 else None)
        else:
            etype = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "server_error")
            self._send_json(status, {"error": {"message": f"fake error {status}", "type": etype,
                                               "param": None, "code": etype}},
                            {"retry-after": "0"} if status == 429 else None)
        return True

    @staticmethod
    def _answer_text(d: _Directives, last_user: str) -> str:
        if d.reply is not None:
            text = d.reply
        else:
            snippet = _DIRECTIVE.sub("", last_user).strip().replace("\n", " ")[:80]
            text = f"Here is the result for: {snippet}" if snippet else "Done."
        return f"Thought: I now know the final answer\nFinal Answer: {text}"

    # --- OpenAI -------------------------------------------------------------
    def _chat(self, body: dict) -> None:
        messages = body.get("messages") or []
        model = str(body.get("model") or "gpt-4o-mini")
        texts = [_content_text(m.get("content")) for m in messages if m.get("role") in ("system", "user", "developer")]
        d = _Directives(texts, self.headers)
        if self._maybe_fail(d, anthropic=False):
            return
        tools = [t.get("function", {}).get("name", "") for t in (body.get("tools") or []) if isinstance(t, dict)]
        n_results = sum(1 for m in messages if m.get("role") == "tool")
        tool_call = None
        if tools and n_results < len(d.calls):
            name, args = d.calls[n_results]
            picked = _pick_tool(name, tools)
            if picked:
                tool_call = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                             "function": {"name": picked, "arguments": json.dumps(args)}}
        forced = _forced_tool(body.get("tool_choice"), body.get("tools"), anthropic=False)
        if tool_call is None and forced and n_results == 0:
            tool_call = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                         "function": {"name": forced[0], "arguments": json.dumps(forced[1])}}
        last_user = next((_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        structured = None if tool_call else _structured_text(body.get("response_format"))
        text = None if tool_call else structured or self._answer_text(d, last_user)

        prompt_text = "\n".join(_content_text(m.get("content")) for m in messages) + json.dumps(body.get("tools") or [])
        prompt_tokens = count_tokens(prompt_text) + 3 * len(messages)
        first = _content_text(messages[0].get("content")) if messages else ""
        cached = 0
        if first and self.state.cached(model + "\x00" + first):
            cached = min(prompt_tokens, count_tokens(first))
        out_text = text if text is not None else json.dumps(tool_call)
        reasoning = d.reasoning if d.reasoning is not None else (32 if _is_reasoning_model(model) else 0)
        completion_tokens = count_tokens(out_text) + reasoning
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        mistral = _is_mistral_model(model)
        if mistral:  # Mistral's API: plain counts, and every stream's last chunk carries them
            usage = {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        finish = "tool_calls" if tool_call else "stop"
        cid = ("" if mistral else "chatcmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if tool_call:
                message["tool_calls"] = [tool_call]
            answer = {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_fakellm",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            if d.no_usage:
                del answer["usage"]
            self._send_json(200, answer)
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not d.no_usage
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_fakellm"}

        def chunk(delta: dict, finish_reason: str | None = None) -> str:
            return json.dumps({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": finish_reason}]})

        pieces: list[str] = []
        if tool_call:
            args = tool_call["function"]["arguments"]
            half = len(args) // 2
            pieces.append(json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": tool_call["id"], "type": "function",
                 "function": {"name": tool_call["function"]["name"], "arguments": ""}}]},
                "logprobs": None, "finish_reason": None}]}))
            for part in (args[:half], args[half:]):
                pieces.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        else:
            pieces.append(chunk({"role": "assistant", "content": ""}))
            words = re.findall(r"\S+\s*", text or "")
            step = max(1, len(words) // 8)
            for i in range(0, len(words), step):
                pieces.append(chunk({"content": "".join(words[i:i + step])}))
        try:
            self._start_sse()
            if d.truncate:
                for p in pieces[: max(1, len(pieces) // 2)]:
                    self._sse(p)
                    if d.chunk_delay_ms:
                        time.sleep(d.chunk_delay_ms / 1000.0)
                return  # connection closes: no finish_reason, no usage, no [DONE]
            for p in pieces:
                self._sse(p)
                if d.chunk_delay_ms:
                    time.sleep(d.chunk_delay_ms / 1000.0)
            if mistral and not d.no_usage:
                last = json.loads(chunk({"content": ""}, finish))
                last["usage"] = usage
                self._sse(json.dumps(last))
                self._sse("[DONE]")
                return
            self._sse(chunk({}, finish))
            if include_usage:
                self._sse(json.dumps({**base, "choices": [], "usage": usage}))
            self._sse("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- OpenAI Responses -----------------------------------------------------
    def _responses(self, body: dict) -> None:
        """The Responses API: `input` (a string or message items), `instructions`, streamed as typed
        events (`response.created` ... `response.completed`, which carries the usage)."""
        model = str(body.get("model") or "gpt-4o-mini")
        raw_input = body.get("input")
        items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else list(raw_input or [])
        instructions = str(body.get("instructions") or "")
        user_texts = [_content_text(i.get("content")) for i in items if isinstance(i, dict) and i.get("role") in ("user", "system", "developer")]
        d = _Directives([instructions, *user_texts], self.headers)
        if self._maybe_fail(d, anthropic=False):
            return
        last_user = next((_content_text(i.get("content")) for i in reversed(items) if isinstance(i, dict) and i.get("role") == "user"), "")
        text = self._answer_text(d, last_user)
        prompt_text = instructions + "\n" + "\n".join(user_texts)
        input_tokens = count_tokens(prompt_text) + 3 * len(items)
        first = instructions or (user_texts[0] if user_texts else "")
        cached = min(input_tokens, count_tokens(first)) if first and self.state.cached(model + "\x00" + first) else 0
        reasoning = d.reasoning if d.reasoning is not None else (32 if _is_reasoning_model(model) else 0)
        output_tokens = count_tokens(text) + reasoning
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached},
                 "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
                 "total_tokens": input_tokens + output_tokens}
        rid, mid, created = "resp_" + uuid.uuid4().hex[:24], "msg_" + uuid.uuid4().hex[:24], int(time.time())
        message = {"type": "message", "id": mid, "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}
        response = {"id": rid, "object": "response", "created_at": created, "status": "completed", "model": model,
                    "output": [message], "instructions": body.get("instructions"), "parallel_tool_calls": True,
                    "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
                    "temperature": body.get("temperature"), "top_p": body.get("top_p"), "error": None,
                    "incomplete_details": None, "metadata": body.get("metadata") or {},
                    "text": {"format": {"type": "text"}}, "usage": None if d.no_usage else usage}
        if not body.get("stream"):
            self._send_json(200, response)
            return
        in_progress = {**response, "status": "in_progress", "output": [], "usage": None}
        item = {**message, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        words = re.findall(r"\S+\s*", text)
        step = max(1, len(words) // 8)
        events = [("response.created", {"response": in_progress}),
                  ("response.in_progress", {"response": in_progress}),
                  ("response.output_item.added", {"output_index": 0, "item": item}),
                  ("response.content_part.added", {"item_id": mid, "output_index": 0, "content_index": 0, "part": part})]
        events += [("response.output_text.delta", {"item_id": mid, "output_index": 0, "content_index": 0,
                                                   "delta": "".join(words[i:i + step]), "logprobs": []})
                   for i in range(0, len(words), step)]
        events += [("response.output_text.done", {"item_id": mid, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
                   ("response.content_part.done", {"item_id": mid, "output_index": 0, "content_index": 0,
                                                   "part": {**part, "text": text}}),
                   ("response.output_item.done", {"output_index": 0, "item": message}),
                   ("response.completed", {"response": response})]
        try:
            self._start_sse()
            for number, (kind, payload) in enumerate(events):
                self._sse(json.dumps({"type": kind, "sequence_number": number, **payload}), event=kind)
                if d.chunk_delay_ms:
                    time.sleep(d.chunk_delay_ms / 1000.0)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- OpenAI embeddings ---------------------------------------------------
    def _embeddings(self, body: dict) -> None:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, (str, int)) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) \
            else list(raw or [])
        d = _Directives([str(x) for x in inputs], self.headers)
        if self._maybe_fail(d, anthropic=False):
            return
        dims = int(body.get("dimensions") or 8)
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += count_tokens(text)
            digest = hashlib.sha256(text.encode()).digest()
            data.append({"object": "embedding", "index": i,
                         "embedding": [round(digest[j % len(digest)] / 255.0, 6) for j in range(dims)]})
        answer = {"object": "list", "data": data, "model": str(body.get("model") or "text-embedding-3-small"),
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        if d.no_usage:
            del answer["usage"]
        self._send_json(200, answer)

    # --- Anthropic ----------------------------------------------------------
    def _count_tokens(self, body: dict) -> None:
        """Anthropic's token counting: the prompt's input tokens as ``messages`` would count them (free, no answer)."""
        self._send_json(200, {"input_tokens": _anthropic_input_tokens(body)})

    def _messages(self, body: dict) -> None:
        messages = body.get("messages") or []
        model = str(body.get("model") or "claude-3-5-haiku-latest")
        system = body.get("system")
        system_text = _content_text(system) if system is not None else ""
        texts = [system_text] + [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        d = _Directives(texts, self.headers)
        if self._maybe_fail(d, anthropic=True):
            return
        tools = [t.get("name", "") for t in (body.get("tools") or []) if isinstance(t, dict)]
        n_results = sum(1 for m in messages if isinstance(m.get("content"), list)
                        for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
        tool_use = None
        if tools and n_results < len(d.calls):
            name, args = d.calls[n_results]
            picked = _pick_tool(name, tools)
            if picked:
                tool_use = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": picked, "input": args}
        forced = _forced_tool(body.get("tool_choice"), body.get("tools"), anthropic=True)
        if tool_use is None and forced and n_results == 0:
            tool_use = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": forced[0],
                        "input": forced[1]}
        last_user = next((_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        text = None if tool_use else self._answer_text(d, last_user)
        total_in = _anthropic_input_tokens(body)
        cache_read = cache_creation = 0
        if system_text:
            sys_tokens = min(total_in, count_tokens(system_text))
            if self.state.cached(model + "\x00" + system_text):
                cache_read = sys_tokens
            else:
                cache_creation = sys_tokens
        input_tokens = total_in - cache_read - cache_creation  # Anthropic: excludes cached tokens
        out_text = text if text is not None else json.dumps(tool_use)
        output_tokens = count_tokens(out_text)
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                 "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_creation}
        mid = "msg_" + uuid.uuid4().hex[:24]
        content = [tool_use] if tool_use else [{"type": "text", "text": text}]
        stop = "tool_use" if tool_use else "end_turn"
        if not body.get("stream"):
            self._send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                  "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage})
            return
        try:
            self._start_sse()
            start_usage = {**usage, "output_tokens": 1}
            self._sse(json.dumps({"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": start_usage}}), "message_start")
            if tool_use:
                self._sse(json.dumps({"type": "content_block_start", "index": 0, "content_block": {
                    "type": "tool_use", "id": tool_use["id"], "name": tool_use["name"], "input": {}}}),
                    "content_block_start")
                self._sse(json.dumps({"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(tool_use["input"])}}),
                    "content_block_delta")
            else:
                self._sse(json.dumps({"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}), "content_block_start")
                words = re.findall(r"\S+\s*", text or "")
                if d.truncate:
                    words = words[: max(1, len(words) // 2)]
                for w in words:
                    self._sse(json.dumps({"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": w}}), "content_block_delta")
                    if d.chunk_delay_ms:
                        time.sleep(d.chunk_delay_ms / 1000.0)
                if d.truncate:
                    return
            self._sse(json.dumps({"type": "content_block_stop", "index": 0}), "content_block_stop")
            self._sse(json.dumps({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                  "usage": {"output_tokens": output_tokens}}), "message_delta")
            self._sse(json.dumps({"type": "message_stop"}), "message_stop")
        except (BrokenPipeError, ConnectionResetError):
            pass


class FakeLLMServer:
    """Run the fake provider in a background thread.

    >>> with FakeLLMServer() as srv:
    ...     srv.base_url   # 'http://127.0.0.1:<port>/v1'
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", verbose: bool = False):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State()  # type: ignore[attr-defined]
        self.httpd.verbose = verbose  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def requests(self) -> list[dict]:
        with self.httpd.state.lock:  # type: ignore[attr-defined]
            return list(self.httpd.state.requests)  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.httpd.state.reset()  # type: ignore[attr-defined]

    def start(self) -> "FakeLLMServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fakellm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic-compatible LLM provider (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    srv = FakeLLMServer(args.port, args.host, args.verbose)
    print(f"fakellm listening on {srv.base_url}", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()


if __name__ == "__main__":
    main()
