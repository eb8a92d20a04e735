"""The post-start-up heap release gives freed heap back to the kernel (glibc's malloc_trim)."""

from __future__ import annotations

import re
from pathlib import Path

from boothguard.agent.memory import release_freed_memory


def rss_kib() -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    assert match is not None
    return int(match.group(1))


def test_freed_heap_in_the_middle_goes_back() -> None:
    # Blocks freed between survivors stay resident after free(): only trimming returns them.
    blocks = [bytearray(b"x" * 8192) for _ in range(4000)]
    survivors = blocks[::50]
    del blocks
    before = rss_kib()
    release_freed_memory()
    assert rss_kib() < before - 10_000, "about 30 MB were freed between survivors"
    release_freed_memory()  # harmless to call again
    assert len(survivors) == 80
