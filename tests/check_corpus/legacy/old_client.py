import requests


def old(payload):
    return requests.post("https://api.openai.com/v1/completions", json=payload)  # clean: GT101 (per-file-ignores)
