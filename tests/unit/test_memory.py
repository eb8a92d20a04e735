"""The post-start-up heap release is harmless to call (glibc: malloc_trim; elsewhere: nothing)."""

from __future__ import annotations

from boothguard.agent.memory import release_freed_memory


def test_release_freed_memory_can_run_any_time() -> None:
    junk = [bytes(4096) for _ in range(2000)]
    del junk
    release_freed_memory()
    release_freed_memory()
