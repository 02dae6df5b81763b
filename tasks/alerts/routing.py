"""Which channels an alert kind goes to."""
from __future__ import annotations

from userops.settings import get_settings


def configured_channels() -> list[str]:
    s = get_settings()
    chans = []
    if s.slack_webhook_url:
        chans.append("slack")
    if s.dingtalk_webhook_url:
        chans.append("dingtalk")
    if s.wecom_webhook_url:
        chans.append("wecom")
    return chans


def channels_for(kind: str) -> list[str]:
    """Every configured channel; ``log`` (kept in the outbox, shown in the digest) when none."""
    return configured_channels() or ["log"]
