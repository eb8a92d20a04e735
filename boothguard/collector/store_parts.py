"""What the store's write modules need from the store: the database, settings, alert book and clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy.engine import Engine

from boothguard.collector.alerting import AlertBook
from boothguard.collector.settings import CollectorSection


class StoreParts(Protocol):
    engine: Engine
    settings: CollectorSection
    alert_book: AlertBook | None
    clock: Callable[[], float]
