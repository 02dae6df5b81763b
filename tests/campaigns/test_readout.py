"""Read-outs: uplift maths against a hand-computed case, the report from touches and
orders (attribution window, refunds, per variant), and the communication calendar."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from tasks.campaigns.readout import calendar_frame, campaign_report, report_rows, uplift_interval, verdict
from tasks.messaging import plan_touches
from userops.db import bulk_upsert


def test_uplift_interval_hand_computed():
    # treatment 20/100, control 10/100: d = 0.10, se = sqrt(.2*.8/100 + .1*.9/100) = sqrt(.0025) = .05
    u = uplift_interval(20, 100, 10, 100)
    assert u["uplift"] == pytest.approx(0.10)
    assert u["se"] == pytest.approx(0.05)
    assert u["lo"] == pytest.approx(0.10 - 1.959964 * 0.05, abs=1e-6)  # 0.0020018
    assert u["hi"] == pytest.approx(0.10 + 1.959964 * 0.05, abs=1e-6)  # 0.1979982
    assert verdict(u, 100, 100) == "up"
    # 12/100 vs 10/100: se = sqrt(.12*.88/100 + .09/100) = sqrt(.001956) = .0442267
    u = uplift_interval(12, 100, 10, 100)
    assert u["se"] == pytest.approx(math.sqrt(0.001956))
    assert u["lo"] < 0 < u["hi"] and verdict(u, 100, 100) == "not_significant"
    assert verdict(uplift_interval(5, 10, 0, 10), 10, 10) == "too_small"
    assert verdict(uplift_interval(5, 100, 30, 100), 100, 100) == "down"
    assert verdict(uplift_interval(5, 100, 0, 0), 100, 0) == "no_control"


def _touch_rows(n, grp, start, variant=None, sent_at=None, status=None, gift=0.0):
    rows = []
    for i in range(start, start + n):
        rows.append({
            "touch_key": f"exp|C{i:04d}|2026-11-01", "campaign": "exp", "customer_id": f"C{i:04d}", "channel": "sms",
            "grp": grp, "variant": variant, "status": status or ("control" if grp == "control" else "planned"),
            "planned_at": pd.Timestamp(sent_at), "gift_cost": gift, "period": "2026-11-01",
        })
    return rows


def _order(cid, paid_at, amount, status="paid", n=[0]):
    n[0] += 1
    return {"order_id": f"O{n[0]}-{cid}", "customer_id": cid, "paid_at": pd.Timestamp(paid_at), "status": status, "amount": amount}


def test_report_from_touches_and_orders(warehouse):
    sent = datetime(2026, 11, 1, 2, 0)
    rows = _touch_rows(50, "treatment", 0, "A", sent, gift=5.0) + _touch_rows(50, "treatment", 50, "B", sent, gift=5.0) + _touch_rows(100, "control", 100, None, sent)
    df = pd.DataFrame(rows)
    with warehouse.begin() as conn:
        plan_touches(conn, df, quiet_hours=False)
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE grp = 'treatment' AND customer_id <> 'C0099'")
        conn.exec_driver_sql("UPDATE touches SET status = 'failed' WHERE customer_id = 'C0099'")
        orders = []
        orders += [_order(f"C{i:04d}", sent + timedelta(days=3), 100.0) for i in range(0, 15)]  # A: 15 converted
        orders += [_order(f"C{i:04d}", sent + timedelta(days=13, hours=23), 50.0) for i in range(50, 55)]  # B: 5 (inside 14 days)
        orders += [_order(f"C{i:04d}", sent + timedelta(days=15), 80.0) for i in range(55, 60)]  # B: too late
        orders += [_order(f"C{i:04d}", sent + timedelta(days=2), 80.0, "refunded") for i in range(60, 65)]  # not paid
        orders += [_order(f"C{i:04d}", sent - timedelta(days=1), 80.0) for i in range(65, 70)]  # before the touch
        orders += [_order(f"C{i:04d}", sent + timedelta(days=5), 60.0) for i in range(100, 110)]  # control: 10
        orders += [_order("C0000", sent + timedelta(days=4), 20.0)]  # a second order: converted once, revenue adds
        o = pd.DataFrame(orders)
        o["paid_at"] = o["paid_at"].astype("datetime64[us]")
        bulk_upsert(conn, "orders", o, ["order_id"])
    rep = campaign_report(warehouse, "exp", now=datetime(2026, 12, 1))
    tr, co = rep["groups"]["treatment"], rep["groups"]["control"]
    assert tr["customers"] == 100 and tr["reached"] == 99 and tr["converted"] == 20
    assert co["customers"] == 100 and co["converted"] == 10 and co["reached"] == 0
    assert rep["uplift"]["uplift"] == pytest.approx(0.10)
    assert rep["uplift"]["lo"] == pytest.approx(0.0020018, abs=1e-6) and rep["uplift"]["hi"] == pytest.approx(0.1979982, abs=1e-6)
    assert rep["verdict"] == "up"
    assert tr["revenue"] == pytest.approx(15 * 100 + 5 * 50 + 20) and tr["revenue_per_customer"] == pytest.approx(17.7)
    assert co["revenue_per_customer"] == pytest.approx(6.0)
    assert tr["gift_cost"] == pytest.approx(99 * 5.0)
    assert rep["incremental_revenue"] == pytest.approx((17.7 - 6.0) * 100)
    assert rep["open_window"] == 0
    va = {v["variant"]: v for v in rep["variants"]}
    assert va["A"]["converted"] == 15 and va["A"]["customers"] == 50 and va["A"]["verdict"] == "up"
    assert va["B"]["converted"] == 5 and va["B"]["verdict"] == "not_significant"
    rows = report_rows(rep, "en")
    assert [r["group"] for r in rows] == ["treatment", "control", "variant A", "variant B"]
    assert rows[0]["conversion"] == "20.0%" and rows[0]["uplift vs control"] == "+10.0pp"
    assert rows[0]["verdict"] == "significant uplift"
    # inside the window, small: honest
    small = campaign_report(warehouse, "exp", now=datetime(2026, 11, 5), min_n=200)
    assert small["verdict"] == "too_small" and small["open_window"] == 200
    assert "not significant yet" in report_rows(small, "en")[0]["verdict"]
    assert "暂不显著" in report_rows(small, "zh-CN")[0]["结论"]


def test_communication_calendar(warehouse):
    today = date(2026, 11, 20)  # shop days in Asia/Shanghai
    base = datetime(2026, 11, 20, 2, 0)  # 10:00 local
    rows = []

    def add(key, campaign, channel, status, planned_at, sent_at=None, not_before=None):
        rows.append({"touch_key": key, "campaign": campaign, "customer_id": key, "channel": channel, "status": status,
                     "planned_at": pd.Timestamp(planned_at), "not_before": pd.Timestamp(not_before) if not_before else pd.NaT, "sent_at": sent_at})

    for i in range(3):
        add(f"s{i}", "awakening", "sms", "sent", base - timedelta(days=1), base - timedelta(days=1))
    add("s3", "retention", "push", "sent", base - timedelta(days=1), base - timedelta(days=1))
    add("s4", "awakening", "sms", "sent", base - timedelta(days=40), base - timedelta(days=40))  # too old
    add("s5", "recall", "sms", "sent", datetime(2026, 11, 18, 17, 0), datetime(2026, 11, 18, 17, 0))  # 01:00 on the 19th locally
    add("p0", "recall", "sms", "planned", base, not_before=base + timedelta(days=2))
    add("p1", "recall", "sms", "planned", base - timedelta(days=3))  # overdue: shows today
    add("p2", "recall", "staff", "awaiting_review", base, not_before=base + timedelta(days=30))  # beyond 14 days
    add("p3", "retention", "push", "suppressed", base)
    df = pd.DataFrame(rows)
    sent_at = df.pop("sent_at")
    with warehouse.begin() as conn:
        plan_touches(conn, df, quiet_hours=False)
        import sqlalchemy as sa

        for k, s in zip(df["touch_key"], sent_at):
            if s is not None and not pd.isna(s):
                conn.execute(sa.text("UPDATE touches SET sent_at = :s WHERE touch_key = :k").bindparams(sa.bindparam("s", type_=sa.DateTime())), {"s": pd.Timestamp(s).to_pydatetime(), "k": k})
    cal = calendar_frame(warehouse, today)
    got = {(r.day, r.campaign, r.channel): (r.sent, r.planned) for r in cal.itertuples()}
    assert got == {
        ("2026-11-19", "awakening", "sms"): (3, 0),
        ("2026-11-19", "retention", "push"): (1, 0),
        ("2026-11-19", "recall", "sms"): (1, 0),
        ("2026-11-20", "recall", "sms"): (0, 1),
        ("2026-11-22", "recall", "sms"): (0, 1),
    }
