"""Apply the collector's policy: check it, write the managed drop-in, reload, and prove it with an event.

The policy only ever arrives in the answer to an authenticated ingest (our host token, over the TLS
channel the shipper verified), never from the control socket or a file, so only the enrolled collector
can set it. The drop-in stays on disk: an offline booth keeps its last policy across restarts, and a
booth that never got one runs its local config unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from boothguard import config, log
from boothguard.config_override import POLICY_HEADER, RefusedOverride, override_data
from boothguard.errors import ConfigError
from boothguard.events import Draft
from boothguard.policy import policy_hash
from boothguard.policy.dropin import DROPIN_NAME, PolicyRejected, write

_log = log.get("agent.policy")

Emit = Callable[[Draft], Awaitable[object]]
Reload = Callable[[], Awaitable[None]]


def dropin_dir(config_path: Path | None) -> Path:
    return (config_path or config.ETC / "agent.toml").with_suffix(".d")


class PolicyApplier:
    def __init__(self, config_path: Path | None, emit: Emit, reload: Reload) -> None:
        self.config_path = config_path
        self.dir = dropin_dir(config_path)
        self.emit = emit
        self.reload = reload
        self.applied = self._read_applied()
        self._last_rejected: str | None = None  # report a refused policy once, not on every batch

    def _read_applied(self) -> tuple[int, str] | None:
        try:
            first = (self.dir / DROPIN_NAME).read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            return None
        m = POLICY_HEADER.match(first)
        return (int(m.group(1)), m.group(2)) if m else None

    async def handle(self, policy: dict[str, Any]) -> None:
        version, digest, body = policy.get("version"), policy.get("hash"), policy.get("body")
        if not isinstance(version, int) or not isinstance(body, dict) or not isinstance(digest, str):
            await self._reject(repr(policy)[:64], None, ["-: malformed policy envelope"])
            return
        if self.applied is not None and self.applied[1] == digest:
            return
        if digest == self._last_rejected:
            return
        if policy_hash(body) != digest:
            await self._reject(digest, version, ["-: hash does not match the policy body"])
            return
        path = self.dir / DROPIN_NAME
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = None
        try:
            write(self.dir, body, version=version)
        except PolicyRejected as exc:
            await self._reject(digest, version, [f"{p.key}: {p.reason}" for p in exc.problems])
            return
        try:
            # The whole config as it will load (main file, other drop-ins, environment) must still be valid.
            config.load_agent(self.config_path)
        except ConfigError as exc:
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
            await self._reject(digest, version, [str(p) for p in exc.problems])
            return
        await self.reload()
        self.applied = (version, digest)
        self._last_rejected = None
        _log.info("policy_applied", version=version, hash=digest, group=policy.get("group"))
        data = {"version": version, "hash": digest, "group": str(policy.get("group") or "")}
        await self.emit(Draft("agent.policy_applied", "info", data))

    async def _reject(self, digest: str, version: int | None, problems: list[str]) -> None:
        self._last_rejected = digest
        _log.error("policy_rejected", version=version, problems=problems[:10])
        data = {"source": "collector", "version": version, "hash": digest, "problems": problems[:50]}
        data["reason"] = "; ".join(problems)[:255]
        await self.emit(Draft("agent.config_rejected", "high", data))


class OverrideReporter:
    """Emit `agent.config_override_refused` for each local value the policy refused.

    Called at start and after every successful reload; a refusal still standing is not repeated on each
    SIGHUP, one that went away and came back is reported again. At most one per file and key the policy
    sets, so the burst is bounded by the config's own size.
    """

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self._reported: set[RefusedOverride] = set()

    async def report(self, cfg: config.AgentConfig) -> None:
        new = [r for r in cfg.refused_overrides if r not in self._reported]
        self._reported = set(cfg.refused_overrides)  # only what stands now: the set stays bounded
        for refused in new:
            _log.warning(
                "config_override_refused", file=refused.source, line=refused.line, key=refused.key,
                policy_version=refused.policy_version,
            )  # fmt: skip
            await self.emit(Draft("agent.config_override_refused", "medium", override_data(refused)))
