"""One collector process for the whole app matrix (each run brings its own fake LLM and tee)."""

from __future__ import annotations

import pytest

from apps.harness import AppEnvironment


@pytest.fixture(scope="session")
def app_environment(tmp_path_factory):
    from support.harness import CollectorProcess  # tests/support/harness.py

    tmp = tmp_path_factory.mktemp("apps")
    with CollectorProcess(tmp / "collector") as collector:
        yield AppEnvironment(collector=collector, tmp=tmp)
