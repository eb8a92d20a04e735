"""`boothguard doctor`: what works on this PC and what to fix.

Each check is a small function of a `Probe` (the outside world: config, environment, paths, timeouts) that
returns `Check`s. A check that crashes is itself reported as a failed check, so one broken probe never hides
the others, and checks for features not in this build say so instead of failing the import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from boothguard import log
from boothguard.install.doctor.model import Check, Probe, Status

__all__ = ["Check", "Probe", "Status", "render_text", "run_checks"]

_log = log.get("doctor")
CheckFn = Callable[[Probe], Iterable[Check]]


def all_checks() -> list[tuple[str, CheckFn]]:
    from boothguard.install.doctor import bus, display, service, usb

    return [
        ("config", service.config_check),
        ("agent", service.agent_check),
        ("units", service.units_check),
        ("usb", usb.checks),
        ("logind", bus.logind_check),
        ("display", display.checks),
        ("notifications", bus.notification_check),
        ("collector", service.collector_checks),
        ("spool", service.spool_check),
    ]


def run_checks(probe: Probe, checks: list[tuple[str, CheckFn]] | None = None) -> list[Check]:
    results: list[Check] = []
    for name, fn in checks if checks is not None else all_checks():
        try:
            results.extend(fn(probe))
        except Exception as exc:  # one broken probe must not hide the others
            _log.exception("doctor_check_crashed", check=name)
            results.append(Check(name, "fail", f"the check itself failed: {exc!r}", "report this as a bug"))
    return results


_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def render_text(results: list[Check]) -> str:
    width = max((len(r.name) for r in results), default=10)
    lines = []
    for r in results:
        lines.append(f"{_MARK[r.status]}  {r.name:<{width}}  {r.detail}")
        if r.fix and r.status != "ok":
            lines.append(f"{'':4}  {'':<{width}}  fix: {r.fix}")
    failed = sum(r.status == "fail" for r in results)
    warned = sum(r.status == "warn" for r in results)
    lines.append(f"\n{len(results)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines) + "\n"
