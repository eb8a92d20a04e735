"""Skip the D-Bus tests where the machine truly cannot run them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

try:
    from tests.notify.bus import SessionBus
except ImportError as exc:  # pragma: no cover - the suite installs python-dbusmock
    pytest.skip(f"python-dbusmock/dbus-python not installed: {exc}", allow_module_level=True)

if shutil.which("dbus-daemon") is None:  # pragma: no cover
    pytest.skip("dbus-daemon is not installed (tests/apt-packages.txt)", allow_module_level=True)


@pytest.fixture
def notifications() -> Iterator[SessionBus]:
    """A private session bus with dbusmock's notification_daemon on it."""
    bus = SessionBus()
    try:
        yield bus
    finally:
        bus.close()


@pytest.fixture
def bare_bus() -> Iterator[SessionBus]:
    """A private session bus with no notification service."""
    bus = SessionBus(with_service=False)
    try:
        yield bus
    finally:
        bus.close()
