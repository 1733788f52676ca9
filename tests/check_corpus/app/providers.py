"""Raw HTTP to providers (GT101) and look-alikes."""
import urllib.request

import aiohttp
import boto3
import cohere
import httpx
import openai
import requests

ANTHROPIC = "https://api.anthropic.com/v1"
GROQ_URL = "https://api.groq.com/openai/v1/chat/completions"
INTERNAL = "https://llm-gateway.internal.example/v1/chat"


def openai_raw(payload):
    return requests.post("https://api.openai.com/v1/chat/completions", json=payload)  # expect: GT101


async def anthropic_raw(payload):
    async with httpx.AsyncClient() as client:
        return await client.post(f"{ANTHROPIC}/messages", json=payload)  # expect: GT101


async def groq_raw(payload):
    async with aiohttp.ClientSession() as session:
        async with session.post(GROQ_URL, json=payload) as response:  # expect: GT101
            return await response.json()


def mistral_raw(data):
    return urllib.request.urlopen("https://api.mistral.ai/v1/chat/completions", data)  # expect: GT101


def cohere_client():
    return cohere.ClientV2(api_key="k")  # expect: GT101


def bedrock():
    return boto3.client("bedrock-runtime", region_name="us-east-1")  # expect: GT101


def internal_gateway(payload):
    return requests.post(INTERNAL, json=payload)  # clean: GT101 (not a provider host)


def s3():
    return boto3.client("s3")  # clean: GT101 (not an LLM service)


def openai_sdk():
    return openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=[])  # clean: GT101


def log_only():
    print("calls go to https://api.openai.com through litellm")  # clean: GT101 (not an HTTP call)


def unknown_url(url):
    return requests.get(url)  # clean: GT101 (URL not known)


def suppressed(payload):
    return requests.post("https://api.openai.com/v1/embeddings", json=payload)  # noqa: GT101


def suppressed_all(payload):
    return requests.post("https://api.openai.com/v1/embeddings", json=payload)  # noqa


def claims_lookup(claims):
    return claims.get("https://api.openai.com/auth")  # clean: GT101 (a mapping's get, not HTTP)


def post_with(session, payload):
    return session.post("https://api.openai.com/v1/chat/completions", json=payload)  # expect: GT101
