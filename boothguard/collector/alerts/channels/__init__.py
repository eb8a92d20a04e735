"""Notification channels: one module per kind, each implementing `Channel`."""

from __future__ import annotations

from boothguard.collector.alerts.channels.base import Channel, ChannelError, build_channel

__all__ = ["Channel", "ChannelError", "build_channel"]
