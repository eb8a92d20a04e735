"""The security dashboard served by the collector at `/` (SPEC §5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from boothguard.collector.app import Services


def mount_dashboard(app: FastAPI, svc: Services) -> None:
    from boothguard.collector.web.routes import mount

    mount(app, svc)
