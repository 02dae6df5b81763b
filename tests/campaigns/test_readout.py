"""Read-outs: uplift maths (Newcombe's hybrid score interval against a hand-computed case,
the published examples and a no-effect simulation), the report from touches and orders
(attribution window, refunds, per variant, intention to treat, the control's window after
quiet hours), and the communication calendar."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tasks.campaigns.readout import calendar_frame, campaign_report, report_rows, uplift_interval, verdict, wilson_interval
from tasks.campaigns.definitions import load_campaigns
from tasks.campaigns.engine import plan_campaign
from tasks.messaging import plan_touches
from tests.campaigns.conftest import AS_OF, NOON, campaign, touches, write_campaign
from userops.db import bulk_upsert


def test_uplift_interval_hand_computed():
    # treatment 20/100, control 10/100: Wilson 20/100 = [0.133367, 0.288829], 10/100 = [0.055229, 0.174366]
    # lo = 0.1 - sqrt((0.2 - 0.133367)^2 + (0.174366 - 0.1)^2) = 0.000149
    # hi = 0.1 + sqrt((0.288829 - 0.2)^2 + (0.1 - 0.055229)^2) = 0.199474
    assert wilson_interval(20, 100) == pytest.approx((0.133367, 0.288829), abs=1e-6)
    assert wilson_interval(10, 100) == pytest.approx((0.055229, 0.174366), abs=1e-6)
    u = uplift_interval(20, 100, 10, 100)
    assert u["uplift"] == pytest.approx(0.10) and u["method"] == "newcombe"
    assert u["lo"] == pytest.approx(0.000149, abs=1e-6)
    assert u["hi"] == pytest.approx(0.199474, abs=1e-6)
    assert verdict(u, 100, 100) == "up"
    u = uplift_interval(12, 100, 10, 100)
    assert u["lo"] < 0 < u["hi"] and verdict(u, 100, 100) == "not_significant"
    assert verdict(uplift_interval(5, 10, 0, 10), 10, 10) == "too_small"
    assert verdict(uplift_interval(5, 100, 30, 100), 100, 100) == "down"
    assert verdict(uplift_interval(5, 100, 0, 0), 100, 0) == "no_control"


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), 0.0524, 0.3339),
    ((9, 10, 3, 10), 0.1705, 0.8090),
    ((6, 7, 2, 7), 0.0582, 0.8062),
    ((5, 56, 0, 29), -0.0381, 0.1926),
    ((0, 10, 0, 20), -0.1611, 0.2775),
    ((0, 10, 0, 10), -0.2775, 0.2775),
    ((10, 10, 0, 20), 0.6791, 1.0000),
    ((10, 10, 0, 10), 0.6075, 1.0000),
]


@pytest.mark.parametrize("counts,lo,hi", NEWCOMBE_TABLE_II)
def test_uplift_interval_matches_newcombe_1998_table_ii(counts, lo, hi):
    u = uplift_interval(*counts)
    assert u["uplift"] == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert round(u["lo"], 4) == pytest.approx(lo, abs=1e-9) and round(u["hi"], 4) == pytest.approx(hi, abs=1e-9)


def test_uplift_interval_edge_cases_are_not_degenerate():
    # nobody converts in either group: the Wald interval was [0, 0]; this one is honest about it
    u = uplift_interval(0, 40, 0, 30)
    assert u["uplift"] == 0.0 and u["lo"] == pytest.approx(-0.1135, abs=1e-4) and u["hi"] == pytest.approx(0.0876, abs=1e-4)
    assert verdict(u, 40, 30) == "not_significant"
    # everyone vs nobody: Wald gave [1, 1]; here a real lower bound, within [-1, 1]
    u = uplift_interval(40, 40, 0, 30)
    assert u["uplift"] == 1.0 and u["lo"] == pytest.approx(0.8566, abs=1e-4) and u["hi"] == pytest.approx(1.0)
    assert u["hi"] - u["lo"] > 0.1 and verdict(u, 40, 30) == "up"
    u = uplift_interval(0, 30, 40, 40)
    assert u["lo"] == pytest.approx(-1.0) and u["hi"] == pytest.approx(-0.8566, abs=1e-4) and verdict(u, 30, 40) == "down"
    # empty groups: no figures, no verdict beyond "no control" / "no conclusion yet" (as the report says)
    u = uplift_interval(0, 0, 0, 0)
    assert u["uplift"] is None and u["lo"] is None and u["hi"] is None
    assert verdict(u, 0, 0) == "no_control" and verdict(uplift_interval(0, 0, 0, 30), 0, 30) == "open"
    for x, n in [(0, 1), (1, 1), (0, 45), (3, 374)]:
        lo, hi = wilson_interval(x, n)
        assert 0.0 <= lo < x / n + 1e-12 and x / n - 1e-12 < hi <= 1.0 and hi - lo > 0


def test_no_true_effect_rarely_gives_a_verdict():
    """Rare conversions (1%) in both groups and a small control (374 vs 45): the Wald
    interval said "up" in about a third of such campaigns; this interval errs in ~5%."""
    rng = np.random.default_rng(20261120)
    draws = 2000
    conv_t, conv_c = rng.binomial(374, 0.01, draws), rng.binomial(45, 0.01, draws)
    codes = [verdict(uplift_interval(int(a), 374, int(b), 45), 374, 45) for a, b in zip(conv_t, conv_c)]
    wrong = sum(c in ("up", "down") for c in codes) / draws
    assert wrong <= 0.07, wrong
    assert codes.count("up") / draws <= 0.05


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
    assert tr["customers"] == 100 and tr["reached"] == 99 and tr["failed"] == 1 and tr["suppressed"] == 0 and tr["converted"] == 20
    assert co["customers"] == 100 and co["converted"] == 10 and co["reached"] == 0
    assert rep["uplift"]["uplift"] == pytest.approx(0.10)
    assert rep["uplift"]["lo"] == pytest.approx(0.000149, abs=1e-6) and rep["uplift"]["hi"] == pytest.approx(0.199474, abs=1e-6)
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
    # inside the window: no conclusion yet, no interval (tests/campaigns/test_readout_open.py)
    early = campaign_report(warehouse, "exp", now=datetime(2026, 11, 5), min_n=200)
    assert early["verdict"] == "open" and early["open_window"] == 200 and early["uplift"]["lo"] is None
    assert "no conclusion yet" in report_rows(early, "en")[0]["verdict"]
    # windows closed, small: honest
    small = campaign_report(warehouse, "exp", now=datetime(2026, 12, 1), min_n=200)
    assert small["verdict"] == "too_small" and small["open_window"] == 0
    assert "not significant yet" in report_rows(small, "en")[0]["verdict"]
    assert "暂不显著" in report_rows(small, "zh-CN")[0]["结论"]


def _load_orders(engine, orders):
    o = pd.DataFrame(orders)
    o["paid_at"] = o["paid_at"].astype("datetime64[us]")
    with engine.begin() as conn:
        bulk_upsert(conn, "orders", o, ["order_id"])


def _campaign(name):
    return {c.name: c for c in load_campaigns()}[name]


def test_budget_cut_and_suppressed_treatment_still_count_intention_to_treat(warehouse, cdir, members):
    """A budget for 10 gifts leaves most treatment customers suppressed ('budget'); one more is
    suppressed at send time. All of them stay in the treatment denominator (and their orders
    count), reported beside as suppressed; only the ones sent count as reached."""
    gift = {"cost": 10, "text": {"zh-CN": "10元券", "en": "a voucher"}}
    write_campaign(cdir, campaign(budget={"amount": 100, "per": "month"}, gift=gift, holdout_share=0.3,
                                  variants=[{"name": "A", "body": {"zh-CN": "{{ name }} {{ gift }}", "en": "{{ name }} {{ gift }}"}}]))
    r = plan_campaign(_campaign("wake"), AS_OF, now=NOON)
    t = touches(warehouse)
    tr_all, co_all = t[t["grp"] == "treatment"], t[t["grp"] == "control"]
    cut = tr_all[tr_all["reason"] == "budget"]
    planned = tr_all[tr_all["status"] == "planned"]
    assert len(planned) == r.stats["planned"] == 10 and len(cut) == len(tr_all) - 10 and len(cut) > 200
    with warehouse.begin() as conn:
        conn.exec_driver_sql("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE status = 'planned'")
        conn.exec_driver_sql(f"UPDATE touches SET status = 'suppressed', reason = 'unsubscribed', sent_at = NULL WHERE customer_id = '{planned['customer_id'].iloc[0]}'")
    cut_ids = list(cut["customer_id"])
    orders = [_order(cid, NOON + timedelta(days=3), 40.0) for cid in cut_ids[:30]]  # budget-cut customers who bought anyway
    orders += [_order(cid, NOON + timedelta(days=2), 40.0) for cid in planned["customer_id"].iloc[1:5]]  # reached and bought
    orders += [_order(cid, NOON + timedelta(days=4), 40.0) for cid in co_all["customer_id"].iloc[:6]]
    _load_orders(warehouse, orders)
    rep = campaign_report(warehouse, "wake", now=NOON + timedelta(days=30))
    tr, co = rep["groups"]["treatment"], rep["groups"]["control"]
    assert tr["customers"] == len(tr_all) and co["customers"] == len(co_all)  # everyone assigned, whatever happened
    assert tr["reached"] == 9 and tr["suppressed"] == len(cut) + 1 and tr["failed"] == 0 and tr["pending"] == 0
    assert tr["suppressed_by_reason"] == {"budget": len(cut), "unsubscribed": 1}
    assert tr["converted"] == 34 and tr["conversion"] == pytest.approx(34 / len(tr_all))
    assert co["converted"] == 6 and co["reached"] == 0 and co["suppressed"] == 0
    assert tr["gift_cost"] == pytest.approx(90.0)
    assert rep["uplift"]["uplift"] == pytest.approx(34 / len(tr_all) - 6 / len(co_all))
    row = report_rows(rep, "en")[0]
    assert row["customers"] == len(tr_all) and row["reached"] == 9 and row["suppressed"] == len(cut) + 1 and row["failed"] == 0


def test_control_window_starts_after_quiet_hours_like_the_treatment(warehouse, cdir, members):
    """Planned at 21:30 shop time (quiet hours 21:00-09:00): treatment goes out at 09:00 the
    next morning, and so does the control's 14-day window; an order at 22:00 that evening is
    not a conversion, one at 10:00 the next morning is, and so is one at 08:30 on day 14."""
    write_campaign(cdir, campaign())
    plan_at = datetime(2026, 11, 20, 13, 30)  # 21:30 in Asia/Shanghai
    plan_campaign(_campaign("wake"), AS_OF, now=plan_at)
    t = touches(warehouse)
    co = t[t["status"] == "control"]
    tr = t[t["status"] == "planned"]
    assert len(co) >= 4 and co["not_before"].isna().all()  # the planner stores no wait for the control
    nine = datetime(2026, 11, 21, 1, 0)  # 09:00 Shanghai
    assert (tr["not_before"] == nine).all()
    c_evening, c_morning, c_late, c_after = co["customer_id"].iloc[:4]
    t_evening = tr["customer_id"].iloc[0]
    _load_orders(warehouse, [
        _order(c_evening, datetime(2026, 11, 20, 14, 0), 30.0),  # 22:00 the same evening: before the message would have gone out
        _order(c_morning, datetime(2026, 11, 21, 2, 0), 30.0),  # 10:00 next morning
        _order(c_late, nine + timedelta(days=14) - timedelta(minutes=30), 30.0),  # 08:30 on the 14th day: inside
        _order(c_after, nine + timedelta(days=14), 30.0),  # 09:00 on the 14th day: outside
        _order(t_evening, datetime(2026, 11, 20, 14, 0), 30.0),  # treatment alike
    ])
    from tasks.campaigns.readout import touch_outcomes

    out = touch_outcomes(warehouse, "wake", now=datetime(2026, 12, 20)).set_index("customer_id")
    assert (out.loc[co["customer_id"], "ref"] == pd.Timestamp(nine)).all()
    assert (out.loc[tr["customer_id"], "ref"] == pd.Timestamp(nine)).all()
    conv = out["converted"]
    assert not conv[c_evening] and conv[c_morning] and conv[c_late] and not conv[c_after] and not conv[t_evening]
    rep = campaign_report(warehouse, "wake", now=datetime(2026, 12, 20))
    assert rep["groups"]["control"]["converted"] == 2 and rep["groups"]["treatment"]["converted"] == 0


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
