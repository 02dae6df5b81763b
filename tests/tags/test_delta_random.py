"""The nightly delta path (additions folded into the aggregate, the stored nightly frame,
only changed tag rows written) ends every night exactly where a full recompute would, on
random shops over several simulated nights: new orders, refunds, edited amounts, an older
order whose payment time moves into the new day, orders known before they are paid, new
and removed members."""
from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local, set_order
from tests.tags.test_incremental import assert_same, recomputed_aggregates, stored_aggregates
from userops.db import read_frame

CATS = ["skincare", "makeup", "gift"]
CHANNELS = ["app", "web", "store"]
TAG_COLS = ["customer_id", "lifecycle_stage", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "value_tier", "crisis_priority",
            "price_sensitive", "favourite_category", "preferred_channel", "ltv", "paid_orders"]


def _random_order(s: Shop, rng: random.Random, cid: str, paid_at, **kw) -> str:
    return s.order(
        cid, paid_at,
        amount=round(rng.uniform(20, 300), 2),
        status=kw.pop("status", rng.choices(["paid", "refunded", "cancelled"], [8, 1, 1])[0]),
        discount=rng.choice([0.0, 0.0, 15.0, 40.0]),
        channel=rng.choice(CHANNELS),
        category=rng.choice(CATS),
        qty=rng.randint(1, 3),
        **kw,
    )


def stored_tags(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        df = tags.fetch_frame(conn, f"SELECT {', '.join(TAG_COLS)} FROM tags ORDER BY customer_id", numeric=["rfm_r", "rfm_f", "rfm_m", "ltv", "paid_orders"])
    df["price_sensitive"] = df["price_sensitive"].map(lambda v: None if v is None or pd.isna(v) else bool(tags.as_bool(pd.Series([v])).iloc[0]))
    return df.reset_index(drop=True)


def fresh_tags(engine, day) -> pd.DataFrame:
    with engine.connect() as conn:
        base = tags.base_frame(conn, day, stored=False)
    fresh, _ = tags.compute_tags(base, day)
    fresh = fresh[TAG_COLS].sort_values("customer_id").reset_index(drop=True)
    fresh["price_sensitive"] = fresh["price_sensitive"].astype(object).map(lambda v: None if v is None or pd.isna(v) else bool(v))
    return fresh


def assert_tags_equal(engine, day) -> None:
    a, b = stored_tags(engine), fresh_tags(engine, day)
    for df in (a, b):
        for c in ("rfm_r", "rfm_f", "rfm_m", "paid_orders", "ltv"):
            df[c] = pd.to_numeric(df[c]).astype("float64").round(2)
        for c in ("favourite_category", "preferred_channel", "rfm_segment"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_delta_nights_equal_full_recompute(warehouse):
    rng = random.Random(7)
    s = Shop()
    ids = [s.customer(f"R{i:03d}", registered=local(AS_OF, -rng.randint(0, 500))) for i in range(40)]
    s.customer("LATER", registered=local(AS_OF, 3))  # a member only once that day comes
    for cid in ids:
        for _ in range(rng.randint(0, 5)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 420), hour=rng.randint(0, 23)))
    future = _random_order(s, rng, ids[0], local(AS_OF, 2), status="paid", updated_at=local(AS_OF, 0, hour=6))
    s.load(warehouse)
    first = tags.refresh(AS_OF, "r0", engine=warehouse)
    assert first["aggregates"]["mode"] == "full"
    orders = read_frame(warehouse, "SELECT order_id, customer_id FROM orders ORDER BY order_id")["order_id"].tolist()

    day = AS_OF
    for night in range(1, 6):
        day = day + timedelta(days=1 if night != 3 else 2)  # one night skipped: two days at once
        stamp = local(day, 0, hour=1)
        for cid in rng.sample(ids, 6):  # tonight's orders
            orders.append(_random_order(s, rng, cid, local(day, 0, hour=rng.randint(8, 22))))
        s.customer(f"N{night}", registered=local(day, 0, hour=7))
        orders.append(_random_order(s, rng, f"N{night}", local(day, 0, hour=9), status="paid"))
        s.load(warehouse)
        set_order(warehouse, rng.choice(orders[:-8]), status="refunded", updated_at=stamp)
        set_order(warehouse, rng.choice(orders[:-8]), amount=round(rng.uniform(20, 300), 2), updated_at=stamp)
        if night == 2:  # an older order's payment time corrected into tonight: counted once
            set_order(warehouse, orders[3], paid_at=local(day, 0, hour=5), updated_at=stamp)
        if night == 4:  # a member removed from the CRM: leaves the tags
            gone = ids.pop(5)
            with warehouse.begin() as conn:
                conn.execute(sa.text("DELETE FROM customers WHERE customer_id = :c"), {"c": gone})
        stats = tags.refresh(day, f"r{night}", engine=warehouse)
        assert stats["aggregates"]["mode"] == "incremental"
        assert stats["frame"]["reused"]
        assert stats["aggregates"]["added"] >= 6
        members = set(read_frame(warehouse, "SELECT customer_id FROM customers")["customer_id"])
        stored = stored_aggregates(warehouse)
        assert_same(stored[stored["customer_id"].isin(members)], recomputed_aggregates(warehouse, day))
        assert_tags_equal(warehouse, day)
    assert "LATER" in set(stored_tags(warehouse)["customer_id"])
    assert gone not in set(stored_tags(warehouse)["customer_id"])
    assert future in orders


