"""Small helpers of the crisis module: shop-time formatting, durations."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from userops.clock import to_shop, to_shop_str  # noqa: F401  (shop-time formatting lives with the clock)
from userops.settings import get_settings


def fmt_duration(td: timedelta, lang: str | None = None) -> str:
    lang = lang or get_settings().language
    mins = int(abs(td.total_seconds()) // 60)
    h, m = divmod(mins, 60)
    if lang == "zh-CN":
        return f"{h}小时{m}分" if h else f"{m}分钟"
    return f"{h}h{m:02d}m" if h else f"{m}m"


def q(sql, params: dict | None = None):
    """``(statement, params)`` for raw SQL that behaves the same on SQLite and PostgreSQL:
    datetime values bound as ``DateTime`` (SQLite stores and compares them as text in one
    format, so an untyped bind would compare wrongly at whole seconds), lists expanded."""
    import sqlalchemy as sa

    binds, out = [], {}
    for k, v in (params or {}).items():
        if isinstance(v, pd.Timestamp):
            v = v.to_pydatetime()
        if isinstance(v, datetime):
            binds.append(sa.bindparam(k, type_=sa.DateTime()))
        elif isinstance(v, (list, tuple)):
            binds.append(sa.bindparam(k, expanding=True))
            v = list(v)
        out[k] = v
    stmt = sa.text(sql) if isinstance(sql, str) else sql
    return (stmt.bindparams(*binds) if binds else stmt), out


def read(bind, sql: str, params: dict | None = None, parse_dates=None) -> pd.DataFrame:
    from userops.db import read_frame

    stmt, p = q(sql, params)
    return read_frame(bind, stmt, p, parse_dates=parse_dates)


def execute(conn, sql: str, params: dict | None = None):
    stmt, p = q(sql, params)
    return conn.execute(stmt, p)
