"""Temporary USB exceptions: IT lets one device through for a while, under supervision.

A grant names a device by its sysfs name (`1-2`, the device there now) or by `vendor:product[:serial]`
(any matching device inserted while the grant runs). A matching device is authorized whole (every
interface) until the grant's time runs out, the device is removed, or the agent stops or restarts — then it
is blocked again. Grants live in memory only; the ports they authorized are written to a small state file
so that an agent killed without stopping blocks them again when it comes back. Every grant, use, expiry
and revocation is an event carrying who granted it and why.

Time: `monotonic` decides expiry, `wall` is for the events; both are passed in (tests use fake clocks).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from boothguard import log
from boothguard.events import Draft, Severity, format_time
from boothguard.usb.inventory import add_rule_strings
from boothguard.usb.sysfs import DEVICE_NAME

if TYPE_CHECKING:
    from boothguard.usb.policy import Decision, DeviceFacts

_log = log.get("usb.exceptions")
MIN_SECONDS = 1.0
MAX_SECONDS = 7 * 24 * 3600.0
MAX_GRANTS = 64
MAX_REASON = 200
_IDS = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.{1,128}))?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class GrantError(ValueError):
    """A grant that cannot be given; the message says why (shown to the CLI user / collector)."""


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1h30m`, `1d` → seconds."""
    compact = text.strip().replace(" ", "")
    if not compact:
        raise GrantError("empty duration")
    total, pos = 0.0, 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2).lower()]
        pos = m.end()
    if pos != len(compact):
        raise GrantError(f"bad duration {text!r}: use e.g. 90s, 30m, 2h, 1h30m")
    return total


def clean_text(value: Any, limit: int = MAX_REASON) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch for ch in text if ch.isprintable())[:limit].strip()


@dataclass(frozen=True)
class DeviceSpec:
    port: str | None = None
    vendor_id: str | None = None
    product_id: str | None = None
    serial: str | None = None

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        text = text.strip()
        if DEVICE_NAME.match(text):
            return cls(port=text)
        m = _IDS.match(text)
        if m:
            return cls(vendor_id=m.group(1).lower(), product_id=m.group(2).lower(), serial=m.group(3))
        raise GrantError(
            f"bad device {text!r}: a sysfs name like 1-2 or vendor:product[:serial] like 0781:5567"
        )

    def matches(self, facts: DeviceFacts) -> bool:
        if self.port is not None:
            return facts.name == self.port
        return (
            facts.vendor_id == self.vendor_id
            and facts.product_id == self.product_id
            and (self.serial is None or facts.serial == self.serial)
        )

    def __str__(self) -> str:
        if self.port is not None:
            return self.port
        return ":".join(x for x in (self.vendor_id, self.product_id, self.serial) if x is not None)


@dataclass
class Grant:
    id: str
    spec: DeviceSpec
    reason: str
    granted_by: str
    source: str  # "cli" or "collector"
    seconds: float
    granted_mono: float
    granted_wall: float
    ports: set[str] = field(default_factory=set)  # devices this grant authorized and that are still there
    uses: int = 0

    @property
    def expires_mono(self) -> float:
        return self.granted_mono + self.seconds

    @property
    def expires_wall(self) -> float:
        return self.granted_wall + self.seconds

    def data(self) -> dict[str, Any]:
        return {
            "grant_id": self.id,
            "device": str(self.spec),
            "reason": self.reason,
            "granted_by": self.granted_by,
            "source": self.source,
            "for_seconds": self.seconds,
            "granted_at": format_time(self.granted_wall),
            "expires_at": format_time(self.expires_wall),
        }


class GuardHooks(Protocol):
    """What the exceptions need from the guard (UsbGuard implements it)."""

    @property
    def enforcing(self) -> bool: ...

    def present_facts(
        self, spec_matches: Callable[[DeviceFacts], bool]
    ) -> list[tuple[DeviceFacts, Decision]]:
        """Devices present now that match, with their rule decision."""

    def authorize_excepted(self, facts: DeviceFacts, decision: Decision, grant_id: str) -> DeviceFacts:
        """Authorize it whole; returns the facts completed for the report."""

    def block_again(self, name: str) -> bool:
        """Deauthorize a device an exception let through; False if it is no longer there."""


