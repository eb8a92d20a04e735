"""`[clipboard]` and `[screenshot]`: what the session watcher watches and what it does about it.

The agent reads these (root-owned config) and hands them to each watcher when it registers, so an operator
cannot loosen the policy by editing a file the watcher reads; the watcher keeps them as the plain
dataclasses of `boothguard.session.policy` (same names and defaults, no pydantic in the watcher). The
watcher-link timings live in `[clipboard]` because there is no `[session]` section in SPEC §3; they apply
to the whole watcher.
"""

from typing import Literal

from pydantic import Field

from boothguard.section import Section
from boothguard.session.policy import DEFAULT_CAPTURE_TOOLS, DEFAULT_EXTENSIONS


class ClipboardSection(Section):
    enabled: bool = True
    # `report`: tell the agent; `clear`: also take the clipboard over with empty content when personal
    # data was found (and the copy is not between allowed applications).
    policy: Literal["report", "clear"] = "report"
    # Process names between which copying is normal (e.g. the CRM itself): their copies are reported at
    # severity info and never cleared; a paste of personal data (X11) is reported unless both the copying
    # and the pasting app are listed (clipboard managers paste every copy: list them too).
    allow_apps: list[str] = Field(default_factory=list)
    watch_primary: bool = True  # a selection + middle-click is a copy and paste too
    # Text beyond this is not read (the size is still reported, `truncated: true`).
    max_read_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    convert_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Watcher link (whole watcher): heartbeat interval, and after how long without one the agent reports
    # `session.watcher_missing`.
    watcher_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    watcher_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    # Events the watcher keeps while the agent is away (restart); past this, losses are counted.
    watcher_queue_max: int = Field(default=1000, ge=10, le=100000)


class ScreenshotSection(Section):
    enabled: bool = True
    # `report`; `kill` the capturing process; `quarantine` (kill, and move new capture files where the
    # operator cannot read them, via the agent); `delete` (kill, and delete new capture files).
    policy: Literal["report", "kill", "quarantine", "delete"] = "report"
    # Process names never reported (the compositor, the CRM's own print preview).
    allow_apps: list[str] = Field(default_factory=list)
    # 1: X RECORD on GetImage / ShmGetImage with the client's process (also catches screen sharing).
    record: bool = True
    # Ignore GetImage requests smaller than this (icons, cursor grabs).
    min_pixels: int = Field(default=4096, ge=0)
    # 2: capture and recording tools starting; "name" or "name:argument-substring".
    tools: list[str] = Field(default_factory=lambda: list(DEFAULT_CAPTURE_TOOLS))
    process_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # 3: new image/video files here; empty = XDG pictures dir, its Screenshots, Desktop, Videos.
    # `~` is the operator's home.
    dirs: list[str] = Field(default_factory=list)
    extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTENSIONS))
    # One event per process and method within this window (a capture is many requests).
    dedupe_seconds: float = Field(default=2.0, ge=0, le=3600)
    # Files moved here by the agent (root only, 0700); empty = <agent.state_dir>/quarantine.
    quarantine_dir: str = ""
    quarantine_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
