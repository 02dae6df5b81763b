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


def sample_history_end() -> date:
    """The day a sample history ends before (its UTC midnight): never after the clock. The
    shop's today runs up to 8 h ahead of UTC (Asia/Shanghai): a history up to its midnight
    held orders stamped in the future, which validation rightly rejects (a demo or a test
    run between 16:00 and 24:00 UTC failed on them)."""
    return utcnow().date()
