from __future__ import annotations

from datetime import UTC, datetime, timedelta

from boothguard.collector.alerts.settings import AlertsSection
from boothguard.collector.alerts.throttle import should_notify
from tests.alerts.helpers import alert

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)


def stamp(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_first_occurrence_notifies_repeats_once_per_window() -> None:
    section = AlertsSection()
    assert section.throttle_seconds == 300
    assert should_notify(alert(count=1), T0, section)
    notified = stamp(T0)
    # A flapping booth: repeats inside the window are only counted.
    for seconds in (1, 60, 299):
        assert not should_notify(
            alert(count=5, last_notified=notified), T0 + timedelta(seconds=seconds), section
        )
    assert should_notify(alert(count=40, last_notified=notified), T0 + timedelta(seconds=300), section)
    assert should_notify(alert(count=40, last_notified=notified), T0 + timedelta(hours=2), section)


def test_simulated_flapping_booth_notifies_a_handful_of_times() -> None:
    section = AlertsSection(throttle_seconds=60)
    now, last, sent = T0, None, []
    for count in range(1, 601):  # a blocked stick re-plugged every 2 s for 20 minutes
        a = alert(count=count, last_notified=last)
        if should_notify(a, now, section):
            sent.append(count)
            last = stamp(now)
        now += timedelta(seconds=2)
    assert len(sent) == 20
    assert sent[:3] == [1, 31, 61]


def test_rule_override_naive_clock_and_states() -> None:
    section = AlertsSection.model_validate(
        {"rules": [{"id": "usb-blocked", "types": ["usb.*"], "throttle_seconds": 10}]}
    )
    notified = stamp(T0)
    assert should_notify(alert(count=2, last_notified=notified), T0 + timedelta(seconds=10), section)
    assert not should_notify(
        alert(count=2, last_notified=notified, rule="other"), T0 + timedelta(seconds=10), section
    )
    naive = (T0 + timedelta(seconds=11)).replace(tzinfo=None)
    assert should_notify(alert(count=2, last_notified=notified), naive, section)
    later = T0 + timedelta(hours=1)
    assert not should_notify(alert(count=2, last_notified=notified, state="acked"), later, section)
    assert should_notify(
        alert(count=2, last_notified=notified, state="acked"),
        later,
        section.model_copy(update={"notify_acked_repeats": True}),
    )
    assert not should_notify(alert(count=1, state="resolved"), later, section)
    assert not should_notify(alert(count=1), later, AlertsSection(enabled=False))
    # Offsets other than Z are understood.
    assert not should_notify(alert(count=2, last_notified="2024-05-01T18:00:00+09:00"), T0, section)
