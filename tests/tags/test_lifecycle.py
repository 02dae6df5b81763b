"""Lifecycle stages, value tiers, behaviour tags on hand-built members whose expected tags
are known, including the edges: exactly on a threshold, refund-only, no orders, an order
after --as-of, the shop's midnight. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local
from userops.settings import reset_settings


@pytest.fixture
def no_segment_loyalty(monkeypatch):
    """Loyal by order count only (champions would also make a member loyal)."""
    monkeypatch.setenv("USEROPS_LIFECYCLE__LOYAL_SEGMENTS", "[]")
    reset_settings()


def build_shop() -> tuple[Shop, dict]:
    s = Shop()
    exp: dict[str, str] = {}
    s.customer("P_none"); exp["P_none"] = "prospect"
    s.customer("P_refund_only")
    s.order("P_refund_only", local(AS_OF, -10), status="refunded")
    s.order("P_refund_only", local(AS_OF, -5), status="cancelled")
    exp["P_refund_only"] = "prospect"
    s.customer("P_future")  # its only order is after as_of: it did not exist yet
    s.order("P_future", local(AS_OF, 1, hour=0, minute=0))
    exp["P_future"] = "prospect"
    s.customer("N_today")  # 23:59:59 local on as_of still counts
    s.order("N_today", local(AS_OF, 0, hour=23, minute=59, second=59))
    exp["N_today"] = "new"
    s.customer("N_30")
    s.order("N_30", local(AS_OF, -30, hour=0, minute=30))  # 30 local days ago (UTC: the day before)
    exp["N_30"] = "new"
    s.customer("A_31")
    s.order("A_31", local(AS_OF, -31, hour=23, minute=50))
    exp["A_31"] = "active"
    s.customer("A_60")
    s.order("A_60", local(AS_OF, -100))
    s.order("A_60", local(AS_OF, -60, hour=23))
    exp["A_60"] = "active"
    s.customer("S_61")
    s.order("S_61", local(AS_OF, -200))
    s.order("S_61", local(AS_OF, -61))
    s.order("S_61", local(AS_OF, -20), status="refunded")  # a refund is not a purchase
    exp["S_61"] = "silent"
    s.customer("S_180")
    s.order("S_180", local(AS_OF, -180, hour=7))  # 23:00 UTC the day before, local day -180
    exp["S_180"] = "silent"
    s.customer("C_181")
    s.order("C_181", local(AS_OF, -181))
    exp["C_181"] = "churned"
    s.customer("L_4")  # 4 paid orders, the oldest exactly 365 days ago
    for d in (-365, -200, -100, -10):
        s.order("L_4", local(AS_OF, d))
    exp["L_4"] = "loyal"
    s.customer("A_3in365")  # the 4th order is 366 days ago: only 3 in the window
    for d in (-366, -200, -100, -10):
        s.order("A_3in365", local(AS_OF, d))
    exp["A_3in365"] = "active"
    s.customer("S_loyal_lapsed")  # many orders but none in 61 days: silent, not loyal
    for d in (-300, -250, -200, -150, -70):
        s.order("S_loyal_lapsed", local(AS_OF, d))
    exp["S_loyal_lapsed"] = "silent"
    s.customer("N_many")  # new takes precedence: 5 orders in its first 20 days
    for d in (-20, -15, -10, -5, -1):
        s.order("N_many", local(AS_OF, d))
    exp["N_many"] = "new"
    s.customer("P_registered_later", registered=local(AS_OF, 3))  # not a member yet
    return s, exp


def stages_of(frame: pd.DataFrame) -> dict:
    return dict(zip(frame["customer_id"], frame["lifecycle_stage"]))


def test_stages_at_the_edges(warehouse, no_segment_loyalty):
    shop, expected = build_shop()
    shop.load(warehouse)
    stats = tags.refresh(AS_OF, "t1", engine=warehouse)
    frame, base, as_of = tags.tags_frame(AS_OF, engine=warehouse)
    assert as_of == AS_OF
    assert stages_of(frame) == expected
    assert "P_registered_later" not in set(frame["customer_id"])
    assert stats["members"] == len(expected)
    b = base.set_index("customer_id")
    assert b.loc["P_refund_only", "paid_orders"] == 0
    assert b.loc["P_refund_only", "returned_orders"] == 2
    assert b.loc["S_61", "paid_orders"] == 2 and b.loc["S_61", "returned_orders"] == 1
    assert b.loc["L_4", "window_orders"] == 4
    assert b.loc["A_3in365", "window_orders"] == 3
    assert b.loc["N_today", "paid_orders"] == 1
    assert b.loc["P_future", "paid_orders"] == 0


def test_stages_recomputed_for_a_past_day(warehouse, no_segment_loyalty):
    """--as-of: orders after that day are ignored; the stored tags are not touched."""
    shop, _ = build_shop()
    shop.load(warehouse)
    tags.refresh(AS_OF, "t1", engine=warehouse)
    before = tags.fetch_frame(warehouse.connect(), "SELECT customer_id, lifecycle_stage FROM tags ORDER BY customer_id")
    past = AS_OF - timedelta(days=25)
    frame, base, _ = tags.tags_frame(past, engine=warehouse)
    st = stages_of(frame)
    assert st["N_30"] == "new"  # 5 days old then
    assert st["A_31"] == "new"  # 6 days old then
    assert st["N_today"] == "prospect" and st["N_many"] == "prospect"
    assert st["S_61"] == "active"  # 36 days then
    assert st["L_4"] == "silent"  # its last order then was 75 days old (the -10 one came later)
    assert st["C_181"] == "silent"  # 156 days then
    # the same day again gives the same tags (reproducible), nothing stored changed
    again, _, _ = tags.tags_frame(past, engine=warehouse)
    pd.testing.assert_frame_equal(frame, again)
    after = tags.fetch_frame(warehouse.connect(), "SELECT customer_id, lifecycle_stage FROM tags ORDER BY customer_id")
    pd.testing.assert_frame_equal(before, after)


def test_thresholds_come_from_settings(warehouse, monkeypatch, no_segment_loyalty):
    shop, _ = build_shop()
    shop.load(warehouse)
    monkeypatch.setenv("USEROPS_LIFECYCLE__ACTIVE_DAYS", "61")
    monkeypatch.setenv("USEROPS_LIFECYCLE__SILENT_DAYS", "181")
    reset_settings()
    frame, _, _ = tags.tags_frame(AS_OF, engine=warehouse)
    st = stages_of(frame)
    assert st["S_61"] == "active" and st["C_181"] == "silent"


def test_value_tier_priority_and_behaviour(warehouse, no_segment_loyalty):
    s = Shop()
    # ten buyers with LTV 100..1000: top 20% high (900, 1000), next 30% mid (600..800)
    for i in range(1, 11):
        s.customer(f"V{i:02d}")
        s.order(f"V{i:02d}", local(AS_OF, -100), amount=100.0 * i)
    s.customer("V00")  # no orders: low value, ordinary
    s.load(warehouse)
    frame, base, _ = tags.tags_frame(AS_OF, engine=warehouse)
    f = frame.set_index("customer_id")
    tiers = {c: f.loc[c, "value_tier"] for c in [f"V{i:02d}" for i in range(11)]}
    assert tiers["V10"] == tiers["V09"] == "high"
    assert tiers["V08"] == tiers["V07"] == tiers["V06"] == "mid"
    assert tiers["V05"] == "low" and tiers["V00"] == "low"
    # crisis priority: high value -> core; silent mid value -> potential; prospect -> ordinary
    assert f.loc["V10", "crisis_priority"] == "core"
    assert f.loc["V06", "lifecycle_stage"] == "silent" and f.loc["V06", "crisis_priority"] == "potential"
    assert f.loc["V05", "crisis_priority"] == "ordinary"
    assert f.loc["V00", "crisis_priority"] == "ordinary"
    assert pd.isna(f.loc["V00", "rfm_segment"])


def test_behaviour_tags(warehouse):
    s = Shop()
    # price sensitivity: >= 50% of >= 2 paid orders with >= 10% off
    s.customer("D_yes")
    s.order("D_yes", local(AS_OF, -5), amount=90, discount=10, channel="web", category="makeup", qty=3)  # exactly 10% off
    s.order("D_yes", local(AS_OF, -4), amount=100, channel="store", category="skincare")
    s.customer("D_no")
    s.order("D_no", local(AS_OF, -5), amount=91, discount=9)  # 9% off: not discounted
    s.order("D_no", local(AS_OF, -4), amount=100)
    s.customer("D_one")  # one discounted order is not enough
    s.order("D_one", local(AS_OF, -5), amount=50, discount=50)
    s.customer("X_none")
    s.load(warehouse)
    frame, base, _ = tags.tags_frame(AS_OF, engine=warehouse)
    f = frame.set_index("customer_id")
    assert bool(f.loc["D_yes", "price_sensitive"]) is True
    assert bool(f.loc["D_no", "price_sensitive"]) is False
    assert bool(f.loc["D_one", "price_sensitive"]) is False
    assert pd.isna(f.loc["X_none", "price_sensitive"])
    assert f.loc["D_yes", "favourite_category"] == "makeup"  # 3 items vs 1
    assert f.loc["D_yes", "preferred_channel"] == "store"  # 1 each: alphabetical tie-break
    assert pd.isna(f.loc["X_none", "favourite_category"])


def test_champions_are_loyal_when_active(warehouse):
    """"or top RFM segment": a champion with few orders in the last 365 days is loyal."""
    s = Shop()
    for i in range(1, 11):  # recency, frequency and money all rise with i
        cid = f"R{i:02d}"
        s.customer(cid, registered=local(AS_OF, -900))
        s.order(cid, local(AS_OF, -(60 - 5 * i)), amount=100.0 * i)
        for k in range(i - 1):
            s.order(cid, local(AS_OF, -400 - k), amount=100.0 * i)
    s.load(warehouse)
    frame, base, _ = tags.tags_frame(AS_OF, engine=warehouse)
    f = frame.set_index("customer_id")
    b = base.set_index("customer_id")
    assert (f.loc["R10", "rfm_r"], f.loc["R10", "rfm_f"], f.loc["R10", "rfm_m"]) == (5, 5, 5)
    assert (f.loc["R01", "rfm_r"], f.loc["R01", "rfm_f"], f.loc["R01", "rfm_m"]) == (1, 1, 1)
    assert f.loc["R10", "rfm_segment"] == "champions"
    assert f.loc["R01", "rfm_segment"] == "lost"
    assert b.loc["R10", "window_orders"] == 1
    assert f.loc["R10", "lifecycle_stage"] == "loyal"
    assert f.loc["R01", "lifecycle_stage"] == "active"
    assert f.loc["R10", "crisis_priority"] == "core"
