"""Process B of the demo: a research service over HTTP that runs its own agent.

    python -m instrumentation.demo.service --port 8911

``POST /research {"question": ...}`` -> ``{"answer": ...}``. The request continues
the caller's trace (W3C traceparent + baggage); the agent is a traceloop
``@agent`` whose LLM calls go through LiteLLM (one of them streamed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import instrumentation

LLM_BASE_URL_ENV = "DEMO_LLM_BASE_URL"


def build_agent():
    import litellm
    from traceloop.sdk.decorators import agent, tool

    base_url = os.environ[LLM_BASE_URL_ENV]

    @tool(name="search_archive")
    def search_archive(question: str) -> str:
        return f"3 archived documents about {question[:40]}"

    @agent(name="Analyst")
    def analyst(question: str) -> str:
        docs = search_archive(question)
        # a streamed call: the provider is asked for usage even though we do not ask
        stream = litellm.completion(
            model="openai/gpt-4o-mini", api_base=base_url, api_key="fake", num_retries=0,
            messages=[{"role": "system", "content": "You are the archive analyst. " * 8},
                      {"role": "user", "content": f"Answer using {docs}: {question} [chunk_delay:2]"}],
            stream=True)
        return "".join((c.choices[0].delta.content or "") for c in stream if c.choices)

    return analyst


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    analyst = None

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._reply(200, {"status": "ok"})

    def do_POST(self):  # noqa: N802
        from instrumentation.bootstrap import force_flush
        from instrumentation.http import server_span

        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with server_span("POST /research", self.headers, {"http.request.method": "POST", "url.path": "/research"}) as span:
            try:
                answer = type(self).analyst(body.get("question", ""))
                span.set_attribute("http.response.status_code", 200)
                status, out = 200, {"answer": answer}
            except Exception as exc:  # the demo's service reports, never crashes
                span.set_attribute("http.response.status_code", 500)
                status, out = 500, {"error": str(exc)}
        force_flush(5000)
        self._reply(status, out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8911)
    args = ap.parse_args(argv)
    instrumentation.init(service_name="demo-research-service")
    Handler.analyst = staticmethod(build_agent())
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True

    def _stop(*_):
        instrumentation.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, _stop)
    print(f"research service ready on {args.port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        instrumentation.shutdown()


if __name__ == "__main__":
    sys.exit(main())
