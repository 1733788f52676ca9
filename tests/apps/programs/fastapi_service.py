"""A FastAPI service under uvicorn with the README's middleware added the FastAPI way
(``app.add_middleware``), calling LiteLLM per request (one fails at the provider: 502); a client
sends three requests, then stops the service with SIGTERM."""
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
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    from instrumentation.http import TraceContextASGIMiddleware

    class Question(BaseModel):
        q: str

    app = FastAPI()
    app.add_middleware(TraceContextASGIMiddleware)

    @app.post("/ask")
    async def ask(question: Question):
        try:
            r = await litellm.acompletion(model="openai/gpt-4o-mini", api_base=BASE, api_key="x", num_retries=0,
                                          messages=[{"role": "user", "content": f"{question.q} zqcanary-prompt"}])
        except (litellm.exceptions.APIError, litellm.exceptions.InternalServerError) as exc:
            return JSONResponse({"answer": f"provider failed: {type(exc).__name__}"}, status_code=502)
        return {"answer": r.choices[0].message.content.splitlines()[-1]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
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
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for q in ("one", "two", "[fail:500]"):
                response = client.post("/ask", json={"q": q})
                print(q, "->", response.status_code, response.json()["answer"])
    finally:  # the server goes down whatever happened above (a leftover child would hold our stdout)
        server.send_signal(signal.SIGTERM)
        print("server exit:", server.wait(120))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        main()
