"""Which sources the agent runs, in start order. Each feature package adds its plugin here."""

from __future__ import annotations

from boothguard.agent.plugin import Plugin
from boothguard.config import AgentConfig


def build_plugins(config: AgentConfig) -> list[Plugin]:
    # Imports stay inside: each plugin loads its own libraries only when the agent builds it.
    from boothguard.notify.plugin import NotifyPlugin
    from boothguard.session.agent_side import SessionsPlugin
    from boothguard.usb.plugin import UsbPlugin

    # Sessions first (the service others use), then notifications (they must see USB's start-up blocks).
    plugins: list[Plugin] = [SessionsPlugin(config), NotifyPlugin(config), UsbPlugin(config.usb)]
    if config.lock.enabled:
        from boothguard.lock.plugin import LockPlugin

        plugins.append(LockPlugin(config))
    return plugins
