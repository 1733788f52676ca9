"""Shared test set-up: no outbound network, CrewAI and Traceloop kept quiet, a temp HOME.

Every test process and every process it starts loads `tests/netguard/sitecustomize.py`, which
refuses connections to any non-loopback address and records the attempt; the session fails if
anything tried.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_GUARD_DIR = Path(__file__).parent / "netguard"
_GUARD_LOG = Path(os.environ.get("NETGUARD_LOG") or (Path(__file__).parent.parent / ".pytest_cache" / f"netguard-{os.getpid()}.log"))


# The `genaitrace check` corpus is source for the check to read, not tests to run: importing its
# files would run what they do (one sets OTEL_SDK_DISABLED in this process).
collect_ignore = ["check_corpus"]


def pytest_configure(config) -> None:
    _GUARD_LOG.parent.mkdir(parents=True, exist_ok=True)
    _GUARD_LOG.write_text("")
    os.environ["NETGUARD_LOG"] = str(_GUARD_LOG)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_GUARD_DIR), os.environ.get("PYTHONPATH")]))
    # Never OTEL_SDK_DISABLED: that would silence the very spans under test.
    os.environ.update(
        CREWAI_DISABLE_TELEMETRY="true",
        CREWAI_DISABLE_TRACKING="true",
        CREWAI_DISABLE_VERSION_CHECK="true",  # a Flow's start asks PyPI for a newer CrewAI (unless CI=true)
        TRACELOOP_TELEMETRY="false",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        DO_NOT_TRACK="1",
    )
    # The same guard in this process (child processes load it as their sitecustomize).
    spec = importlib.util.spec_from_file_location("netguard", _GUARD_DIR / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


@pytest.fixture(autouse=True, scope="session")
def _temp_home(tmp_path_factory):
    """CrewAI and litellm write under $HOME; keep that out of the real one."""
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    yield home
    if old is not None:
        os.environ["HOME"] = old


def pytest_sessionfinish(session, exitstatus) -> None:
    attempts = _GUARD_LOG.read_text().strip() if _GUARD_LOG.exists() else ""
    if attempts:
        print("\n" + attempts, file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture
def collector(tmp_path):
    """A running collector process with the default test pipeline (OTLP -> batch -> chdb)."""
    from support.harness import CollectorProcess

    process = CollectorProcess(tmp_path).start()
    yield process
    process.stop()


@pytest.fixture
def genai_provider():
    """A real SDK tracer provider with the GenAI span processor in front of an in-memory exporter:
    (provider, exporter)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from instrumentation.processor import GenAISpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(GenAISpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()
