"""Checks of command-line values shared by the commands: a bad value is one line naming the
option and what to give, never a traceback."""
from __future__ import annotations

from datetime import date, datetime
from typing import Optional

import typer

from userops.i18n import join_list, register, t
from userops.settings import SETTINGS_TEXTS

register(
    {
        "import.bad_date_order": {"zh-CN": "--date-order {value!r}：请用 ymd、dmy 或 mdy", "en": "--date-order {value!r}: use ymd, dmy or mdy"},
        "cli.bad_date": {"zh-CN": "{value!r} 不是日期，请写成 2026-11-20 这样（YYYY-MM-DD）",
                         "en": "{value!r} is not a date like 2026-11-20 (YYYY-MM-DD)"},
        "cli.bad_timezone": {"zh-CN": "没有时区 {value!r}；请写 IANA 名称，如 Asia/Shanghai、Europe/Berlin、UTC",
                             "en": "no time zone {value!r}; give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC"},
        "cli.bad_choice": {"zh-CN": "{value!r} 不可用；可选：{choices}", "en": "{value!r} is not one of: {choices}"},
        "cli.bad_database_url": {
            "zh-CN": "USEROPS_DATABASE_URL 不是可用的数据库地址（{detail}）。PostgreSQL 写成 postgresql+psycopg2://用户@主机:5432/库名，SQLite 写成 sqlite:////绝对路径/userops.db",
            "en": "USEROPS_DATABASE_URL is not a usable database URL ({detail}). PostgreSQL: postgresql+psycopg2://user@host:5432/dbname; SQLite: sqlite:////absolute/path/userops.db",
        },
        "cli.no_tables": {"zh-CN": "数据仓库 {url} 还没有 userops 的表（{detail}）：先运行 `userops db upgrade`，或 `userops demo` / `userops run nightly`",
                          "en": "the warehouse {url} has no userops tables yet ({detail}): run `userops db upgrade` first, or `userops demo` / `userops run nightly`"},
        "cli.bad_settings": {"zh-CN": "配置有误，请修改后重试：", "en": "The configuration is wrong; fix it and try again:"},
        "cli.warehouse_dir_missing": {
            "zh-CN": "SQLite 数据仓库所在的目录 {directory} 不存在（{source} 指向 {path}）。请检查路径；若确实要放在那里，先创建该目录，再运行 `userops db upgrade`",
            "en": "the directory {directory} of the SQLite warehouse does not exist ({source} names {path}). Check the path; if the warehouse belongs there, create the directory, then run `userops db upgrade`",
        },
        "cli.bad_count": {"zh-CN": "{value} 不可用：请给一个至少为 {minimum} 的整数",
                          "en": "{value} is not usable: give a whole number of at least {minimum}"},
    }
)
register(SETTINGS_TEXTS)  # a settings problem's lines (userops.settings.settings_problems)


def at_least(value: Optional[int], minimum: int, option: str) -> Optional[int]:
    """A count option that must be at least ``minimum`` (``--customers 0`` is one line, not a traceback)."""
    if value is not None and value < minimum:
        raise typer.BadParameter(t("cli.bad_count", value=value, minimum=minimum), param_hint=option)
    return value


def day(value: Optional[str], option: str = "--as-of") -> Optional[date]:
    """A YYYY-MM-DD option (None stays None)."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(t("cli.bad_date", value=value), param_hint=option)


def timezone(value: Optional[str], option: str = "--timezone") -> Optional[str]:
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(t("cli.bad_timezone", value=value), param_hint=option)
    return value


def date_order(value: Optional[str]) -> Optional[str]:
    """``--date-order`` (``import``, ``model backtest``): None for ymd, the default (a date that
    reads both ways is never guessed), else "dmy" / "mdy". Anything else: one line, exit 2."""
    if value is None:
        return None
    order = value.strip().lower()
    if order not in ("ymd", "dmy", "mdy"):
        typer.echo(t("import.bad_date_order", value=value), err=True)
        raise typer.Exit(2)
    return None if order == "ymd" else order


def choice(value: Optional[str], choices, option: str) -> Optional[str]:
    if value is not None and value not in choices:
        raise typer.BadParameter(t("cli.bad_choice", value=value, choices=join_list(choices)), param_hint=option)
    return value
