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


def to_shop(ts) -> datetime | None:
    """A stored (naive UTC) time as an aware shop-time datetime (settings.timezone); None
    for a missing one."""
    import pandas as pd

    if ts is None or (not isinstance(ts, datetime) and pd.isna(ts)):
        return None
    ts = pd.Timestamp(ts).to_pydatetime()
    return ts.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(get_settings().timezone))


def to_shop_str(ts) -> str:
    """A stored (naive UTC) time as the operator reads it: ``2026-12-08 01:32`` in shop time."""
    s = to_shop(ts)
    return s.strftime("%Y-%m-%d %H:%M") if s else "-"


def sample_history_end() -> date:
    """The day a sample history ends before (its UTC midnight): never after the clock. The
    shop's today runs up to 8 h ahead of UTC (Asia/Shanghai): a history up to its midnight
    held orders stamped in the future, which validation rightly rejects (a demo or a test
    run between 16:00 and 24:00 UTC failed on them)."""
    return utcnow().date()
