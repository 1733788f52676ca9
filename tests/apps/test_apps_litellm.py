"""The app matrix, LiteLLM: every way users call it, under opentelemetry-instrument with env vars only."""

from __future__ import annotations

from apps.harness import run_app


def test_litellm_sync(app_environment):
    run = run_app(app_environment, "litellm_sync.py")
    run.check(requests=4, llm_calls=4)


def test_litellm_async(app_environment):
    run = run_app(app_environment, "litellm_async.py")
    run.check(requests=5, llm_calls=5)
