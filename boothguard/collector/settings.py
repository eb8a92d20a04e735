from pathlib import Path

from pydantic import Field

from boothguard.collector.alerts.settings import AlertsSection
from boothguard.collector.retention_settings import RetentionSection
from boothguard.section import Section

__all__ = ["AlertsSection", "CollectorSection", "RetentionSection"]


class CollectorSection(Section):
    listen: str = Field(default="127.0.0.1:8443", pattern=r"^\[?[0-9A-Za-z.:\-]+\]?:\d{1,5}$")
    database_url: str = "sqlite:////var/lib/boothguard-collector/events.db"
    enroll_secret_file: Path = Path("/etc/boothguard/enroll.secret")
    # TLS: both set = HTTPS; both empty = plain HTTP (behind a reverse proxy that terminates TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    # Ingest limits: the body as received, the body after gzip, one NDJSON line, lines per request.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_decompressed_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_event_bytes: int = Field(default=64 * 1024, ge=512)
    max_events_per_request: int = Field(default=5000, ge=1)
    # Overload: ingests in progress in this process (503 past it) and per host (429 past it).
    max_concurrent_ingests: int = Field(default=8, ge=1)
    max_ingests_per_host: int = Field(default=2, ge=1)
    retry_after_seconds: int = Field(default=2, ge=1, le=3600)
    # Silence: a host is silent after silence_heartbeats x its reported heartbeat interval
    # (or silence_default_seconds before it reported one); checked every silence_check_seconds.
    silence_heartbeats: float = Field(default=3, gt=0)
    silence_default_seconds: float = Field(default=180, gt=0)
    silence_check_seconds: float = Field(default=15, gt=0)
    # A hole in a host's chain waits this long for late or reordered batches before it is a gap alert.
    chain_gap_grace_seconds: float = Field(default=60, ge=0)
    # Remote commands not acknowledged within this many seconds expire.
    command_ttl_seconds: int = Field(default=3600, ge=1)
    # Password checks (argon2id, 64 MiB each) running at once in this process; past it a login is a 503.
    max_password_checks: int = Field(default=4, ge=1, le=64)
    # API sessions (POST /v1/sessions) expire after this many seconds.
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60)
    # Connection pool per process (PostgreSQL); SQLite uses one writer at a time anyway.
    db_pool_size: int = Field(default=8, ge=1, le=100)
    # [collector.retention]: how long events are kept whole (retention_settings).
    retention: RetentionSection = Field(default_factory=RetentionSection)
