"""Helpers shared by the instrumentation tests (imported explicitly; the lead owns conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[2])


def child_env(**extra: str) -> dict:
    """The test environment (netguard on PYTHONPATH, temp HOME, telemetry off) plus the repo root."""
    env = dict(os.environ)
    env.pop("OTEL_SDK_DISABLED", None)
    for key in [k for k in env if k.startswith("OTEL_")]:
        env.pop(key)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), REPO]))
    env.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_python(code: str, env: dict | None = None, timeout: float = 180, cwd: str | None = None
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env or child_env(),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO)


def last_json(stdout: str):
    """The last line of stdout that parses as JSON (child scripts print their result last)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON result in output:\n{stdout[-3000:]}")


@pytest.fixture
def fake_llm():
    from instrumentation.fakellm import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def otlp_capture():
    from instrumentation.otlp_capture import OTLPCapture

    with OTLPCapture() as cap:
        yield cap


# Child-process snippet: init() with an in-memory exporter, then dump the spans as JSON.
SPANS_DUMP = """
def _dump(exp):
    import json
    out = []
    for s in exp.get_finished_spans():
        out.append({"name": s.name, "kind": s.kind.name, "trace_id": format(s.context.trace_id, "032x"),
                    "span_id": format(s.context.span_id, "016x"),
                    "parent_span_id": format(s.parent.span_id, "016x") if s.parent else None,
                    "scope": s.instrumentation_scope.name if s.instrumentation_scope else None,
                    "status": s.status.status_code.name, "attributes": dict(s.attributes)})
    print(json.dumps(out, default=list))
"""
