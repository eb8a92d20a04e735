"""One error root; narrow subclasses carry the data a caller needs."""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes of SPEC §2.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 69
EXIT_PERMISSION = 77
EXIT_CONFIG = 78


class BoothguardError(Exception):
    """Root of every error boothguard raises on purpose."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class Problem:
    """One configuration problem, located as precisely as we can."""

    file: str
    line: int | None
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.reason}"


class ConfigError(BoothguardError):
    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class PersistenceError(BoothguardError):
    """The spool could not persist an event: the agent must stop and be restarted."""


class AgentUnreachable(BoothguardError):
    exit_code = EXIT_UNREACHABLE


class PermissionDenied(BoothguardError):
    exit_code = EXIT_PERMISSION
