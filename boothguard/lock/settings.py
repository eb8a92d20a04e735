from pathlib import Path

from pydantic import Field

from boothguard.section import Section

DEFAULT_FALLBACKS = [
    ["xdg-screensaver", "lock"],
    ["dm-tool", "lock"],
    ["xflock4"],
    ["gnome-screensaver-command", "-l"],
]


class LockSection(Section):
    # The away → lock feature; off only for machines without operators.
    enabled: bool = True
    # System bus address; empty: $DBUS_SYSTEM_BUS_ADDRESS, else the standard system bus socket.
    bus_address: str = ""
    # A proof (LockedHint, or the agent's own X check) must come within this time after LockSession.
    verify_seconds: float = Field(default=3.0, gt=0, le=120)
    # In-session lock commands the session watcher runs when logind's lock did not verify, in order.
    fallback_commands: list[list[str]] = Field(default_factory=lambda: [list(c) for c in DEFAULT_FALLBACKS])
    fallback_timeout_seconds: float = Field(default=15.0, gt=0, le=120)  # the watcher gives each command 10 s
    # The watcher's screensaver state is asked for when no proof came; it is recorded, never a proof.
    screensaver_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    # The agent's own check of an X11 session's server (logind's Display): keyboard and pointer grabbed.
    x11_check: bool = True
    # The uids an X server may run as for its answer to count; a server the operator runs proves nothing.
    x11_trusted_server_uids: list[int] = Field(default_factory=lambda: [0])
    # A lock proven by the grab alone is looked at this often: such a locker gives no unlock signal.
    x11_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # On an X11 session the agent can check, LockedHint counts only with the grab seen too or the session no
    # longer active on its seat (a locker that switches VT, like light-locker): the session's owner may call
    # SetLockedHint themselves. Sessions the agent cannot check (Wayland, rootless Xorg) rest on LockedHint.
    x11_corroborate_hint: bool = True
    # After lock_failed: end the session through logind (the operator loses unsaved work; the data is safe).
    terminate_on_failure: bool = False
    # Idle time reported by the session watcher past which the session is locked; 0 disables.
    idle_seconds: float = Field(default=300, ge=0, le=86400)
    # Lock when an active graphical session's watcher goes missing.
    lock_on_watcher_missing: bool = True
    # 0: an unlock while away ends the away state. >0: away holds until `back`, and an unlock is
    # locked again after this many seconds.
    relock_after_seconds: float = Field(default=0, ge=0, le=86400)
    # logind sessions are re-read this often (signals keep the cache fresh in between).
    refresh_seconds: float = Field(default=10.0, gt=0, le=3600)
    # VPN watching for home-office booths: interface name patterns (fnmatch); empty list disables it.
    vpn_interfaces: list[str] = Field(default_factory=list)
    vpn_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    lock_on_vpn_down: bool = True
    # Local HTTP endpoint for CTI/softphone software; 0 disables it. Always bound to 127.0.0.1.
    http_port: int = Field(default=0, ge=0, le=65535)
    http_token_file: Path | None = None  # default: <state_dir>/cti.token (created 0640 if missing)
    http_token_group: str = "boothguard-cti"  # noqa: S105 -- a group name: who may read the token file
    http_allowed_origins: list[str] = Field(default_factory=list)  # exact origins for browser CTI apps
    http_max_body_bytes: int = Field(default=4096, ge=64, le=65536)
    http_rate_per_second: float = Field(default=5.0, gt=0, le=1000)
    http_rate_burst: int = Field(default=20, ge=1, le=10000)
    http_max_connections: int = Field(default=16, ge=1, le=1024)
