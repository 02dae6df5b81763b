"""Time in one place: the shop's "today", and a clock tests can pin."""
from __future__ import annotations

import os
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from userops.settings import get_settings


def utcnow() -> datetime:
    """Naive UTC now; ``USEROPS_NOW`` (ISO, UTC) pins it for tests and replays."""
    pinned = os.environ.get("USEROPS_NOW")
    if pinned:
        return datetime.fromisoformat(pinned).replace(tzinfo=None)
    return datetime.now(timezone.utc).replace(tzinfo=None)


def shop_today() -> date:
    tz = ZoneInfo(get_settings().timezone)
    return utcnow().replace(tzinfo=timezone.utc).astimezone(tz).date()