def test_a_rerun_of_a_delta_night_writes_nothing(warehouse):
    rng = random.Random(3)
    s = Shop()
    ids = [s.customer(f"Q{i:02d}") for i in range(15)]
    for cid in ids:
        for _ in range(rng.randint(1, 4)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 200)))
    s.load(warehouse)
    tags.refresh(AS_OF, "q0", engine=warehouse)
    day = AS_OF + timedelta(days=1)
    _random_order(s, rng, ids[1], local(day, 0), status="paid")
    s.load(warehouse)
    tags.refresh(day, "q1", engine=warehouse)
    before = read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id")
    again = tags.refresh(day, "q1-again", engine=warehouse)
    assert again["frame"]["reused"] and again["tags_written"] == 0 and again["stage_changes"] == 0
    assert again["aggregates"]["recomputed"] == 0 and again["aggregates"]["added"] == 0
    pd.testing.assert_frame_equal(before, read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id"))
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))


def test_an_order_moved_into_the_new_day_is_counted_once(warehouse):
    """Tonight's orders are added to the aggregate; an older order whose payment time was
    corrected into tonight looks like one of them, and the counted-orders check sends its
    customer to a recompute instead of counting it twice."""
    s = Shop()
    s.customer("MOVE")
    first = s.order("MOVE", local(AS_OF, -40), amount=100.0)
    s.order("MOVE", local(AS_OF, -10), amount=50.0)
    s.customer("ADD")
    s.order("ADD", local(AS_OF, -5), amount=70.0)
    s.load(warehouse)
    tags.refresh(AS_OF, "m0", engine=warehouse)
    day = AS_OF + timedelta(days=1)
    set_order(warehouse, first, paid_at=local(day, 0, hour=9), updated_at=local(day, 0, hour=9))
    s.order("ADD", local(day, 0, hour=10), amount=30.0)
    s.load(warehouse)
    stats = tags.refresh(day, "m1", engine=warehouse)
    assert stats["aggregates"]["recomputed"] == 1 and stats["aggregates"]["added"] == 1
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg.loc["MOVE", "paid_orders"] == 2 and round(agg.loc["MOVE", "paid_amount"], 2) == 150.0
    assert agg.loc["ADD", "paid_orders"] == 2 and round(agg.loc["ADD", "paid_amount"], 2) == 100.0
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))
