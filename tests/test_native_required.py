"""The collector's native module (collector/native, Rust) is part of the install: the package's
build (maturin) compiles it, and the collector has no pure-Python stand-in for it. A build that
did not happen fails here (and everywhere else) instead of passing unnoticed."""

import importlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_native_module_is_installed_and_is_what_collector_native_exposes():
    module = importlib.import_module("collector.native.genaitrace_native")
    from collector import native

    for name in native.__all__:
        if name != "NativeModuleMissing":
            assert getattr(native, name) is getattr(module, name), name


def test_without_the_native_module_the_cli_says_what_to_run_without_a_traceback():
    hide = ("import sys; sys.modules['collector.native.genaitrace_native'] = None; "
            "sys.argv = ['genaitrace', 'validate', '-c', 'otel-collector.yaml']; "
            "from collector.entry import main; main()")
    done = subprocess.run([sys.executable, "-c", hide], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "native module (collector.native.genaitrace_native) is not built: run ./run.sh" in done.stderr
