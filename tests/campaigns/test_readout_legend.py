"""The read-out says what its figures mean, in the operator's language, as the churn-model
artifact does (说明：…。/ Key: ….): the conversion rate, the uplift in pp (percentage points)
and the 95% interval with when it makes a verdict. It is in the report's text, which is the
`campaign-<name>` artifact's description and the head of `userops campaign report`."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.campaigns.conftest import campaign, write_campaign

SENT = datetime(2026, 11, 1, 2, 0)


@pytest.fixture
def finished(sqlite_warehouse, cdir, monkeypatch):
    """Campaign "exp": 40 treatment customers sent to, 40 control; every window has closed."""
    from tasks.messaging import plan_touches

    monkeypatch.setenv("USEROPS_NOW", "2026-12-20T04:00:00")
    rows = [{
        "touch_key": f"exp|C{i:04d}|2026-11-01", "campaign": "exp", "customer_id": f"C{i:04d}", "channel": "sms",
        "grp": "treatment" if i < 40 else "control", "variant": "A" if i < 40 else None,
        "status": "planned" if i < 40 else "control", "planned_at": pd.Timestamp(SENT), "gift_cost": 0.0, "period": "2026-11-01",
    } for i in range(80)]
    with sqlite_warehouse.begin() as conn:
        plan_touches(conn, pd.DataFrame(rows), quiet_hours=False)
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment'")
    write_campaign(cdir, campaign(name="exp"))
    return sqlite_warehouse


def test_the_report_explains_rate_pp_and_the_interval(finished):
    from tasks.campaigns.readout import campaign_report, report_markdown

    rep = campaign_report(finished, "exp", now=SENT + timedelta(days=30))
    zh = report_markdown(rep, "实验", "zh-CN")
    assert "说明：转化率 = 已转化人数 ÷ 人数；" in zh, zh
    assert "单位 pp 即百分点（20.0% 对 10.0% 是 +10.0pp，不是提升 10%）" in zh
    assert "95%置信区间 = 真实提升有 95% 的把握落在这个范围内" in zh and "包含0就还不能说有没有效果。" in zh
    en = report_markdown(rep, "Exp", "en")
    assert "Key: conversion = converted ÷ customers; " in en, en
    assert "in pp, percentage points (20.0% vs 10.0% is +10.0pp, not 10% more)" in en
    assert "95% interval = the range the true uplift lies in with 95% confidence" in en
    assert "百分点" not in en and "pp" in zh


def test_the_cli_report_has_the_legend(finished):
    from userops.cli import app

    res = CliRunner().invoke(app, ["campaign", "report", "exp"])
    assert res.exit_code == 0, res.output
    assert "说明：" in res.output and "百分点" in res.output and "95%置信区间 = " in res.output, res.output
