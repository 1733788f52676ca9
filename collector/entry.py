"""The `genaitrace` command: `check` runs without importing the collector (a pre-commit hook on one
file should start in a tenth of a second, and the collector's imports take most of a second)."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        from genaitrace_check.cli import main as check

        sys.exit(check(sys.argv[2:]))
    try:
        from collector.cli import main as collector_main

        collector_main()
    except ImportError as exc:
        # A missing install step (the native module) is the user's to fix: one line, no traceback.
        if exc.name != "collector.native.genaitrace_native":  # ImportError's own attribute: no import of collector.native here
            raise
        print(f"genaitrace: error: {exc}", file=sys.stderr)
        sys.exit(2)
