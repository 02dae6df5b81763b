"""Dates written the zh-CN way (2026年11月1日, with a time) are read, not quarantined as
unparseable."""
from __future__ import annotations

import pandas as pd

from tasks.validate import load_suites, validate_frame


def test_zh_cn_dates_are_read():
    df = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3", "C4"],
        "registered_at": ["2026年11月1日", "2026年11月1日 12:30", "2026年1月05号 08时30分", "2026年11月1日12:30:15"],
    })
    o = validate_frame("customers", df, load_suites(), now=pd.Timestamp("2026-12-01").to_pydatetime(), assume_tz="Asia/Shanghai")
    assert o.bad.empty, o.bad[["source_id", "rule"]]
    assert o.good["registered_at"].tolist() == [pd.Timestamp("2026-10-31 16:00"), pd.Timestamp("2026-11-01 04:30"),
                                                pd.Timestamp("2026-01-05 00:30"), pd.Timestamp("2026-11-01 04:30:15")]
