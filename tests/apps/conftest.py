"""One fake LLM server, one collector process and one OTLP tee for the whole app matrix."""

from __future__ import annotations

import pytest

from apps.harness import AppEnvironment, TeeReceiver


@pytest.fixture(scope="session")
def app_environment(tmp_path_factory):
    from support.harness import CollectorProcess  # tests/support/harness.py
    from instrumentation.fakellm import FakeLLMServer

    tmp = tmp_path_factory.mktemp("apps")
    with FakeLLMServer() as fake, CollectorProcess(tmp / "collector") as collector:
        tee = TeeReceiver(collector.http_url).start()
        try:
            yield AppEnvironment(fake=fake, collector=collector, tee=tee, tmp=tmp)
        finally:
            tee.stop()
