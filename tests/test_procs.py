"""Exit status of a child that exited but is not reaped yet (what tmux briefly shows)."""
from __future__ import annotations

import os
import signal
import time

from hive_lab.core.procs import zombie_exit


def _zombie(action) -> int:
    pid = os.fork()
    if pid == 0:
        action()
    time.sleep(0.2)
    return pid


def test_zombie_exit_reads_status_and_signal() -> None:
    pid = _zombie(lambda: os._exit(3))
    try:
        assert zombie_exit(pid) == (3, None)
    finally:
        os.waitpid(pid, 0)
    pid = _zombie(lambda: os.kill(os.getpid(), signal.SIGKILL))
    try:
        assert zombie_exit(pid) == (None, signal.SIGKILL)
    finally:
        os.waitpid(pid, 0)
    assert zombie_exit(os.getpid()) == (None, None)      # alive: nothing to read
    assert zombie_exit(pid) == (None, None)              # reaped: gone
