"""Capture and recording tools starting: new processes of this user matched against a configurable list.

Only processes not seen before are looked at (a listing of /proc per poll, then comm/cmdline of the new
ones), which keeps the idle cost of polling every second small.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ToolSpec:
    name: str
    arg: str | None  # required substring of the command line (ffmpeg:x11grab)

    @classmethod
    def parse(cls, text: str) -> ToolSpec:
        name, _, arg = text.partition(":")
        return cls(name, arg or None)


@dataclass(frozen=True)
class ToolStarted:
    pid: int
    name: str
    tool: str
    cmdline: list[str]


class ToolScanner:
    def __init__(self, tools: Iterable[str], uid: int | None = None) -> None:
        self.specs = [ToolSpec.parse(t) for t in tools]
        self.uid = os.getuid() if uid is None else uid
        self._seen: set[int] = set()
        self._primed = False

    def prime(self) -> list[ToolStarted]:
        """Note what already runs; tools running at start are reported too (a recorder left running)."""
        self._primed = True
        return self.poll()

    def poll(self) -> list[ToolStarted]:
        pids = set(psutil.pids())
        new = pids - self._seen
        self._seen = pids
        found: list[ToolStarted] = []
        for pid in sorted(new):
            hit = self._match(pid)
            if hit is not None:
                found.append(hit)
        return found

    def _match(self, pid: int) -> ToolStarted | None:
        try:
            proc = psutil.Process(pid)
            if self.uid != 0 and proc.uids().real != self.uid:
                return None
            name = proc.name()
            names = {name}
            cmdline: list[str] | None = None
            for spec in self.specs:
                if spec.name not in names:
                    if cmdline is None:
                        cmdline = proc.cmdline()
                        if cmdline:
                            names.add(os.path.basename(cmdline[0]))
                    if spec.name not in names:
                        continue
                if spec.arg is not None:
                    cmdline = proc.cmdline() if cmdline is None else cmdline
                    if not any(spec.arg in part for part in cmdline):
                        continue
                cmdline = proc.cmdline() if cmdline is None else cmdline
                return ToolStarted(
                    pid, name, spec.name if spec.arg is None else f"{spec.name}:{spec.arg}", cmdline[:16]
                )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return None
