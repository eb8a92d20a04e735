"""Shapes exchanged between the agent and the collector (SPEC §5)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int = Field(ge=0)
    error: str


class IngestAnswer(BaseModel):
    """The only body that acknowledges a batch; anything else (a captive portal's page) is a failure."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: list[Rejection]
    commands: list[dict[str, Any]] = Field(default_factory=list)
    policy: dict[str, Any] | None = None  # central policy for this booth (issue 18), None: none assigned

    def miscount(self, events: int) -> str | None:
        """Why this answer does not account for each of the `events` sent exactly once, or None.

        Acks purge the spool: an answer that says less than it should (`{"accepted": 0, …}` for 50 events)
        must not acknowledge anything.
        """
        indexes = [r.index for r in self.rejected]
        if any(i >= events for i in indexes) or len(set(indexes)) != len(indexes):
            return "rejected indexes out of range or repeated"
        counted = self.accepted + self.duplicates + len(indexes)
        if counted != events:
            return f"accepted + duplicates + rejected = {counted}, sent {events}"
        return None


class EnrollRequest(BaseModel):
    model_config = ConfigDict(frozen=True)
    host: dict[str, str]


class EnrollAnswer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    host_id: str
    token: str
