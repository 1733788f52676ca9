"""A Starlette/ASGI service under uvicorn, wrapped as the README says, calling LiteLLM per request;
a client sends three requests, then stops the service with SIGTERM (as an orchestrator does) or,
with the argument ``INT``, with SIGINT (Ctrl-C in a terminal)."""
import os
import signal
import socket
import subprocess
import sys
import time

BASE = os.environ["FAKE_LLM_URL"]


def serve(port: int) -> None:
    import litellm
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from instrumentation.http import TraceContextASGIMiddleware

    async def ask(request):
        body = await request.json()
        r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x",
                                      messages=[{"role": "user", "content": f"[reply:{body['q']}] zqcanary-prompt"}])
        return JSONResponse({"answer": r.choices[0].message.content.splitlines()[-1]})

    app = TraceContextASGIMiddleware(Starlette(routes=[Route("/ask", ask, methods=["POST"])]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(stop: signal.Signals) -> None:
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", str(port)])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for q in ("one", "two", "three"):
            print(q, "->", client.post("/ask", json={"q": q}).json()["answer"])
    server.send_signal(stop)
    print("server exit:", server.wait(120))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        main(signal.Signals["SIG" + (sys.argv[1] if len(sys.argv) > 1 else "TERM")])
