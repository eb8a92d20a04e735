"""The collector's settings; apart from `boothguard.config` so the agent never imports its section models."""

from __future__ import annotations

from pydantic import Field

from boothguard.collector.settings import AlertsSection, CollectorSection
from boothguard.config import _Settings


class CollectorConfig(_Settings):
    collector: CollectorSection = Field(default_factory=CollectorSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
