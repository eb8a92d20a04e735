from pathlib import Path

from boothguard.collector.alerts.settings import AlertsSection
from boothguard.section import Section

__all__ = ["AlertsSection", "CollectorSection"]


class CollectorSection(Section):
    listen: str = "127.0.0.1:8443"
    database_url: str = "sqlite:////var/lib/boothguard-collector/events.db"
    enroll_secret_file: Path = Path("/etc/boothguard/enroll.secret")
