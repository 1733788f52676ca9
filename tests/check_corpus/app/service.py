from fastapi import FastAPI

from app.llm import library_api

app = FastAPI()  # expect: GT106


@app.post("/ask")
def ask_route(question: str):
    return library_api(question)
