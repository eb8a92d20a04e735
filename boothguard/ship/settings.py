from pathlib import Path
from typing import Annotated

from pydantic import Field

from boothguard.section import Section

# An enrollment label (`site=tokyo`, `floor2`): lower-case, no spaces; groups can match booths by one.
LABEL_PATTERN = r"^[a-z0-9][a-z0-9._:=/-]{0,63}$"
MAX_LABELS = 16


class ShipSection(Section):
    collector_url: str = ""  # empty: keep events in the spool only
    # Sent at enrollment: the collector's groups can match booths by label.
    labels: list[Annotated[str, Field(pattern=LABEL_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_LABELS
    )
    token_file: Path | None = None  # default: <state_dir>/host.token
    ca_file: Path | None = None  # default: the system store
    client_cert: Path | None = None
    client_key: Path | None = None
    batch_max_events: int = Field(default=500, ge=1, le=500)
    batch_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024)
    batch_max_wait: float = Field(default=1.0, ge=0, le=1.0)
    urgent_max_wait: float = Field(default=0.2, ge=0, le=0.2)
    backoff_min: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=300.0, gt=0)
    timeout: float = Field(default=30.0, gt=0)
