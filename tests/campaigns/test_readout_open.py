"""No verdict while the comparison is incomplete: customers still inside their attribution
window may still buy, and a pending message has not even started its window, so the read-out
says there is no conclusion yet and why (尚无结论：N 位客户的归因窗口未结束，M 位尚未发送，对照组 K 位的
归因窗口未结束: each line counts its own customers, then the control group's),
with no uplift, interval or incremental revenue, until every window has closed and every
message has gone out; then the verdict and its interval as before."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from tasks.campaigns.readout import campaign_report, report_markdown, report_rows, verdict, uplift_interval
from tasks.messaging import plan_touches
from userops.db import bulk_upsert

SENT = datetime(2026, 11, 1, 2, 0)  # 10:00 in Shanghai


@pytest.fixture
def campaign_in_flight(sqlite_warehouse):
    """60 treatment (variant A: 40 sent, 20 still planned) and 60 control customers; 20
    treatment and 2 control customers bought within 3 days."""
    rows = []
    for i in range(120):
        grp = "treatment" if i < 60 else "control"
        rows.append({
            "touch_key": f"exp|C{i:04d}|2026-11-01", "campaign": "exp", "customer_id": f"C{i:04d}", "channel": "sms",
            "grp": grp, "variant": "A" if grp == "treatment" else None, "status": "planned" if grp == "treatment" else "control",
            "planned_at": pd.Timestamp(SENT), "gift_cost": 0.0, "period": "2026-11-01",
        })
    orders = pd.DataFrame([
        {"order_id": f"O{i}", "customer_id": f"C{i:04d}", "paid_at": pd.Timestamp(SENT + timedelta(days=3)), "status": "paid", "amount": 50.0}
        for i in [*range(0, 20), 60, 61]
    ])
    orders["paid_at"] = orders["paid_at"].astype("datetime64[us]")
    with sqlite_warehouse.begin() as conn:
        plan_touches(conn, pd.DataFrame(rows), quiet_hours=False)
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment' AND customer_id < 'C0040'")
        bulk_upsert(conn, "orders", orders, ["order_id"])
    return sqlite_warehouse


def test_open_windows_and_pending_messages_give_no_verdict(campaign_in_flight):
    rep = campaign_report(campaign_in_flight, "exp", now=SENT + timedelta(days=4))
    assert rep["verdict"] == "open" and rep["waiting"] == {"open_window": 40, "pending": 20, "control_open_window": 60}
    u = rep["uplift"]
    assert u["uplift"] is None and u["lo"] is None and u["hi"] is None  # no interval while windows are open
    assert u["p_t"] == pytest.approx(20 / 60) and u["p_c"] == pytest.approx(2 / 60)  # the rates so far stay
    assert rep["incremental_revenue"] is None
    assert [v["verdict"] for v in rep["variants"]] == ["open"]
    zh = report_rows(rep, "zh-CN")
    assert zh[0]["结论"] == "尚无结论：40 位客户的归因窗口未结束，20 位尚未发送，对照组 60 位的归因窗口未结束", zh[0]
    assert zh[0]["95%置信区间"] == "" and zh[0]["提升（对比对照组）"] == "-" and zh[0]["转化率"] == "33.3%"
    assert zh[2]["结论"] == "尚无结论：40 位客户的归因窗口未结束，20 位尚未发送，对照组 60 位的归因窗口未结束"  # variant A (all of the treatment) beside the control
    en = report_rows(rep, "en")
    assert en[0]["verdict"] == ("no conclusion yet: 40 customer(s) still inside the attribution window; 20 not sent yet; "
                                "60 control customer(s) still inside the attribution window")
    md = report_markdown(rep, "实验", "zh-CN")
    assert "尚无结论：40 位客户的归因窗口未结束，20 位尚未发送，对照组 60 位的归因窗口未结束。" in md and "100 个客户的归因窗口尚未结束" in md and "（待发送的消息发出 14 天后）" in md, md
    assert not [line for line in md.splitlines() if "显著" in line and not line.startswith("说明：")]  # only the legend names the verdicts


def test_only_open_windows_say_when_the_last_one_closes(campaign_in_flight):
    with campaign_in_flight.begin() as conn:
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment'")
    rep = campaign_report(campaign_in_flight, "exp", now=SENT + timedelta(days=4))
    assert rep["verdict"] == "open" and rep["waiting"] == {"open_window": 60, "pending": 0, "control_open_window": 60}
    assert report_rows(rep, "zh-CN")[0]["结论"] == "尚无结论：60 位客户的归因窗口未结束，对照组 60 位的归因窗口未结束"
    md = report_markdown(rep, "实验", "zh-CN")
    assert "（2026-11-15 10:00 之后）" in md, md  # 14 days after 10:00 shop time on 11-01
    assert "(after 2026-11-15 10:00)" in report_markdown(rep, "Exp", "en")


def test_pending_messages_hold_the_verdict_after_the_windows_close(campaign_in_flight):
    later = SENT + timedelta(days=30)
    rep = campaign_report(campaign_in_flight, "exp", now=later)
    assert rep["verdict"] == "open" and rep["waiting"] == {"open_window": 0, "pending": 20, "control_open_window": 0}
    assert report_rows(rep, "zh-CN")[0]["结论"] == "尚无结论：20 位尚未发送"
    with campaign_in_flight.begin() as conn:
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment'")
    rep = campaign_report(campaign_in_flight, "exp", now=later)  # every window closed, every message out: a verdict
    assert rep["verdict"] == "up" and rep["waiting"] == {"open_window": 0, "pending": 0, "control_open_window": 0}
    assert rep["uplift"]["lo"] > 0 and rep["incremental_revenue"] == pytest.approx((20 * 50 - 2 * 50) / 60 * 60)
    row = report_rows(rep, "zh-CN")[0]
    assert row["结论"] == "显著提升" and row["95%置信区间"].startswith("[+") and row["提升（对比对照组）"] == "+30.0pp"
    assert "尚无结论" not in report_markdown(rep, "实验", "zh-CN")


def test_one_function_decides_the_verdict_open_until_a_period_has_finished(campaign_in_flight):
    """``verdict`` is the read-out's only decision, on the finished periods' customers: none
    yet in either group - open; no control customer at all - no control; the report's verdict is
    the one it gives (no second rule beside it)."""
    import inspect

    assert set(inspect.signature(verdict).parameters) == {"u", "n_t", "n_c", "min_n", "control"}
    u = uplift_interval(40, 100, 10, 100)
    assert verdict(u, 100, 100) == "up" and verdict(u, 100, 100, control=300) == "up"
    assert verdict(u, 0, 100, control=100) == "open" and verdict(u, 100, 0, control=100) == "open"  # more to come
    assert verdict(u, 0, 0, control=100) == "open"
    assert verdict(u, 100, 0, control=0) == "no_control" and verdict(u, 100, 0) == "no_control"  # never a verdict
    early = campaign_report(campaign_in_flight, "exp", now=SENT + timedelta(days=1))
    assert early["basis"] == {"treatment": 0, "control": 0} and early["verdict"] == "open"
    assert early["verdict"] == verdict(early["uplift"], 0, 0, control=early["groups"]["control"]["customers"])


def test_a_campaign_still_planning_concludes_on_its_finished_days(campaign_in_flight):
    """A campaign that plans every night always has open windows: the verdict counts the
    planning days that are over (every message out, every window closed), says so, and
    leaves the newer days out until they finish. By the day a customer was planned, not by
    the idempotency period: a `once` campaign (onboarding) has one period forever."""
    early = SENT - timedelta(days=31)  # 2026-10-01: 60 treatment (all sent), 60 control; 30 vs 3 bought
    rows = [{
        "touch_key": f"exp|D{i:04d}|2026-10-01", "campaign": "exp", "customer_id": f"D{i:04d}", "channel": "sms",
        "grp": "treatment" if i < 60 else "control", "variant": "A" if i < 60 else None,
        "status": "planned" if i < 60 else "control", "planned_at": pd.Timestamp(early), "gift_cost": 0.0, "period": "2026-11-01",
    } for i in range(120)]
    orders = pd.DataFrame([
        {"order_id": f"P{i}", "customer_id": f"D{i:04d}", "paid_at": pd.Timestamp(early + timedelta(days=2)), "status": "paid", "amount": 80.0}
        for i in [*range(0, 30), 60, 61, 62]
    ])
    orders["paid_at"] = orders["paid_at"].astype("datetime64[us]")
    with campaign_in_flight.begin() as conn:
        plan_touches(conn, pd.DataFrame(rows), quiet_hours=False)
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment' AND customer_id LIKE 'D%'")
        bulk_upsert(conn, "orders", orders, ["order_id"])
    rep = campaign_report(campaign_in_flight, "exp", now=SENT + timedelta(days=4))
    assert rep["waiting"] == {"open_window": 40, "pending": 20, "control_open_window": 60}  # the November period, still running
    assert rep["basis"] == {"treatment": 60, "control": 60}
    assert rep["verdict"] == "up" and rep["uplift"]["uplift"] == pytest.approx(30 / 60 - 3 / 60)
    assert rep["uplift"]["lo"] > 0
    assert rep["incremental_revenue"] == pytest.approx((30 * 80 - 3 * 80) / 60 * 60)
    assert [v["verdict"] for v in rep["variants"]] == ["up"]
    assert rep["groups"]["treatment"]["customers"] == 120  # the counts still show everyone
    md = report_markdown(rep, "实验", "zh-CN")
    assert "只计已结束的计划日的客户（实验组 60 位、对照组 60 位" in md and "较新的计划日里40 位客户的归因窗口未结束，20 位尚未发送，对照组 60 位的归因窗口未结束，结束后计入" in md, md
    assert "count only the customers of finished planning days (60 treatment, 60 control" in report_markdown(rep, "Exp", "en")
    assert report_rows(rep, "zh-CN")[0]["结论"] == "显著提升"


def test_each_line_counts_its_own_customers(campaign_in_flight):
    """A 2-customer variant's line says 2 of its own are still inside the window, never the
    control group's as its own; the header's total is the lines' (treatment + control),
    messages not sent yet are counted as not sent, not as inside a window."""
    with campaign_in_flight.begin() as conn:
        conn.exec_driver_sql("UPDATE touches SET variant = 'vip' WHERE customer_id IN ('C0000', 'C0001')")
    rep = campaign_report(campaign_in_flight, "exp", now=SENT + timedelta(days=4))
    va = {v["variant"]: v for v in rep["variants"]}
    assert va["vip"]["customers"] == 2
    assert va["vip"]["waiting"] == {"open_window": 2, "pending": 0, "control_open_window": 60}
    assert va["A"]["waiting"] == {"open_window": 38, "pending": 20, "control_open_window": 60}
    assert rep["open_window"] == 40 + 60
    zh = {r["分组"]: r["结论"] for r in report_rows(rep, "zh-CN")}
    assert zh["版本 vip"] == "尚无结论：2 位客户的归因窗口未结束，对照组 60 位的归因窗口未结束", zh
    assert zh["实验组"] == "尚无结论：40 位客户的归因窗口未结束，20 位尚未发送，对照组 60 位的归因窗口未结束", zh
    assert "；100 个客户的归因窗口尚未结束" in report_markdown(rep, "实验", "zh-CN")
