"""A collector with faults injected, for tests only: `python tests/support/fault_injection.py --kill-after-push N run --config ...`

`--kill-after-push N`: SIGKILL the whole process right after the Nth successful push of the
`clickhouse` exporter, before exporterhelper acknowledges the batch in its queue. The store then
has the batch and the queue still has it too: the replay after a restart must be deduplicated by
the store (insert_deduplication_token). The production code knows nothing of this: the test
wraps the exporter's push function, the one seam every exporter has.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collector.exporters import clickhouse  # noqa: E402

log = logging.getLogger("fault_injection")


def kill_after_push(pushes: int) -> None:
    original = clickhouse.ClickHouseExporter.push
    done = 0

    def push_then_maybe_kill(self, request):
        nonlocal done
        original(self, request)
        done += 1
        if done >= pushes:
            log.error("exporter %s: fault injection: SIGKILL after push %d, before ack", self.id, done)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    clickhouse.ClickHouseExporter.push = push_then_maybe_kill


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-after-push", type=int, required=True)
    args, rest = parser.parse_known_args()
    kill_after_push(args.kill_after_push)
    from collector import cli

    cli.main(rest)


if __name__ == "__main__":
    main()
