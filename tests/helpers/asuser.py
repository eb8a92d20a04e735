"""Run a function as another uid in a forked child (exec is not needed, so no interpreter path issues)."""

from __future__ import annotations

import os
from collections.abc import Callable


def run_as(uid: int, gid: int, fn: Callable[[], int]) -> int:
    """Fork, drop to uid/gid, run fn; returns its int result (0-255) as the child's exit status."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = fn()
        except BaseException:  # the child must never return into the test runner
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code & 0xFF)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
