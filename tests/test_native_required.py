"""The README's test command (`./run.sh test`) builds collector/native and sets
GENAITRACE_REQUIRE_NATIVE=1, so a build that silently did not happen fails CI instead of leaving
the collector on its slower pure-Python path."""

import os

import pytest

from collector import native


def test_native_module_is_built_where_required():
    if os.environ.get("GENAITRACE_REQUIRE_NATIVE") != "1":
        pytest.skip("not required outside ./run.sh test")
    assert native.available(), "collector/native/_otlp_native.so is missing or does not import"