class UsbExceptions:
    def __init__(  # noqa: PLR0917 -- the outside world, passed in
        self,
        guard: GuardHooks,
        sysfs: Any,
        emit: Callable[[Draft], None],
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        state_file: Path | None = None,
    ) -> None:
        self.guard = guard
        self.sysfs = sysfs
        self._emit = emit
        self.monotonic = monotonic
        self.wall = wall
        self.state_file = state_file
        self.grants: dict[str, Grant] = {}

    # -- granting ---------------------------------------------------------------------------------

    def grant(
        self, device: str, seconds: float, reason: str, granted_by: str, source: str
    ) -> tuple[Grant, list[str]]:
        """Give a grant and authorize the matching devices present now; returns it and those ports."""
        spec = DeviceSpec.parse(device)
        if not (MIN_SECONDS <= seconds <= MAX_SECONDS):
            raise GrantError(f"duration must be between {MIN_SECONDS:g} s and {MAX_SECONDS / 86400:g} days")
        reason = clean_text(reason)
        if not reason:
            raise GrantError("a reason is required")
        granted_by = clean_text(granted_by, 128) or "unknown"
        if len(self.grants) >= MAX_GRANTS:
            raise GrantError(f"too many active exceptions ({MAX_GRANTS})")
        present = self.guard.present_facts(lambda f: self._matches(spec, f))
        if spec.port is not None and not present:
            raise GrantError(f"no USB device at {spec.port}")
        g = Grant(
            id=secrets.token_hex(6),
            spec=spec,
            reason=reason,
            granted_by=granted_by,
            source=source,
            seconds=float(seconds),
            granted_mono=self.monotonic(),
            granted_wall=self.wall(),
        )
        self.grants[g.id] = g
        _log.warning("usb_exception_granted", grant=g.id, device=str(spec), by=granted_by, seconds=seconds)
        self._emit(
            Draft("usb.exception.granted", "high", g.data() | {"present": [f.name for f, _ in present]})
        )
        for facts, decision in present:
            self._use(g, facts, decision, "granted")
        return g, sorted(g.ports)

    def _matches(self, spec: DeviceSpec, facts: DeviceFacts) -> bool:
        if spec.serial is not None and facts.serial is None:
            facts = add_rule_strings(self.sysfs, facts)
        return spec.matches(facts)

    def _use(self, g: Grant, facts: DeviceFacts, decision: Decision, origin: str) -> None:
        facts = self.guard.authorize_excepted(facts, decision, g.id)
        g.ports.add(facts.name)
        g.uses += 1
        self._save()
        _log.warning("usb_exception_used", grant=g.id, port=facts.name, origin=origin)
        self._emit(
            Draft(
                "usb.exception.used",
                "medium",
                g.data()
                | {
                    "port": facts.name,
                    "vendor_id": facts.vendor_id,
                    "product_id": facts.product_id,
                    "serial": facts.serial,
                    "product": facts.product,
                    "rule": decision.rule,
                    "verdict": decision.verdict,
                    "interface_classes": decision.interface_classes(),
                    "origin": origin,
                    "enforced": self.guard.enforcing,
                },
            )
        )

    # -- guard hooks ------------------------------------------------------------------------------

    def on_device(self, facts: DeviceFacts, decision: Decision, origin: str) -> bool:
        """A device the rules would block: True if a running grant let it through (the guard stops there)."""
        if not self.grants or (decision.device_allowed and not decision.blocked_interfaces):
            return False  # the common case, on the decision path: no grant running
        now = self.monotonic()
        for g in self.grants.values():
            if g.expires_mono > now and self._matches(g.spec, facts):
                self._use(g, facts, decision, origin)
                return True
        return False

    def on_removed(self, name: str) -> None:
        """A device a grant let through is gone: the grant ends (re-insertion is blocked again)."""
        for g in list(self.grants.values()):
            if name in g.ports:
                g.ports.discard(name)
                self._end(g, "revoked", "device_removed", blocked=[])

    # -- ending -----------------------------------------------------------------------------------

    def next_expiry(self) -> float | None:
        return min((g.expires_mono for g in self.grants.values()), default=None)

    def expire_due(self) -> list[Grant]:
        now = self.monotonic()
        due = [g for g in self.grants.values() if g.expires_mono <= now]
        for g in due:
            self._end(g, "expired", "time_up", blocked=self._block(g))
        return due

    def revoke(self, grant_id: str, why: str, by: str | None = None) -> bool:
        g = self.grants.get(grant_id)
        if g is None:
            return False
        self._end(g, "revoked", why, blocked=self._block(g), by=by)
        return True

    def revoke_all(self, why: str) -> None:
        for g in list(self.grants.values()):
            self._end(g, "revoked", why, blocked=self._block(g))

    def _block(self, g: Grant) -> list[str]:
        return [port for port in sorted(g.ports) if self.guard.block_again(port)]

    def _end(self, g: Grant, how: str, why: str, blocked: list[str], by: str | None = None) -> None:
        self.grants.pop(g.id, None)
        self._save()
        _log.warning(f"usb_exception_{how}", grant=g.id, why=why, blocked=blocked)
        data = g.data() | {"why": why, "uses": g.uses, "blocked": blocked}
        if by is not None:
            data["revoked_by"] = by
        severity: Severity = "low"
        self._emit(Draft(f"usb.exception.{how}", severity, data))

    # -- crash safety -----------------------------------------------------------------------------

    def recover(self) -> None:
        """After a start: ports a previous run let through are blocked again, and each lost grant reported."""
        if self.state_file is None:
            return
        try:
            saved = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _log.error("usb_exception_state_unreadable", file=str(self.state_file), error=str(exc))
            saved = {}
        for gid, entry in (saved.get("grants") or {}).items() if isinstance(saved, dict) else ():
            ports = [p for p in entry.get("ports", []) if isinstance(p, str) and DEVICE_NAME.match(p)]
            blocked = [p for p in ports if self.guard.block_again(p)]
            data = {k: entry.get(k) for k in ("device", "reason", "granted_by", "source", "expires_at")}
            data |= {"grant_id": gid, "why": "agent_restart", "blocked": blocked}
            self._emit(Draft("usb.exception.revoked", "low", data))
        self._save()

    def _save(self) -> None:
        if self.state_file is None:
            return
        body = {
            "grants": {g.id: {**g.data(), "ports": sorted(g.ports)} for g in self.grants.values() if g.ports}
        }
        tmp = self.state_file.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(body, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_file)
        except OSError as exc:
            _log.error("usb_exception_state_unwritable", file=str(self.state_file), error=str(exc))

    def status(self) -> list[dict[str, Any]]:
        now = self.monotonic()
        return [
            g.data()
            | {"ports": sorted(g.ports), "uses": g.uses, "remaining_s": round(g.expires_mono - now, 1)}
            for g in self.grants.values()
        ]


