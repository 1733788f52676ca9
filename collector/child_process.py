"""What every helper process of the collector does first (ingest workers, conversion workers)."""

from __future__ import annotations

import os
import signal
import threading
import time


def detach_from_parent_signals(parent_pid: int) -> None:
    """Ctrl-C reaches the whole process group, but the parent decides when children stop; and a
    child must not outlive a parent killed with -9 (it would hold ports or wait forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)
