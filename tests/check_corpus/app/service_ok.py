import app.boot  # noqa: F401 - initialises tracing at import
import litellm
from fastapi import FastAPI

from instrumentation.http import TraceContextASGIMiddleware

app = FastAPI()  # clean: GT106 (app.boot initialises tracing)
app.add_middleware(TraceContextASGIMiddleware)


@app.post("/chat")
def chat(question: str):
    return litellm.completion(model="gpt-4o-mini", messages=[])  # clean: GT102 (baggage comes with the request)
