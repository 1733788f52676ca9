"""The collector's native module (collector/native, Rust) is part of the install: `./run.sh` builds
it with maturin into the venv, and the collector has no pure-Python stand-in for it. A build that
did not happen fails here (and everywhere else) instead of passing unnoticed."""

import importlib


def test_native_module_is_installed_and_is_what_collector_native_exposes():
    module = importlib.import_module("genaitrace_native")
    from collector import native

    for name in native.__all__:
        assert getattr(native, name) is getattr(module, name), name
