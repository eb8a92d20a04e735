from pathlib import Path

from pydantic import Field

from boothguard.section import Section


class AgentSection(Section):
    state_dir: Path = Path("/var/lib/boothguard")
    runtime_dir: Path = Path("/run/boothguard")
    heartbeat_seconds: float = Field(default=60, gt=0, le=86400)
    # Members of this group may `emit` and run the away/back commands besides root.
    control_group: str = "boothguard"
    machine_id_file: Path = Path("/etc/machine-id")
    host_name: str = ""  # empty: the system hostname
    spool_max_mib: int = Field(default=256, ge=1, le=65536)
    # Events waiting for the spool writer; past this, sources see a full queue and count the loss.
    queue_max_events: int = Field(default=10000, ge=10)
