from pathlib import Path

from boothguard.section import Section


class CollectorSection(Section):
    listen: str = "127.0.0.1:8443"
    database_url: str = "sqlite:////var/lib/boothguard-collector/events.db"
    enroll_secret_file: Path = Path("/etc/boothguard/enroll.secret")


class AlertsSection(Section):
    pass
