"""The per-client capture tally (pure; the clock is the caller's)."""

from __future__ import annotations

from boothguard.session.capture_tally import CaptureTally, Tally


def test_tiles_add_up_per_client_within_the_window() -> None:
    t = CaptureTally(min_pixels=4096, window_seconds=2.0)
    assert t.add(1, 4032, 0.0) is None
    assert t.add(2, 4032, 0.1) is None  # another client's tile is not ours
    assert t.add(1, 4032, 0.2) == Tally(8064, 2)
    assert t.add(1, 4032, 0.3) is None  # reported once, then counting starts over


def test_old_tiles_leave_the_window_and_big_reads_report_alone() -> None:
    t = CaptureTally(min_pixels=4096, window_seconds=2.0)
    assert t.add(1, 4000, 0.0) is None
    assert t.add(1, 4000, 5.0) is None  # the first is 5 s old: gone
    assert t.add(1, 1920 * 1080, 5.1) == Tally(1920 * 1080, 1)
    t.forget(1)
    assert t.add(1, 100, 5.2) is None
