"""The staff-outreach list is for staff: its header row is in the operator's language and
``listed_at`` is shop time with its UTC offset (the file sits in the shop day's folder). The
product reads its own lists back (de-duplication on touch_key, appending in a file's own
columns, the .xlsx) whatever language a list's header is in, canonical names included."""
from __future__ import annotations

import csv
from datetime import datetime

import pytest

from tasks.messaging import STAFF_COLUMNS, Outbound, StaffList, read_staff_list, staff_column
from userops.settings import reset_settings

LISTED = datetime(2026, 12, 7, 17, 31, 22)  # naive UTC: 2026-12-08 01:31:22 in Shanghai


def _msg(cid: str) -> Outbound:
    return Outbound(f"retention|{cid}|2026-12", "retention", cid, "staff", None, f"正文 {cid}", "zh-CN", 1, "张三", "c@example.com", "13800138000", "普通")


def _header(p) -> list[str]:
    with open(p, encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh))


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_headers_in_the_operators_language_and_shop_time(tmp_path, monkeypatch, lang):
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    staff = StaffList(tmp_path)
    staff.send_batch([_msg("C1")], LISTED)
    p = staff.path("retention", "2026-12-08")  # the shop's day
    assert p.exists()
    head = _header(p)
    if lang == "zh-CN":
        assert head[:3] == ["触达编号", "活动", "客户编号"] and "联系结果（员工填写）" in head
    else:
        assert head[:3] == ["touch key", "campaign", "customer ID"]
    assert not set(head) & {"touch_key", "customer_id", "listed_at", "contacted_by"}
    df = read_staff_list(p)
    assert list(df.columns) == STAFF_COLUMNS
    assert df.at[0, "listed_at"] == "2026-12-08T01:31:22+08:00"  # not 2026-12-07T17:31:22 (UTC, unmarked)
    # the .xlsx has the same header, and reads back alike
    x = [f for f in staff.finish(10) if f.endswith(".xlsx")][0]
    assert read_staff_list(x)["customer_id"].tolist() == ["C1"]
    reset_settings()


def test_a_list_in_another_language_is_appended_in_its_columns(tmp_path, monkeypatch):
    """Written in zh-CN, the operator switches to en: the same day's list keeps its header,
    the new rows go under the right columns and a touch already listed is not listed again."""
    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()
    StaffList(tmp_path).send_batch([_msg("C1")], LISTED)
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    staff = StaffList(tmp_path)
    staff.send_batch([_msg("C1"), _msg("C2")], LISTED)  # C1 again: a resend after a crash
    p = staff.path("retention", "2026-12-08")
    assert _header(p)[0] == "触达编号"
    df = read_staff_list(p)
    assert df["customer_id"].tolist() == ["C1", "C2"] and df["message"].tolist() == ["正文 C1", "正文 C2"]
    assert [staff_column(h) for h in ("touch_key", "触达编号", "touch key", "备注")] == ["touch_key", "touch_key", "touch_key", None]
    reset_settings()
