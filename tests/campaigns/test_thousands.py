"""Counts an operator reads carry thousands separators (1,234), in the campaign CLI's tables,
the read-out's header, the incident approval line and the churn reasons' day counts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.explain import render_reasons
from tasks.campaigns.readout import report_markdown
from userops.cli.campaign import _table


def test_campaign_tables_separate_thousands():
    out = _table([{"客户数": 12345, "比例": "10%", "空": None, "n": np.int64(2000), "on": True}])
    row = out.splitlines()[-1]
    assert "12,345" in row and "2,000" in row and "True" in row and "12345" not in row


def test_report_header_separates_thousands():
    g = {"customers": 1500, "reached": 1500, "suppressed": 0, "failed": 0, "pending": 0, "converted": 0}
    rep = {"campaign": "x", "attribution_days": 14, "open_window": 1234, "verdict": "up", "waiting": {},
           "groups": {"treatment": g, "control": g}, "periods": 1}
    md = report_markdown(rep, "X", "zh-CN")
    assert "1,234 个客户的归因窗口尚未结束" in md, md


def test_reason_day_counts_separate_thousands():
    e = pd.DataFrame({"risk_band": ["high"], "reason_1": ["tenure"], "reason_1_sign": [1], "tenure_days": pd.array([1234], dtype="Int64")})
    assert render_reasons(e, "zh-CN")[0] == "首单在 1,234 天前"
    assert render_reasons(e, "en")[0] == "first order 1,234 days ago"
