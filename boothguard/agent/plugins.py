"""Which sources the agent runs. Each feature package adds its plugin here."""

from __future__ import annotations

from boothguard.agent.plugin import Plugin
from boothguard.config import AgentConfig


def build_plugins(config: AgentConfig) -> list[Plugin]:
    plugins: list[Plugin] = []
    from boothguard.notify.plugin import NotifyPlugin

    plugins.append(NotifyPlugin(config))
    from boothguard.usb.plugin import UsbPlugin

    plugins.append(UsbPlugin(config.usb))
    from boothguard.session.agent_side import SessionsPlugin

    plugins.append(SessionsPlugin(config))
    if config.lock.enabled:
        from boothguard.lock.plugin import LockPlugin

        plugins.append(LockPlugin(config))
    return plugins