# -- the ways in: control socket (CLI, root), collector command, and the expiry loop -----------------

OP_ALLOW = "usb.allow"
TICK = 0.25


async def expiry_loop(exceptions: UsbExceptions, tick: float = TICK) -> None:
    """End grants whose time ran out; checks the (injectable) monotonic clock every `tick` seconds."""
    while True:
        due = exceptions.next_expiry()
        now = exceptions.monotonic()
        await asyncio.sleep(tick if due is None else min(tick, max(0.0, due - now)))
        exceptions.expire_due()


def allow_from_command(exceptions: UsbExceptions, command: Any) -> bool | None:
    """A collector command `{"type": "usb_allow", "device", "for_seconds", "reason", "granted_by"}`."""
    if command.get("type") != "usb_allow":
        return None
    seconds = command.get("for_seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        _log.warning("usb_allow_command_rejected", error="for_seconds must be a number")
        return False
    by = clean_text(command.get("granted_by"), 128) or "collector"
    try:
        exceptions.grant(
            str(command.get("device", "")), float(seconds), command.get("reason"), by, "collector"
        )
    except GrantError as exc:
        _log.warning("usb_allow_command_rejected", error=str(exc))
        return False
    return True


def control_handler(exceptions: UsbExceptions) -> Any:
    """The `usb.allow` op (registered with access "root"): {device, for_seconds, reason, sudo_user}."""
    from boothguard.errors import EXIT_FAILURE, EXIT_USAGE

    async def handle(peer: Any, request: Any, conn: Any) -> dict[str, Any]:
        seconds = request.get("for_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            return {"ok": False, "error": "for_seconds must be a number", "code": EXIT_USAGE}
        by = peer.user or f"uid {peer.uid}"
        sudo = clean_text(request.get("sudo_user"), 64)
        if sudo and sudo != by:
            by = f"{sudo} (via {by})"
        try:
            g, ports = exceptions.grant(
                str(request.get("device", "")), float(seconds), request.get("reason"), by, "cli"
            )
        except GrantError as exc:
            return {"ok": False, "error": str(exc), "code": EXIT_FAILURE}
        return {"grant": g.data(), "authorized": ports, "enforced": exceptions.guard.enforcing}

    return handle
