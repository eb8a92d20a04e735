"""The shipper's seam: a Sink sends one batch and says what happened, in these terms only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from boothguard.wire import IngestAnswer


@dataclass(frozen=True)
class Batch:
    seqs: tuple[int, ...]
    ndjson: bytes  # one body per line, in seq order
    payload: bytes | None = None  # already encoded by Sink.encode (off the event loop), else the sink does it

    def halves(self) -> tuple[Batch, Batch]:
        lines = self.ndjson.split(b"\n")[:-1]
        half = len(self.seqs) // 2
        first, second = lines[:half], lines[half:]
        return (
            Batch(self.seqs[:half], b"\n".join(first) + b"\n"),
            Batch(self.seqs[half:], b"\n".join(second) + b"\n"),
        )


@dataclass(frozen=True)
class Accepted:
    answer: IngestAnswer


@dataclass(frozen=True)
class Retry:
    """Keep everything and try again later (network, 5xx, 429/503, 401/403, a non-answer 2xx)."""

    reason: str
    after: float | None = None
    status: int | None = None  # the HTTP status, when the collector answered

    @property
    def server_error(self) -> bool:
        """A 5xx: again and again for one batch, it may hold an event the collector cannot take."""
        return self.status is not None and 500 <= self.status < 600


@dataclass(frozen=True)
class Split:
    """The batch as a whole was refused (413, 400): halve it; a single event is dead-lettered."""

    reason: str


Outcome = Accepted | Retry | Split


class Sink(Protocol):
    def encode(self, ndjson: bytes) -> bytes:
        """The request payload for these events; pure CPU, safe to run in a worker thread."""

    async def send(self, batch: Batch) -> Outcome: ...

    async def close(self) -> None: ...
